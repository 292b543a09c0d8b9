package persist

import (
	"context"
	"sync"
	"testing"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

func TestTwoInstancesOnOneStorageRegisterOnceAndOrderOncePerName(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	dir := t.TempDir()
	a := newTestIssuer(t, ca, dir, nil)
	b := newTestIssuer(t, ca, dir, nil)
	names := []string{"one.shared.test", "two.shared.test", "three.shared.test"}
	// the record needs the account URL, which neither instance has yet;
	// publish after the first registration, as an operator would
	url := a.accountURL(t)
	a.accounts.Forget()
	for _, n := range names {
		setTXT(t, record.Name(n), "pebble.letsencrypt.org; accounturi="+url)
	}
	// a second storage-sharing pair starting from nothing
	fresh := t.TempDir()
	c := newTestIssuer(t, ca, fresh, nil)
	d := newTestIssuer(t, ca, fresh, nil)

	var wg sync.WaitGroup
	for _, inst := range []*testIssuer{a, b} {
		for _, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := inst.magic.ObtainCertSync(context.Background(), n); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	var urls [2]string
	for i, inst := range []*testIssuer{c, d} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acct, err := inst.accounts.Get(context.Background(), true)
			if err != nil {
				t.Error(err)
				return
			}
			urls[i] = acct.Location
		}()
	}
	wg.Wait()
	ordered := ca.Counts.Ordered()
	for _, n := range names {
		if ordered[n] != 1 {
			t.Errorf("%s was ordered %d times, want 1", n, ordered[n])
		}
	}
	if urls[0] == "" || urls[0] != urls[1] {
		t.Errorf("instances starting together got accounts %v", urls)
	}
	// one account for the first storage, one for the second
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 2 {
		t.Errorf("registrations = %d, want 2 (one per storage)", n)
	}
}
