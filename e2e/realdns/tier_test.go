package realdns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// probeEnv makes the test binary exit at once: it is what the namespace
// probe runs in the new namespaces.
const probeEnv = "PERSIST_REALDNS_PROBE"

// aptPackages are the Debian packages of the programs a world runs.
var aptPackages = []string{"bind9", "bind9-utils", "bind9-dnsutils", "nsd", "unbound", "iproute2"}

// programs are what a world runs, each with the Debian package that has
// it. unshare comes with util-linux, which every Debian system has.
var programs = []struct{ name, pkg string }{
	{"named", "bind9"},
	{"dnssec-keygen", "bind9-utils"},
	{"dnssec-signzone", "bind9-utils"},
	{"nsupdate", "bind9-dnsutils"},
	{"nsd", "nsd"},
	{"nsd-control", "nsd"},
	{"unbound", "unbound"},
	{"ip", "iproute2"},
	{"unshare", "util-linux"},
}

// tierState is whether this machine can run the tier: skip is the one
// line a test skips with when it lacks programs or namespaces, and
// trouble an error that is neither, which fails every test.
type tierState struct {
	skip    string
	trouble error
}

// checkTier finds what the tier needs on this machine, before anything
// costly (building Caddy) is done for it.
func checkTier() tierState {
	var missing, pkgs []string
	for _, p := range programs {
		if _, err := lookTool(p.name); err != nil {
			missing = append(missing, p.name)
			pkgs = append(pkgs, p.pkg)
		}
	}
	refused, err := namespacesRefused()
	if err != nil {
		return tierState{trouble: err}
	}
	return tierState{skip: skipLine(missing, installCommand(pkgs), refused, os.Geteuid())}
}

// installCommand installs the tier's packages, and any other package of a
// missing program.
func installCommand(missingPkgs []string) string {
	pkgs := slices.Clone(aptPackages)
	for _, p := range missingPkgs {
		if !slices.Contains(pkgs, p) {
			pkgs = append(pkgs, p)
		}
	}
	return "DEBIAN_FRONTEND=noninteractive apt-get install -y " + strings.Join(pkgs, " ")
}

// namespacesRefused starts this binary (as probeEnv has it, it exits at
// once) in new network, mount and pid namespaces, as a world's unshare
// does. The kernel's refusal, EPERM (EACCES under some security modules)
// to a user without CAP_SYS_ADMIN, is returned as the errno; any other
// failure is the error.
func namespacesRefused() (syscall.Errno, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("finding the test binary for the namespace probe: %v", err)
	}
	cmd := exec.Command(self)
	cmd.Env = childEnviron(probeEnv + "=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID}
	out, err := cmd.CombinedOutput()
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &errno) && (errno == syscall.EPERM || errno == syscall.EACCES):
		return errno, nil
	}
	hint := ""
	if errno == syscall.ENOSPC {
		hint = " (a limit in /proc/sys/user/max_*_namespaces is reached)"
	}
	return 0, fmt.Errorf("starting a process in new network, mount and pid namespaces, as each test of the tier does: %v%s%s; mend this, or skip the tier with -short",
		err, hint, strings.TrimRight(" "+string(out), " \n"))
}

// skipLine says in one line what the tier lacks and how to get it; ""
// when it lacks nothing.
func skipLine(missing []string, install string, refused syscall.Errno, euid int) string {
	const prefix = "real-DNS tier skipped: needs "
	switch {
	case len(missing) > 0 && refused != 0 && euid != 0:
		return prefix + strings.Join(missing, ", ") + " (and root for namespaces); install as root with: " + install + "; and run the tests as root"
	case len(missing) > 0 && refused != 0:
		return prefix + strings.Join(missing, ", ") + fmt.Sprintf(" (and namespaces, which this machine refuses even to root: %v); install as root with: %s; and run the tests where root may create namespaces", refused, install)
	case len(missing) > 0:
		return prefix + strings.Join(missing, ", ") + "; install as root with: " + install
	case refused != 0 && euid != 0:
		return prefix + fmt.Sprintf("root for its network, mount and pid namespaces (uid %d is refused: %v); run the tests as root", euid, refused)
	case refused != 0:
		return prefix + fmt.Sprintf("network, mount and pid namespaces, which this machine refuses even to root (%v), as an unprivileged container does; run the tests where root may create namespaces", refused)
	}
	return ""
}

// lookTool finds a program on PATH or in /usr/sbin, where the daemons
// live but which a non-login PATH may lack.
func lookTool(name string) (string, error) {
	if path, err := exec.LookPath(name); err == nil {
		return path, nil
	}
	return exec.LookPath(filepath.Join("/usr/sbin", name))
}
