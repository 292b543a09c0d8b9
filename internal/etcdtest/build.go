package etcdtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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
	built.once.Do(func() { built.path, built.err = build() })
	if built.err != nil {
		t.Fatalf("the etcd members run etcd's server, built from its Go module: %v", built.err)
	}
	return built.path
}

// build builds serverModule, once per version of it (see moduleKey), and
// returns the binary's path.
func build() (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot find the source folder of package etcdtest")
	}
	dir := filepath.Join(filepath.Dir(self), serverModule)
	key, err := moduleKey(dir)
	if err != nil {
		return "", err
	}
	// the server's module is not part of any workspace of this one
	return caddytest.BuildCached(dir, ".", "etcd", key, "GOWORK=off")
}

// moduleKey names the module's folder and files: each checkout keeps its
// own binary (the go command relinks one built from another folder), and
// a changed server gets a new binary rather than replacing one that a
// running test may be starting.
func moduleKey(dir string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", dir)
	for _, name := range []string{"go.mod", "go.sum", "main.go"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("the etcd server's module: %v", err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
