package cluster

import (
	"encoding/json"
	"net/url"
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

// TestRolloverOnOneInstanceTheOthersKeepIssuing: each instance holds the
// account in memory, having obtained a certificate with it; `caddy
// persist account rollover` runs on one; the two others obtain
// certificates for new names with the new key, which they pick up from
// the shared storage, without a restart and with the one account.
func TestRolloverOnOneInstanceTheOthersKeepIssuing(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, acmetest.Options{})
	cfg := c.caddyfile("Caddyfile", "15s", onDemandGlobals, c.onDemandSite())
	c.startAll(cfg)
	before := []string{"before0.rollover.test", "before1.rollover.test", "before2.rollover.test"}
	after := []string{"after1.rollover.test", "after2.rollover.test"}
	query := url.Values{}
	for _, name := range append(slices.Clone(before), after...) {
		query.Add("domain", name)
	}
	register(t, c.nodes[0])
	code, body := adminGet(t, c.nodes[0], "/persist/records?"+query.Encode())
	if code != 200 {
		t.Fatalf("/persist/records answered %d: %s", code, body)
	}
	recs := decodeRecords(t, body)
	publish(t, recs)
	for i, n := range c.nodes {
		c.handshake(n, before[i], time.Minute)
	}

	res := c.caddy(c.nodes[0], "persist", "account", "rollover", "--config", cfg, "--format", "json")
	var changes []struct {
		AccountURL string `json:"account_url"`
		State      string `json:"state"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &changes); res.Code != 0 || err != nil || len(changes) != 1 || changes[0].AccountURL != recs[0].AccountURL || changes[0].State != "rolled-over" {
		t.Fatalf("rollover on %s: exit %d, %v\n%s\n%s", c.nodes[0].name, res.Code, err, res.Stdout, res.Stderr)
	}
	for i, n := range c.nodes[1:] {
		c.handshake(n, after[i], time.Minute)
		n.proc.WaitLog(t, 0, 10*time.Second, "the ACME account in storage changed")
	}
	c.checkOneAccount()
	if n := c.ca.Counts.Get(acmetest.KindKeyChange + " 200"); n != 1 {
		t.Errorf("%d key changes, want 1", n)
	}
	c.checkOrderedOnce(append(before, after...)...)
}
