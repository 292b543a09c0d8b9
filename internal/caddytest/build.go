package caddytest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/dnspersist/caddy-persist/internal/filelock"
)

// Build compiles cmd/caddy of the module rooted at root, and returns the
// binary's path.
func Build(root string) (string, error) {
	return BuildPackage(root, "./cmd/caddy")
}

// BuildPackage is Build for another main package of the module, given
// relative to root, e.g. a Caddy with test-only modules. The binary is
// kept between runs, one per checkout and package (see BuildCached).
func BuildPackage(root, pkg string) (string, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(abs + "\n" + pkg))
	return BuildCached(root, pkg, "caddy", hex.EncodeToString(sum[:8]))
}

// BuildCached builds the main package pkg, running the go command in dir
// with env added to the environment, into the binary name, in a folder
// named by name and key in this user's folder of test binaries, and
// returns the binary's path. The go
// command leaves a binary that is up to date alone, so of the test
// binaries that build the same program only the first links it (seconds
// each for Caddy); a lock keeps those run at once from building it
// together. A rebuilt binary is renamed into place, which leaves one
// that a running test started intact.
func BuildCached(dir, pkg, name, key string, env ...string) (string, error) {
	out := filepath.Join(os.TempDir(), "caddy-persist-test-bin-"+strconv.Itoa(os.Getuid()), name+"-"+key)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	release, err := filelock.Lock(filepath.Join(out, "build.lock"))
	if err != nil {
		return "", err
	}
	defer release()
	bin := filepath.Join(out, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if output, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s in %s: %v\n%s", pkg, dir, err, output)
	}
	return bin, nil
}

// Module is the main package of a Go module of its own, kept in the
// folder Dir beside the source file of the code that asks for its Path
// (as internal/etcdtest/etcdserver). Such a module keeps a program the
// tests run (etcd's server, lego) and its dependencies out of this
// module's go.mod, and so out of every Caddy built with the plugin.
type Module struct {
	// Dir is the module's folder, relative to the caller's.
	Dir string
	// Name is the binary's name.
	Name string
	// Purpose says, in a failed test, what the program is for.
	Purpose string

	once sync.Once
	path string
	// source is the module's folder, once known
	source string
	err    error
}

// Path builds the module on the first call of this test binary and
// returns the binary's path; a build that fails fails the test with the
// go command's output. The binary is kept per checkout, as BuildCached
// keeps Caddy's: the go command relinks it only when the module changed.
func (m *Module) Path(t testing.TB) string {
	t.Helper()
	_, caller, _, ok := runtime.Caller(1)
	m.once.Do(func() {
		if !ok {
			m.err = fmt.Errorf("cannot find the source folder of the module %s", m.Dir)
			return
		}
		m.source = filepath.Join(filepath.Dir(caller), m.Dir)
		m.path, m.err = buildModule(m.source, m.Name)
	})
	if m.err != nil {
		t.Fatalf("%s: %v\nThe module's dependencies come from the Go module proxy: check that GOPROXY reaches it, or run `go mod download` in %s where it does", m.Purpose, m.err, m.source)
	}
	return m.path
}

// BuildModule builds the main package of the Go module of its own in dir
// (relative to the working directory), as Module.Path does, for a
// TestMain, which has no test to fail.
func BuildModule(dir, name string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return buildModule(abs, name)
}

func buildModule(dir, name string) (string, error) {
	// the go command rebuilds the binary when the module changes, as for
	// Caddy; the module is not part of any workspace of this one
	sum := sha256.Sum256([]byte(dir))
	return BuildCached(dir, ".", name, hex.EncodeToString(sum[:8]), "GOWORK=off")
}
