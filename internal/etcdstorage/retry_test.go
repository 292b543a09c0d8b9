package etcdstorage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// expiredContext is the context of a try whose time has run out.
func expiredContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	t.Cleanup(cancel)
	return ctx
}

// TestNoAnswer: every way etcd's client reports an etcd that cannot
// answer counts as no answer, whatever its message; refusals do not; and
// Unknown counts only when the try's own time has run out, as when the
// server reports the deadline the client sent along.
func TestNoAnswer(t *testing.T) {
	t.Parallel()
	live := context.Background()
	// a context whose deadline has passed but whose timer has not fired
	// is what a try sees when the server's answer beats that timer
	passed, cancel := context.WithDeadline(context.Background(), time.Now().Add(time.Hour))
	t.Cleanup(cancel)
	passed = deadlinePassed{passed}

	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"no error", live, nil, false},
		{"context.DeadlineExceeded", live, context.DeadlineExceeded, true},
		{"wrapped context.DeadlineExceeded", live, fmt.Errorf("keeping the lease: %w", context.DeadlineExceeded), true},
		{"grpc Unavailable", live, status.Error(codes.Unavailable, "connection refused"), true},
		{"grpc DeadlineExceeded", live, status.Error(codes.DeadlineExceeded, "any text"), true},
		{"wrapped grpc Unavailable", live, fmt.Errorf("load: %w", status.Error(codes.Unavailable, "")), true},
		{"server: no leader", live, rpctypes.ErrGRPCNoLeader, true},
		{"server: leader changed", live, rpctypes.ErrGRPCLeaderChanged, true},
		{"server: request timed out", live, rpctypes.ErrGRPCTimeout, true},
		{"server: stopped", live, rpctypes.ErrGRPCStopped, true},
		{"server: deadline exceeded", live, rpctypes.ErrGRPCDeadlineExceeded, true},
		{"client: no leader", live, rpctypes.ErrNoLeader, true},
		{"client: leader changed", live, rpctypes.ErrLeaderChanged, true},
		{"client: timeout due to leader fail", live, rpctypes.ErrTimeoutDueToLeaderFail, true},
		{"client: unhealthy", live, rpctypes.ErrUnhealthy, true},
		{"Unknown, try expired", expiredContext(t), status.Error(codes.Unknown, "context deadline exceeded"), true},
		{"Unknown, try's deadline passed, timer not fired", passed, status.Error(codes.Unknown, "whatever the server says"), true},
		{"Unknown, try in time", live, status.Error(codes.Unknown, "context deadline exceeded"), false},
		{"client: key not found", live, rpctypes.ErrKeyNotFound, false},
		{"client: permission denied", live, rpctypes.ErrPermissionDenied, false},
		{"client: no space", live, rpctypes.ErrNoSpace, false},
		{"grpc InvalidArgument", live, status.Error(codes.InvalidArgument, "no quorum, context deadline exceeded"), false},
		{"grpc Canceled", live, status.Error(codes.Canceled, "context canceled"), false},
		{"context.Canceled", live, context.Canceled, false},
		{"not found", live, fs.ErrNotExist, false},
		{"plain error", expiredContext(t), errors.New("Unavailable: context deadline exceeded"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := noAnswer(tc.ctx, tc.err); got != tc.want {
				t.Errorf("noAnswer(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// deadlinePassed is a context whose deadline is in the past while its
// timer has not fired: Err is still nil.
type deadlinePassed struct{ context.Context }

func (deadlinePassed) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// TestNoQuorumError: an operation that etcd never answers (a member out
// of reach, then tries ending with the Unknown error the server sends at
// the deadline) is tried until the Timeout runs out and then fails with
// ErrNoQuorum; a refusal fails at once, without it; an answer after no
// answer succeeds.
func TestNoQuorumError(t *testing.T) {
	t.Parallel()
	s := &Storage{Endpoints: []string{"http://127.0.0.1:1"}, Prefix: "test", Timeout: caddy.Duration(1500 * time.Millisecond)}

	tries := 0
	err := s.do(context.Background(), opLoad, "some/key", func(ctx context.Context) error {
		tries++
		if tries == 1 {
			return status.Error(codes.Unavailable, "connection refused")
		}
		<-ctx.Done()
		return status.Error(codes.Unknown, "context deadline exceeded")
	})
	if !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("an operation etcd never answered: %v, want ErrNoQuorum", err)
	}
	if !strings.Contains(err.Error(), "is a quorum of the etcd members up?") || !strings.Contains(err.Error(), "some/key") {
		t.Errorf("the error does not name the key and ask about the quorum: %v", err)
	}
	if tries < 2 {
		t.Errorf("%d tries within the Timeout, want the operation tried again", tries)
	}

	tries = 0
	refused := rpctypes.ErrPermissionDenied
	err = s.do(context.Background(), opStore, "some/key", func(context.Context) error {
		tries++
		return refused
	})
	if errors.Is(err, ErrNoQuorum) || !errors.Is(err, refused) || tries != 1 {
		t.Errorf("a refusal: %v after %d tries, want it once, without ErrNoQuorum", err, tries)
	}

	// no answer yet, then an answer: the operation succeeds
	tries = 0
	err = s.do(context.Background(), opStore, "some/key", func(context.Context) error {
		tries++
		if tries == 1 {
			return rpctypes.ErrGRPCLeaderChanged
		}
		return nil
	})
	if err != nil || tries != 2 {
		t.Errorf("a leader change, then an answer: %v after %d tries, want success after 2", err, tries)
	}
}
