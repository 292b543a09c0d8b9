package persist

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dnspersist/caddy-persist/internal/account"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
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
	if _, err := iss.accounts.Get(context.Background(), true); err != nil {
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
	if _, err := iss.accounts.Get(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	logs := observeLogs(iss)
	firstMissing := make(chan struct{}, 1)
	setLogger(iss, iss.logger.WithOptions(zap.Hooks(func(e zapcore.Entry) error {
		if strings.Contains(e.Message, "record missing") {
			select {
			case firstMissing <- struct{}{}:
			default:
			}
		}
		return nil
	})))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		iss.checkServedRecords(ctx, running, time.Hour)
		close(done)
	}()
	select {
	case <-firstMissing:
	case <-done:
		t.Fatal("the pass ended before it looked anything up")
	}
	cancel()
	<-done
	missing := logs.FilterMessageSnippet("record missing").All()
	if len(missing) != 1 || missing[0].ContextMap()["record_name"] != "_validation-persist.a.spread.test" {
		t.Errorf("a pass cut short after its first lookup logged %d records: %v", len(missing), missing)
	}
}

// TestDailyPassFollowsAnAccountChangedMidway: the pass spans the day, so
// each name is judged with the account of the moment. Here the account
// is replaced right after the first name's check; the second name's
// record, published for the replacement, passes.
func TestDailyPassFollowsAnAccountChangedMidway(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := startCA(t, acmetest.Options{})
	running := provisionCaddyfile(t, persistSiteCaddyfile(t.TempDir(), ca, "a.midway.test, b.midway.test"))
	sets, err := servedNames(running, nil, nil)
	if err != nil || len(sets) != 1 {
		t.Fatalf("sets %v, %v", sets, err)
	}
	iss := sets[0].Issuer
	if _, err := iss.accounts.Get(ctx, true); err != nil {
		t.Fatal(err)
	}
	logs := observeLogs(iss)
	var replaced string
	// the hook runs in the pass, between the two names
	setLogger(iss, iss.logger.WithOptions(zap.Hooks(func(e zapcore.Entry) error {
		if replaced != "" || !strings.Contains(e.Message, "record missing") {
			return nil
		}
		begun, err := iss.accounts.Replace(ctx, account.Begin)
		pending := begun.Account
		if err != nil {
			t.Error(err)
			return nil
		}
		value, err := record.Record{IssuerDomainName: acmetest.DefaultIssuerName, AccountURI: pending.Location}.Value()
		if err != nil {
			t.Error(err)
			return nil
		}
		setTXT(t, record.Name("b.midway.test"), value)
		if _, err := iss.accounts.Replace(ctx, account.Switch); err != nil {
			t.Error(err)
		}
		replaced = pending.Location
		return nil
	})))

	iss.checkServedRecords(ctx, running, 2*time.Millisecond)
	if replaced == "" {
		t.Fatal("the first name's missing record was not logged")
	}
	for _, entry := range logs.All() {
		if entry.ContextMap()["record_name"] == "_validation-persist.b.midway.test" {
			t.Errorf("b's record, naming the replacement %s, was reported: %s %v", replaced, entry.Message, entry.ContextMap())
		}
	}
}
