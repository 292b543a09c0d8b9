package persist

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/storagetest"
)

// TestRolloverDraft02RepublishesAndOldRecordsStillPass: at a -02 CA, the
// records hash the key, so a rollover prints new ones; the one published
// before keeps passing, in the check with a note and in the issuance
// check, until it is replaced. Only the old key's thumbprint is kept.
func TestRolloverDraft02RepublishesAndOldRecordsStillPass(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := startCA(t, acmetest.Options{Wrap: draft02})
	dir := t.TempDir()
	iss := newTestIssuer(t, ca, dir, nil)
	const name = "rolled02.test"
	before, err := iss.inspect(ctx, []string{name}, false)
	if err != nil {
		t.Fatal(err)
	}
	setTXT(t, before[0].RecordName, before[0].Value)
	url := iss.accountURL(t)
	oldKeyPEM := iss.storedKeyPEM(t)
	oldAcct, _ := iss.accounts.Get(ctx, false)
	oldThumbprint, _ := oldAcct.Thumbprint()

	out, err := iss.accounts.Rollover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out.Resumed || out.Account.Location != url {
		t.Fatalf("rollover = %+v, want the account %s", out, url)
	}
	records, err := iss.inspect(ctx, []string{name}, false)
	if err != nil {
		t.Fatal(err)
	}
	after := records[0]
	if after.Value == before[0].Value || after.RecordName != before[0].RecordName {
		t.Errorf("the record after the rollover is %q, before %q: a -02 record must change with the key", after.Value, before[0].Value)
	}
	if bytes.Equal(iss.storedKeyPEM(t), oldKeyPEM) {
		t.Error("the stored key did not change")
	}
	if n := ca.Counts.Get(acmetest.KindKeyChange + " 200"); n != 1 {
		t.Errorf("%d key changes at the CA, want 1", n)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("%d registrations, want 1", n)
	}

	checked, err := iss.inspect(ctx, []string{name}, true)
	if err != nil {
		t.Fatal(err)
	}
	r := checked[0]
	want := "_validation-persist.rolled02.test: ok (made with a previous account key; republish to follow the draft); publish: " + after.ZoneLine
	if r.Status != "ok" || !r.PreviousKey || r.Value != after.Value || recordLine(r, false) != want {
		t.Errorf("check of the old record: %+v\nline %q\nwant %q", r, recordLine(r, false), want)
	}
	in, err := iss.recordInputs(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if j, err := iss.judge.Record(ctx, in.Inputs, name, false, judge.Fresh); err != nil || !j.Passed() || !j.Verdict.PreviousKey {
		t.Errorf("the issuance check refuses the old record: %v, %+v", err, j.Verdict)
	}

	setTXT(t, after.RecordName, after.Value)
	checked, err = iss.inspect(ctx, []string{name}, true)
	if err != nil || checked[0].PreviousKey || recordLine(checked[0], false) != "_validation-persist.rolled02.test: ok" {
		t.Errorf("check of the new record: %v %+v", err, checked)
	}

	keys, err := previousKeysIn(ctx, iss.storage, iss.accountFiles())
	if err != nil || len(keys) != 1 || keys[0].Thumbprint != oldThumbprint || keys[0].AccountURL != url {
		t.Errorf("previous keys kept: %+v, %v", keys, err)
	}
	if holder := storagetest.Holding(t, dir, oldKeyPEM); holder != "" {
		t.Errorf("the old key is still stored, in %s", holder)
	}

	// a file of thumbprints that cannot be read stops nothing: the record
	// made with the current key passes, and the log says why older ones
	// would not
	if err := iss.storage.Store(ctx, iss.accountFiles().previousThumbprints(), []byte("{")); err != nil {
		t.Fatal(err)
	}
	restarted := newTestIssuer(t, ca, dir, nil)
	checked, err = restarted.inspect(ctx, []string{name}, true)
	if err != nil || len(checked) != 1 || checked[0].Status != "ok" {
		t.Errorf("check of the current record with unreadable thumbprints: %v %+v", err, checked)
	}
	if n := len(restarted.logs.FilterMessageSnippet("could not read the thumbprints").All()); n == 0 {
		t.Error("nothing logged about the unreadable thumbprints")
	}
}

// TestInstanceWithTheOldKeyPicksUpTheNewOneWhenTheCARefusesIt: another
// instance's order, signed with the old key, reaches the CA after the
// rollover; the CA refuses it, the instance finds the new key in storage
// and orders again, without a restart and without a new account.
func TestInstanceWithTheOldKeyPicksUpTheNewOneWhenTheCARefusesIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gate := acmetest.NewGate(acmetest.KindNewOrder)
	ca := startCA(t, acmetest.Options{Wrap: gate.Wrap})
	dir := t.TempDir()
	rolling := newTestIssuer(t, ca, dir, nil)
	other := newTestIssuer(t, ca, dir, nil)
	other.publish(t, "pickup.test", false)
	csr := newCSR(t, "pickup.test")

	issued := make(chan error, 1)
	go func() {
		_, err := other.Issue(ctx, csr)
		issued <- err
	}()
	gate.WaitArrived(t, time.Minute)
	if _, err := rolling.accounts.Rollover(ctx); err != nil {
		t.Fatal(err)
	}
	gate.Release()
	if err := <-issued; err != nil {
		t.Fatalf("the instance holding the old key did not get its certificate: %v", err)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder + " 400"); n != 1 {
		t.Errorf("%d orders refused, want the one signed with the old key", n)
	}
	if n := len(other.logs.FilterMessageSnippet("storage holds a changed one").All()); n != 1 {
		t.Errorf("%d log entries about picking up the new key, want 1", n)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("%d registrations, want 1", n)
	}
}

// assertCAHasStoredKey fails the test unless the CA knows the stored key
// as the account at url, and no rollover key is left.
func assertCAHasStoredKey(t *testing.T, iss *testIssuer, url string) {
	t.Helper()
	ctx := context.Background()
	key, err := certmagic.PEMDecodePrivateKey(iss.storedKeyPEM(t))
	if err != nil {
		t.Fatal(err)
	}
	client, err := iss.client.get()
	if err != nil {
		t.Fatal(err)
	}
	found, err := client.GetAccount(ctx, acme.Account{PrivateKey: key})
	if stored, _ := iss.storage.Load(ctx, iss.accountFiles().Reg); err != nil || found.Location != url || !bytes.Contains(stored, []byte(url)) {
		t.Errorf("the CA knows the stored key as %q (%v), want %s", found.Location, err, url)
	}
	if iss.storage.Exists(ctx, iss.accountFiles().rolloverKey()) {
		t.Error("the rollover key is left")
	}
}

// previousKey is an entry of the file of earlier keys' thumbprints.
type previousKey struct {
	AccountURL string `json:"account_url"`
	Thumbprint string `json:"thumbprint"`
}

// previousKeysIn reads the file of the earlier keys' thumbprints.
func previousKeysIn(ctx context.Context, storage certmagic.Storage, files accountFiles) ([]previousKey, error) {
	data, err := storage.Load(ctx, files.previousThumbprints())
	if err != nil {
		return nil, err
	}
	var keys []previousKey
	return keys, json.Unmarshal(data, &keys)
}

// TestInterruptedRolloverIsCompletedByWhoeverFindsIt: the CA takes the new
// key and then stops answering, so the rollover cannot learn it did. The
// new key stays at the rollover key; the next rollover completes it, and
// so does an instance whose order the CA refuses for the old key.
func TestInterruptedRolloverIsCompletedByWhoeverFindsIt(t *testing.T) {
	t.Parallel()
	for i, by := range []string{"the next rollover", "an instance the CA refuses"} {
		name := []string{"next.interrupted.test", "refused.interrupted.test"}[i]
		t.Run(by, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			var down atomic.Bool
			ca := startCA(t, acmetest.Options{Wrap: func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					switch {
					case down.Load() && acmetest.KindOf(r) != acmetest.KindDirectory:
						acmetest.ServerInternal(w)
					case acmetest.KindOf(r) == acmetest.KindKeyChange:
						next.ServeHTTP(httptest.NewRecorder(), r)
						down.Store(true)
						acmetest.ServerInternal(w)
					default:
						next.ServeHTTP(w, r)
					}
				})
			}})
			dir := t.TempDir()
			iss := newTestIssuer(t, ca, dir, nil)
			iss.publish(t, name, false)
			url := iss.accountURL(t)
			oldKeyPEM := iss.storedKeyPEM(t)
			loc := iss.accountFiles()

			_, err := iss.accounts.Rollover(ctx)
			if err == nil || !strings.Contains(err.Error(), "run the rollover again") || !strings.Contains(err.Error(), loc.rolloverKey()) {
				t.Fatalf("error = %v, want one saying the key is kept and to run again", err)
			}
			if !bytes.Equal(iss.storedKeyPEM(t), oldKeyPEM) || !iss.storage.Exists(ctx, loc.rolloverKey()) {
				t.Fatal("the interrupted rollover did not keep both keys")
			}
			down.Store(false)

			switch by {
			case "the next rollover":
				out, err := iss.accounts.Rollover(ctx)
				if err != nil || !out.Resumed {
					t.Fatalf("the next rollover: %+v, %v", out, err)
				}
			default:
				other := newTestIssuer(t, ca, dir, nil)
				if _, err := other.Issue(ctx, newCSR(t, name)); err != nil {
					t.Fatalf("the instance holding the old key: %v", err)
				}
				if n := ca.Counts.Get(acmetest.KindNewOrder + " 400"); n != 1 {
					t.Errorf("%d orders refused, want 1", n)
				}
			}
			assertCAHasStoredKey(t, iss, url)
		})
	}
}
