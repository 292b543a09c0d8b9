package etcdtest

import (
	"testing"

	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

// server is etcd's server, built from the Go module in etcdserver beside
// this file: a module of its own, so that etcd's server and its
// dependencies stay out of this module's go.mod.
var server = caddytest.Module{
	Dir:     "etcdserver",
	Name:    "etcd",
	Purpose: "the etcd members run etcd's server, built from its Go module",
}

// Binary returns the path of etcd's server, built on the first call of
// this test binary.
func Binary(t testing.TB) string {
	t.Helper()
	return server.Path(t)
}
