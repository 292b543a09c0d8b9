package realdns

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

// The world's addresses. Each daemon listens on port 53 of its own.
const (
	rootAddr     = "127.0.0.2"  // NSD: the signed root zone
	resolverAddr = "127.0.0.3"  // Unbound: the system resolver, and the CA's
	probeAddr    = "127.0.0.4"  // Unbound: as the CA's, but asking one server of a zone
	primaryAddr  = "127.0.0.10" // BIND: primary of zones, takes updates
	otherAddr    = "127.0.0.11" // BIND: another DNS host, takes updates
	laggingAddr  = "127.0.0.12" // NSD: secondary of the primaries, transfers when told
	silentAddr   = "127.0.0.13" // reads queries and never answers
	followerAddr = "127.0.0.14" // NSD: secondary of the primaries, transfers on their NOTIFY
)

// bindRoles names the BIND instances by address.
var bindRoles = map[string]string{primaryAddr: "primary", otherAddr: "other"}

// zone is a zone of the world, delegated from the root.
type zone struct {
	name string
	// servers are the addresses of ns1.<name>, ns2.<name>, ... in order.
	// The first BIND address among them is the zone's primary.
	servers []string
	// signed has the primary sign the zone with BIND's dnssec-policy
	// (inline signing, so updates are signed as they come), a secondary
	// transfer the signed zone, and the root hold the zone's DS.
	signed bool
	// bogusDS has the root hold, in place of the zone's DS, one that
	// matches no key of the zone (signed or not), so a validating
	// resolver must refuse the zone's answers.
	bogusDS bool
	// records are zone file lines added to the zone at start.
	records []string
}

// primary is the address of the BIND instance that takes the zone's
// updates.
func (z zone) primary() string {
	for _, addr := range z.servers {
		if bindRoles[addr] != "" {
			return addr
		}
	}
	return ""
}

// world is one test's DNS, CA and folder, inside the test's namespaces.
type world struct {
	t           *testing.T
	dir         string
	zones       []zone
	daemons     []*caddytest.Process
	laggingConf string
	// updateSecret is the TSIG secret of the key named takes updates
	// with (base64), as an operator would give it to a DNS provider.
	updateSecret string
	// rootKey is the trust anchor of the world's resolvers.
	rootKey string
	// silentQueries counts the UDP queries and TCP connections the
	// silent nameserver got.
	silentQueries atomic.Int64
	ca            *acmetest.CA
}

// newWorld brings up the loopback addresses, the zones' servers, the
// signed root, Unbound as the system resolver, and Pebble validating
// through Unbound, in that order: each needs the one before it to answer.
func newWorld(t *testing.T, zones []zone) *world {
	w := &world{t: t, dir: t.TempDir(), zones: zones}
	start := time.Now()
	defer func() { t.Logf("the world was up in %s", time.Since(start).Round(time.Millisecond)) }()
	for _, z := range zones {
		if z.primary() == "" {
			t.Fatalf("zone %s has no BIND server", z.name)
		}
	}
	w.network()
	w.mounts()
	w.writeUpdateKey()

	for _, addr := range []string{primaryAddr, otherAddr} {
		var served []zone
		for _, z := range zones {
			if z.primary() == addr {
				served = append(served, z)
			}
		}
		if len(served) > 0 {
			w.startBIND(bindRoles[addr], addr, served)
			for _, z := range served {
				w.await(addr, z.name, dns.TypeSOA, "serving "+z.name, authoritative)
			}
		}
	}
	if lagging := w.zonesAt(laggingAddr); len(lagging) > 0 {
		w.startLagging(laggingAddr, lagging)
		for _, z := range lagging {
			w.await(laggingAddr, z.name, dns.TypeSOA, "transferring "+z.name, authoritative)
		}
	}
	if following := w.zonesAt(followerAddr); len(following) > 0 {
		w.startFollower(followerAddr, following)
		for _, z := range following {
			w.await(followerAddr, z.name, dns.TypeSOA, "transferring "+z.name, authoritative)
		}
	}
	if len(w.zonesAt(silentAddr)) > 0 {
		w.silent(silentAddr)
	}

	w.rootKey = w.startSignedRoot()
	w.startResolver("", resolverAddr, "")
	w.awaitRecursive(resolverAddr, "ns.root.", dns.TypeA, "resolving from the root", func(m *dns.Msg) bool {
		return m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0
	})

	ca, err := acmetest.StartCA(acmetest.Options{}, net.JoinHostPort(resolverAddr, "53"), w.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ca.Close)
	w.ca = ca
	return w
}

func (w *world) zonesAt(addr string) []zone {
	var out []zone
	for _, z := range w.zones {
		if slices.Contains(z.servers, addr) {
			out = append(out, z)
		}
	}
	return out
}

// network brings lo up with every address of the world: BIND listens only
// on addresses an interface has.
func (w *world) network() {
	w.runTool("", "", "ip", "link", "set", "lo", "up")
	for _, addr := range []string{rootAddr, resolverAddr, probeAddr, primaryAddr, otherAddr, laggingAddr, silentAddr, followerAddr} {
		w.runTool("", "", "ip", "addr", "add", addr+"/8", "dev", "lo")
	}
}

// mounts gives the daemons folders of the world's own at the paths their
// AppArmor profiles allow, and makes Unbound the system resolver of every
// process in the namespace: this test's and the Caddy binary's.
func (w *world) mounts() {
	resolv := filepath.Join(w.dir, "resolv.conf")
	writeFile(w.t, resolv, "nameserver "+resolverAddr+"\n")
	bind, unbound := filepath.Join(w.dir, "bind"), filepath.Join(w.dir, "unbound")
	for _, dir := range []string{bind, unbound} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			w.t.Fatal(err)
		}
	}
	for source, target := range map[string]string{bind: bindDir, unbound: unboundDir, resolv: "/etc/resolv.conf"} {
		if err := syscall.Mount(source, target, "", syscall.MS_BIND, ""); err != nil {
			w.t.Fatalf("bind-mounting %s over %s: %v", source, target, err)
		}
	}
}

// writeUpdateKey writes the TSIG key that named accepts updates with and
// nsupdate signs them with.
func (w *world) writeUpdateKey() {
	secret := make([]byte, 32)
	rand.Read(secret)
	w.updateSecret = base64.StdEncoding.EncodeToString(secret)
	writeFile(w.t, updateKeyFile, fmt.Sprintf("key %q {\n\talgorithm hmac-sha256;\n\tsecret %q;\n};\n",
		updateKeyName, w.updateSecret))
}

// startSignedRoot writes the root zone delegating every zone of the
// world, with glue and DS records, signs it with dnssec-signzone, serves
// it with NSD, and returns the trust anchor: the root's key-signing key.
func (w *world) startSignedRoot() string {
	dir := filepath.Join(w.dir, "root")
	var zoneText strings.Builder
	fmt.Fprintf(&zoneText, "$TTL 60\n. IN SOA ns.root. hostmaster.root. 1 1800 900 604800 1\n. IN NS ns.root.\nns.root. IN A %s\n", rootAddr)
	for _, z := range w.zones {
		for i, addr := range z.servers {
			fmt.Fprintf(&zoneText, "%s. IN NS ns%d.%s.\nns%d.%s. IN A %s\n", z.name, i+1, z.name, i+1, z.name, addr)
		}
		switch {
		case z.bogusDS:
			digest := make([]byte, 32)
			rand.Read(digest)
			fmt.Fprintf(&zoneText, "%s. IN DS 4242 %d %d %s\n", z.name, dns.ECDSAP256SHA256, dns.SHA256, hex.EncodeToString(digest))
		case z.signed:
			for _, ds := range w.dsOf(z) {
				zoneText.WriteString(ds.String() + "\n")
			}
		}
	}
	writeFile(w.t, filepath.Join(dir, "root.zone"), zoneText.String())
	ksk := strings.TrimSpace(w.runTool(dir, "", "dnssec-keygen", "-q", "-K", dir, "-a", "ECDSAP256SHA256", "-f", "KSK", "-n", "ZONE", "."))
	w.runTool(dir, "", "dnssec-keygen", "-q", "-K", dir, "-a", "ECDSAP256SHA256", "-n", "ZONE", ".")
	w.runTool(dir, "", "dnssec-signzone", "-S", "-K", dir, "-o", ".", "-f", "root.zone.signed", "root.zone")
	w.startRoot(rootAddr, filepath.Join(dir, "root.zone.signed"))
	w.await(rootAddr, ".", dns.TypeSOA, "serving the root", authoritative)
	return trustAnchor(w.t, filepath.Join(dir, ksk+".key"))
}

// dsOf waits until the primary serves the zone signed and returns the DS
// records of its key-signing keys.
func (w *world) dsOf(z zone) []*dns.DS {
	msg := w.await(z.primary(), z.name, dns.TypeDNSKEY, "signing "+z.name, func(m *dns.Msg) bool {
		for _, rr := range m.Answer {
			if k, ok := rr.(*dns.DNSKEY); ok && k.Flags&dns.SEP != 0 {
				return true
			}
		}
		return false
	})
	var out []*dns.DS
	for _, rr := range msg.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok && k.Flags&dns.SEP != 0 {
			out = append(out, k.ToDS(dns.SHA256))
		}
	}
	return out
}

// trustAnchor reads the DNSKEY record out of a key file dnssec-keygen or
// named wrote, past its comments.
func trustAnchor(t *testing.T, keyFile string) string {
	t.Helper()
	data, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "DNSKEY") && !strings.HasPrefix(line, ";") {
			return strings.TrimSpace(line)
		}
	}
	t.Fatalf("no DNSKEY record in %s:\n%s", keyFile, data)
	return ""
}

// zoneOf returns the world's zone that holds name.
func (w *world) zoneOf(name string) zone {
	name = strings.TrimSuffix(name, ".")
	var best zone
	for _, z := range w.zones {
		if (name == z.name || strings.HasSuffix(name, "."+z.name)) && len(z.name) > len(best.name) {
			best = z
		}
	}
	if best.name == "" {
		w.t.Fatalf("no zone of the world holds %s", name)
	}
	return best
}

// publish adds a TXT record at name with an update to the zone's primary,
// as an operator would, and waits until the primary serves it.
func (w *world) publish(name, value string) {
	w.t.Helper()
	z := w.zoneOf(name)
	w.update(z, fmt.Sprintf("update add %s. 60 IN TXT %q", name, value))
	w.await(z.primary(), name+".", dns.TypeTXT, "serving the record at "+name, func(m *dns.Msg) bool {
		return slices.Contains(txtValues(m), value)
	})
}

// unpublish deletes the TXT records at name with an update to the zone's
// primary, and waits until the primary no longer serves them.
func (w *world) unpublish(name string) {
	w.t.Helper()
	z := w.zoneOf(name)
	w.update(z, fmt.Sprintf("update delete %s. IN TXT", name))
	w.await(z.primary(), name+".", dns.TypeTXT, "removing the record at "+name, func(m *dns.Msg) bool {
		return len(txtValues(m)) == 0
	})
}

// publishCAA adds a CAA record, a zone file line, with an update to the
// zone's primary, and waits until the primary serves it.
func (w *world) publishCAA(line string) {
	w.t.Helper()
	rr, err := dns.NewRR(line)
	if err != nil {
		w.t.Fatalf("%q is not a CAA zone file line: %v", line, err)
	}
	want := rr.(*dns.CAA)
	name := strings.TrimSuffix(want.Hdr.Name, ".")
	w.update(w.zoneOf(name), "update add "+strings.Replace(line, " IN CAA ", " 60 IN CAA ", 1))
	w.await(w.zoneOf(name).primary(), want.Hdr.Name, dns.TypeCAA, "serving the CAA record at "+name, func(m *dns.Msg) bool {
		for _, rr := range m.Answer {
			if c, ok := rr.(*dns.CAA); ok && c.Tag == want.Tag && c.Value == want.Value {
				return true
			}
		}
		return false
	})
}

func (w *world) update(z zone, line string) {
	w.t.Helper()
	script := fmt.Sprintf("server %s\nzone %s\n%s\nsend\n", z.primary(), z.name, line)
	w.runTool("", script, "nsupdate", "-k", updateKeyFile)
}

// catchUp has the lagging secondary transfer the zone now, and waits
// until it serves the primary's serial.
func (w *world) catchUp(zoneName string) {
	w.t.Helper()
	z := w.zoneOf(zoneName)
	serial := soaSerial(w.await(z.primary(), z.name+".", dns.TypeSOA, "serving "+z.name, authoritative))
	w.runTool("", "", "nsd-control", "-c", w.laggingConf, "transfer", z.name)
	w.await(laggingAddr, z.name+".", dns.TypeSOA, fmt.Sprintf("transferring serial %d of %s", serial, z.name), func(m *dns.Msg) bool {
		return authoritative(m) && soaSerial(m) == serial
	})
}

// laggingQueries is how many queries of qtype the lagging secondary has
// received, as NSD counts them.
func (w *world) laggingQueries(qtype uint16) int {
	w.t.Helper()
	out := w.runTool("", "", "nsd-control", "-c", w.laggingConf, "stats_noreset")
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "num.type."+dns.TypeToString[qtype]+"="); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				w.t.Fatalf("nsd-control stats_noreset: %q: %v", line, err)
			}
			return n
		}
	}
	// NSD lists the types it has seen
	return 0
}

// bindQueries is how many queries of qtype the BIND instance at addr has
// received, as its statistics channel counts them.
func (w *world) bindQueries(addr string, qtype uint16) int {
	w.t.Helper()
	url := fmt.Sprintf("http://%s/json/v1/server", net.JoinHostPort(addr, strconv.Itoa(bindStatsPort)))
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		w.t.Fatalf("reading named's statistics: %v", err)
	}
	defer resp.Body.Close()
	var stats struct {
		// incoming queries by type; named lists the types it has seen
		QTypes map[string]int `json:"qtypes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil || resp.StatusCode != http.StatusOK {
		w.t.Fatalf("reading named's statistics at %s: %s, %v", url, resp.Status, err)
	}
	return stats.QTypes[dns.TypeToString[qtype]]
}

// serves tells whether the server at addr answers name with the TXT value.
func (w *world) serves(addr, name, value string) bool {
	w.t.Helper()
	m, err := query(addr, name+".", dns.TypeTXT, false)
	if err != nil {
		w.t.Fatalf("asking %s for %s: %v", addr, name, err)
	}
	return slices.Contains(txtValues(m), value)
}

// await asks the server at addr, without recursion, until ok accepts the
// answer, and returns it. It fails the test after a while, saying what it
// was waiting for.
func (w *world) await(addr, name string, qtype uint16, what string, ok func(*dns.Msg) bool) *dns.Msg {
	w.t.Helper()
	return w.poll(addr, name, qtype, false, what, ok)
}

// awaitRecursive is await for a resolver.
func (w *world) awaitRecursive(addr, name string, qtype uint16, what string, ok func(*dns.Msg) bool) *dns.Msg {
	w.t.Helper()
	return w.poll(addr, name, qtype, true, what, ok)
}

func (w *world) poll(addr, name string, qtype uint16, recursive bool, what string, ok func(*dns.Msg) bool) *dns.Msg {
	w.t.Helper()
	var (
		m   *dns.Msg
		err error
	)
	w.until(what+" at "+addr, func() bool {
		m, err = query(addr, dns.Fqdn(name), qtype, recursive)
		return err == nil && ok(m)
	}, func() string { return fmt.Sprintf("last answer %v, error %v", m, err) })
	return m
}

// until checks done every 50ms until it is true, and fails the test when
// a daemon exits first or after 20 seconds, with what it was waiting for
// and what last says.
func (w *world) until(what string, done func() bool, last func() string) {
	w.t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		for _, d := range w.daemons {
			if why := d.Exited(); why != "" {
				w.t.Fatalf("waiting for %s: %s", what, why)
			}
		}
		select {
		case <-deadline.C:
			w.t.Fatalf("waiting for %s: %s", what, last())
		case <-tick.C:
		}
	}
}

// query asks the server at addr once, with the DO bit so a validating
// resolver says whether it validated.
func query(addr, name string, qtype uint16, recursive bool) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = recursive
	q.SetEdns0(1232, true)
	return exchange(addr, q)
}

// queryUnchecked asks the resolver at addr once with the CD bit, so it
// answers what the servers serve without validating it.
func queryUnchecked(addr, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.CheckingDisabled = true
	q.SetEdns0(1232, true)
	return exchange(addr, q)
}

// exchange sends q to addr over UDP, and again over TCP if the answer is
// truncated.
func exchange(addr string, q *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Timeout: 2 * time.Second}
	m, _, err := c.Exchange(q, net.JoinHostPort(addr, "53"))
	if err == nil && m.Truncated {
		c.Net = "tcp"
		m, _, err = c.Exchange(q, net.JoinHostPort(addr, "53"))
	}
	return m, err
}

func authoritative(m *dns.Msg) bool {
	return m.Rcode == dns.RcodeSuccess && m.Authoritative && len(m.Answer) > 0
}

func soaSerial(m *dns.Msg) uint32 {
	for _, rr := range m.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa.Serial
		}
	}
	return 0
}

func txtValues(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out
}
