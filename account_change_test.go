package persist

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dnspersist/caddy-persist/internal/account"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/storagetest"
)

// target is the account target of the issuer alone, serving names.
func (ti *testIssuer) target(names ...string) accountTarget {
	return accountTarget{{Issuer: ti.Issuer, Names: names}}
}

// TestAccountTargetsGroupIssuersByAccount: issuers of one CA, email and
// account_key change one account together; --ca picks a CA's.
func TestAccountTargetsGroupIssuersByAccount(t *testing.T) {
	t.Parallel()
	first := &Issuer{CA: "https://a.test/dir", Email: "Ops@example.test"}
	sameAccount := &Issuer{CA: "https://a.test/dir", Email: "ops@example.test"}
	otherCA := &Issuer{CA: "https://b.test/dir", Email: "ops@example.test"}
	pinned := &Issuer{CA: "https://a.test/dir", Email: "ops@example.test", AccountKey: "{env.KEY}"}
	sets := []servedSet{{first, []string{"one.test"}}, {otherCA, []string{"two.test"}}, {sameAccount, []string{"three.test"}}, {pinned, []string{"four.test"}}}

	targets, err := accountTargets(sets, "")
	if err != nil || len(targets) != 3 || len(targets[0]) != 2 || targets[0][1].Issuer != sameAccount || targets[1].issuer() != otherCA || targets[2].issuer() != pinned {
		t.Errorf("targets = %v, %v; want the two issuers of one account together", targets, err)
	}
	if targets, err := accountTargets(sets, "https://b.test/dir/"); err != nil || len(targets) != 1 || targets[0].issuer() != otherCA {
		t.Errorf("targets of one CA = %v, %v", targets, err)
	}
	var badInput *inputError
	if _, err := accountTargets(sets, "https://c.test/dir"); !errors.As(err, &badInput) || !strings.Contains(err.Error(), "https://a.test/dir, https://b.test/dir") {
		t.Errorf("an unknown CA: %v", err)
	}
}

// TestRolloverReportsRecordsOnlyWhereTheyChange: -01 records name the
// account URL, which a rollover keeps; -02 records hash the key, so the
// rollover reports the ones to publish.
func TestRolloverReportsRecordsOnlyWhereTheyChange(t *testing.T) {
	t.Parallel()
	for _, draft02CA := range []bool{false, true} {
		opts, draft, name := acmetest.Options{}, "draft-01", "report01.rollover.test"
		if draft02CA {
			opts, draft, name = acmetest.Options{Wrap: draft02}, "draft-02", "report02.rollover.test"
		}
		t.Run(draft, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			iss := newTestIssuer(t, startCA(t, opts), t.TempDir(), nil)
			before, err := iss.inspect(ctx, []string{name}, false)
			if err != nil {
				t.Fatal(err)
			}
			change, err := iss.target(name).rollover(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if change.Action != "rollover" || change.State != stateRolledOver || change.Draft != draft || change.AccountURL != before[0].AccountURL || change.CADirectory != iss.CA {
				t.Errorf("change = %+v", change)
			}
			switch {
			case !draft02CA && len(change.Records) != 0:
				t.Errorf("a -01 rollover reports records to publish: %+v", change.Records)
			case draft02CA && (len(change.Records) != 1 || change.Records[0].Value == before[0].Value):
				t.Errorf("a -02 rollover reports %+v, want one new record", change.Records)
			}
		})
	}
}

// TestSwitchWithoutNamesIsRefused: a config whose names are all served on
// demand gives the switch no record to check, so it refuses rather than
// move orders to an account no record may name yet.
func TestSwitchWithoutNamesIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	iss := newTestIssuer(t, startCA(t, acmetest.Options{}), t.TempDir(), nil)
	url := iss.accountURL(t)
	pending, err := iss.target().replace(ctx, replaceRequest{})
	if err != nil || pending.State != statePending {
		t.Fatalf("replace: %+v, %v", pending, err)
	}
	var badInput *inputError
	if _, err := iss.target().replace(ctx, replaceRequest{Switch: true}); !errors.As(err, &badInput) || !strings.Contains(err.Error(), "--domain") {
		t.Errorf("switch without names: %v, want a refusal asking for --domain", err)
	}
	if current, err := iss.accounts.Get(ctx, false); err != nil || current.Location != url {
		t.Errorf("orders use %s after the refused switch (%v), want %s", current.Location, err, url)
	}
	switched, err := iss.target("named.switch.test").replace(ctx, replaceRequest{Switch: true})
	if err != nil || switched.State != stateNotSwitched {
		t.Errorf("switch with a name whose record is not published: %+v, %v", switched, err)
	}
}

// TestAFailingAccountNamesTheChangesDoneBefore: with two accounts, a
// rollover that fails on the second says the first was rolled over, and
// returns its change, so that nobody rolls it over again to learn it.
func TestAFailingAccountNamesTheChangesDoneBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	first := newTestIssuer(t, ca, dir, nil)
	url := first.accountURL(t)
	unregistered := newTestIssuer(t, ca, dir, func(iss *Issuer) { iss.Email = "nobody-yet@example.test" })
	targets := []accountTarget{first.target(), unregistered.target()}

	changes, err := runAccountAction(ctx, accountActions["rollover"], targets, nil, &accountScope{})
	if !errors.Is(err, account.ErrNoAccountYet) || !strings.Contains(err.Error(), "done before this failed: rolled-over ("+url+" at "+ca.URL+")") {
		t.Errorf("error = %v, want the second account's, naming the first's rollover", err)
	}
	if len(changes) != 1 || changes[0].AccountURL != url || changes[0].State != stateRolledOver {
		t.Errorf("changes = %+v, want the first account's rollover", changes)
	}
}

// TestAPinnedIssuerSharingTheAccountIsRefusedBeforeAnyChange: two persist
// issuers of one CA and email keep one account in storage; when one of
// them pins it with account_key, a rollover or a replacement through the
// other would change the account the pinned key names. It is refused
// before anything changes, whichever of the two comes first.
func TestAPinnedIssuerSharingTheAccountIsRefusedBeforeAnyChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	unpinned := newTestIssuer(t, ca, dir, nil)
	url := unpinned.accountURL(t)
	keyPEM := unpinned.storedKeyPEM(t)
	pinned := newTestIssuer(t, ca, dir, func(iss *Issuer) { iss.AccountKey = string(keyPEM) })
	before := storagetest.Snapshot(t, dir)
	for _, order := range [][]*testIssuer{{unpinned, pinned}, {pinned, unpinned}} {
		var sets []servedSet
		for _, ti := range order {
			sets = append(sets, servedSet{Issuer: ti.Issuer, Names: []string{"shared.pinned.test"}})
		}
		targets, err := accountTargets(sets, "")
		if err != nil || len(targets) != 2 {
			t.Fatalf("targets = %v, %v; want the pinned and the unpinned issuer apart", targets, err)
		}
		for _, action := range []string{"rollover", "replace"} {
			changes, err := runAccountAction(ctx, accountActions[action], targets, sets, accountActions[action].request())
			var state *account.StateError
			if !errors.As(err, &state) || !strings.Contains(err.Error(), "account_key") || len(changes) != 0 {
				t.Errorf("%s with the pinned issuer %s: %+v, %v; want a refusal naming account_key", action, map[bool]string{true: "first", false: "second"}[order[0] == pinned], changes, err)
			}
		}
	}
	// the unpinned issuer alone is the target (a config file's names
	// chose it), the pinned one is still in the config
	alone := []accountTarget{unpinned.target("shared.pinned.test")}
	config := []servedSet{{Issuer: unpinned.Issuer}, {Issuer: pinned.Issuer}}
	if changes, err := runAccountAction(ctx, accountActions["rollover"], alone, config, &accountScope{}); !errors.Is(err, account.ErrPinned) || len(changes) != 0 {
		t.Errorf("rollover of the unpinned issuer alone, beside a pinned one: %+v, %v; want a refusal", changes, err)
	}
	if after := storagetest.Snapshot(t, dir); after != before {
		t.Errorf("storage changed:\nbefore %s\nafter  %s", before, after)
	}
	if n := ca.Counts.Get(acmetest.KindKeyChange); n != 0 {
		t.Errorf("%d key changes reached the CA", n)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("%d registrations, want the one account", n)
	}
	if got := pinned.accountURL(t); got != url {
		t.Errorf("the pinned key names %s, want %s", got, url)
	}
}
