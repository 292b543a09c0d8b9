package cluster

import (
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

// Tenants of TestOnDemandAcrossInstances: the first authorized of them
// publish their record.
const (
	tenants    = 300
	authorized = 100
	// handshakers is how many handshakes run at once.
	handshakers = 30
)

func tenant(i int) string { return fmt.Sprintf("t%d.tenant.test", i) }

// TestOnDemandAcrossInstances: 300 tenants' handshakes, spread over the
// three instances, of which the 100 tenants who published their record
// get a certificate, ordered once across the cluster, and the others none
// and no order; then every authorized tenant's certificate is served by
// the two other instances from the shared storage, with no new order.
func TestOnDemandAcrossInstances(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, acmetest.Options{})
	cfg := c.caddyfile("Caddyfile", "15s", onDemandGlobals, c.onDemandSite())
	c.startAll(cfg)

	// the control panel asks one instance what its tenants must publish,
	// once the account exists
	register(t, c.nodes[0])
	query := url.Values{}
	for i := range authorized {
		query.Add("domain", tenant(i))
	}
	code, body := adminGet(t, c.nodes[0], "/persist/records?"+query.Encode())
	if code != 200 {
		t.Fatalf("/persist/records answered %d: %s", code, body)
	}
	recs := decodeRecords(t, body)
	if len(recs) != authorized {
		t.Fatalf("%d records for %d tenants", len(recs), authorized)
	}
	publish(t, recs)

	serials := make([]string, authorized)
	var mu sync.Mutex
	var denied []string
	parallel(t, tenants, func(i int) error {
		n := c.nodes[i%len(c.nodes)]
		if i < authorized {
			leaf, err := c.tryHandshake(n, tenant(i), time.Minute)
			if err == nil {
				serials[i] = leaf.SerialNumber.String()
			}
			return err
		}
		if _, _, err := caddytest.TryHandshake(n.https, tenant(i), c.roots()); err == nil {
			mu.Lock()
			denied = append(denied, tenant(i))
			mu.Unlock()
		}
		return nil
	})
	if len(denied) > 0 {
		t.Errorf("%d unauthorized tenants got a certificate, e.g. %s", len(denied), denied[0])
	}

	// the others serve each authorized tenant the same certificate
	parallel(t, authorized*(len(c.nodes)-1), func(k int) error {
		i := k / (len(c.nodes) - 1)
		n := c.nodes[(i+1+k%(len(c.nodes)-1))%len(c.nodes)]
		leaf, err := c.tryHandshake(n, tenant(i), time.Minute)
		if err == nil && leaf.SerialNumber.String() != serials[i] {
			err = fmt.Errorf("%s serves %s another certificate than the instance that obtained it", n.name, tenant(i))
		}
		return err
	})

	c.checkOneAccount()
	ordered := c.ca.Counts.Ordered()
	for i := range tenants {
		want := 0
		if i < authorized {
			want = 1
		}
		if ordered[tenant(i)] != want {
			t.Errorf("%s was ordered %d times, want %d", tenant(i), ordered[tenant(i)], want)
		}
	}
	if len(ordered) != authorized {
		t.Errorf("%d names ordered, want %d", len(ordered), authorized)
	}
	t.Logf("%d handshakes, then %d more at the other instances: %d names ordered, %d orders, %d accounts registered",
		tenants, authorized*(len(c.nodes)-1), len(ordered), c.ca.Counts.Get(acmetest.KindNewOrder+" 201"), c.ca.Counts.Get(acmetest.KindNewAccount+" 201"))
}

// parallel runs f(0) to f(n-1), handshakers at a time, and stops at the
// first error, which it reports.
func parallel(t *testing.T, n int, f func(int) error) {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Bool
	work := make(chan int)
	for range handshakers {
		wg.Go(func() {
			for i := range work {
				if failed.Load() {
					continue
				}
				if err := f(i); err != nil && !failed.Swap(true) {
					t.Error(err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
}
