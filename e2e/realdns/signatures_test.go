package realdns

import (
	"crypto"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// expireAtSecondary has the lagging secondary serve the zone of name as
// the primary serves it now, but for the signature over name's TXT
// records: made again with the zone's own key, over a validity window
// that ended a day ago. BIND spreads the expiry times of its signatures
// over days, so a secondary whose transfers fail loses them one set at a
// time, and the record's may be the first to go. The other sets keep
// valid signatures: were the DNSKEY set's expired too, the system
// resolver, which the issuer asks for the zone's nameservers, would
// refuse the whole zone whenever it happened to ask the secondary first.
func (w *world) expireAtSecondary(name string) {
	w.t.Helper()
	z := w.zoneOf(name)
	owner := dns.Fqdn(name)
	var (
		zoneText strings.Builder
		txts     []dns.RR
	)
	for _, rr := range w.transfer(z) {
		switch r := rr.(type) {
		case *dns.TXT:
			if r.Hdr.Name == owner {
				txts = append(txts, r)
			}
		case *dns.RRSIG:
			if r.Hdr.Name == owner && r.TypeCovered == dns.TypeTXT {
				continue
			}
		}
		zoneText.WriteString(rr.String() + "\n")
	}
	if len(txts) == 0 {
		w.t.Fatalf("the primary of %s has no TXT record at %s to sign", z.name, name)
	}
	key, signer := w.zoneKey(z)
	now := time.Now()
	sig := &dns.RRSIG{
		Hdr:        dns.RR_Header{Name: owner, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: txts[0].Header().Ttl},
		Algorithm:  key.Algorithm,
		SignerName: key.Hdr.Name,
		KeyTag:     key.KeyTag(),
		Inception:  uint32(now.Add(-48 * time.Hour).Unix()),
		Expiration: uint32(now.Add(-24 * time.Hour).Unix()),
	}
	if err := sig.Sign(signer, txts); err != nil {
		w.t.Fatalf("signing %s TXT: %v", name, err)
	}
	zoneText.WriteString(sig.String() + "\n")
	writeFile(w.t, filepath.Join(w.dir, "nsd-lagging", z.name+".zone"), zoneText.String())
	w.runTool("", "", "nsd-control", "-c", w.laggingConf, "reload", z.name)
	w.await(laggingAddr, owner, dns.TypeTXT, "serving "+name+" TXT with an expired signature", func(m *dns.Msg) bool {
		return authoritative(m) && signaturesExpired(m, now)
	})
}

// refreshAtSecondary has the lagging secondary transfer the zone of name
// in full, though its serial is the primary's, and waits until it serves
// name's TXT records with the primary's signature, valid now.
func (w *world) refreshAtSecondary(name string) {
	w.t.Helper()
	z := w.zoneOf(name)
	w.runTool("", "", "nsd-control", "-c", w.laggingConf, "force_transfer", z.name)
	w.await(laggingAddr, dns.Fqdn(name), dns.TypeTXT, "transferring "+name+" TXT with a valid signature", func(m *dns.Msg) bool {
		return authoritative(m) && signaturesValid(m, time.Now())
	})
}

// transfer is the zone as its primary serves it, by a full transfer,
// without the SOA record that ends a transfer as it began it.
func (w *world) transfer(z zone) []dns.RR {
	w.t.Helper()
	q := new(dns.Msg)
	q.SetAxfr(z.name + ".")
	envelopes, err := new(dns.Transfer).In(q, net.JoinHostPort(z.primary(), "53"))
	if err != nil {
		w.t.Fatalf("transferring %s from %s: %v", z.name, z.primary(), err)
	}
	var out []dns.RR
	for env := range envelopes {
		if env.Error != nil {
			w.t.Fatalf("transferring %s from %s: %v", z.name, z.primary(), env.Error)
		}
		out = append(out, env.RR...)
	}
	if len(out) < 2 || out[len(out)-1].Header().Rrtype != dns.TypeSOA {
		w.t.Fatalf("the transfer of %s from %s does not end with its SOA record: %v", z.name, z.primary(), out)
	}
	return out[:len(out)-1]
}

// zoneKey reads the one key BIND's default dnssec-policy made for the
// zone at its primary: a combined signing key, which signs every set.
func (w *world) zoneKey(z zone) (*dns.DNSKEY, crypto.Signer) {
	w.t.Helper()
	pattern := filepath.Join(bindDir, bindRoles[z.primary()], "K"+z.name+".+*.private")
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) != 1 {
		w.t.Fatalf("want the one key of %s at %s, found %v (%v)", z.name, pattern, files, err)
	}
	rr, err := dns.NewRR(trustAnchor(w.t, strings.TrimSuffix(files[0], ".private")+".key"))
	if err != nil {
		w.t.Fatalf("the public key of %s: %v", z.name, err)
	}
	key := rr.(*dns.DNSKEY)
	private, err := os.Open(files[0])
	if err != nil {
		w.t.Fatal(err)
	}
	defer private.Close()
	priv, err := key.ReadPrivateKey(private, files[0])
	if err != nil {
		w.t.Fatalf("the private key of %s: %v", z.name, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		w.t.Fatalf("the private key of %s is a %T, which cannot sign", z.name, priv)
	}
	return key, signer
}

// signaturesExpired tells whether the answer is signed and every one of
// its signatures ended before now.
func signaturesExpired(m *dns.Msg, now time.Time) bool {
	sigs := answerSignatures(m)
	for _, sig := range sigs {
		if sig.ValidityPeriod(now) {
			return false
		}
	}
	return len(sigs) > 0
}

// signaturesValid tells whether the answer is signed and every one of its
// signatures is valid at now.
func signaturesValid(m *dns.Msg, now time.Time) bool {
	sigs := answerSignatures(m)
	for _, sig := range sigs {
		if !sig.ValidityPeriod(now) {
			return false
		}
	}
	return len(sigs) > 0
}

func answerSignatures(m *dns.Msg) []*dns.RRSIG {
	var out []*dns.RRSIG
	for _, rr := range m.Answer {
		if sig, ok := rr.(*dns.RRSIG); ok {
			out = append(out, sig)
		}
	}
	return out
}
