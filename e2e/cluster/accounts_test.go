package cluster

import (
	"slices"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// TestOneAccountThreeInstances: `caddy persist records`, run as one
// instance, registers the account in the shared storage; once its record
// is published, all three instances serve the wildcard, with one account
// and one order per name at the CA, and show the same records.
func TestOneAccountThreeInstances(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, acmetest.Options{})
	cfg := c.caddyfile("Caddyfile", "15s", "", c.site("*.cluster.test, cluster.test"))
	recs := c.publishRecords(c.nodes[0], "--config", cfg)
	if len(recs) != 1 || recs[0].Domain != "cluster.test" || recs[0].AccountURL == "" {
		t.Fatalf("records = %+v", recs)
	}
	c.startAll(cfg)

	var wildcards []string
	for _, n := range c.nodes {
		leaf := c.handshake(n, "www.cluster.test", time.Minute)
		if !slices.Contains(leaf.DNSNames, "*.cluster.test") {
			t.Errorf("%s serves %v, want *.cluster.test", n.name, leaf.DNSNames)
		}
		wildcards = append(wildcards, leaf.SerialNumber.String())
		c.handshake(n, "cluster.test", time.Minute)
	}
	if wildcards[0] != wildcards[1] || wildcards[1] != wildcards[2] {
		t.Errorf("the instances serve different wildcard certificates: serials %v", wildcards)
	}
	c.checkOneAccount()
	c.checkOrderedOnce("*.cluster.test", "cluster.test")
	c.checkStored("*.cluster.test", "cluster.test")
	t.Logf("at the CA: %d registration, orders %v", c.ca.Counts.Get(acmetest.KindNewAccount+" 201"), c.ca.Counts.Ordered())

	t.Run("records across instances", func(t *testing.T) {
		for _, n := range c.nodes {
			code, body := adminGet(t, n, "/persist/records")
			if code != 200 {
				t.Fatalf("%s: /persist/records answered %d: %s", n.name, code, body)
			}
			got := decodeRecords(t, body)
			if !slices.Equal(got, recs) {
				t.Errorf("%s shows records %+v, `caddy persist records` printed %+v", n.name, got, recs)
			}
		}
		c.checkOneAccount()
	})
}
