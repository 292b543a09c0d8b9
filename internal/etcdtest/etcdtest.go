// Package etcdtest runs an etcd cluster on loopback as children of a
// test: real members, a real quorum, and a member that can be killed,
// stopped and started again. The members run etcd's server built from its
// Go module (see Binary), so that the tests need nothing but Go.
package etcdtest

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// StartMember starts m, again after Kill or Stop, on its data.
func (c *Cluster) StartMember(m *Member) {
	c.t.Helper()
	m.proc = caddytest.Start(c.t, "etcd "+m.Name, exec.Command(c.bin, m.args...))
}

// Kill ends m at once, as a crash would.
func (m *Member) Kill() { m.proc.Kill() }

// Stop ends m gracefully.
func (m *Member) Stop() { m.proc.Stop() }

// WaitQuorum waits until every running member answers a linearizable
// read, which needs a leader and a quorum.
func (c *Cluster) WaitQuorum() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, m := range c.members {
		if m.proc.Exited() != "" {
			continue
		}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := c.memberClient(m).Get(ctx, "quorum-probe")
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
// members.
func (c *Cluster) Leader() (leader *Member, followers []*Member) {
	c.t.Helper()
	ids := make(map[uint64]*Member)
	var leaderID uint64
	for _, m := range c.members {
		if m.proc.Exited() != "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		status, err := c.client.Status(ctx, m.ClientURL)
		cancel()
		if err != nil {
			c.t.Fatalf("status of etcd member %s: %v", m.Name, err)
		}
		ids[status.Header.MemberId] = m
		leaderID = status.Leader
	}
	for id, m := range ids {
		if id == leaderID {
			leader = m
		} else {
			followers = append(followers, m)
		}
	}
	if leader == nil {
		c.t.Fatalf("no member is the leader %x", leaderID)
	}
	return leader, followers
}

// String names the cluster in messages.
func (c *Cluster) String() string {
	return fmt.Sprintf("etcd cluster %v", c.Endpoints())
}
