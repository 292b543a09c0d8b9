package realdns

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

// Where the daemons keep their files. Debian's AppArmor profiles confine
// named to /var/cache/bind and unbound to /var/lib/unbound; the world
// bind-mounts a folder of its own over each in its mount namespace, so the
// daemons work where AppArmor is enforced too.
const (
	bindDir    = "/var/cache/bind"
	unboundDir = "/var/lib/unbound"
	// updateKeyFile holds the TSIG key that signs dynamic updates.
	updateKeyFile = bindDir + "/update.key"
	updateKeyName = "update"
	// bindStatsPort is where named serves its statistics, on its address.
	bindStatsPort = 8053
)

// launch starts a daemon in the foreground as a child of the test, and
// stops it when the test ends, logging its output if the test failed.
func (w *world) launch(name, program string, args ...string) {
	w.t.Helper()
	path, err := lookTool(program)
	if err != nil {
		w.t.Fatal(err)
	}
	w.daemons = append(w.daemons, caddytest.Start(w.t, name, exec.Command(path, args...)))
}

// runTool runs a program to completion, with stdin, and fails the test if
// it fails.
func (w *world) runTool(dir, stdin, program string, args ...string) string {
	w.t.Helper()
	path, err := lookTool(program)
	if err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.t.Fatalf("%s %s: %v\n%s", program, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startBIND runs named at addr as the primary of zones, each from the
// zone file the world wrote, updatable with the TSIG key. It sends NOTIFY
// only to the follower, for zones it serves: the lagging secondary
// transfers only when the test tells it to. It counts
// the queries it gets on a statistics channel (bindQueries). It
// answers with the records of a set in one order, not rotated, so that
// with Unbound not rotating them either, the issuer (which asks
// nameservers in the order it is given them) meets ns1 first in every
// run.
func (w *world) startBIND(role, addr string, zones []zone) {
	dir := filepath.Join(bindDir, role)
	var decls strings.Builder
	for _, z := range zones {
		writeFile(w.t, filepath.Join(dir, z.name+".db"), w.zoneFile(z))
		signing := ""
		if z.signed {
			signing = "\n\tdnssec-policy default;\n\tinline-signing yes;"
		}
		notify := ""
		if slices.Contains(z.servers, followerAddr) {
			// from the primary's own address, which the follower
			// takes NOTIFY from, and at once
			notify = fmt.Sprintf("\n\tnotify explicit;\n\talso-notify { %s; };\n\tnotify-source %s;\n\tnotify-delay 0;", followerAddr, addr)
		}
		fmt.Fprintf(&decls, `zone %q {
	type primary;
	file %q;
	update-policy { grant %s zonesub ANY; };%s%s
};
`, z.name, z.name+".db", updateKeyName, signing, notify)
	}
	conf := filepath.Join(dir, "named.conf")
	writeFile(w.t, conf, fmt.Sprintf(`options {
	directory %q;
	listen-on port 53 { %s; };
	listen-on-v6 { none; };
	pid-file none;
	session-keyfile none;
	recursion no;
	dnssec-validation no;
	notify no;
	allow-transfer { 127.0.0.0/8; };
	rrset-order { order none; };
};
statistics-channels { inet %s port %d allow { 127.0.0.0/8; }; };
include %q;
%s`, dir, addr, addr, bindStatsPort, updateKeyFile, decls.String()))
	w.launch("named "+role+" "+addr, "named", "-g", "-4", "-n", "1", "-c", conf)
}

// zoneFile is a zone's initial contents. The SOA refresh of a day keeps a
// secondary from asking on its own; the negative TTL of one second makes
// a newly published record visible through resolvers at once.
func (w *world) zoneFile(z zone) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$TTL 60\n@ IN SOA ns1.%s. hostmaster.%s. 1 86400 60 604800 1\n", z.name, z.name)
	for i, addr := range z.servers {
		fmt.Fprintf(&b, "@ IN NS ns%d.%s.\nns%d.%s. IN A %s\n", i+1, z.name, i+1, z.name, addr)
	}
	for _, rr := range z.records {
		b.WriteString(rr + "\n")
	}
	return b.String()
}

// nsdConfig writes an NSD configuration serving at addr, with a control
// socket, and returns its path. NSD never writes zone files, so a zone
// file the test writes is the one NSD reads.
func (w *world) nsdConfig(role, addr, zones string) string {
	dir := filepath.Join(w.dir, "nsd-"+role)
	conf := filepath.Join(dir, "nsd.conf")
	writeFile(w.t, conf, fmt.Sprintf(`server:
	ip-address: %s
	do-ip6: no
	username: ""
	zonesdir: %q
	database: ""
	zonefiles-write: 0
	zonelistfile: "zone.list"
	xfrdfile: ""
	xfrdir: %q
	pidfile: ""
	verbosity: 1
remote-control:
	control-enable: yes
	control-interface: %q
%s`, addr, dir, dir, filepath.Join(dir, "control.sock"), zones))
	return conf
}

// startLagging runs NSD at addr as a secondary of zones, transferring
// from their primary once at start and then only when the test calls
// catchUp: it accepts no NOTIFY, and the SOA refresh is a day. Each zone
// has a zone file, <zone>.zone in the secondary's folder, which NSD never
// writes (see nsdConfig) and reads only when the test gives it a copy of
// its own to serve (expireAtSecondary).
func (w *world) startLagging(addr string, zones []zone) {
	var decls strings.Builder
	for _, z := range zones {
		fmt.Fprintf(&decls, "zone:\n\tname: %q\n\tzonefile: %q\n\trequest-xfr: %s NOKEY\n", z.name, z.name+".zone", z.primary())
	}
	w.laggingConf = w.nsdConfig("lagging", addr, decls.String())
	w.launch("nsd lagging "+addr, "nsd", "-d", "-c", w.laggingConf)
}

// startFollower runs NSD at addr as a secondary of zones that transfers a
// zone when its primary sends NOTIFY, as a DNS host's secondaries do.
func (w *world) startFollower(addr string, zones []zone) {
	var decls strings.Builder
	for _, z := range zones {
		fmt.Fprintf(&decls, "zone:\n\tname: %q\n\tzonefile: %q\n\trequest-xfr: %s NOKEY\n\tallow-notify: %s NOKEY\n", z.name, z.name+".zone", z.primary(), z.primary())
	}
	w.launch("nsd follower "+addr, "nsd", "-d", "-c", w.nsdConfig("follower", addr, decls.String()))
}

// startRoot runs NSD at addr serving the signed root zone file.
func (w *world) startRoot(addr, signedZone string) {
	conf := w.nsdConfig("root", addr, fmt.Sprintf("zone:\n\tname: \".\"\n\tzonefile: %q\n", signedZone))
	w.launch("nsd root "+addr, "nsd", "-d", "-c", conf)
}

// startResolver runs Unbound at addr, recursing from the world's signed
// root and validating with its key, with its files in the folder role of
// unboundDir and extra lines in its server clause. Negative answers are
// cached for a second at most, and answers keep the order the servers
// gave (the issuer asks nameservers in the order it gets them, so runs
// are repeatable).
func (w *world) startResolver(role, addr, extra string) {
	dir := filepath.Join(unboundDir, role)
	hints := filepath.Join(dir, "root.hints")
	writeFile(w.t, hints, fmt.Sprintf(". 3600000 IN NS ns.root.\nns.root. 3600000 IN A %s\n", rootAddr))
	conf := filepath.Join(dir, "unbound.conf")
	writeFile(w.t, conf, fmt.Sprintf(`server:
	interface: %s
	do-ip6: no
	access-control: 127.0.0.0/8 allow
	do-not-query-localhost: no
	chroot: ""
	username: ""
	directory: %q
	pidfile: ""
	use-syslog: no
	logfile: ""
	num-threads: 1
	root-hints: %q
	trust-anchor: %q
	local-zone: "test." nodefault
	cache-max-negative-ttl: 1
	rrset-roundrobin: no
	val-log-level: 2
%s`, addr, dir, hints, w.rootKey, extra))
	w.launch(strings.TrimSpace("unbound "+role)+" "+addr, "unbound", "-d", "-c", conf)
}

// probeResolver runs Unbound at probeAddr as the system resolver is run,
// but asking only the server at server for the zone of name: what the
// CA's resolver answers when it happens to ask that server. It keeps a
// refused answer for a second, not a minute, so it sees a mended server
// at once.
func (w *world) probeResolver(server, name string) {
	w.t.Helper()
	z := w.zoneOf(name)
	w.startResolver("probe", probeAddr, fmt.Sprintf("\tval-bogus-ttl: 1\nstub-zone:\n\tname: %q\n\tstub-addr: %s\n", z.name, server))
	w.awaitRecursive(probeAddr, "ns.root.", dns.TypeA, "resolving from the root", func(m *dns.Msg) bool {
		return m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0
	})
}

// silent listens at addr on port 53, over UDP and TCP, and never answers,
// like a nameserver whose replies are dropped on the way. It counts the
// queries it gets in w.silentQueries.
func (w *world) silent(addr string) {
	w.t.Helper()
	conn, err := net.ListenPacket("udp", net.JoinHostPort(addr, "53"))
	if err != nil {
		w.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "53"))
	if err != nil {
		w.t.Fatal(err)
	}
	var (
		held   sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	w.t.Cleanup(func() {
		conn.Close()
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		held.Wait()
	})
	held.Go(func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := conn.ReadFrom(buf); err != nil {
				return
			}
			w.silentQueries.Add(1)
		}
	})
	held.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			w.silentQueries.Add(1)
			mu.Lock()
			conns = append(conns, c)
			if closed {
				c.Close()
			}
			mu.Unlock()
			// read until the client gives up or the test ends, and
			// never reply
			held.Go(func() { io.Copy(io.Discard, c) })
		}
	})
}
