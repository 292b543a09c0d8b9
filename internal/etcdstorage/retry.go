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

// ErrNoQuorum is wrapped by the error of an operation that etcd did not
// answer within the storage's Timeout: an etcd that has lost its quorum
// does not refuse, it does not answer. Callers tell it with errors.Is.
var ErrNoQuorum = errors.New("is a quorum of the etcd members up?")

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
		unanswered := noAnswer(tryCtx, err)
		cancelTry()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !unanswered {
			return s.describe(ctx, op, key, err)
		}
		select {
		case <-ctx.Done():
			return s.describe(ctx, op, key, err)
		case <-time.After(retryPause):
		}
	}
}

// noAnswer tells an etcd that could not answer (no leader, a leader
// change, a member out of reach, no quorum to commit a write or confirm a
// read, a try that ran out of time) from a refusal, for err returned by a
// try run with ctx. It goes by gRPC codes and context states, which etcd's
// client and server keep from version to version, not by messages.
func noAnswer(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var code codes.Code
	var etcdErr rpctypes.EtcdError
	if errors.As(err, &etcdErr) {
		code = etcdErr.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	} else {
		// not from etcd: status.Code would call it Unknown too
		return false
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	case codes.Unknown:
		// the server ends a request at the deadline the client sent
		// along with it, and reports its context's error as Unknown;
		// that answer can come before the client's own timer fires
		return expired(ctx)
	}
	return false
}

// expired reports whether ctx has run out of time, by its error or, when
// its timer has not fired yet, by its deadline.
func expired(ctx context.Context) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return true
	}
	deadline, ok := ctx.Deadline()
	return ok && !time.Now().Before(deadline)
}

// describe says clearly why an operation, run with ctx, failed with err:
// when etcd did not answer before ctx ran out of time, the error wraps
// ErrNoQuorum.
func (s *Storage) describe(ctx context.Context, op, key string, err error) error {
	if expired(ctx) && noAnswer(ctx, err) {
		return fmt.Errorf("%s: %s %s: no answer within %s; %w (%w)", s, op, key, time.Duration(s.Timeout), ErrNoQuorum, err)
	}
	return fmt.Errorf("%s: %s %s: %w", s, op, key, err)
}
