package etcdstorage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// attempts is how many tries an operation's Timeout is shared among.
const attempts = 3

// retryPause is the pause between two tries.
const retryPause = 100 * time.Millisecond

// do runs attempt, an idempotent operation, within the storage's Timeout,
// trying again while etcd says it could not answer yet. A write that was
// in flight when the leader died is dropped by etcd and never answered;
// etcd's client retries only reads, so without this the write would fail
// although the members left keep a quorum. Each try has a third of the
// Timeout.
func (s *Storage) do(ctx context.Context, op, key string, attempt func(context.Context) error) error {
	timeout := time.Duration(s.Timeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		tryCtx, cancelTry := context.WithTimeout(ctx, timeout/attempts)
		err := attempt(tryCtx)
		cancelTry()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !transient(err) {
			return s.describe(ctx, op, key, err)
		}
		select {
		case <-ctx.Done():
			return s.describe(ctx, op, key, err)
		case <-time.After(retryPause):
		}
	}
}

// transient tells an etcd that could not answer yet (no leader, a leader
// change, a member out of reach, a try that ran out of time) from a
// refusal.
func transient(err error) bool {
	var etcdErr rpctypes.EtcdError
	if errors.As(err, &etcdErr) {
		return etcdErr.Code() == codes.Unavailable || etcdErr.Code() == codes.DeadlineExceeded
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	code := status.Code(err)
	return code == codes.Unavailable || code == codes.DeadlineExceeded
}

// describe says clearly why an operation failed: an etcd that has lost its
// quorum does not refuse, it does not answer.
func (s *Storage) describe(ctx context.Context, op, key string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: %s %s: no answer within %s; is a quorum of the etcd members up? (%w)", s, op, key, time.Duration(s.Timeout), err)
	}
	return fmt.Errorf("%s: %s %s: %w", s, op, key, err)
}
