package persist

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/record"
)

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
	}

	return eachSubdirective(d, func(directive string) error {
		switch directive {
		case "dir":
			if iss.CA != "" {
				return d.Errf("directory is already specified: %s", iss.CA)
			}
			if !d.AllArgs(&iss.CA) {
				return d.ArgErr()
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

// durationArg reads the one duration argument of the current directive
// into dst. With allowOff, "-1" turns the feature off.
func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration, allowOff bool) error {
	directive := d.Val()
	var s string
	if !d.AllArgs(&s) {
		return d.ArgErr()
	}
	if allowOff && s == "-1" {
		*dst = caddy.Duration(-1)
		return nil
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("invalid %s duration %s: %v", directive, s, err)
	}
	if dur <= 0 {
		if allowOff {
			return d.Errf("%s must be positive, or -1 to turn the check off: %s", directive, s)
		}
		return d.Errf("%s must be positive: %s", directive, s)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// eachSubdirective calls parse for each subdirective of the block at d. A
// subdirective given twice is refused: it would silently override the
// first.
func eachSubdirective(d *caddyfile.Dispenser, parse func(directive string) error) error {
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		directive := d.Val()
		if seen[directive] {
			return d.Errf("%s is given more than once", directive)
		}
		seen[directive] = true
		if err := parse(directive); err != nil {
			return err
		}
	}
	return nil
}

func hasPlaceholder(s string) bool {
	return strings.Contains(s, "{")
}

// UnmarshalCaddyfile sets up the permission module from Caddyfile tokens.
// Syntax:
//
//	... permission persist {
//	    cache_ttl              <duration>
//	    negative_ttl           <duration>
//	    max_concurrent_lookups <n>
//	}
func (p *Permission) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume module name
	if d.NextArg() {
		return d.ArgErr()
	}
	return eachSubdirective(d, func(directive string) error {
		switch directive {
		case "cache_ttl":
			return durationArg(d, &p.CacheTTL, false)
		case "negative_ttl":
			return durationArg(d, &p.NegativeTTL, false)
		case "max_concurrent_lookups":
			var s string
			if !d.AllArgs(&s) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return d.Errf("max_concurrent_lookups must be a positive whole number: %s", s)
			}
			p.MaxConcurrentLookups = n
		default:
			return d.Errf("unrecognized persist permission property: %s", directive)
		}
		return nil
	})
}
