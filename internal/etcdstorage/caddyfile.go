package etcdstorage

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the storage from Caddyfile tokens:
//
//	storage etcd_test [<endpoints...>] {
//		endpoints <urls...>
//		prefix    <prefix>
//		lock_ttl  <duration>
//		timeout   <duration>
//	}
func (s *Storage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	s.Endpoints = append(s.Endpoints, d.RemainingArgs()...)
	for d.NextBlock(0) {
		switch d.Val() {
		case "endpoints":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			s.Endpoints = append(s.Endpoints, args...)
		case "prefix":
			if !d.NextArg() {
				return d.ArgErr()
			}
			s.Prefix = d.Val()
		case "lock_ttl", "timeout":
			name := d.Val()
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return d.Errf("%s: %v", name, err)
			}
			if name == "lock_ttl" {
				s.LockTTL = caddy.Duration(dur)
			} else {
				s.Timeout = caddy.Duration(dur)
			}
		default:
			return d.Errf("unknown subdirective %q", d.Val())
		}
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	return nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*Storage)(nil)
