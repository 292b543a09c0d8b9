package dnslookup

import (
	"context"
	"errors"
)

// A server that gave no answer at all, over UDP and then over TCP, is not
// asked again for silentTTL, as resolvers remember unresponsive servers
// in their infrastructure caches. Every lookup of a check asks every
// server of the zone: the CAA records at each name of the climb, the TXT
// record, the names of one certificate, the handshakes of a tenant's
// names. Without the memory one dead nameserver costs each of them two
// query timeouts; with it, the first of them. The lookups skip it as
// they do when they wait it out, judging by the servers that answer, and
// a lookup whose every server is remembered asks them all anyway, so the
// memory alone never fails one.
const (
	silentTTL = recentTTL
	maxSilent = maxZones
)

// skipSilent fills in, for each server remembered as silent, its reply:
// the error it gave. It returns the indexes of the servers to ask: the
// others, or every server when all are remembered.
func (r *Resolver) skipSilent(servers []server, replies []reply) []int {
	now := r.now()
	var ask []int
	for i, s := range servers {
		if err, ok := r.silent.Get(s.addr, now); ok {
			replies[i] = reply{server: s, err: err}
			continue
		}
		ask = append(ask, i)
	}
	if len(ask) == 0 {
		for i := range servers {
			ask = append(ask, i)
		}
	}
	return ask
}

// noteSilence remembers the server at addr when err says it gave no
// answer in time, and not when the caller gave up first.
func (r *Resolver) noteSilence(ctx context.Context, addr string, err error) {
	var noAnswer *noAnswerError
	if ctx.Err() != nil || !errors.As(err, &noAnswer) {
		return
	}
	now := r.now()
	r.silent.Put(addr, err, now, now.Add(silentTTL))
}
