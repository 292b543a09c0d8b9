package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
	"github.com/dnspersist/caddy-persist/internal/etcdstorage"
)

// quorumHint is what the etcd storage says when etcd does not answer.
var quorumHint = etcdstorage.ErrNoQuorum.Error()

// onDemandGlobals let persist's permission decide on-demand names.
const onDemandGlobals = `on_demand_tls {
		permission persist
	}`

// TestStorageWithoutQuorum: with two of the three etcd members paused
// (they answer nobody), the instances keep serving the certificates they
// have; a certificate for a new name is not obtained, and the error says
// why; a command that would register an account, and a config reload,
// fail the same way before anything is registered; once the members are
// back, the new name's certificate is obtained.
func TestStorageWithoutQuorum(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, acmetest.Options{})
	cfg := c.caddyfile("Caddyfile", "15s", onDemandGlobals, c.site("ok.trouble.test")+c.onDemandSite())
	c.publishRecords(c.nodes[0], "--config", cfg, "--domain", "new.trouble.test")
	c.startAll(cfg)
	for _, n := range c.nodes {
		c.handshake(n, "ok.trouble.test", time.Minute)
	}

	members := c.etcd.Members()
	c.etcd.Pause(members[1])
	c.etcd.Pause(members[2])

	// a new name, at the instance that obtained nothing yet for it; the
	// handshake waits for the storage's Timeout, meanwhile the commands
	// below run at another instance
	offset := c.nodes[0].proc.Logs.Len()
	newName := make(chan error, 1)
	go func() {
		_, _, err := caddytest.TryHandshake(c.nodes[0].https, "new.trouble.test", c.roots())
		newName <- err
	}()

	// a new account would be registered here, by the command itself:
	// Caddy fails first, at loading the config, whose pki app reads
	// storage (asking the running instance instead, the command refuses
	// the file's other account before storage is read)
	other := c.caddyfile("Caddyfile.other", "15s", "", c.siteWith("other.trouble.test", "other@example.test", ""))
	res := c.caddy(c.nodes[1], "persist", "records", "--config", other, "--local")
	if res.Code == 0 || !strings.Contains(res.Stderr, quorumHint) {
		t.Errorf("persist records without quorum: exit %d, want an error saying %q:\n%s", res.Code, quorumHint, res.Stderr)
	}
	t.Logf("persist records without quorum: exit %d: %s", res.Code, lastLine(res.Stderr))
	res = c.caddy(c.nodes[1], "reload", "--force", "--config", other, "--address", c.nodes[1].admin)
	if res.Code == 0 || !strings.Contains(res.Stderr, quorumHint) {
		t.Errorf("caddy reload without quorum: exit %d, want an error saying %q:\n%s", res.Code, quorumHint, res.Stderr)
	}
	t.Logf("caddy reload without quorum: exit %d: %s", res.Code, lastLine(res.Stderr))

	if err := <-newName; err == nil {
		t.Error("a certificate for new.trouble.test was served without storage")
	}
	line := c.nodes[0].proc.WaitLog(t, offset, time.Minute, "new.trouble.test", quorumHint)
	t.Logf("a new name without quorum: %s", line)
	if strings.Contains(line, "Recovering an account") {
		t.Errorf("an account that storage could not read is called damaged: %s", line)
	}

	for _, n := range c.nodes {
		c.handshake(n, "ok.trouble.test", 10*time.Second)
	}
	c.checkOneAccount()
	if n := c.ca.Counts.Ordered()["new.trouble.test"]; n != 0 {
		t.Errorf("new.trouble.test was ordered %d times without storage", n)
	}

	c.etcd.Resume(members[1])
	c.etcd.Resume(members[2])
	c.etcd.WaitQuorum()
	back := time.Now()
	c.handshake(c.nodes[0], "new.trouble.test", time.Minute)
	t.Logf("new.trouble.test served %s after quorum returned", time.Since(back).Round(time.Millisecond))
	for _, n := range c.nodes {
		c.handshake(n, "ok.trouble.test", 10*time.Second)
	}
	c.checkOneAccount()
	c.checkOrderedOnce("ok.trouble.test", "new.trouble.test")
	c.checkStored("ok.trouble.test", "new.trouble.test")
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
