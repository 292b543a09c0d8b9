// Package dnspublish writes dns-persist-01 records through a libdns
// provider: the DNS modules Caddy users already build in for dns-01
// (certmagic.DNSProvider). It adds values beside whatever else is at a
// name, another CA's record included, and removes exactly the values it
// is given; it knows nothing of Caddy or of what the values mean.
package dnspublish

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

// TTL is the time to live of a published record. The record is static:
// a change is rare and the check asks the authoritative servers, which see
// it at once, so an hour keeps the CA's resolver from asking often.
const TTL = time.Hour

// Change is one TXT value to add at a name or to remove from it.
type Change struct {
	// Name is the record's name, with or without a trailing dot.
	Name  string
	Value string
	// Remove deletes the value instead of adding it.
	Remove bool
}

// String is the change as a line: "+" or "-", then the zone file line.
func (c Change) String() string {
	sign := "+"
	if c.Remove {
		sign = "-"
	}
	return fmt.Sprintf("%s %s %d IN TXT %s", sign, dns.Fqdn(c.Name), int(TTL.Seconds()), strconv.Quote(c.Value))
}

// ZoneFinder returns the zone that holds a name, as the record check
// finds it (by SOA).
type ZoneFinder func(ctx context.Context, name string) (string, error)

// Error is a change the provider or the zone lookup refused. The changes
// before it were made; none after it was tried.
type Error struct {
	Change Change
	// Zone is the zone the change was made in, empty when it could not
	// be found.
	Zone string
	Err  error
}

func (e *Error) Error() string {
	verb := "adding"
	if e.Change.Remove {
		verb = "removing"
	}
	if e.Zone == "" {
		return fmt.Sprintf("%s %q at %s: %v", verb, e.Change.Value, e.Change.Name, e.Err)
	}
	return fmt.Sprintf("%s %q at %s in the zone %s: %v", verb, e.Change.Value, e.Change.Name, e.Zone, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Apply makes the changes through provider, every addition before any
// removal: a name that gets a new value and loses an old one never
// serves neither. It stops at the first change that fails, with an
// *Error; a later run given the changes still needed completes them.
func Apply(ctx context.Context, provider certmagic.DNSProvider, zoneOf ZoneFinder, changes []Change) ([]Change, error) {
	ordered := slices.Clone(changes)
	slices.SortStableFunc(ordered, func(a, b Change) int {
		switch {
		case a.Remove == b.Remove:
			return 0
		case b.Remove:
			return -1
		}
		return 1
	})
	zones := make(map[string]string)
	var done []Change
	for _, c := range ordered {
		name := dns.CanonicalName(c.Name)
		zone, ok := zones[name]
		if !ok {
			var err error
			if zone, err = zoneOf(ctx, name); err != nil {
				return done, &Error{Change: c, Err: fmt.Errorf("finding its zone: %w", err)}
			}
			zones[name] = zone
		}
		rec := []libdns.Record{libdns.TXT{Name: libdns.RelativeName(name, zone), TTL: TTL, Text: c.Value}}
		var err error
		if c.Remove {
			_, err = provider.DeleteRecords(ctx, zone, rec)
		} else {
			_, err = provider.AppendRecords(ctx, zone, rec)
		}
		if err != nil {
			return done, &Error{Change: c, Zone: zone, Err: err}
		}
		done = append(done, c)
	}
	return done, nil
}
