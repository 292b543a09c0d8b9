package acmetest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dnspersist/caddy-persist/internal/filelock"
)

// A port found free is closed again before the program meant to listen
// on it starts, and tests of several packages run at once: another test
// binary could be handed the same port in between and one of the two
// programs would fail to listen. A port is therefore reserved, across
// processes, by an exclusive lock on a file named after it, held until the
// test that asked for it ends (or the process exits, which releases it).
// The folder is per user, whose own test runs are the ones that collide.
func portLocks() string {
	return filepath.Join(os.TempDir(), "caddy-persist-test-ports-"+strconv.Itoa(os.Getuid()))
}

// FreePortForTest is FreePort for a test, which fails if none is free. The
// port stays reserved until the test ends.
func FreePortForTest(t testing.TB) int {
	t.Helper()
	port, release, err := reservePort()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return port
}

// FreePort returns a port on loopback that is free now for both TCP and
// UDP (HTTP/3 and DNS listen on both) and reserved by no test. It is not
// reserved afterwards: it suits a program that listens on it at once.
func FreePort() (int, error) {
	port, release, err := reservePort()
	if err != nil {
		return 0, err
	}
	release()
	return port, nil
}

// reservePort finds a free port and locks its file; release unlocks it.
func reservePort() (port int, release func(), err error) {
	dir := portLocks()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, nil, err
	}
	for range 50 {
		port, ok, err := freeNow()
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			continue
		}
		release, ok, err := filelock.TryLock(filepath.Join(dir, strconv.Itoa(port)))
		if err != nil {
			return 0, nil, err
		}
		if !ok {
			continue // another test holds it: its program may not listen yet
		}
		return port, release, nil
	}
	return 0, nil, fmt.Errorf("no free port on loopback after 50 tries")
}

// freeNow asks the kernel for a free TCP port on loopback, and reports
// whether UDP is free there too.
func freeNow() (port int, ok bool, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, false, err
	}
	defer l.Close()
	port = l.Addr().(*net.TCPAddr).Port
	u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return port, false, nil
	}
	u.Close()
	return port, true, nil
}
