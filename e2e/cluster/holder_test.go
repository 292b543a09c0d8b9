package cluster

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
	"github.com/dnspersist/caddy-persist/internal/etcdstorage"
)

// holderLockTTL is the lock lease of the instances in
// TestLosingTheLockHolder.
const holderLockTTL = 3 * time.Second

// TestLosingTheLockHolder: the instance holding a name's issuance lock,
// with its order held at finalize by the CA, is killed with SIGKILL while
// the two others wait for the lock; when the lock's lease expires, one of
// them takes the lock and obtains the certificate, which both serve. The
// log gives how long the lock took to pass on, against the lease's TTL.
func TestLosingTheLockHolder(t *testing.T) {
	gate := newFinalizeGate()
	c := newCluster(t, 3, acmetest.Options{Wrap: gate.wrap})
	t.Cleanup(gate.release)
	const name = "held.instance.test"
	lock := "issue_cert_" + name
	cfg := c.caddyfile("Caddyfile", holderLockTTL.String(), "", c.site(name))
	c.publishRecords(c.nodes[0], "--config", cfg)

	holder, waiters := c.nodes[0], c.nodes[1:]
	c.start(holder, cfg)
	gate.waitArrived(t, time.Minute)
	acquired := parseLockLine(t, holder.proc.WaitLog(t, 0, 10*time.Second, `"acquired lock"`, lock))
	for _, n := range waiters {
		c.start(n, cfg)
	}
	for _, n := range waiters {
		n.proc.WaitLog(t, 0, 30*time.Second, `"acquiring lock"`, name)
	}
	// the lock's keys in etcd: the first created holds it; it is the
	// holder's, and each waiter has one behind it
	keys := c.lockKeys(lock, 3)
	if !strings.HasSuffix(keys[0], "/"+acquired.Lease) {
		t.Fatalf("the lock's first key is %s; the holder logged lease %s", keys[0], acquired.Lease)
	}

	offsets := make([]int, len(waiters))
	for i, n := range waiters {
		offsets[i] = n.proc.Logs.Len()
	}
	killed := time.Now()
	holder.proc.Kill()
	gate.release()

	// a waiter takes the lock once the holder's lease has expired
	var next lockLine
	for next.TS == 0 {
		for i, n := range waiters {
			if line := caddytest.FindLine(n.proc.Logs.String()[offsets[i]:], `"acquired lock"`, lock); line != "" {
				next = parseLockLine(t, line)
			}
		}
		if time.Since(killed) > time.Minute {
			t.Fatal("no instance took the lock within a minute of the holder's death")
		}
		time.Sleep(50 * time.Millisecond)
	}
	passedOn := time.Unix(0, int64(next.TS*1e9)).Sub(killed)
	for _, n := range waiters {
		c.handshake(n, name, time.Minute)
	}
	served := time.Since(killed)
	t.Logf("lock holder killed: the lock passed on after %s (lock_ttl %s; the holder renewed its lease every %s), the certificate was served by both others %s after the kill",
		passedOn.Round(time.Millisecond), holderLockTTL, holderLockTTL/3, served.Round(time.Millisecond))

	c.checkOneAccount()
	c.checkStored(name)
	// the holder's order died with it; one more order completes the name
	if n := c.ca.Counts.Ordered()[name]; n != 2 {
		t.Errorf("%s was ordered %d times, want 2: the killed holder's and its successor's", name, n)
	}
}

// lockLine is what the etcd storage logs on taking a lock.
type lockLine struct {
	TS     float64 `json:"ts"`
	Lock   string  `json:"lock"`
	Lease  string  `json:"lease"`
	Waited float64 `json:"waited"`
}

func parseLockLine(t testing.TB, line string) lockLine {
	t.Helper()
	var l lockLine
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		t.Fatalf("reading log line %q: %v", line, err)
	}
	return l
}

// lockKeys waits until the lock has n keys in etcd and returns them, the
// first created first.
func (c *cluster) lockKeys(lock string, n int) []string {
	c.t.Helper()
	prefix := storagePrefix + "/" + etcdstorage.LocksFolder + "/" + lock + "/"
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := c.etcd.Client().Get(ctx, prefix, clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithKeysOnly())
		cancel()
		if err != nil {
			c.t.Fatalf("reading the lock's keys: %v", err)
		}
		if len(resp.Kvs) == n {
			var keys []string
			for _, kv := range resp.Kvs {
				keys = append(keys, string(kv.Key))
			}
			return keys
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("lock %s has %d keys in etcd, want %d", lock, len(resp.Kvs), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
