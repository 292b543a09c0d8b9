package account

import (
	"context"
	"testing"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// The accounts a replacement left behind are former ones once
// deactivated, with their keys, newest first; the account in use never
// is, and a pending replacement is not one yet.
func TestFormerAccountsAreThoseAReplacementLeftBehind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tk := newTestKeeper(t, startCA(t, acmetest.Options{}), t.TempDir(), nil)
	former := func() []string {
		t.Helper()
		accts, err := tk.Former(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var urls []string
		for _, a := range accts {
			if a.PrivateKey == nil {
				t.Errorf("the former account %s comes without its key", a.Location)
			}
			urls = append(urls, a.Location)
		}
		return urls
	}
	first := tk.accountURL(t)
	if got := former(); len(got) != 0 {
		t.Fatalf("a first account has former ones: %v", got)
	}
	begun, err := tk.Replace(ctx, Begin)
	if err != nil {
		t.Fatal(err)
	}
	if got := former(); len(got) != 0 {
		t.Errorf("with a replacement pending, former accounts are %v, want none", got)
	}
	// switched from, it may still be in use by instances that have not
	// picked the switch up: not former until deactivated
	if _, err := tk.Replace(ctx, Switch); err != nil {
		t.Fatal(err)
	}
	if got := former(); len(got) != 0 {
		t.Errorf("after the switch, former accounts are %v, want none before the deactivation", got)
	}
	if _, err := tk.Replace(ctx, DeactivateOld); err != nil {
		t.Fatal(err)
	}
	if got := former(); len(got) != 1 || got[0] != first {
		t.Errorf("after the deactivation, former accounts are %v, want %s", got, first)
	}
	// a second replacement: both old accounts, the newest first
	if _, err := tk.Replace(ctx, Begin); err != nil {
		t.Fatal(err)
	}
	for _, step := range []ReplaceStep{Switch, DeactivateOld} {
		if _, err := tk.Replace(ctx, step); err != nil {
			t.Fatal(err)
		}
	}
	if got := former(); len(got) != 2 || got[0] != begun.Account.Location || got[1] != first {
		t.Errorf("after two replacements, former accounts are %v, want %s then %s", got, begun.Account.Location, first)
	}
}
