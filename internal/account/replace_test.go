package account

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/storagetest"
)

// faultyStorage is file storage whose Store fails for the keys given, as
// many times as given.
type faultyStorage struct {
	*certmagic.FileStorage
	mu    sync.Mutex
	fails map[string]int
}

func (f *faultyStorage) failStore(key string, times int) {
	f.mu.Lock()
	f.fails[key] = times
	f.mu.Unlock()
}

func (f *faultyStorage) Store(ctx context.Context, key string, value []byte) error {
	f.mu.Lock()
	fail := f.fails[key] > 0
	if fail {
		f.fails[key]--
	}
	f.mu.Unlock()
	if fail {
		return errors.New("injected storage failure")
	}
	return f.FileStorage.Store(ctx, key, value)
}

// TestReplacementStepsThatFailAreCompletedByTheNextRun: a registration
// the CA does not answer, a switch whose storage fails half-way and a
// deactivation the CA fails each leave a state the same step completes
// when run again; no key is lost, and the old one is set aside at the
// end, never deleted.
func TestReplacementStepsThatFailAreCompletedByTheNextRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var failKind atomic.Value
	failKind.Store("")
	ca := startCA(t, acmetest.Options{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if kind := failKind.Load().(string); kind != "" && acmetest.KindOf(r) == kind {
				acmetest.ServerInternal(w)
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	dir := t.TempDir()
	a := newTestKeeper(t, ca, dir, nil)
	storage := &faultyStorage{FileStorage: a.storage, fails: map[string]int{}}
	a.useStorage(storage)
	oldURL := a.accountURL(t)
	oldKeyPEM := a.storedKeyPEM(t)
	loc := a.loc()

	var state *StateError
	if _, _, err := a.deactivateReplaced(ctx); !errors.Is(err, errNothingToDeactivate) || !errors.As(err, &state) {
		t.Errorf("deactivation before any replacement: %v", err)
	}
	if _, _, _, err := a.switchToReplacement(ctx); !errors.Is(err, errNoReplacement) {
		t.Errorf("switch before any replacement: %v", err)
	}

	// the CA does not answer the registration: its key is kept
	failKind.Store(acmetest.KindNewAccount)
	if _, _, err := a.beginReplacement(ctx); err == nil {
		t.Fatal("the replacement was registered while the CA failed")
	}
	failKind.Store("")
	storedNext, err := storage.Load(ctx, loc.replacement().Key)
	if err != nil {
		t.Fatalf("the replacement's key was not kept: %v", err)
	}
	pending, created, err := a.beginReplacement(ctx)
	if err != nil || !created || pending.Location == oldURL {
		t.Fatalf("the next run: %+v, created %v, %v", pending, created, err)
	}
	if nextPEM, _ := certmagic.PEMEncodePrivateKey(pending.PrivateKey); !equalPEM(nextPEM, storedNext) {
		t.Error("the next run registered another key than the one kept")
	}
	if again, created, err := a.beginReplacement(ctx); err != nil || created || again.Location != pending.Location {
		t.Errorf("a third run: %s, created %v, %v; want the same replacement", again.Location, created, err)
	}
	if cur, _ := a.Get(ctx, false); cur.Location != oldURL {
		t.Errorf("orders would use %s before the switch, want the old account", cur.Location)
	}

	// storage fails between the key and the registration of the switch
	storage.failStore(loc.Reg, 1)
	if _, _, _, err := a.switchToReplacement(ctx); err == nil || !strings.Contains(err.Error(), "run --switch again") {
		t.Fatalf("the failing switch: %v", err)
	}
	if kept, _ := storage.Load(ctx, loc.replaced().Key); !equalPEM(kept, oldKeyPEM) {
		t.Fatal("the old key was not kept before the switch began")
	}
	// meanwhile the account's files hold the replacement's key and the
	// old URL: an instance loading them uses the replacement whole
	if half, err := loadStored(ctx, storage, loc); err != nil || half.Location != oldURL || !sameKey(half.PrivateKey, pending.PrivateKey) {
		t.Fatalf("the half-done switch left %s: %v", half.Location, err)
	}
	if inUse, err := newTestKeeper(t, ca, dir, nil).Get(ctx, false); err != nil || !sameAccount(inUse, pending) {
		t.Errorf("an instance loading the half-switched account uses %s: %v; want the replacement %s", inUse.Location, err, pending.Location)
	}
	old, current, _, err := a.switchToReplacement(ctx)
	if err != nil || old.Location != oldURL || current.Location != pending.Location || !sameKey(current.PrivateKey, pending.PrivateKey) {
		t.Fatalf("the next switch: old %s, current %s, %v", old.Location, current.Location, err)
	}
	if stored, err := loadStored(ctx, storage, loc); err != nil || !sameAccount(stored, current) {
		t.Errorf("storage holds %s after the switch: %v", stored.Location, err)
	}
	if storage.Exists(ctx, loc.replacement().Key) || storage.Exists(ctx, loc.replacement().Reg) {
		t.Error("the replacement's files are left after the switch")
	}
	if cur, _ := a.Get(ctx, false); cur.Location != pending.Location {
		t.Errorf("orders would use %s after the switch", cur.Location)
	}
	if _, _, err := a.beginReplacement(ctx); !errors.As(err, &state) || !strings.Contains(err.Error(), "--deactivate-old") {
		t.Errorf("another replacement while the old account awaits deactivation: %v", err)
	}

	// the CA fails the deactivation
	failKind.Store(acmetest.KindAccount)
	if _, _, err := a.deactivateReplaced(ctx); err == nil || !strings.Contains(err.Error(), "replace --deactivate-old` again") {
		t.Fatalf("the failing deactivation: %v", err)
	}
	failKind.Store("")
	if kept, _ := storage.Load(ctx, loc.replaced().Key); !equalPEM(kept, oldKeyPEM) {
		t.Fatal("the old key is gone after a failed deactivation")
	}
	if deactivated, _, err := a.deactivateReplaced(ctx); err != nil || deactivated.Location != oldURL {
		t.Fatalf("the next deactivation: %s, %v", deactivated.Location, err)
	}
	oldKey, err := certmagic.PEMDecodePrivateKey(oldKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	var problem acme.Problem
	if _, err := a.lookUp(ctx, oldKey); !errors.As(err, &problem) || problem.Type != acme.ProblemTypeUnauthorized {
		t.Errorf("the CA on the old key: %v, want unauthorized", err)
	}
	if holder := storagetest.Holding(t, dir, oldKeyPEM); !strings.Contains(holder, ".replaced.key.deactivated-") {
		t.Errorf("the old key is kept in %q, want a file set aside", holder)
	}
	// once done, each step says so, and changes nothing
	before := storagetest.Snapshot(t, dir)
	if again, err := a.Replace(ctx, DeactivateOld); err != nil || !again.Done || again.Old.Location != oldURL {
		t.Errorf("a second deactivation: %+v, %v; want done, naming %s", again, err, oldURL)
	}
	if again, err := a.Replace(ctx, Switch); err != nil || !again.Done || again.Old.Location != oldURL || again.Account.Location != current.Location {
		t.Errorf("a switch once all is done: %+v, %v; want done, naming %s and %s", again, err, current.Location, oldURL)
	}
	if after := storagetest.Snapshot(t, dir); after != before {
		t.Errorf("a step of a finished replacement changed storage:\nbefore %s\nafter  %s", before, after)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount + " 201"); n != 2 {
		t.Errorf("%d registrations, want the old account and its replacement", n)
	}
}

// TestDeactivationRefusedIsConfirmedAtTheCA: a CA answers unauthorized to
// a deactivated account's requests, but also to a key it no longer takes.
// Only when the CA says, asked by the key, that the account is
// deactivated are the old account's files set aside; a refusal while the
// account is live sets nothing aside. An answer lost after the CA did
// deactivate it is completed by the next run.
func TestDeactivationRefusedIsConfirmedAtTheCA(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var refuse, loseAnswer atomic.Bool
	ca := startCA(t, acmetest.Options{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case acmetest.KindOf(r) != acmetest.KindAccount:
				next.ServeHTTP(w, r)
			case refuse.Load():
				acmetest.WriteProblem(w, http.StatusUnauthorized, acme.ProblemTypeUnauthorized, "injected by the test")
			case loseAnswer.CompareAndSwap(true, false):
				next.ServeHTTP(httptest.NewRecorder(), r)
				acmetest.ServerInternal(w)
			default:
				next.ServeHTTP(w, r)
			}
		})
	}})
	dir := t.TempDir()
	a := newTestKeeper(t, ca, dir, nil)
	oldURL := a.accountURL(t)
	oldKeyPEM := a.storedKeyPEM(t)
	if _, err := a.Replace(ctx, Begin); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Replace(ctx, Switch); err != nil {
		t.Fatal(err)
	}

	// refused while the CA still knows the account as valid
	refuse.Store(true)
	before := storagetest.Snapshot(t, dir)
	if _, err := a.Replace(ctx, DeactivateOld); err == nil || !strings.Contains(err.Error(), "nothing was set aside") || !strings.Contains(err.Error(), oldURL) {
		t.Fatalf("deactivation refused by a CA that knows the account: %v", err)
	}
	if after := storagetest.Snapshot(t, dir); after != before {
		t.Errorf("storage changed after a refused deactivation:\nbefore %s\nafter  %s", before, after)
	}
	oldKey, err := certmagic.PEMDecodePrivateKey(oldKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if live, err := a.lookUp(ctx, oldKey); err != nil || live.Location != oldURL || live.Status != acme.StatusValid {
		t.Fatalf("the old account at the CA: %+v, %v; want it valid still", live, err)
	}

	// the CA deactivates it, and its answer is lost: asked again, the CA
	// refuses the key as a deactivated account's, says so when asked by
	// the key, and the deactivation completes
	refuse.Store(false)
	loseAnswer.Store(true)
	done, err := a.Replace(ctx, DeactivateOld)
	if err != nil || done.Old.Location != oldURL {
		t.Fatalf("the deactivation after a lost answer: %+v, %v", done, err)
	}
	if loseAnswer.Load() {
		t.Fatal("no answer was lost")
	}
	if n := a.logs.FilterMessageSnippet("it was deactivated already").Len(); n != 1 {
		t.Errorf("%d log entries about an account deactivated already, want 1", n)
	}
	if holder := storagetest.Holding(t, dir, oldKeyPEM); !strings.Contains(holder, ".replaced.key.deactivated-") {
		t.Errorf("the old key is kept in %q, want a file set aside", holder)
	}
}

// TestSwitchCompletesAnUnfinishedRolloverFirst: a key change of the
// current account that the CA took but never answered leaves the new key
// at the rollover file and the old one as the account's. The switch
// completes it before it keeps the old account aside, so the deactivation
// signs with the key the CA holds, and the replacement's own rollover
// finds no other account's key in its way.
func TestSwitchCompletesAnUnfinishedRolloverFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var interrupt, down atomic.Bool
	interrupt.Store(true)
	ca := startCA(t, acmetest.Options{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case down.Load() && acmetest.KindOf(r) != acmetest.KindDirectory:
				acmetest.ServerInternal(w)
			case acmetest.KindOf(r) == acmetest.KindKeyChange && interrupt.CompareAndSwap(true, false):
				next.ServeHTTP(httptest.NewRecorder(), r)
				down.Store(true)
				acmetest.ServerInternal(w)
			default:
				next.ServeHTTP(w, r)
			}
		})
	}})
	k := newTestKeeper(t, ca, t.TempDir(), nil)
	oldURL := k.accountURL(t)
	if _, err := k.Rollover(ctx); err == nil {
		t.Fatal("the interrupted rollover succeeded")
	}
	down.Store(false)
	if !k.storage.Exists(ctx, k.loc().rolloverKey()) {
		t.Fatal("the interrupted rollover left no key")
	}
	takenPEM, err := k.storage.Load(ctx, k.loc().rolloverKey())
	if err != nil {
		t.Fatal(err)
	}

	if _, err := k.Replace(ctx, Begin); err != nil {
		t.Fatal(err)
	}
	switched, err := k.Replace(ctx, Switch)
	if err != nil || switched.Old.Location != oldURL {
		t.Fatalf("switch: %+v, %v", switched, err)
	}
	if k.storage.Exists(ctx, k.loc().rolloverKey()) {
		t.Error("the old account's rollover key is left beside the replacement")
	}
	if kept, _ := k.storage.Load(ctx, k.loc().replaced().Key); !equalPEM(kept, takenPEM) {
		t.Error("the old account is kept with a key the CA no longer takes")
	}
	if _, err := k.Replace(ctx, DeactivateOld); err != nil {
		t.Fatalf("deactivating the old account: %v", err)
	}
	if out, err := k.Rollover(ctx); err != nil || out.Resumed || out.Account.Location != switched.Account.Location {
		t.Fatalf("the replacement's rollover: %+v, %v", out, err)
	}
}

// TestReplaceStepsBeforeAnyAccountSayToCreateItFirst: a switch or a
// deactivation asked before there is any account says so, as the
// missing account it is (ErrNoAccountYet), not as a file not found.
func TestReplaceStepsBeforeAnyAccountSayToCreateItFirst(t *testing.T) {
	t.Parallel()
	k := newTestKeeper(t, startCA(t, acmetest.Options{}), t.TempDir(), nil)
	for _, step := range []ReplaceStep{Switch, DeactivateOld} {
		if _, err := k.Replace(context.Background(), step); !errors.Is(err, ErrNoAccountYet) {
			t.Errorf("step %d before any account: %v, want ErrNoAccountYet", step, err)
		}
	}
}
