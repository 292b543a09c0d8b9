package persist

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"path"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Once a CA has offered no dns-persist-01, the issuer places no order with
// it for an hour: certmagic's retries, and the next names, go straight to
// the next issuer (PreCheck refuses) instead of spending an order each to
// learn the same thing. The observation is kept in memory and in storage,
// beside but apart from the accounts and certificates, so that other
// instances sharing the storage and `caddy persist check`, a separate
// process, know it too.
//
// It stops orders only for notOfferedTTL after it was made, so a stale or
// forged file cannot stop issuance for longer; the check and the daily
// check report it until an order finds the challenge offered, which
// removes it.
const (
	notOfferedTTL = time.Hour
	// notOfferedClockSkew is how far in the future another instance's
	// clock may have dated an observation; a later date stops no order.
	notOfferedClockSkew = time.Minute
	// notOfferedReread is how long what storage said stands before it is
	// read again: every pre-check and issuance asks, and a storage shared
	// by a cluster is a network round trip away.
	notOfferedReread = time.Minute
)

// notOfferedMemory is the issuer's last observation of its CA offering no
// dns-persist-01.
type notOfferedMemory struct {
	mu   sync.Mutex
	seen *ChallengeNotOfferedError
	// read is when storage was last read.
	read time.Time
}

// readDue reports whether storage should be read again at now, and if so
// notes that it is being read.
func (m *notOfferedMemory) readDue(now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.read.IsZero() && now.Sub(m.read) < notOfferedReread && !now.Before(m.read) {
		return false
	}
	m.read = now
	return true
}

func (m *notOfferedMemory) get() *ChallengeNotOfferedError {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen
}

// set replaces the observation and returns the one it replaced.
func (m *notOfferedMemory) set(e *ChallengeNotOfferedError) *ChallengeNotOfferedError {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.seen
	m.seen = e
	return old
}

// notOfferedFile is the storage form of ChallengeNotOfferedError.
type notOfferedFile struct {
	CA         string    `json:"ca"`
	ObservedAt time.Time `json:"observed_at"`
	Identifier string    `json:"identifier"`
	Offered    []string  `json:"offered"`
}

// notOfferedKey is where the observation is stored for the CA of
// issuerKey: under this plugin's own prefix, never among accounts or
// certificates.
func notOfferedKey(issuerKey string) string {
	return path.Join("persist", certmagic.StorageKeys.Safe(issuerKey), "dns-persist-01-not-offered.json")
}

// current reports whether e still stops orders to ca at now.
func (e *ChallengeNotOfferedError) current(ca string, now time.Time) bool {
	return e != nil && e.CA == ca && !e.ObservedAt.After(now.Add(notOfferedClockSkew)) && now.Sub(e.ObservedAt) < notOfferedTTL
}

// lastNotOffered returns the last observation, by this issuer or another
// instance sharing its storage, of the CA offering no dns-persist-01, or
// nil when there is none or an order has since found it offered. It
// contacts no CA. Storage is read unless the memory holds a current
// observation or storage was read within notOfferedReread; when storage
// cannot be read, the memory answers.
func (iss *Issuer) lastNotOffered(ctx context.Context) *ChallengeNotOfferedError {
	seen := iss.st.notOffered.get()
	if seen.current(iss.CA, iss.now()) || !iss.st.notOffered.readDue(iss.now()) {
		return seen
	}
	storage := iss.storage()
	if storage == nil {
		return seen
	}
	data, err := storage.Load(ctx, notOfferedKey(iss.IssuerKey()))
	if errors.Is(err, fs.ErrNotExist) {
		iss.st.notOffered.set(nil)
		return nil
	}
	if err != nil {
		iss.logger.Debug("reading whether the CA offers dns-persist-01", zap.Error(err))
		return seen
	}
	var f notOfferedFile
	if err := json.Unmarshal(data, &f); err != nil || f.CA != iss.CA {
		iss.logger.Debug("ignoring an unreadable record of the CA not offering dns-persist-01", zap.Error(err))
		return seen
	}
	e := &ChallengeNotOfferedError{CA: f.CA, Identifier: f.Identifier, Offered: f.Offered, ObservedAt: f.ObservedAt}
	iss.st.notOffered.set(e)
	return e
}

// refuseKnownNonOfferingCA fails when the CA was seen offering no
// dns-persist-01 within notOfferedTTL, so that no order is placed to learn
// it again. certmagic moves to the next issuer without logging why, so
// the refusal is logged here, once an hour.
func (iss *Issuer) refuseKnownNonOfferingCA(ctx context.Context) error {
	e := iss.lastNotOffered(ctx)
	if !e.current(iss.CA, iss.now()) {
		return nil
	}
	if iss.notices.Due("not-offered|"+iss.CA, time.Hour) {
		iss.logger.Warn("skipping this issuer: its CA does not offer dns-persist-01",
			zap.String("ca", iss.CA),
			zap.Strings("offered", e.Offered),
			zap.Time("retry_after", e.RetryAfter()),
			zap.Error(e))
	}
	return e
}

// rememberNotOffered keeps e in memory and in storage, and logs it.
func (iss *Issuer) rememberNotOffered(ctx context.Context, e *ChallengeNotOfferedError) {
	iss.st.notOffered.set(e)
	iss.logger.Error("the CA does not offer dns-persist-01; no certificate can come from it",
		zap.String("ca", e.CA),
		zap.String("identifier", e.Identifier),
		zap.Strings("offered", e.Offered),
		zap.Time("retry_after", e.RetryAfter()),
		zap.Error(e))

	storage := iss.storage()
	if storage == nil {
		return
	}
	data, err := json.Marshal(notOfferedFile{CA: e.CA, ObservedAt: e.ObservedAt, Identifier: e.Identifier, Offered: e.Offered})
	if err == nil {
		err = storage.Store(ctx, notOfferedKey(iss.IssuerKey()), data)
	}
	if err != nil {
		iss.logger.Warn("could not store that the CA does not offer dns-persist-01; other instances will learn it with an order of their own", zap.Error(err))
	}
}

// forgetNotOffered drops the observation once an order finds the
// challenge offered. Issue's pre-check read storage within the last
// minute, so the memory tells whether there is anything to remove; an
// observation another instance stored since is removed by its next
// order, or stops orders until its hour is up.
func (iss *Issuer) forgetNotOffered(ctx context.Context) {
	if iss.st.notOffered.set(nil) == nil {
		return
	}
	iss.logger.Info("the CA offers dns-persist-01 now", zap.String("ca", iss.CA))
	if storage := iss.storage(); storage != nil {
		if err := storage.Delete(ctx, notOfferedKey(iss.IssuerKey())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			iss.logger.Warn("could not remove the record that the CA does not offer dns-persist-01; `caddy persist check` may report it until the next one", zap.Error(err))
		}
	}
}
