package acmetest

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// Gate holds the CA's requests of one kind until it is released, so that a
// test can act while an order waits at that step, e.g. kill the instance
// whose order is at finalize.
type Gate struct {
	kind    string
	once    sync.Once
	arrived chan struct{}
	open    chan struct{}
	release sync.Once
}

// NewGate returns a closed gate for requests of kind (KindFinalize, ...).
func NewGate(kind string) *Gate {
	return &Gate{kind: kind, arrived: make(chan struct{}), open: make(chan struct{})}
}

// Wrap is the Options.Wrap of the gate.
func (g *Gate) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if KindOf(r) == g.kind {
			g.once.Do(func() { close(g.arrived) })
			// a request whose client died goes on to the CA at once,
			// as one sent just before the death would have
			select {
			case <-g.open:
			case <-r.Context().Done():
			}
		}
		next.ServeHTTP(w, r)
	})
}

// WaitArrived waits for the first request the gate holds, and fails the
// test if none comes within timeout.
func (g *Gate) WaitArrived(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-g.arrived:
	case <-time.After(timeout):
		t.Fatalf("no %s request reached the CA within %s", g.kind, timeout)
	}
}

// Release lets every held and later request through. It may be called
// more than once.
func (g *Gate) Release() {
	g.release.Do(func() { close(g.open) })
}
