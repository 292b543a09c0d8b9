package persist

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/camodel"
	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// TestPebbleJudgesAsModelled publishes every row of camodel's table and a
// sample of its corpus, and has Pebble validate each with the check
// turned off, so that Pebble itself decides. Pebble's outcome must be
// what camodel's model of Pebble says of the value Pebble received, and
// the check must never refuse a record Pebble accepts nor pass one it
// refuses without a warning.
func TestPebbleJudgesAsModelled(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{IssuerNames: camodel.Issuers()})
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.PropagationTimeout = caddy.Duration(-1) })
	ctx := context.Background()
	acct, err := iss.accounts.Get(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	in := recordInputs{Inputs: judge.Inputs{Dir: judge.Directory{Draft: record.Draft01}, Offered: camodel.Issuers(), Account: acct}}
	now := time.Now()

	type sample struct {
		name, value string
		wildcard    bool
		// row is the table's row, nil for a corpus value
		row *camodel.Row
	}
	var samples []sample
	for _, row := range camodel.Table() {
		samples = append(samples, sample{"table: " + row.Name, row.Expand(acct.Location, now), row.Wildcard, &row})
	}
	corpus := camodel.Corpus(acct.Location, now)
	for _, c := range camodel.Sample(corpus, 2) {
		samples = append(samples, sample{"corpus: " + c.Class + ": " + c.Mutation, c.Value, c.Wildcard, nil})
	}

	type outcome struct {
		pebbleErr error
		j         judge.Judgement
		err       error
	}
	outcomes := make([]outcome, len(samples))
	var wg sync.WaitGroup
	slots := make(chan struct{}, 12)
	for i, s := range samples {
		base := fmt.Sprintf("s%03d.compat.test", i)
		setTXT(t, record.Name(base), s.value)
		name := base
		if s.wildcard {
			name = "*." + base
		}
		csr := newCSR(t, name)
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			o := &outcomes[i]
			// what the check and Pebble's VA receive from DNS, which
			// escapes tabs and non-ASCII bytes
			o.j, o.err = iss.judge.Record(ctx, in.Inputs, base, s.wildcard, judge.Fresh)
			_, o.pebbleErr = iss.Issue(ctx, csr)
		})
	}
	wg.Wait()

	pebble := camodel.Pebble()
	for i, s := range samples {
		o := outcomes[i]
		if o.err != nil || o.j.LookupErr != nil {
			t.Fatalf("%s: judging: %v, %v", s.name, o.err, o.j.LookupErr)
		}
		received := o.j.Published
		ch := camodel.Challenge{IssuerNames: camodel.Issuers(), AccountURL: acct.Location, Wildcard: s.wildcard, At: time.Now()}
		accepted, modelled := o.pebbleErr == nil, pebble.Accepts(ch, received)
		if accepted != modelled {
			t.Errorf("%s: published %q, Pebble received %q: Pebble accepts %v (%v), the model says %v", s.name, s.value, received, accepted, o.pebbleErr, modelled)
		}
		if s.row != nil && len(received) == 1 && received[0] == s.value && accepted != s.row.Pebble {
			t.Errorf("%s: Pebble accepts %v (%v), the table says %v", s.name, accepted, o.pebbleErr, s.row.Pebble)
		}
		switch {
		case accepted && !o.j.Passed():
			t.Errorf("%s: Pebble accepts %q, the check refuses it: %s", s.name, received, o.j.Verdict.Reason())
		case !accepted && o.j.Passed() && len(o.j.Verdict.Warnings) == 0:
			t.Errorf("%s: Pebble refuses %q, the check passes it without a warning", s.name, received)
		}
	}
	t.Logf("%d values through Pebble's VA: %d table rows and %d of %d corpus values", len(samples), len(camodel.Table()), len(samples)-len(camodel.Table()), len(corpus))
}
