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
	"strings"
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

// heldValues lists the TXT values the provider holds in zone, by
// relative name and value, when it can list them: a run after one whose
// value no server served yet must not add it twice (a host may keep both,
// or refuse the second). Nil when the provider cannot list records, or
// refuses to (an RFC 2136 server may refuse zone transfers): then it is
// written to.
func heldValues(ctx context.Context, provider certmagic.DNSProvider, zone string) map[string]bool {
	getter, ok := provider.(libdns.RecordGetter)
	if !ok {
		return nil
	}
	recs, err := getter.GetRecords(ctx, zone)
	if err != nil {
		return nil
	}
	held := make(map[string]bool)
	for _, r := range recs {
		rr := r.RR()
		if rr.Type != "TXT" {
			continue
		}
		text := strings.Trim(rr.Data, `"`)
		if txt, ok := r.(libdns.TXT); ok {
			text = txt.Text
		}
		held[strings.ToLower(rr.Name)+"\x00"+text] = true
	}
	return held
}

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
	held := make(map[string]map[string]bool)
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
		relative := libdns.RelativeName(name, zone)
		var err error
		switch {
		case c.Remove:
			// a TTL of 0 matches the value whatever TTL it was
			// published with (libdns' DeleteRecords)
			_, err = provider.DeleteRecords(ctx, zone, []libdns.Record{libdns.TXT{Name: relative, Text: c.Value}})
		default:
			if _, listed := held[zone]; !listed {
				held[zone] = heldValues(ctx, provider, zone)
			}
			if !held[zone][strings.ToLower(relative)+"\x00"+c.Value] {
				_, err = provider.AppendRecords(ctx, zone, []libdns.Record{libdns.TXT{Name: relative, TTL: TTL, Text: c.Value}})
			}
		}
		if err != nil {
			return done, &Error{Change: c, Zone: zone, Err: err}
		}
		done = append(done, c)
	}
	return done, nil
}
