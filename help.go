package persist

// recordHelp explains the record to the people who publish it. The
// commands and the admin API print it.
const recordHelp = `
The record: dns-persist-01 lets a domain's owner publish ONE static TXT record,
_validation-persist.<domain>, that names a CA and an ACME account:

  _validation-persist.example.com. IN TXT "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/123; policy=wildcard"

From then on, that account can obtain certificates for the domain, and the
record never changes between renewals: Caddy needs no DNS credentials. Publish
it once, by hand or with your DNS tooling.

- letsencrypt.org is the CA's issuer domain name; the CA says which names it
  accepts.
- accounturi is the ACME account the record authorizes (draft -01: the account
  URL itself; draft -02: a hash of the domain, the account key and the URL).
  Another account, including a staging account, does not match.
- policy=wildcard lets the record also authorize *.<domain>. Without it the
  record covers <domain> only, which is safer: it is printed only when a
  configured name needs it.
- persistUntil=<UNIX seconds>, when present, is when the record stops working;
  the CA refuses it afterwards. Set persist_until in the issuer to have it
  written for you, and republish before it passes.
`
