package persist

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/dnspersist/caddy-persist/internal/acmehttp"
	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// The issuer talks to its CA through one acmez client, built on first use
// and reused, so that connections, nonces and the directory are not
// fetched again per order. acmez parses the directory for its own needs;
// what dns-persist-01 needs beyond that (the draft spoken, the issuer
// domain names) is read here from the same document.

const (
	// directoryTTL is how long a fetched directory is trusted, as acmez
	// does.
	directoryTTL = 12 * time.Hour
	// maxDirectoryOctets bounds how much of a directory response is read.
	maxDirectoryOctets = 1 << 20
)

// caClient is the issuer's ACME client and the directory it last read.
type caClient struct {
	url     string
	roots   *x509.CertPool
	timeout time.Duration
	solver  acmez.Solver
	logger  *zap.Logger
	now     func() time.Time

	mu     sync.Mutex
	client *acmez.Client
	dir    *caDirectory
}

// get returns the issuer's ACME client, built on first use.
func (c *caClient) get() (*acmez.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		return c.client, nil
	}
	if err := checkCAURL("ca", c.url); err != nil {
		return nil, err
	}
	httpClient := acmehttp.NewClient(c.roots)
	httpClient.Transport = authzObserver{next: httpClient.Transport}
	c.client = &acmez.Client{
		Client: &acme.Client{
			Directory:   c.url,
			HTTPClient:  httpClient,
			UserAgent:   "caddy-persist " + certmagic.UserAgent,
			PollTimeout: c.timeout,
			Logger: slog.New(zapslog.NewHandler(c.logger.Core(),
				zapslog.WithName(c.logger.Name()+".acme_client"),
				zapslog.AddStacktraceAt(slog.Level(127)))),
		},
		ChallengeSolvers: map[string]acmez.Solver{
			acme.ChallengeTypeDNSPersist01: c.solver,
		},
	}
	return c.client, nil
}

// directory returns the issuer's ACME client and what the directory
// says, fetching the directory once per directoryTTL.
func (c *caClient) directory(ctx context.Context) (*acmez.Client, caDirectory, error) {
	client, err := c.get()
	if err != nil {
		return nil, caDirectory{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir != nil && c.now().Sub(c.dir.fetched) < directoryTTL {
		return client, *c.dir, nil
	}
	dir, err := fetchDirectory(ctx, client.HTTPClient, c.url, c.now())
	if err != nil {
		if c.dir != nil {
			// an old directory beats none: the CA's names rarely change
			c.logger.Warn("refreshing the ACME directory failed; using the one fetched before", zap.Error(err))
			return client, *c.dir, nil
		}
		return nil, caDirectory{}, err
	}
	c.dir = &dir
	return client, dir, nil
}

// closeIdle closes the idle connections to the CA.
func (c *caClient) closeIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		c.client.HTTPClient.CloseIdleConnections()
	}
}

// caDirectory is what this plugin needs from a CA's directory beyond what
// acmez parses: what the records need (the draft spoken, the issuer
// domain names offered), and where nonces come from.
type caDirectory struct {
	judge.Directory
	// NewNonce is the URL to get a fresh anti-replay nonce from.
	NewNonce string
	fetched  time.Time
}

type rawDirectory struct {
	NewAccount string `json:"newAccount"`
	NewNonce   string `json:"newNonce"`
	NewOrder   string `json:"newOrder"`
	Meta       struct {
		CAAIdentities     []string `json:"caaIdentities"`
		IssuerDomainNames []string `json:"issuerDomainNames"`
		AccountHashPrefix *string  `json:"accountHashPrefix"`
	} `json:"meta"`
}

// fetchDirectory GETs and interprets the directory at url.
func fetchDirectory(ctx context.Context, client *http.Client, url string, now time.Time) (caDirectory, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return caDirectory{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return caDirectory{}, fmt.Errorf("fetching ACME directory %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDirectoryOctets))
	if err != nil {
		return caDirectory{}, fmt.Errorf("reading ACME directory %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return caDirectory{}, fmt.Errorf("fetching ACME directory %s: HTTP %d", url, resp.StatusCode)
	}
	return parseDirectory(url, body, now)
}

// parseDirectory reads a directory document. A -02 CA is one whose meta
// carries both issuerDomainNames and accountHashPrefix.
func parseDirectory(url string, body []byte, now time.Time) (caDirectory, error) {
	var raw rawDirectory
	if err := json.Unmarshal(body, &raw); err != nil {
		return caDirectory{}, fmt.Errorf("ACME directory %s is not valid JSON: %v", url, err)
	}
	if raw.NewAccount == "" || raw.NewNonce == "" || raw.NewOrder == "" {
		return caDirectory{}, fmt.Errorf("%s is not an ACME directory: newAccount, newNonce or newOrder is missing", url)
	}
	dir := caDirectory{Directory: judge.Directory{Draft: record.Draft01}, NewNonce: raw.NewNonce, fetched: now}
	m := raw.Meta
	if len(m.CAAIdentities) > 0 && record.CheckIssuerNames(m.CAAIdentities) == nil {
		dir.CAAIdentities = m.CAAIdentities
	}
	if m.IssuerDomainNames != nil && m.AccountHashPrefix != nil {
		if err := record.CheckIssuerNames(m.IssuerDomainNames); err != nil {
			return caDirectory{}, fmt.Errorf("ACME directory %s: meta.issuerDomainNames: %v", url, err)
		}
		dir.Draft = record.Draft02
		dir.IssuerNames = m.IssuerDomainNames
		dir.HashPrefix = *m.AccountHashPrefix
		return dir, nil
	}
	if len(m.CAAIdentities) > 0 {
		if err := record.CheckIssuerNames(m.CAAIdentities); err != nil {
			return caDirectory{}, fmt.Errorf("ACME directory %s: meta.caaIdentities: %v", url, err)
		}
		dir.IssuerNames = m.CAAIdentities
	}
	return dir, nil
}

// recordInputs is what writing or checking a record needs besides its
// domain (judge.Inputs), with the ACME client that places the orders.
type recordInputs struct {
	client *acmez.Client
	judge.Inputs
}

// recordInputs gathers the inputs known without placing an order: the
// directory, the issuer names it offers (or issuer_domain_name), and the
// account. With register, an account is registered if there is none;
// without, a missing account is account.ErrNoAccountYet.
func (iss *Issuer) recordInputs(ctx context.Context, register bool) (recordInputs, error) {
	in, err := iss.directoryInputs(ctx)
	if err != nil {
		return in, err
	}
	acct, err := iss.accounts.Get(ctx, register)
	if err != nil {
		return in, err
	}
	iss.useAccount(ctx, &in, acct)
	return in, nil
}

// directoryInputs are the inputs but the account: the directory and the
// issuer names it offers, or issuer_domain_name.
func (iss *Issuer) directoryInputs(ctx context.Context) (recordInputs, error) {
	if err := iss.judge.Spec.Passed(iss.now()); err != nil {
		return recordInputs{}, err
	}
	client, dir, err := iss.client.directory(ctx)
	if err != nil {
		return recordInputs{}, err
	}
	in := recordInputs{client: client, Inputs: judge.Inputs{Dir: dir.Directory, Offered: iss.judge.Spec.Offered(dir.Directory)}}
	if in.Offered == nil {
		return in, fmt.Errorf("the directory of %s names no issuer domain names (neither meta.issuerDomainNames nor meta.caaIdentities), so the record cannot be written before an order; set issuer_domain_name to the name your CA documents for dns-persist-01", iss.CA)
	}
	return in, nil
}

// useAccount makes acct the account of in, with the accounturi its
// challenges last named and, for a -02 CA, the thumbprints of its
// previous keys. Those thumbprints only let more records pass, so a file
// of them that cannot be read is no reason to stop: records made with
// the current key still pass, and the others fail as if it were empty.
func (iss *Issuer) useAccount(ctx context.Context, in *recordInputs, acct acme.Account) {
	in.Account, in.Previous = acct, nil
	in.ChallengeURI = iss.accounts.ChallengeURI(ctx, acct)
	if in.Dir.Draft != record.Draft02 {
		return
	}
	previous, err := iss.accounts.PreviousThumbprints(ctx, acct)
	if err != nil {
		iss.logger.Warn("could not read the thumbprints of the account's previous keys; draft -02 records made with those keys fail the check until they can be read",
			zap.String("account_url", acct.Location), zap.Error(err))
	}
	in.Previous = previous
}
