// Package persist is a Caddy issuer module that obtains certificates with
// the ACME dns-persist-01 challenge: the domain owner publishes one static
// TXT record naming a CA and an ACME account, and Caddy obtains and renews
// certificates for the domain, wildcards included, with no DNS credentials.
package persist

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/account"
	"github.com/dnspersist/caddy-persist/internal/cache"
	"github.com/dnspersist/caddy-persist/internal/dnslookup"
	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/metrics"
	"github.com/dnspersist/caddy-persist/internal/record"
)

func init() {
	caddy.RegisterModule(Issuer{})
}

// Defaults for an issuer with nothing configured.
const (
	DefaultCA                 = certmagic.LetsEncryptProductionCA
	DefaultPropagationTimeout = 2 * time.Minute
	defaultCheckInterval      = 2 * time.Second
)

// Issuer obtains certificates with the ACME dns-persist-01 challenge. The
// domain owner publishes one TXT record, `_validation-persist.<domain>`,
// naming the CA and this issuer's ACME account; from then on the issuer
// obtains and renews certificates for the domain, wildcards included,
// without any DNS credentials. Before asking the CA to validate, it checks
// that the record is published and logs the exact record to publish when
// it is not.
//
// The account is kept in Caddy's storage where the `acme` issuer keeps
// its accounts, so both issuers share the account for a CA and email, and
// every instance sharing the storage uses the same account URL.
type Issuer struct {
	// The URL of the CA's ACME directory. Default:
	// https://acme-v02.api.letsencrypt.org/directory
	//
	// There is no fallback to a test CA: a staging account is a different
	// account, so records naming it do not work in production.
	CA string `json:"ca,omitempty"`

	// Your email address, so the CA can contact you if necessary. It also
	// names the account in storage: changing it means another account,
	// with another URL, and every published record would have to change.
	Email string `json:"email,omitempty"`

	// The PEM-encoded private key of an existing ACME account to use. A
	// fresh machine given this key finds the same account (and URL) at
	// the CA, so published records keep working. Placeholders such as
	// {env.ACCOUNT_KEY} or {file./path/key.pem} are expanded.
	AccountKey string `json:"account_key,omitempty"`

	// The external account binding credentials, if the CA requires them.
	ExternalAccount *acme.EAB `json:"external_account,omitempty"`

	// The ACME profile to request certificates with, if the CA offers
	// profiles.
	Profile string `json:"profile,omitempty"`

	// How long to wait for the CA to validate and issue before giving up
	// on an attempt. Default: 5m.
	ACMETimeout caddy.Duration `json:"acme_timeout,omitempty"`

	// PEM files of root certificates to trust when connecting to the CA,
	// for a private or test CA.
	TrustedRootsPEMFiles []string `json:"trusted_roots_pem_files,omitempty"`

	// Preferences for choosing among alternate certificate chains, if the
	// CA offers several. By default the first chain is used.
	PreferredChains *caddytls.ChainPreference `json:"preferred_chains,omitempty"`

	// The validity period to request (sets the order's notAfter). Not all
	// CAs allow it. Default: 0, the CA chooses.
	CertificateLifetime caddy.Duration `json:"certificate_lifetime,omitempty"`

	// The issuer domain name to put in records, chosen among those the CA
	// offers (Let's Encrypt: "letsencrypt.org"). By default the issuer
	// uses the first offered name that a published record already uses,
	// else the first offered name.
	IssuerDomainName string `json:"issuer_domain_name,omitempty"`

	// A moment after which the published records stop being valid, as an
	// RFC 3339 date ("2027-06-30T00:00:00Z") or UNIX seconds. It is written
	// into the records shown to you as persistUntil, and the check
	// requires published records to carry the same value.
	PersistUntil string `json:"persist_until,omitempty"`

	// DNS servers (host or host:port) to ask for the record. By default
	// the issuer finds the zone's authoritative nameservers through the
	// system resolvers and asks them, which sees a new record first.
	Resolvers []string `json:"resolvers,omitempty"`

	// Register a new account when the stored one is unusable (its JSON
	// corrupt, its key unreadable or lost). Off by default: every
	// published record names the account, so a replacement breaks them
	// all. With it on, the unusable files are set aside (never deleted)
	// and the log gives the old and new account URLs and the records to
	// republish.
	NewAccountIfMissing bool `json:"new_account_if_missing,omitempty"`

	// How long an attempt waits for the record to appear before giving up.
	// Default: 2m. A negative value (-1) skips the check and leaves the
	// decision to the CA, at the risk of failed validations.
	PropagationTimeout caddy.Duration `json:"propagation_timeout,omitempty"`

	logger *zap.Logger
	// judge decides what the records and CAA say, through the issuer's
	// resolver, and tells states what it finds.
	judge    *judge.Checker
	accounts *account.Keeper
	client   *caClient
	notices  *noticeLog
	metrics  *metrics.Metrics
	// states shows what the checks find of the config's records as
	// metrics.
	states *metrics.Records
	// notOffered remembers the CA offering no dns-persist-01.
	notOffered *notOfferedMemory
	grants     *wildcardGrants
	// store is the storage of the certmagic config the issuer serves,
	// and policy the issuers of its automation policy, as SetConfig last
	// gave them.
	store  *storageSlot
	policy *policyIssuers
	// identity is what makes two issuers use the same account and write
	// the same records; issuers sharing it are reported together, so the
	// apex and the wildcard of a domain get one record.
	identity string
	now      func() time.Time

	// checkInterval is the pause between two looks at a record.
	checkInterval time.Duration
	// queryTimeout bounds each try of a DNS query; zero is dnslookup's
	// default. Tests shorten it, to wait out servers that never answer.
	queryTimeout time.Duration
}

// StorageError is stored account data that cannot be used. Issuance for
// the CA stops until a person repairs it; the plugin never overwrites it.
type StorageError = account.StorageError

// CaddyModule returns the Caddy module information.
func (Issuer) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "tls.issuance.persist",
		New: func() caddy.Module { return new(Issuer) },
	}
}

// Provision sets up the issuer: it expands placeholders, fills in defaults
// and loads the files and keys the configuration names.
func (iss *Issuer) Provision(ctx caddy.Context) error {
	// Caddy's modules start with none; a test gives its own, to read
	// what every part of the issuer logs
	if iss.logger == nil {
		iss.logger = ctx.Logger()
	}
	if iss.now == nil {
		iss.now = time.Now
	}
	if iss.checkInterval == 0 {
		iss.checkInterval = defaultCheckInterval
	}

	repl := caddy.NewReplacer()
	expand := func(field string, val *string) error {
		if *val == "" {
			return nil
		}
		out, err := repl.ReplaceOrErr(*val, true, true)
		if err != nil {
			return fmt.Errorf("expanding %s: %v", field, err)
		}
		*val = strings.TrimSpace(out)
		return nil
	}
	for field, val := range map[string]*string{
		"ca":                 &iss.CA,
		"email":              &iss.Email,
		"profile":            &iss.Profile,
		"issuer_domain_name": &iss.IssuerDomainName,
		"persist_until":      &iss.PersistUntil,
	} {
		if err := expand(field, val); err != nil {
			return err
		}
	}
	// secrets: the error must not echo the value
	// ReplaceOrErr's errors name placeholders, never their values
	if err := expand("account_key", &iss.AccountKey); err != nil {
		return err
	}
	if iss.ExternalAccount != nil {
		if err := expand("external_account key_id", &iss.ExternalAccount.KeyID); err != nil {
			return err
		}
		if err := expand("external_account mac_key", &iss.ExternalAccount.MACKey); err != nil {
			return err
		}
	}
	for i := range iss.Resolvers {
		if err := expand("resolvers", &iss.Resolvers[i]); err != nil {
			return err
		}
	}
	for i := range iss.TrustedRootsPEMFiles {
		if err := expand("trusted_roots_pem_files", &iss.TrustedRootsPEMFiles[i]); err != nil {
			return err
		}
	}

	if iss.CA == "" {
		iss.CA = DefaultCA
	}
	if iss.PropagationTimeout == 0 {
		iss.PropagationTimeout = caddy.Duration(DefaultPropagationTimeout)
	}

	var accountKey crypto.Signer
	if iss.AccountKey != "" {
		key, err := certmagic.PEMDecodePrivateKey([]byte(iss.AccountKey))
		if err != nil {
			return errors.New("account_key is not a PEM-encoded private key (value redacted)")
		}
		accountKey = key
	}
	spec := judge.Spec{CA: iss.CA, Preferred: iss.IssuerDomainName}
	// the TLS app is provisioning this issuer: its names are known
	// once it has been, at the first record asked for
	served := sync.OnceValue(func() servedBases { return servedBasesOf(ctx, iss.identity) })
	spec.WildcardBases = func() map[string]bool { return served().wildcard }
	if iss.PersistUntil != "" {
		t, err := parsePersistUntil(iss.PersistUntil)
		if err != nil {
			return err
		}
		spec.PersistUntil = t
		// loading must still work, so that valid certificates keep being
		// served and the commands can say what to republish
		if iss.now().After(t) {
			iss.logger.Error("persist_until has passed: CAs refuse records past their persistUntil, so no certificate can be obtained; publish records with a later persistUntil and update persist_until",
				zap.Time("persist_until", t))
		}
	}
	var roots *x509.CertPool
	if len(iss.TrustedRootsPEMFiles) > 0 {
		roots = x509.NewCertPool()
		for _, file := range iss.TrustedRootsPEMFiles {
			pemData, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("loading trusted root PEM file: %v", err)
			}
			if !roots.AppendCertsFromPEM(pemData) {
				return fmt.Errorf("trusted root file %s holds no PEM certificate", file)
			}
		}
	}

	iss.store, iss.policy = new(storageSlot), new(policyIssuers)
	iss.client = &caClient{
		url:     iss.CA,
		roots:   roots,
		timeout: time.Duration(iss.ACMETimeout),
		solver:  persistSolver{iss: iss},
		logger:  iss.logger,
		now:     iss.now,
	}
	iss.metrics = metrics.New(ctx.GetMetricsRegistry())
	iss.metrics.IssuerSeries(iss.CA)
	iss.states = iss.metrics.Records(iss.CA, func(base string) bool { return served().all[base] })
	iss.notices = &noticeLog{
		logger:  iss.logger,
		board:   cache.NewNoticeBoard(iss.now),
		metrics: iss.metrics,
		now:     iss.now,
	}
	iss.notOffered = &notOfferedMemory{
		ca:       iss.CA,
		key:      notOfferedKey(iss.IssuerKey()),
		storage:  iss.store.get,
		notices:  iss.notices.board,
		logger:   iss.logger,
		now:      iss.now,
		observed: iss.states.ChallengeOffered,
	}
	iss.accounts = account.New(account.Config{
		CA:           iss.CA,
		Email:        iss.Email,
		PinnedKey:    accountKey,
		EAB:          iss.ExternalAccount,
		NewIfMissing: iss.NewAccountIfMissing,
		Secrets:      secretsOf(iss.AccountKey, iss.ExternalAccount),
		Client:       iss.client.get,
		Storage:      iss.store.get,
		Logger:       iss.logger,
		Now:          iss.now,
	})
	iss.grants = &wildcardGrants{
		answers:     cache.NewExpiring[grantAnswer](maxCachedDecisions),
		recordsPass: iss.recordsPass,
		now:         iss.now,
	}
	iss.judge = &judge.Checker{
		Resolver:   dnslookup.New(dnslookup.Options{Resolvers: iss.Resolvers, QueryTimeout: iss.queryTimeout, Logger: iss.logger.Named("dns"), Now: iss.now}),
		Spec:       spec,
		Now:        iss.now,
		Observe:    iss.states.Judged,
		ObserveCAA: iss.states.CAAJudged,
	}
	iss.identity = identityKey(iss)
	iss.startMonitor(ctx)
	return nil
}

// identityKey is what makes two issuers use the same account and write
// the same records.
func identityKey(iss *Issuer) string {
	return strings.Join([]string{iss.CA, strings.ToLower(iss.Email), iss.AccountKey, iss.IssuerDomainName, iss.PersistUntil}, "\x00")
}

// secretsOf lists the configured values that must never appear in a log
// line, an error or any output.
func secretsOf(accountKey string, eab *acme.EAB) []string {
	var out []string
	if accountKey != "" {
		out = append(out, accountKey)
	}
	if eab != nil && eab.MACKey != "" {
		out = append(out, eab.MACKey)
	}
	return out
}

// Validate checks the configuration once it is provisioned.
func (iss *Issuer) Validate() error {
	if err := checkCAURL("ca", iss.CA); err != nil {
		return err
	}
	if iss.IssuerDomainName != "" {
		if err := record.CheckIssuerDomainName(iss.IssuerDomainName); err != nil {
			return fmt.Errorf("issuer_domain_name: %v", err)
		}
	}
	if eab := iss.ExternalAccount; eab != nil {
		if eab.KeyID == "" || eab.MACKey == "" {
			return errors.New("external_account needs both key_id and mac_key")
		}
		if _, err := base64.RawURLEncoding.DecodeString(eab.MACKey); err != nil {
			return errors.New("external_account mac_key is not base64url without padding (value redacted)")
		}
	}
	if iss.ACMETimeout < 0 {
		return fmt.Errorf("acme_timeout must not be negative: %s", time.Duration(iss.ACMETimeout))
	}
	if iss.CertificateLifetime < 0 {
		return fmt.Errorf("certificate_lifetime must not be negative: %s", time.Duration(iss.CertificateLifetime))
	}
	if iss.PreferredChains != nil && len(iss.PreferredChains.AnyCommonName) > 0 && len(iss.PreferredChains.RootCommonName) > 0 {
		return errors.New("preferred_chains: set any_common_name or root_common_name, not both")
	}
	return nil
}

// parsePersistUntil accepts an RFC 3339 date or UNIX seconds.
func parsePersistUntil(s string) (time.Time, error) {
	if strings.Trim(s, "0123456789") == "" {
		secs, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("persist_until %q: %v", s, err)
		}
		return time.Unix(secs, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("persist_until %q is neither an RFC 3339 date (2027-06-30T00:00:00Z) nor UNIX seconds", s)
	}
	return t.Truncate(time.Second).UTC(), nil
}

// checkCAURL refuses a directory that is not HTTPS, unless the host is
// loopback or internal, where plain HTTP cannot be intercepted in transit.
func checkCAURL(field, ca string) error {
	u, err := url.Parse(ca)
	if err != nil {
		return fmt.Errorf("%s %q is not a URL: %v", field, ca, err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !certmagic.SubjectIsInternal(u.Host) {
			return fmt.Errorf("%s %q uses plain http on a public host; use https (plain http is allowed only for loopback and internal hosts)", field, ca)
		}
	default:
		return fmt.Errorf("%s %q must be an https:// URL of an ACME directory", field, ca)
	}
	if u.Host == "" {
		return fmt.Errorf("%s %q has no host", field, ca)
	}
	return nil
}

// checkCaddyfileCA checks a directory URL where the Caddyfile gives it,
// so that the error names the line; a placeholder is checked once
// Provision has expanded it.
func checkCaddyfileCA(field, ca string) error {
	if strings.Contains(ca, "{") {
		return nil
	}
	return checkCAURL(field, ca)
}

// UnmarshalCaddyfile sets up the issuer from Caddyfile tokens. Syntax:
//
//	... persist [<directory_url>] {
//	    dir                 <directory_url>
//	    email               <email>
//	    account_key         <pem>
//	    eab                 <key_id> <mac_key>
//	    profile             <profile_name>
//	    timeout             <duration>
//	    trusted_roots       <pem_files...>
//	    preferred_chains    [smallest] {
//	        root_common_name <common_names...>
//	        any_common_name  <common_names...>
//	    }
//	    lifetime            <duration>
//	    issuer_domain_name  <name>
//	    persist_until       <rfc3339_date|unix_seconds>
//	    resolvers           <dns_servers...>
//	    propagation_timeout <duration|-1>
//	    new_account_if_missing
//	}
//
// Values other than durations may use placeholders such as {env.ACME_EMAIL};
// account_key is usually given as {env.NAME} or {file./path/to/key.pem}.
func (iss *Issuer) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume issuer name

	if d.NextArg() {
		iss.CA = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		if err := checkCaddyfileCA("the directory URL of persist", iss.CA); err != nil {
			return d.Errf("%v", err)
		}
	}

	return eachSubdirective(d, func(directive string) error {
		switch directive {
		case "dir":
			if iss.CA != "" {
				return d.Errf("directory is already specified: %s; give the CA's directory URL once, either as the argument of persist or with dir", iss.CA)
			}
			if !d.AllArgs(&iss.CA) {
				return d.ArgErr()
			}
			if err := checkCaddyfileCA("dir", iss.CA); err != nil {
				return d.Errf("%v", err)
			}

		case "email":
			if !d.AllArgs(&iss.Email) {
				return d.ArgErr()
			}

		case "account_key":
			// d.ArgErr would quote the neighbouring token: the secret
			if d.CountRemainingArgs() != 1 {
				return d.Err("account_key takes exactly one argument, the PEM key or a placeholder for it (value not shown)")
			}
			d.NextArg()
			iss.AccountKey = d.Val()

		case "eab":
			if d.CountRemainingArgs() != 2 {
				return d.Err("eab takes exactly two arguments, <key_id> <mac_key> (values not shown)")
			}
			iss.ExternalAccount = new(acme.EAB)
			d.NextArg()
			iss.ExternalAccount.KeyID = d.Val()
			d.NextArg()
			iss.ExternalAccount.MACKey = d.Val()

		case "profile":
			if !d.AllArgs(&iss.Profile) {
				return d.ArgErr()
			}

		case "timeout":
			return durationArg(d, &iss.ACMETimeout, false)

		case "trusted_roots":
			iss.TrustedRootsPEMFiles = d.RemainingArgs()
			if len(iss.TrustedRootsPEMFiles) == 0 {
				return d.ArgErr()
			}

		case "preferred_chains":
			pref, err := caddytls.ParseCaddyfilePreferredChainsOptions(d)
			if err != nil {
				return err
			}
			iss.PreferredChains = pref

		case "lifetime":
			return durationArg(d, &iss.CertificateLifetime, false)

		case "issuer_domain_name":
			if !d.AllArgs(&iss.IssuerDomainName) {
				return d.ArgErr()
			}
			if !hasPlaceholder(iss.IssuerDomainName) {
				if err := record.CheckIssuerDomainName(iss.IssuerDomainName); err != nil {
					return d.Errf("issuer_domain_name: %v", err)
				}
			}

		case "persist_until":
			if !d.AllArgs(&iss.PersistUntil) {
				return d.ArgErr()
			}
			if !hasPlaceholder(iss.PersistUntil) {
				if _, err := parsePersistUntil(iss.PersistUntil); err != nil {
					return d.Errf("%v", err)
				}
			}

		case "resolvers":
			iss.Resolvers = d.RemainingArgs()
			if len(iss.Resolvers) == 0 {
				return d.ArgErr()
			}

		case "propagation_timeout":
			return durationArg(d, &iss.PropagationTimeout, true)

		case "new_account_if_missing":
			if d.NextArg() {
				return d.ArgErr()
			}
			iss.NewAccountIfMissing = true

		default:
			return d.Errf("unrecognized persist issuer property: %s", directive)
		}
		return nil
	})
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Issuer)(nil)
	_ caddy.Validator             = (*Issuer)(nil)
	_ caddy.CleanerUpper          = (*Issuer)(nil)
	_ caddyfile.Unmarshaler       = (*Issuer)(nil)
	_ caddytls.ConfigSetter       = (*Issuer)(nil)
	_ certmagic.Issuer            = (*Issuer)(nil)
	_ certmagic.PreChecker        = (*Issuer)(nil)
	_ certmagic.Revoker           = (*Issuer)(nil)
	_ certmagic.RenewalInfoGetter = (*Issuer)(nil)
)
