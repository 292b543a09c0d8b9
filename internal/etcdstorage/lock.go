package etcdstorage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// LocksFolder is the folder, under the prefix, of the locks: the etcd
// keys of the lock name are LocksFolder/<name>/<lease ID in hex>, one per
// holder or waiter, and the one created first holds the lock.
const LocksFolder = "locks"

// Lock waits for the lock name. Each lock has a session of its own, so
// that two goroutines of this process exclude each other as two instances
// do; the session's lease, renewed while this process lives, releases the
// lock LockTTL after the process dies.
func (s *Storage) Lock(ctx context.Context, name string) (err error) {
	defer s.metrics.count(opLock, &err)
	_, err = s.acquire(ctx, name, (*concurrency.Mutex).Lock)
	return err
}

// TryLock takes the lock name if nobody holds it, without waiting.
func (s *Storage) TryLock(ctx context.Context, name string) (_ bool, err error) {
	defer s.metrics.count(opLock, &err)
	_, err = s.acquire(ctx, name, (*concurrency.Mutex).TryLock)
	if errors.Is(err, concurrency.ErrLocked) {
		err = nil
		return false, nil
	}
	return err == nil, err
}

// Unlock releases the lock name: it deletes this holder's key and revokes
// the session's lease.
func (s *Storage) Unlock(ctx context.Context, name string) (err error) {
	defer s.metrics.count(opUnlock, &err)
	h := s.locks.take(name)
	if h == nil {
		return fmt.Errorf("%s: unlock %s: this process does not hold that lock", s, name)
	}
	err = s.do(ctx, opUnlock, name, h.mutex.Unlock)
	if closeErr := h.session.Close(); err == nil && closeErr != nil && !errors.Is(closeErr, context.Canceled) {
		// the key is gone; the lease only outlives it until its TTL
		s.logger.Warn("could not revoke a released lock's lease", zap.String("lock", name), zap.Error(closeErr))
	}
	return err
}

// acquire takes the lock name with take (Lock or TryLock) in a new session.
func (s *Storage) acquire(ctx context.Context, name string, take func(*concurrency.Mutex, context.Context) error) (*heldLock, error) {
	start := time.Now()
	session, err := s.newSession(ctx, name)
	if err != nil {
		return nil, err
	}
	mutex := concurrency.NewMutex(session, s.keyOf(LocksFolder+"/"+name))
	if err := s.hold(ctx, mutex, take); err != nil {
		session.Close()
		if errors.Is(err, concurrency.ErrLocked) {
			return nil, err
		}
		return nil, s.describe(ctx, opLock, name, err)
	}
	waited := time.Since(start)
	s.metrics.lockWait.Observe(waited.Seconds())
	h := &heldLock{session: session, mutex: mutex}
	s.locks.put(name, h)
	go s.watch(name, h)
	s.logger.Info("acquired lock",
		zap.String("lock", name),
		zap.Duration("waited", waited),
		zap.String("lease", LeaseHex(session.Lease())))
	return h, nil
}

// hold runs take (Lock or TryLock) on mutex again while it fails because
// a member went out of reach or the leader changed: like the wait for
// another holder, this wait ends with the lock, a refusal, or ctx. A
// mutex's key is its session's, so a try whose key was written but whose
// answer was lost is continued, not doubled.
func (s *Storage) hold(ctx context.Context, mutex *concurrency.Mutex, take func(*concurrency.Mutex, context.Context) error) error {
	for {
		err := take(mutex, ctx)
		if err == nil || errors.Is(err, concurrency.ErrLocked) || ctx.Err() != nil || !noAnswer(ctx, err) {
			return err
		}
		s.logger.Debug("trying again to take a lock", zap.String("lock", mutex.Key()), zap.Error(err))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(retryPause):
		}
	}
}

// newSession grants a lease of LockTTL within the operation Timeout (an
// etcd without quorum grants none) and keeps it alive in a session.
func (s *Storage) newSession(ctx context.Context, name string) (*concurrency.Session, error) {
	ttl := int(time.Duration(s.LockTTL) / time.Second)
	var lease *clientv3.LeaseGrantResponse
	err := s.do(ctx, opLock, name, func(ctx context.Context) (err error) {
		// a lease granted by a try whose answer was lost expires unused
		lease, err = s.client.Grant(ctx, int64(ttl))
		return err
	})
	if err != nil {
		return nil, err
	}
	session, err := concurrency.NewSession(s.client, concurrency.WithLease(lease.ID), concurrency.WithTTL(ttl))
	if err != nil {
		return nil, s.describe(ctx, opLock, name, fmt.Errorf("keeping the lock's lease alive: %w", err))
	}
	return session, nil
}

// watch logs when a held lock's session ends before Unlock: its lease
// expired (etcd was out of reach for longer than LockTTL), so another
// instance may take the lock.
func (s *Storage) watch(name string, h *heldLock) {
	<-h.session.Done()
	if s.locks.holds(name, h) {
		s.logger.Warn("lost a held lock: its session's lease expired",
			zap.String("lock", name), zap.String("lease", LeaseHex(h.session.Lease())))
	}
}

// LeaseHex writes a lease ID as the lock keys end in.
func LeaseHex(id clientv3.LeaseID) string {
	return strconv.FormatInt(int64(id), 16)
}

// heldLock is a lock this process holds.
type heldLock struct {
	session *concurrency.Session
	mutex   *concurrency.Mutex
}

// heldLocks are the locks this process holds, by name.
type heldLocks struct {
	mu    sync.Mutex
	names map[string]*heldLock
}

func newHeldLocks() *heldLocks {
	return &heldLocks{names: make(map[string]*heldLock)}
}

func (l *heldLocks) put(name string, h *heldLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.names[name] = h
}

// take removes and returns the lock name, or nil.
func (l *heldLocks) take(name string) *heldLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.names[name]
	delete(l.names, name)
	return h
}

func (l *heldLocks) holds(name string, h *heldLock) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.names[name] == h
}

// releaseAll closes the session of every held lock, which releases it.
func (l *heldLocks) releaseAll(logger *zap.Logger) {
	l.mu.Lock()
	held := l.names
	l.names = make(map[string]*heldLock)
	l.mu.Unlock()
	for name, h := range held {
		if err := h.session.Close(); err != nil {
			logger.Warn("releasing a held lock at cleanup", zap.String("lock", name), zap.Error(err))
		}
	}
}
