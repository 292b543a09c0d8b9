package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// replica is another instance beside e: the same CA and environment, but
// its own folder, storage and ports, as a second pod without shared
// storage would have.
func (e *env) replica(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	return &env{
		t:        t,
		ca:       e.ca,
		dir:      dir,
		storage:  filepath.Join(dir, "storage"),
		admin:    "127.0.0.1:" + strconv.Itoa(acmetest.FreePortForTest(t)),
		http:     acmetest.FreePortForTest(t),
		https:    acmetest.FreePortForTest(t),
		extraEnv: slices.Clone(e.extraEnv),
	}
}

// adminRecords is GET /persist/records on e's running server.
func (e *env) adminRecords(t *testing.T) []recordJSON {
	t.Helper()
	resp, err := http.Get("http://" + e.admin + "/persist/records")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /persist/records on %s: %d %s", e.admin, resp.StatusCode, body)
	}
	return decodeRecords(t, string(body))
}

// TestReplicasShareAccountKeyNotStorage is the Kubernetes recipe: two
// instances with separate storage and the same account_key from the
// environment. The key decides the account, so both show the same account
// and records, the CA sees one registration, and the one published record
// lets each instance obtain its certificates, which each orders itself.
func TestReplicasShareAccountKeyNotStorage(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := certmagic.PEMEncodePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	a := newEnv(t, acmetest.Options{})
	a.extraEnv = []string{"PERSIST_ACCOUNT_KEY=" + string(keyPEM)}
	b := a.replica(t)

	const sites = "*.pods.test, pods.test"
	issuerExtra := "account_key {env.PERSIST_ACCOUNT_KEY}\n\t\tpropagation_timeout 2m"
	cfgA := a.persistSite(sites, issuerExtra, "pod a")
	cfgB := b.persistSite(sites, issuerExtra, "pod b")

	// a starts first and, finding no account for the key at the CA,
	// registers it; b then finds that account by its key
	// (onlyReturnExisting) instead of registering
	srvA := a.start("--config", cfgA)
	srvA.waitLog(t, "record missing", time.Minute)
	srvB := b.start("--config", cfgB)
	srvB.waitLog(t, "record missing", time.Minute)

	recsA, recsB := a.adminRecords(t), b.adminRecords(t)
	if len(recsA) != 1 || recsA[0].Domain != "pods.test" || !recsA[0].Wildcard || recsA[0].AccountURL == "" {
		t.Fatalf("records of a = %+v, want one wildcard record for pods.test", recsA)
	}
	if !reflect.DeepEqual(recsA, recsB) {
		t.Fatalf("the instances show different records:\na: %+v\nb: %+v", recsA, recsB)
	}
	// the command, given each instance's config, prints the same
	for _, run := range []struct {
		e   *env
		cfg string
	}{{a, cfgA}, {b, cfgB}} {
		res := run.e.caddy("persist", "records", "--format", "json", "--config", run.cfg)
		if res.code != 0 {
			t.Fatalf("caddy persist records --config %s: exit %d\n%s", run.cfg, res.code, res.stderr)
		}
		if got := decodeRecords(t, res.stdout); !reflect.DeepEqual(got, recsA) {
			t.Errorf("caddy persist records --config %s printed %+v, want %+v", run.cfg, got, recsA)
		}
	}
	if n := a.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations at the CA = %d, want 1", n)
	}
	if n := a.ca.Counts.Get(acmetest.KindNewAccount + " 200"); n == 0 {
		t.Error("b never looked its account up at the CA")
	}
	if n := a.ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("%d orders before the record was published", n)
	}

	// each storage keeps its own copy of the one account where certmagic
	// keeps accounts: acme/<ca dir key>/users/<email>/<user>.{json,key}
	for _, e := range []*env{a, b} {
		keys, _ := filepath.Glob(filepath.Join(e.storage, "acme", "*", "users", "ops@example.test", "ops.key"))
		if len(keys) != 1 {
			t.Fatalf("account key files in %s: %v, want 1", e.storage, keys)
		}
		stored, err := os.ReadFile(keys[0])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bytes.TrimSpace(stored), bytes.TrimSpace(keyPEM)) {
			t.Errorf("%s holds another key than account_key", keys[0])
		}
	}

	if err := acmetest.SetTXT(recsA[0].RecordName, recsA[0].Value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { acmetest.SetTXT(recsA[0].RecordName) })

	serials := map[string]string{}
	for _, e := range []*env{a, b} {
		for _, sni := range []string{"www.pods.test", "pods.test"} {
			leaf, _ := e.handshake(t, sni, 2*time.Minute)
			if prev, ok := serials[sni]; ok && prev == leaf.SerialNumber.String() {
				t.Errorf("both instances serve certificate %s for %s; each should have ordered its own", prev, sni)
			}
			serials[sni] = leaf.SerialNumber.String()
		}
	}
	if _, body := b.handshake(t, "x.pods.test", time.Minute); body != "pod b" {
		t.Errorf("b answered %q", body)
	}

	// no shared storage, so nothing tells b that a holds certificates:
	// each instance orders every name once, 2 instances × 2 names
	ordered := a.ca.Counts.Ordered()
	if ordered["*.pods.test"] != 2 || ordered["pods.test"] != 2 {
		t.Errorf("orders per name = %v, want 2 for *.pods.test and 2 for pods.test", ordered)
	}
	if n := a.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations at the CA after issuance = %d, want 1", n)
	}
	t.Logf("account %s; registrations %d, lookups %d, orders %v",
		recsA[0].AccountURL, a.ca.Counts.Get(acmetest.KindNewAccount+" 201"),
		a.ca.Counts.Get(acmetest.KindNewAccount+" 200"), ordered)
	srvA.stop()
	srvB.stop()
}
