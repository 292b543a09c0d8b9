package persist

import (
	"context"
	"strings"
	"testing"

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
	iss.checkServedRecords(context.Background(), running)
	if n := ca.Counts.Get(acmetest.KindNewAccount); n != 0 {
		t.Fatalf("the daily check contacted newAccount %d times", n)
	}
	if _, err := iss.accounts.get(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	iss.checkServedRecords(context.Background(), running)
	missing := logs.FilterMessageSnippet("record missing").All()
	if len(missing) != 1 || missing[0].ContextMap()["record_name"] != "_validation-persist.daily.test" ||
		!strings.HasSuffix(missing[0].ContextMap()["record_value"].(string), "; policy=wildcard") {
		t.Errorf("daily check logged %v", missing)
	}
}
