package persist

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// A record that passes by Let's Encrypt's rules only where they are more
// lenient than the RFC's (a tag outside its syntax, a signed persistUntil)
// is issued for, reported ok with warnings, and logged once an hour.
func TestLenientRecordIssuesAndWarnsOnceAnHour(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	clock := &controlledClock{now: time.Now().Truncate(time.Second)}
	iss := newTestIssuer(t, ca, t.TempDir(), func(iss *Issuer) { iss.now = clock.Now })
	ctx := context.Background()
	acct, err := iss.accounts.Get(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	in := recordInputs{Inputs: judge.Inputs{Dir: judge.Directory{Draft: record.Draft01}, Offered: []string{acmetest.DefaultIssuerName}, Account: acct}}
	until := strconv.FormatInt(clock.Now().AddDate(1, 0, 0).Unix(), 10)
	published := acmetest.DefaultIssuerName + "; accounturi=" + acct.Location + "; x_y=1; persistUntil=+" + until
	canonical := acmetest.DefaultIssuerName + "; accounturi=" + acct.Location + "; persistUntil=" + until
	setTXT(t, record.Name("lenient.test"), published)
	logged := func() []observer.LoggedEntry {
		return iss.logs.FilterLevelExact(zap.WarnLevel).FilterMessageSnippet("passes by Let's Encrypt's rules").All()
	}

	if err := iss.checkRecord(ctx, in, "lenient.test", false); err != nil {
		t.Fatalf("the lenient record does not pass: %v", err)
	}
	entries := logged()
	if len(entries) != 2 {
		t.Fatalf("%d warnings, want one for the tag and one for the sign", len(entries))
	}
	for i, want := range []string{`"x_y=1"`, `persistUntil "+` + until + `" has a sign`} {
		f := entries[i].ContextMap()
		if f["record_name"] != "_validation-persist.lenient.test" || f["published_value"] != published || f["record_value"] != canonical ||
			f["zone_line"] != record.ZoneLine("lenient.test", canonical) || !strings.Contains(f["warning"].(string), want) {
			t.Errorf("warning %d: fields %v, want it to mention %s", i, f, want)
		}
	}

	// the record stays as it is: said again an hour later, not sooner
	check := func() {
		if err := iss.checkRecord(ctx, in, "lenient.test", false); err != nil {
			t.Fatal(err)
		}
	}
	check()
	clock.Advance(59 * time.Minute)
	check()
	if n := len(logged()); n != 2 {
		t.Errorf("within the hour: %d warnings, want still 2", n)
	}
	clock.Advance(2 * time.Minute)
	check()
	if n := len(logged()); n != 4 {
		t.Errorf("after the hour: %d warnings, want 4", n)
	}

	// Pebble accepts both leniencies, so the check lets the order go
	// and the CA issues
	if _, err := iss.Issue(ctx, newCSR(t, "lenient.test")); err != nil {
		t.Fatalf("issuing with the lenient record: %v", err)
	}

	reports, err := iss.inspect(ctx, []string{"lenient.test"}, true)
	if err != nil {
		t.Fatal(err)
	}
	r := reports[0]
	if r.Status != record.StatusOK || len(r.Warnings) != 2 || len(r.Published) != 1 || r.Published[0] != published {
		t.Fatalf("report = %+v", r)
	}
	line := recordLine(r, false)
	if !strings.HasPrefix(line, "_validation-persist.lenient.test: ok (warning: ") || strings.Count(line, "(warning: ") != 2 || !strings.Contains(line, `publish "`+canonical+`" instead`) {
		t.Errorf("check line %q", line)
	}
}
