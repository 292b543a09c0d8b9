// The Caddyfile arguments that the modules' UnmarshalCaddyfile share.

package persist

import (
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

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
