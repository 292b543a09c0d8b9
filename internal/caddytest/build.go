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

// BuildModule builds the main package of a Go module of its own, kept in
// the folder dir beside the source file of its caller (as
// internal/etcdtest/etcdserver), into the binary name, and returns its
// path. Such a module keeps a program the tests run (etcd's server,
// lego) and its dependencies out of this module's go.mod, and so out of
// every Caddy built with the plugin. The binary is kept per checkout and
// per version of the module's go.mod, go.sum and main.go: a changed
// module gets a new binary rather than replacing one that a running test
// may be starting, and the go command's cache makes later builds quick.
func BuildModule(dir, name string) (string, error) {
	_, caller, _, ok := runtime.Caller(1)
	if !ok {
		return "", fmt.Errorf("cannot find the source folder of the module %s", dir)
	}
	dir = filepath.Join(filepath.Dir(caller), dir)
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", dir)
	for _, file := range []string{"go.mod", "go.sum", "main.go"} {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return "", fmt.Errorf("the module of %s: %v", name, err)
		}
		fmt.Fprintf(h, "%s %d\n", file, len(data))
		h.Write(data)
	}
	// the module is not part of any workspace of this one
	return BuildCached(dir, ".", name, hex.EncodeToString(h.Sum(nil))[:16], "GOWORK=off")
}
