package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// TestLosingAStoreNode: an etcd member, the leader or a follower, is
// killed while the three instances obtain certificates for six names;
// with the two members left, every certificate is obtained once and
// stored, and every instance serves each.
func TestLosingAStoreNode(t *testing.T) {
	t.Parallel()
	for _, which := range []string{"leader", "follower"} {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			gate := acmetest.NewGate(acmetest.KindFinalize)
			c := newCluster(t, 3, acmetest.Options{Wrap: gate.Wrap})
			t.Cleanup(gate.Release)
			var names []string
			for i := range 6 {
				names = append(names, fmt.Sprintf("n%d.%s.store.test", i, which))
			}
			cfg := c.caddyfile("Caddyfile", "15s", "", c.site(strings.Join(names, ", ")))
			c.publishRecords(c.nodes[0], "--config", cfg)
			c.startAll(cfg)

			// an instance is finalizing an order, holding its name's
			// lock, and the others wait on locks or order other names
			gate.WaitArrived(t, time.Minute)
			leader, followers := c.etcd.Leader()
			victim := leader
			if which == "follower" {
				victim = followers[0]
			}
			victim.Kill()
			t.Logf("killed etcd member %s, the %s", victim.Name, which)
			gate.Release()

			for _, n := range c.nodes {
				for _, name := range names {
					c.handshake(n, name, 2*time.Minute)
				}
			}
			c.checkOneAccount()
			c.checkOrderedOnce(names...)
			c.checkStored(names...)
			t.Logf("at the CA: %d registration, orders %v", c.ca.Counts.Get(acmetest.KindNewAccount+" 201"), c.ca.Counts.Ordered())
			if leader, _ := c.etcd.Leader(); leader == victim {
				t.Errorf("the killed member %s still leads", victim.Name)
			}
		})
	}
}
