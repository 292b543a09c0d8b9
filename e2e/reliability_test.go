package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

func TestKilledMidIssuanceCompletesAfterRestart(t *testing.T) {
	t.Parallel()
	gate := acmetest.NewGate(acmetest.KindFinalize)
	e := newEnv(t, acmetest.Options{Wrap: gate.Wrap})
	t.Cleanup(gate.Release)
	cfg := e.persistSite("crash.test", "", "survived")
	recs := e.publishFromRecords(t, "--config", cfg)
	srv := e.start("--config", cfg)
	gate.WaitArrived(t, time.Minute)
	srv.kill() // in the middle of finalizing
	gate.Release()

	e.start("--config", cfg)
	if _, body := e.handshake(t, "crash.test", 90*time.Second); body != "survived" {
		t.Errorf("body %q", body)
	}
	after := decodeRecords(t, e.caddy("persist", "records", "--config", cfg, "--format", "json").stdout)
	if len(after) != 1 || after[0].AccountURL != recs[0].AccountURL {
		t.Errorf("account before the crash %s, after %+v", recs[0].AccountURL, after)
	}
	if n := e.ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
}

func TestSecretsStayOutOfCommandOutputLogsAndAdmin(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := certmagic.PEMEncodePrivateKey(key)
	raw := make([]byte, 32)
	rand.Read(raw)
	mac := base64.RawURLEncoding.EncodeToString(raw)

	e := newEnv(t, acmetest.Options{EABKeys: map[string]string{"kid-1": mac}})
	e.extraEnv = []string{"PERSIST_ACCOUNT_KEY=" + string(keyPEM), "PERSIST_EAB_MAC=" + mac}
	cfg := e.persistSite("secret.test", "account_key {env.PERSIST_ACCOUNT_KEY}\n\t\teab kid-1 {env.PERSIST_EAB_MAC}", "ok")
	var outputs []string
	for _, args := range [][]string{
		{"persist", "records", "--config", cfg},
		{"persist", "records", "--config", cfg, "--format", "json"},
		{"persist", "check", "--config", cfg},
		{"persist", "check", "--config", cfg, "--format", "json", "--domain", "x.secret.test"},
		{"adapt", "--config", cfg},
	} {
		res := e.caddy(args...)
		outputs = append(outputs, res.stdout, res.stderr)
	}
	if !strings.Contains(outputs[0], "_validation-persist.secret.test. IN TXT") {
		t.Fatalf("records did not work:\n%s\n%s", outputs[0], outputs[1])
	}
	srv := e.start("--config", cfg)
	for _, path := range []string{"/persist/records", "/persist/check", "/persist/records?domain=y.secret.test", "/persist/"} {
		resp, err := http.Get("http://" + e.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		outputs = append(outputs, string(body))
	}
	srv.waitLog(t, "record missing", 30*time.Second)
	srv.stop()
	outputs = append(outputs, srv.logs.String())

	pieces := []string{mac}
	for _, line := range strings.Split(string(keyPEM), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			pieces = append(pieces, line)
		}
	}
	for i, out := range outputs {
		for _, p := range pieces {
			if strings.Contains(out, p) {
				t.Errorf("output %d holds a secret: %.300s", i, out)
			}
		}
	}
}
