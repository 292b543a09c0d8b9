package persist

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

func TestDailyCheckCoversServedNames(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	storage := t.TempDir()
	running := provisionCaddyfile(t, persistSiteCaddyfile(storage, ca, "daily.test, *.daily.test"))
	sets, err := servedNames(running, nil, nil)
	if err != nil || len(sets) != 1 {
		t.Fatalf("sets %v, %v", sets, err)
	}
	iss := sets[0].Issuer
	logs := observeLogs(iss)

	// no account yet: the daily check registers nothing
	iss.checkServedRecords(context.Background(), running, 0)
	if n := ca.Counts.Get(acmetest.KindNewAccount); n != 0 {
		t.Fatalf("the daily check contacted newAccount %d times", n)
	}
	if _, err := iss.accounts.get(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	iss.checkServedRecords(context.Background(), running, 0)
	missing := logs.FilterMessageSnippet("record missing").All()
	if len(missing) != 1 || missing[0].ContextMap()["record_name"] != "_validation-persist.daily.test" ||
		!strings.HasSuffix(missing[0].ContextMap()["record_value"].(string), "; policy=wildcard") {
		t.Errorf("daily check logged %v", missing)
	}
}

// The daily pass spreads its lookups over the day: with three bases to
// check over an hour, the first is looked up at once and the next only
// twenty minutes later, so a pass cut short after the first has asked
// about it alone.
func TestDailyCheckSpreadsItsLookups(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	running := provisionCaddyfile(t, persistSiteCaddyfile(t.TempDir(), ca, "a.spread.test, b.spread.test, c.spread.test"))
	sets, err := servedNames(running, nil, nil)
	if err != nil || len(sets) != 1 {
		t.Fatalf("sets %v, %v", sets, err)
	}
	iss := sets[0].Issuer
	if _, err := iss.accounts.get(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	logs := observeLogs(iss)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		iss.checkServedRecords(ctx, running, time.Hour)
		close(done)
	}()
	for logs.FilterMessageSnippet("record missing").Len() == 0 {
		select {
		case <-done:
			t.Fatal("the pass ended before it looked anything up")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	<-done
	missing := logs.FilterMessageSnippet("record missing").All()
	if len(missing) != 1 || missing[0].ContextMap()["record_name"] != "_validation-persist.a.spread.test" {
		t.Errorf("a pass cut short after its first lookup logged %d records: %v", len(missing), missing)
	}
}
