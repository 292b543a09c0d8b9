package caddytest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
