package etcdtest

import (
	"sync"
	"testing"

	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

// serverModule is the folder, beside this file, of the Go module whose
// main package is etcd's server: a module of its own, so that etcd's
// server and its dependencies stay out of this module's go.mod.
const serverModule = "etcdserver"

// built is the etcd server this test binary runs, built on first use.
var built struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the path of etcd's server, built from serverModule on
// the first call of this test binary. A build that fails fails the test
// with the go command's output.
func Binary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() { built.path, built.err = caddytest.BuildModule(serverModule, "etcd") })
	if built.err != nil {
		t.Fatalf("the etcd members run etcd's server, built from its Go module: %v", built.err)
	}
	return built.path
}
