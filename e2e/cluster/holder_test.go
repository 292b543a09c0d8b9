package cluster

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

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
	t.Parallel()
	gate := acmetest.NewGate(acmetest.KindFinalize)
	c := newCluster(t, 3, acmetest.Options{Wrap: gate.Wrap})
	t.Cleanup(gate.Release)
	const name = "held.instance.test"
	lock := "issue_cert_" + name
	cfg := c.caddyfile("Caddyfile", holderLockTTL.String(), "", c.site(name))
	c.publishRecords(c.nodes[0], "--config", cfg)

	holder, waiters := c.nodes[0], c.nodes[1:]
	c.start(holder, cfg)
	gate.WaitArrived(t, time.Minute)
	acquired := parseLockLine(t, holder.proc.WaitLog(t, 0, 10*time.Second, `"acquired lock"`, lock))
	for _, n := range waiters {
		c.start(n, cfg)
	}
	for _, n := range waiters {
		n.proc.WaitLog(t, 0, 30*time.Second, `"acquiring lock"`, name)
	}
	// the lock's keys in etcd: the first created holds it; it is the
	// holder's, and each waiter has one behind it
	keys := c.etcd.WaitKeys(storagePrefix+"/"+etcdstorage.LocksFolder+"/"+lock+"/", 3, 30*time.Second)
	if !strings.HasSuffix(keys[0], "/"+acquired.Lease) {
		t.Fatalf("the lock's first key is %s; the holder logged lease %s", keys[0], acquired.Lease)
	}

	offsets := make([]int, len(waiters))
	for i, n := range waiters {
		offsets[i] = n.proc.Logs.Len()
	}
	killed := time.Now()
	holder.proc.Kill()
	gate.Release()

	// a waiter takes the lock once the holder's lease has expired
	procs := make([]*caddytest.Process, len(waiters))
	for i, n := range waiters {
		procs[i] = n.proc
	}
	_, line := caddytest.WaitAnyLog(t, procs, offsets, time.Minute, `"acquired lock"`, lock)
	next := parseLockLine(t, line)
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
