package realdns

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"testing"

	"github.com/miekg/dns"

	persist "github.com/dnspersist/caddy-persist"
	"github.com/dnspersist/caddy-persist/internal/caddytest"
)

// otherCARecord is another CA's record at a name, which publishing must
// keep.
const otherCARecord = "ca.other.example; accounturi=https://ca.other.example/acct/7"

// tsigEnv holds the TSIG secret in the command's environment: the
// operator's shell, where the token of `caddy persist publish` belongs.
const tsigEnv = "PERSIST_TEST_TSIG_SECRET"

// rfc2136 is --dns for the world's primary: caddy-dns/rfc2136, given as in
// a tls block, its secret from the environment.
func rfc2136() string {
	return fmt.Sprintf("rfc2136 {\n\tkey_name %s\n\tkey_alg hmac-sha256\n\tkey {env.%s}\n\tserver %s:53\n}", updateKeyName, tsigEnv, primaryAddr)
}

// rfc2136JSON is rfc2136 as the provider's JSON, the form for scripts.
func rfc2136JSON() string {
	return fmt.Sprintf(`{"name":"rfc2136","key_name":%q,"key_alg":"hmac-sha256","key":"{env.%s}","server":"%s:53"}`, updateKeyName, tsigEnv, primaryAddr)
}

// publishCmd runs `caddy persist publish` with the TSIG secret secret in
// its environment.
func (w *world) publishCmd(secret string, args ...string) caddytest.Result {
	w.t.Helper()
	cmd := exec.Command(caddyBin, append([]string{"persist", "publish"}, args...)...)
	cmd.Dir, cmd.Env = w.dir, append(w.caddyEnviron(), tsigEnv+"="+secret)
	return caddytest.Run(w.t, cmd)
}

// requireSecretNowhere fails the test if secret is in the output of res
// or in any file Caddy or the command keeps (storage, config, data).
func (w *world) requireSecretNowhere(secret string, res caddytest.Result) {
	w.t.Helper()
	if strings.Contains(res.Stdout, secret) || strings.Contains(res.Stderr, secret) {
		w.t.Errorf("the TSIG secret is in the command's output:\n%s\n%s", res.Stdout, res.Stderr)
	}
	files := 0
	for _, dir := range []string{"storage", "config", "data"} {
		filepath.WalkDir(filepath.Join(w.dir, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			files++
			if data, err := os.ReadFile(path); err == nil && strings.Contains(string(data), secret) {
				w.t.Errorf("the TSIG secret is in %s", path)
			}
			return nil
		})
	}
	if files == 0 {
		w.t.Error("no file in storage to look at: the command kept nothing, or the test looks in the wrong place")
	}
}

// The one manual step, done by the command: it publishes the record by
// TSIG-signed RFC 2136 updates to BIND, keeps another CA's record at the
// name, and returns only once the NSD secondary has it too (by NOTIFY and
// transfer). Caddy then obtains both certificates with one order and one
// challenge each.
func TestPublishThroughRFC2136(t *testing.T) {
	inWorld(t, []zone{{name: "pub.test", servers: []string{primaryAddr, followerAddr},
		records: []string{fmt.Sprintf("_validation-persist.pub.test. IN TXT %q", otherCARecord)}}}, func(w *world) {
		cfg := w.caddyfile("*.pub.test, pub.test")

		// a dry run changes nothing, not even the account: records
		// creates it first
		rec := w.records(cfg)
		dry := w.publishCmd(w.updateSecret, "--config", cfg, "--dns", rfc2136(), "--dry-run")
		if want := fmt.Sprintf("+ %s. 3600 IN TXT %q\n", rec.RecordName, rec.Value); dry.Code != 0 || dry.Stdout != want || !strings.Contains(dry.Stderr, "Dry run: 1 changes through rfc2136, none made") {
			t.Fatalf("publish --dry-run: exit %d, printed %q, want %q\n%s", dry.Code, dry.Stdout, want, dry.Stderr)
		}
		if w.serves(primaryAddr, rec.RecordName, rec.Value) {
			t.Fatal("--dry-run published the record")
		}

		started := time.Now()
		res := w.publishCmd(w.updateSecret, "--config", cfg, "--dns", rfc2136())
		took := time.Since(started)
		if res.Code != 0 || !strings.Contains(res.Stdout, rec.RecordName+": ok") {
			t.Fatalf("publish: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}
		// it returned only once every server serves the record
		for _, addr := range []string{primaryAddr, followerAddr} {
			if !w.serves(addr, rec.RecordName, rec.Value) || !w.serves(addr, rec.RecordName, otherCARecord) {
				t.Errorf("%s does not serve both the record and the other CA's after publish", addr)
			}
		}
		t.Logf("publish to every server serving it: %s; the command printed:\n%s%s", took.Round(time.Millisecond), res.Stdout, res.Stderr)
		w.requireSecretNowhere(w.updateSecret, res)

		again := w.publishCmd(w.updateSecret, "--config", cfg, "--dns", rfc2136())
		if again.Code != 0 || strings.Contains(again.Stdout, "+ ") || strings.Contains(again.Stderr, "Made ") {
			t.Errorf("publish with the record in place changed something: exit %d\n%s\n%s", again.Code, again.Stdout, again.Stderr)
		}

		started = time.Now()
		w.startCaddy(cfg)
		w.certificate("pub.test", issuanceTimeout)
		w.certificate("www.pub.test", issuanceTimeout)
		t.Logf("Caddy's start to both certificates: %s", time.Since(started).Round(time.Millisecond))
		requireOneValidationEach(t, w, 2)
	})
}

// After a replacement, --remove-stale takes down exactly the record that
// names the old account: the new account's record and another CA's stay.
// The provider is given as JSON here, as a script would.
func TestPublishRemovesOnlyTheReplacedAccountsRecord(t *testing.T) {
	inWorld(t, []zone{{name: "stale.test", servers: []string{primaryAddr, followerAddr},
		records: []string{fmt.Sprintf("_validation-persist.stale.test. IN TXT %q", otherCARecord)}}}, func(w *world) {
		cfg := w.caddyfile("stale.test")
		if res := w.publishCmd(w.updateSecret, "--config", cfg, "--dns", rfc2136()); res.Code != 0 {
			t.Fatalf("publish: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}
		old := w.records(cfg)

		var changes []persist.AccountChange
		res := w.caddy("persist", "account", "replace", "--config", cfg, "--local", "--format", "json")
		if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &changes) != nil || len(changes) != 1 || len(changes[0].Records) != 1 {
			t.Fatalf("replace: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}
		replacement := changes[0].Records[0]
		w.publish(replacement.RecordName, replacement.Value)
		w.await(followerAddr, replacement.RecordName, dns.TypeTXT, "the follower serving the replacement's record", func(m *dns.Msg) bool {
			return slices.Contains(txtValues(m), replacement.Value)
		})
		for _, step := range []string{"--switch", "--deactivate-old"} {
			if res := w.caddy("persist", "account", "replace", "--config", cfg, "--local", step); res.Code != 0 {
				t.Fatalf("replace %s: exit %d\n%s\n%s", step, res.Code, res.Stdout, res.Stderr)
			}
		}

		check := w.caddy("persist", "check", "--config", cfg)
		if !strings.Contains(check.Stdout, fmt.Sprintf("%s: stale: %q names the account %s", old.RecordName, old.Value, old.AccountURL)) {
			t.Errorf("check does not name the old account's record as stale:\n%s\n%s", check.Stdout, check.Stderr)
		}
		dry := w.publishCmd(w.updateSecret, "--config", cfg, "--dns", rfc2136(), "--remove-stale", "--dry-run")
		if want := fmt.Sprintf("- %s. 3600 IN TXT %q\n", old.RecordName, old.Value); dry.Code != 0 || dry.Stdout != want {
			t.Fatalf("publish --remove-stale --dry-run: exit %d, printed %q, want %q\n%s", dry.Code, dry.Stdout, want, dry.Stderr)
		}
		res = w.publishCmd(w.updateSecret, "--config", cfg, "--dns", rfc2136JSON(), "--remove-stale")
		if res.Code != 0 {
			t.Fatalf("publish --remove-stale: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}
		for _, addr := range []string{primaryAddr, followerAddr} {
			m, err := query(addr, old.RecordName+".", dns.TypeTXT, false)
			if err != nil {
				t.Fatal(err)
			}
			got := txtValues(m)
			slices.Sort(got)
			want := []string{otherCARecord, replacement.Value}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s serves %q after --remove-stale, want exactly %q", addr, got, want)
			}
		}
	})
}

// A provider that refuses (a wrong TSIG key) gives an error naming the
// provider and the record, publishes nothing, and prints the key nowhere;
// a provider this Caddy lacks gets the list of those it has.
func TestPublishWithABadProvider(t *testing.T) {
	inWorld(t, []zone{{name: "bad.test", servers: []string{primaryAddr, followerAddr}}}, func(w *world) {
		cfg := w.caddyfile("bad.test")
		wrong := "d3Jvbmcgc2VjcmV0IG9mIHRoaXJ0eS10d28gb2N0ZXRzISE="
		res := w.publishCmd(wrong, "--config", cfg, "--dns", rfc2136())
		rec := w.records(cfg)
		if res.Code == 0 || !strings.Contains(res.Stderr, "the DNS provider rfc2136: adding ") || !strings.Contains(res.Stderr, rec.RecordName) ||
			!strings.Contains(res.Stderr, "running the command again completes the rest") {
			t.Errorf("publish with a wrong TSIG key: exit %d\n%s\n%s", res.Code, res.Stdout, res.Stderr)
		}
		if w.serves(primaryAddr, rec.RecordName, rec.Value) {
			t.Error("a record was published with a wrong key")
		}
		w.requireSecretNowhere(wrong, res)
		t.Logf("with a wrong key, the command printed:\n%s", res.Stderr)

		unknown := w.publishCmd(w.updateSecret, "--config", cfg, "--dns", "cloudflare {env.CF_API_TOKEN}")
		// Caddy logs a command's error as JSON, quotes escaped
		if unknown.Code == 0 || !strings.Contains(unknown.Stderr, `no DNS provider module \"cloudflare\": this Caddy has the DNS provider modules rfc2136; build another in with xcaddy build --with github.com/dnspersist/caddy-persist --with github.com/caddy-dns/<provider>`) {
			t.Errorf("publish with a provider not built in: exit %d\n%s", unknown.Code, unknown.Stderr)
		}
	})
}
