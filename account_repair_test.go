package persist

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
	"github.com/dnspersist/caddy-persist/internal/storagetest"
)

func TestUnusableAccountStopsIssuingAndKeepsTheFiles(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		damage  func(loc accountFiles, dir string) string
		wantKey string
	}{
		{"corrupt JSON", func(loc accountFiles, dir string) string {
			os.WriteFile(filepath.Join(dir, loc.Reg), []byte("{not json"), 0o600)
			return loc.Reg
		}, "corrupt account JSON"},
		{"truncated JSON", func(loc accountFiles, dir string) string {
			data, _ := os.ReadFile(filepath.Join(dir, loc.Reg))
			os.WriteFile(filepath.Join(dir, loc.Reg), data[:len(data)/2], 0o600)
			return loc.Reg
		}, "corrupt account JSON"},
		{"unreadable key", func(loc accountFiles, dir string) string {
			os.WriteFile(filepath.Join(dir, loc.Key), []byte("-----BEGIN EC PRIVATE KEY-----\ngarbage\n-----END EC PRIVATE KEY-----\n"), 0o600)
			return loc.Key
		}, "unreadable private key"},
		{"lost key", func(loc accountFiles, dir string) string {
			os.Remove(filepath.Join(dir, loc.Key))
			return loc.Key
		}, "account key is missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ca := startCA(t, acmetest.Options{})
			dir := t.TempDir()
			first := newTestIssuer(t, ca, dir, nil)
			oldURL := first.accountURL(t)
			loc := first.accountFiles()
			damaged := c.damage(loc, dir)
			before := storagetest.Snapshot(t, dir)

			iss := newTestIssuer(t, ca, dir, nil)
			_, err := iss.Issue(context.Background(), newCSR(t, "unusable.test"))
			var serr *StorageError
			if !errors.As(err, &serr) || serr.Key != damaged || !strings.Contains(err.Error(), damaged) || !strings.Contains(err.Error(), c.wantKey) {
				t.Fatalf("error = %v, want a StorageError naming %s", err, damaged)
			}
			if !strings.Contains(err.Error(), "docs/accounts.md") {
				t.Errorf("the error does not point to the recovery steps: %v", err)
			}
			if after := storagetest.Snapshot(t, dir); after != before {
				t.Errorf("storage changed:\nbefore %s\nafter  %s", before, after)
			}
			if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
				t.Errorf("registrations = %d, want 1", n)
			}

			// the deliberate way out: a damaged registration beside a
			// readable key is rebuilt from the CA, keeping the account; a
			// damaged or lost key means a new account
			repl := newTestIssuer(t, ca, dir, func(iss *Issuer) { iss.NewAccountIfMissing = true })
			_, err = repl.Issue(context.Background(), newCSR(t, "unusable.test"))
			var recErr *RecordError
			if !errors.As(err, &recErr) || recErr.Status() != record.StatusMissing {
				t.Fatalf("after the repair: %v, want the record missing", err)
			}
			newURL := repl.accountURL(t)
			if damaged == loc.Reg {
				if newURL != oldURL {
					t.Errorf("the account changed from %s to %s though the CA still knew its key", oldURL, newURL)
				}
				if n := len(repl.logs.FilterMessageSnippet("rebuilt an unusable account registration").All()); n != 1 {
					t.Errorf("%d 'rebuilt' log entries", n)
				}
				if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
					t.Errorf("registrations = %d, want 1", n)
				}
			} else {
				entries := repl.logs.FilterMessageSnippet("republish these records").All()
				if len(entries) != 1 {
					t.Fatalf("%d 'republish' log entries", len(entries))
				}
				f := entries[0].ContextMap()
				recs, _ := f["records"].([]any)
				if newURL == oldURL || f["old_account_url"] != oldURL || f["new_account_url"] != newURL || len(recs) != 1 || !strings.Contains(recs[0].(string), newURL) {
					t.Errorf("log fields = %v", f)
				}
			}
			set := 0
			for _, name := range storagetest.List(t, filepath.Join(dir, filepath.Dir(loc.Key))) {
				if strings.Contains(name, ".unusable-") {
					set++
				}
			}
			if set == 0 {
				t.Error("the unusable files were not kept")
			}
		})
	}
}

func TestOneAccountDoesNotExistAnswerIsConfirmedFirst(t *testing.T) {
	t.Parallel()
	wrap, hits := failFirst(1, acmetest.KindNewOrder, func(w http.ResponseWriter) {
		acmetest.WriteProblem(w, http.StatusBadRequest, acme.ProblemTypeAccountDoesNotExist, "hiccup")
	})
	ca := startCA(t, acmetest.Options{Wrap: wrap})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	url := iss.accountURL(t)
	iss.publish(t, "hiccup.test", false)
	if _, err := iss.Issue(context.Background(), newCSR(t, "hiccup.test")); err != nil {
		t.Fatal(err)
	}
	if hits.Load() == 0 {
		t.Fatal("the fault was not injected")
	}
	if got := iss.accountURL(t); got != url {
		t.Errorf("account replaced: %s, then %s", url, got)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
	if n := len(iss.logs.FilterMessageSnippet("still knows the key").All()); n != 1 {
		t.Errorf("%d log entries about keeping the account", n)
	}
}

func TestVanishedAccountIsReplacedLoudlyAndKept(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	oldURL := iss.accountURL(t)
	iss.publish(t, "vanish.test", false)
	if _, err := iss.Issue(context.Background(), newCSR(t, "vanish.test")); err != nil {
		t.Fatal(err)
	}
	loc := iss.accountFiles()
	oldKey, _ := iss.storage.Load(context.Background(), loc.Key)

	ca.Reset() // the CA forgets every account
	_, err := iss.Issue(context.Background(), newCSR(t, "vanish.test"))
	var recErr *RecordError
	if !errors.As(err, &recErr) || !recErr.verdict.Has(record.MismatchAccount) {
		t.Fatalf("error = %v, want an accounturi mismatch for the old record", err)
	}
	newURL := iss.accountURL(t)
	if newURL == oldURL {
		t.Fatal("the account was not replaced")
	}

	first := iss.logs.FilterMessageSnippet("no longer exists").All()
	replaced := iss.logs.FilterMessageSnippet("replaced the vanished").All()
	if len(first) != 1 || len(replaced) != 1 {
		t.Fatalf("logs: %d 'no longer exists', %d 'replaced'", len(first), len(replaced))
	}
	fields := replaced[0].ContextMap()
	if fields["old_account_url"] != oldURL || fields["new_account_url"] != newURL {
		t.Errorf("log fields = %v", fields)
	}
	if recs, _ := fields["records"].([]any); len(recs) != 1 || !strings.Contains(recs[0].(string), newURL) {
		t.Errorf("logged records = %v", fields["records"])
	}

	// the old key is set aside, not lost
	keys, err := iss.storage.List(context.Background(), filepath.Dir(loc.Key), false)
	if err != nil {
		t.Fatal(err)
	}
	var kept bool
	for _, k := range keys {
		if strings.Contains(k, ".key.vanished-") {
			data, _ := iss.storage.Load(context.Background(), k)
			kept = bytes.Equal(data, oldKey)
		}
	}
	if !kept {
		t.Errorf("the old key is not kept among %v", keys)
	}

	iss.publish(t, "vanish.test", false)
	if _, err := iss.Issue(context.Background(), newCSR(t, "vanish.test")); err != nil {
		t.Fatal(err)
	}
}

// With new_account_if_missing, a damaged registration beside a readable
// key is rebuilt from the CA. A CA that cannot answer at that moment is no
// reason to replace the account: nothing is moved, and the next attempt
// asks again and keeps the account.
func TestRepairWaitsForACAThatCannotAnswer(t *testing.T) {
	t.Parallel()
	var refusing atomic.Bool
	ca := startCA(t, acmetest.Options{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if refusing.Load() && acmetest.KindOf(r) == acmetest.KindNewAccount {
				acmetest.WriteProblem(w, http.StatusInternalServerError, acme.ProblemTypeServerInternal, "accounts database offline")
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	dir := t.TempDir()
	first := newTestIssuer(t, ca, dir, nil)
	oldURL := first.accountURL(t)
	loc := first.accountFiles()
	if err := os.WriteFile(filepath.Join(dir, loc.Reg), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := storagetest.Snapshot(t, dir)

	refusing.Store(true)
	repl := newTestIssuer(t, ca, dir, func(iss *Issuer) { iss.NewAccountIfMissing = true })
	_, err := repl.Issue(context.Background(), newCSR(t, "repair.test"))
	if err == nil || !strings.Contains(err.Error(), "accounts database offline") {
		t.Fatalf("error = %v, want the CA's", err)
	}
	if after := storagetest.Snapshot(t, dir); after != before {
		t.Errorf("storage changed while the CA could not answer:\nbefore %s\nafter  %s", before, after)
	}

	refusing.Store(false)
	_, err = repl.Issue(context.Background(), newCSR(t, "repair.test"))
	var recErr *RecordError
	if !errors.As(err, &recErr) || recErr.Status() != record.StatusMissing {
		t.Fatalf("once the CA answers: %v, want the record missing", err)
	}
	if got := repl.accountURL(t); got != oldURL {
		t.Errorf("the account changed from %s to %s", oldURL, got)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 1 {
		t.Errorf("registrations = %d, want 1", n)
	}
}
