// Package etcdtest runs an etcd cluster on loopback as children of a
// test: real members, a real quorum, and members that can be killed, or
// paused and resumed. The members run etcd's server built from its
// Go module (see Binary), so that the tests need nothing but Go.
package etcdtest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

// Cluster is a running etcd cluster.
type Cluster struct {
	t       testing.TB
	bin     string
	members []*Member
	client  *clientv3.Client
}

// Member is one etcd server of a cluster.
type Member struct {
	// Name is the member's name, "m0", "m1", ...
	Name string
	// ClientURL is where clients reach the member.
	ClientURL string
	peerURL   string
	dataDir   string
	args      []string
	cmd       *exec.Cmd
	proc      *caddytest.Process
}

// Start runs a cluster of n members on loopback, with their data in
// temporary folders, and returns once each member answers. The members
// are stopped when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, bin: Binary(t)}
	var initial []string
	for i := range n {
		m := &Member{
			Name:      "m" + strconv.Itoa(i),
			ClientURL: "http://127.0.0.1:" + strconv.Itoa(acmetest.FreePortForTest(t)),
			peerURL:   "http://127.0.0.1:" + strconv.Itoa(acmetest.FreePortForTest(t)),
			dataDir:   filepath.Join(t.TempDir(), "data"),
		}
		c.members = append(c.members, m)
		initial = append(initial, m.Name+"="+m.peerURL)
	}
	for _, m := range c.members {
		m.args = []string{
			"--name", m.Name,
			"--data-dir", m.dataDir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.peerURL,
			"--initial-advertise-peer-urls", m.peerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", "persist-test",
			// etcd's defaults: a killed leader is replaced within
			// seconds, and a busy machine does not make the members
			// elect one again and again
			"--heartbeat-interval", "100",
			"--election-timeout", "1000",
			// the tests kill processes, not the machine: what a member
			// wrote is in the page cache when it starts again, and a
			// busy disk does not slow its writes down
			"--unsafe-no-fsync",
			"--log-level", "warn",
		}
		c.StartMember(m)
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c.client = client
	c.WaitQuorum()
	return c
}

// Members are the cluster's members.
func (c *Cluster) Members() []*Member { return c.members }

// Endpoints are the client URLs of every member.
func (c *Cluster) Endpoints() []string {
	var urls []string
	for _, m := range c.members {
		urls = append(urls, m.ClientURL)
	}
	return urls
}

// Client is a client of the whole cluster, for the test's own reads.
func (c *Cluster) Client() *clientv3.Client { return c.client }

// StartMember starts m, again after Kill, on its data.
func (c *Cluster) StartMember(m *Member) {
	c.t.Helper()
	m.cmd = exec.Command(c.bin, m.args...)
	m.proc = caddytest.Start(c.t, "etcd "+m.Name, m.cmd)
}

// Kill ends m at once, as a crash would.
func (m *Member) Kill() { m.proc.Kill() }

// Pause freezes m (SIGSTOP) until Resume: it answers neither clients nor
// members, as a member cut off by the network would. Unlike a stop and a
// start, it takes no time (a stopping member waits up to its request
// timeout, 7s, for clients' open streams) and frees no port that another
// process could take before m listens again.
func (c *Cluster) Pause(m *Member) {
	c.t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		c.t.Fatalf("pausing etcd member %s: %v", m.Name, err)
	}
	// paused, it would end at the test's end only when killed, after
	// its SIGTERM had waited 10 s
	c.t.Cleanup(func() { m.cmd.Process.Signal(syscall.SIGCONT) })
}

// Resume lets a paused m run again.
func (c *Cluster) Resume(m *Member) {
	c.t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		c.t.Fatalf("resuming etcd member %s: %v", m.Name, err)
	}
}

// WaitQuorum waits until every running member answers a linearizable
// read, which needs a leader and a quorum.
func (c *Cluster) WaitQuorum() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, m := range c.members {
		if m.proc.Exited() != "" {
			continue
		}
		client := c.memberClient(m)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := client.Get(ctx, "quorum-probe")
			cancel()
			if err == nil {
				break
			}
			if why := m.proc.Exited(); why != "" {
				c.t.Fatal(why)
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("etcd member %s has no quorum after 30s: %v", m.Name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// memberClient is a client of m alone.
func (c *Cluster) memberClient(m *Member) *clientv3.Client {
	c.t.Helper()
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.ClientURL},
		DialTimeout: time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { client.Close() })
	return client
}

// Leader returns the running member that leads, and the other running
// members, once every running member names the same leader: just after
// an election, members may not know the new leader yet.
func (c *Cluster) Leader() (leader *Member, followers []*Member) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		leader, followers, why := c.agreedLeader()
		if leader != nil {
			return leader, followers
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the etcd members do not agree on a leader within 30s: %s", why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// agreedLeader is one look at the members for Leader: the leader they
// all name, or why there is none.
func (c *Cluster) agreedLeader() (leader *Member, followers []*Member, why string) {
	c.t.Helper()
	ids := make(map[uint64]*Member)
	named := make(map[uint64]bool)
	for _, m := range c.members {
		if m.proc.Exited() != "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		status, err := c.client.Status(ctx, m.ClientURL)
		cancel()
		if err != nil {
			return nil, nil, fmt.Sprintf("status of member %s: %v", m.Name, err)
		}
		ids[status.Header.MemberId] = m
		named[status.Leader] = true
	}
	if len(named) != 1 {
		return nil, nil, fmt.Sprintf("they name %d leaders", len(named))
	}
	for id, m := range ids {
		if named[id] {
			leader = m
		} else {
			followers = append(followers, m)
		}
	}
	if leader == nil {
		return nil, nil, "no running member is the leader they name"
	}
	return leader, followers, ""
}

// WaitKeys waits until n keys start with prefix and returns them, the
// first created first. It reads again at each change under prefix, which
// a watch reports.
func (c *Cluster) WaitKeys(prefix string, n int, timeout time.Duration) []string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var changes clientv3.WatchChan
	for {
		resp, err := c.client.Get(ctx, prefix, clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithKeysOnly())
		if err != nil {
			c.t.Fatalf("reading the keys under %s: %v", prefix, err)
		}
		if len(resp.Kvs) == n {
			var keys []string
			for _, kv := range resp.Kvs {
				keys = append(keys, string(kv.Key))
			}
			return keys
		}
		if changes == nil {
			// every change after this reading
			changes = c.client.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		}
		if _, ok := <-changes; !ok {
			c.t.Fatalf("%s has %d keys, want %d, after %s", prefix, len(resp.Kvs), n, timeout)
		}
	}
}

// String names the cluster in messages.
func (c *Cluster) String() string {
	return fmt.Sprintf("etcd cluster %v", c.Endpoints())
}
