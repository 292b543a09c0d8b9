package etcdstorage

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/dnspersist/caddy-persist/internal/etcdtest"
)

// newTestStorage provisions a storage on c under prefix.
func newTestStorage(t *testing.T, c *etcdtest.Cluster, prefix string, lockTTL time.Duration) *Storage {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	s := &Storage{Endpoints: c.Endpoints(), Prefix: prefix, LockTTL: caddy.Duration(lockTTL), Timeout: caddy.Duration(5 * time.Second)}
	if err := s.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Cleanup() })
	return s
}

// startCluster starts a one-member etcd for t alone, which therefore
// runs in parallel with the other tests.
func startCluster(t *testing.T) *etcdtest.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("runs an etcd server; skipped with -short")
	}
	t.Parallel()
	return etcdtest.Start(t, 1)
}

func TestKeysAndFolders(t *testing.T) {
	s := newTestStorage(t, startCluster(t), "kv", DefaultLockTTL)
	ctx := context.Background()
	before := time.Now()
	for _, key := range []string{"certificates/ca/a.test/a.test.crt", "certificates/ca/a.test/a.test.key", "certificates/ca/b.test/b.test.crt", "certificatesx"} {
		if err := s.Store(ctx, key, []byte("value of "+key)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Load(ctx, "certificates/ca/a.test/a.test.crt")
	if err != nil || string(got) != "value of certificates/ca/a.test/a.test.crt" {
		t.Fatalf("Load = %q, %v", got, err)
	}
	if _, err := s.Load(ctx, "certificates/ca"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a folder: %v, want fs.ErrNotExist", err)
	}

	info, err := s.Stat(ctx, "certificates/ca/a.test/a.test.key")
	if err != nil || !info.IsTerminal || info.Size != int64(len("value of certificates/ca/a.test/a.test.key")) || info.Modified.Before(before.Add(-time.Second)) {
		t.Errorf("Stat of a value = %+v, %v", info, err)
	}
	if info, err := s.Stat(ctx, "certificates/ca"); err != nil || info.IsTerminal {
		t.Errorf("Stat of a folder = %+v, %v", info, err)
	}
	if !s.Exists(ctx, "certificates/ca/b.test") || s.Exists(ctx, "certificates/ca/c.test") {
		t.Error("Exists is wrong about folders")
	}

	list, err := s.List(ctx, "certificates/ca", false)
	if err != nil || !slices.Equal(list, []string{"certificates/ca/a.test", "certificates/ca/b.test"}) {
		t.Errorf("List = %v, %v", list, err)
	}
	list, err = s.List(ctx, "certificates", true)
	if err != nil || len(list) != 3 {
		t.Errorf("recursive List = %v, %v", list, err)
	}

	if err := s.Delete(ctx, "certificates/ca/a.test"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates/ca/a.test/a.test.crt") || !s.Exists(ctx, "certificates/ca/b.test/b.test.crt") || !s.Exists(ctx, "certificatesx") {
		t.Error("Delete of a folder removed too little or too much")
	}
	if err := s.Delete(ctx, "nothing/here"); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
}

func TestLocksExcludeAndExpire(t *testing.T) {
	c := startCluster(t)
	a := newTestStorage(t, c, "locks", time.Second)
	b := newTestStorage(t, c, "locks", time.Second)
	ctx := context.Background()

	if err := a.Lock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	// another goroutine of the same process is excluded too
	if ok, err := a.TryLock(ctx, "issue_cert_x"); ok || err != nil {
		t.Errorf("TryLock of a held lock in the same process = %v, %v", ok, err)
	}
	if ok, err := b.TryLock(ctx, "issue_cert_x"); ok || err != nil {
		t.Errorf("TryLock of a held lock = %v, %v", ok, err)
	}
	// Lock waits: it returns only after a's Unlock, whenever that is
	var unlocked atomic.Bool
	acquired := make(chan error, 1)
	go func() {
		err := b.Lock(ctx, "issue_cert_x")
		if err == nil && !unlocked.Load() {
			err = errors.New("Lock returned while the lock was held")
		}
		acquired <- err
	}()
	// b's key is in etcd behind a's: b waits for a, not for a chance
	// to write its key
	c.WaitKeys(a.keyOf(LocksFolder+"/issue_cert_x")+"/", 2, 30*time.Second)
	unlocked.Store(true)
	if err := a.Unlock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	if err := <-acquired; err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, "issue_cert_x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, "issue_cert_x"); err == nil {
		t.Error("Unlock of a lock not held succeeded")
	}

	// a holder that dies without unlocking: its lease ends and the lock
	// passes on
	if err := a.Lock(ctx, "issue_cert_y"); err != nil {
		t.Fatal(err)
	}
	a.client.Close()
	deadline, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := b.Lock(deadline, "issue_cert_y"); err != nil {
		t.Fatalf("the lock of a dead holder did not pass on: %v", err)
	}
}
