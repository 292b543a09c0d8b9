package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/letsencrypt/challtestsrv"
	"github.com/libdns/libdns"
)

// challtestsrvProvider is a libdns provider whose "DNS API" is
// challtestsrv's record store, in the same process. It lets certmagic's
// dns-01 solver run exactly as with a real provider, minus the provider's
// network round trips, which flatters dns-01 if anything. Only the dns-01
// contender uses it.
type challtestsrvProvider struct {
	srv *challtestsrv.ChallSrv

	mu sync.Mutex
	// txt holds the values this provider added, per absolute name
	// without the trailing dot.
	txt map[string][]string
}

func newChalltestsrvProvider(srv *challtestsrv.ChallSrv) *challtestsrvProvider {
	return &challtestsrvProvider{srv: srv, txt: make(map[string][]string)}
}

// AppendRecords adds TXT records; <base> and *.<base> put two values at
// the same name at once, so values are appended, never replaced.
func (p *challtestsrvProvider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var added []libdns.Record
	for _, rec := range recs {
		rr := rec.RR()
		if rr.Type != "TXT" {
			return added, fmt.Errorf("the bench provider only writes TXT records, not %s", rr.Type)
		}
		name := absolute(rr.Name, zone)
		p.txt[name] = append(p.txt[name], rr.Data)
		p.srv.AddDNSTXTRecord(name, rr.Data)
		added = append(added, libdns.TXT{Name: rr.Name, TTL: rr.TTL, Text: rr.Data})
	}
	return added, nil
}

// DeleteRecords removes TXT records. challtestsrv can only drop every
// value at a name, and dropping them while a sibling challenge at the same
// name is being validated would fail it; so a name is cleared only when
// its last value goes, and a value left behind until then is harmless.
func (p *challtestsrvProvider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var deleted []libdns.Record
	for _, rec := range recs {
		rr := rec.RR()
		name := absolute(rr.Name, zone)
		values := p.txt[name]
		i := slices.Index(values, rr.Data)
		if i < 0 {
			continue
		}
		values = slices.Delete(values, i, i+1)
		if len(values) == 0 {
			delete(p.txt, name)
			p.srv.DeleteDNSTXTRecord(name)
		} else {
			p.txt[name] = values
		}
		deleted = append(deleted, libdns.TXT{Name: rr.Name, TTL: rr.TTL, Text: rr.Data})
	}
	return deleted, nil
}

func absolute(name, zone string) string {
	return strings.ToLower(strings.TrimSuffix(libdns.AbsoluteName(name, zone), "."))
}

// Interface guards
var (
	_ libdns.RecordAppender = (*challtestsrvProvider)(nil)
	_ libdns.RecordDeleter  = (*challtestsrvProvider)(nil)
)
