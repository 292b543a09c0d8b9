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

	"github.com/dnspersist/caddy-persist/internal/cache"
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
// dns-persist-01, kept in memory and in its storage.
type notOfferedMemory struct {
	ca string
	// key is where storage keeps the observation (notOfferedKey).
	key     string
	storage func() certmagic.Storage
	// notices rate-limits the log of refusals.
	notices *cache.NoticeBoard
	logger  *zap.Logger
	now     func() time.Time
	// observed is told whether the CA offers dns-persist-01 each time
	// the memory changes.
	observed func(offered bool)

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
	old := m.seen
	m.seen = e
	m.mu.Unlock()
	if m.observed != nil && (old == nil) != (e == nil) {
		m.observed(e == nil)
	}
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

// last returns the last observation, by this issuer or another
// instance sharing its storage, of the CA offering no dns-persist-01, or
// nil when there is none or an order has since found it offered. It
// contacts no CA. Storage is read unless the memory holds a current
// observation or storage was read within notOfferedReread; when storage
// cannot be read, the memory answers.
func (m *notOfferedMemory) last(ctx context.Context) *ChallengeNotOfferedError {
	seen := m.get()
	if seen.current(m.ca, m.now()) || !m.readDue(m.now()) {
		return seen
	}
	storage := m.storage()
	if storage == nil {
		return seen
	}
	data, err := storage.Load(ctx, m.key)
	if errors.Is(err, fs.ErrNotExist) {
		m.set(nil)
		return nil
	}
	if err != nil {
		m.logger.Debug("reading whether the CA offers dns-persist-01", zap.Error(err))
		return seen
	}
	var f notOfferedFile
	if err := json.Unmarshal(data, &f); err != nil || f.CA != m.ca {
		m.logger.Debug("ignoring an unreadable record of the CA not offering dns-persist-01", zap.Error(err))
		return seen
	}
	e := &ChallengeNotOfferedError{CA: f.CA, Identifier: f.Identifier, Offered: f.Offered, ObservedAt: f.ObservedAt}
	m.set(e)
	return e
}

// refuse fails when the CA was seen offering no
// dns-persist-01 within notOfferedTTL, so that no order is placed to learn
// it again. certmagic moves to the next issuer without logging why, so
// the refusal is logged here, once an hour.
func (m *notOfferedMemory) refuse(ctx context.Context) error {
	e := m.last(ctx)
	if !e.current(m.ca, m.now()) {
		return nil
	}
	if m.notices.Due("not-offered|"+m.ca, time.Hour) {
		m.logger.Warn("skipping this issuer: its CA does not offer dns-persist-01",
			zap.String("ca", m.ca),
			zap.Strings("offered", e.Offered),
			zap.Time("retry_after", e.RetryAfter()),
			zap.Error(e))
	}
	return e
}

// remember keeps e in memory and in storage, and logs it.
func (m *notOfferedMemory) remember(ctx context.Context, e *ChallengeNotOfferedError) {
	m.set(e)
	m.logger.Error("the CA does not offer dns-persist-01; no certificate can come from it",
		zap.String("ca", e.CA),
		zap.String("identifier", e.Identifier),
		zap.Strings("offered", e.Offered),
		zap.Time("retry_after", e.RetryAfter()),
		zap.Error(e))

	storage := m.storage()
	if storage == nil {
		return
	}
	data, err := json.Marshal(notOfferedFile{CA: e.CA, ObservedAt: e.ObservedAt, Identifier: e.Identifier, Offered: e.Offered})
	if err == nil {
		err = storage.Store(ctx, m.key, data)
	}
	if err != nil {
		m.logger.Warn("could not store that the CA does not offer dns-persist-01; other instances will learn it with an order of their own", zap.Error(err))
	}
}

// forget drops the observation once an order finds the
// challenge offered. Issue's pre-check read storage within the last
// minute, so the memory tells whether there is anything to remove; an
// observation another instance stored since is removed by its next
// order, or stops orders until its hour is up.
func (m *notOfferedMemory) forget(ctx context.Context) {
	if m.set(nil) == nil {
		return
	}
	m.logger.Info("the CA offers dns-persist-01 now", zap.String("ca", m.ca))
	if storage := m.storage(); storage != nil {
		if err := storage.Delete(ctx, m.key); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.logger.Warn("could not remove the record that the CA does not offer dns-persist-01; caddy persist check may report it until the next one", zap.Error(err))
		}
	}
}
