package account

import (
	"context"
	"testing"

	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// TestChallengeURIIsRememberedPerAccountForEveryInstance: the accounturi
// a challenge named is kept for the account it was named for, so another
// account at the same CA neither sees nor overwrites it, and an instance
// sharing the storage reads it before its next order, without a restart.
func TestChallengeURIIsRememberedPerAccountForEveryInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	learner := newTestKeeper(t, ca, dir, nil)
	learner.accountURL(t)
	acct, err := learner.Get(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	instance := newTestKeeper(t, ca, dir, nil)
	otherEmail := newTestKeeper(t, ca, dir, func(c *Config) { c.Email = "other@example.test" })
	otherEmail.accountURL(t)
	otherAcct, err := otherEmail.Get(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if uri := instance.ChallengeURI(ctx, acct); uri != "" {
		t.Fatalf("remembered %q before any challenge", uri)
	}

	const named, otherNamed = "https://ca.example/acme/acct/7", "https://ca.example/acme/acct/8"
	learner.RememberChallengeURI(ctx, acct, named)
	otherEmail.RememberChallengeURI(ctx, otherAcct, otherNamed)
	instance.Refresh() // as before an order
	if uri := instance.ChallengeURI(ctx, acct); uri != named {
		t.Errorf("the other instance judges against %q, want %q", uri, named)
	}
	for _, c := range []struct {
		k    *testKeeper
		acct acme.Account
		want string
	}{{newTestKeeper(t, ca, dir, nil), acct, named}, {newTestKeeper(t, ca, dir, func(c *Config) { c.Email = "other@example.test" }), otherAcct, otherNamed}} {
		if uri := c.k.ChallengeURI(ctx, c.acct); uri != c.want {
			t.Errorf("after a restart %s judges against %q, want %q", c.acct.Location, uri, c.want)
		}
	}
}
