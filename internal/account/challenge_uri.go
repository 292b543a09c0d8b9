package account

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"sync"
	"time"

	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
)

// Draft -01 (section 3.1) lets a dns-persist-01 challenge carry
// accounturi, the account URI the CA validates the record against. It is
// usually the account URL, but need not be; when it is not, it is
// remembered here, in memory and in storage beside the account's files,
// so that every check judges records against it too, here, in every
// instance sharing the storage and after a restart, until a challenge
// names another or none (the account URL).

// challengeURIMemory is the accounturi the CA's last challenge named for
// the issuer's account, when it was not the account's URL, as storage
// held it when last read.
type challengeURIMemory struct {
	mu sync.Mutex
	// read is when storage was last read; zero reads it at the next use
	read time.Time
	file challengeURIFile
}

// expire makes the next use read storage again.
func (m *challengeURIMemory) expire() {
	m.mu.Lock()
	m.read = time.Time{}
	m.mu.Unlock()
}

// challengeURIFile is the storage form of the memory.
type challengeURIFile struct {
	AccountURL string `json:"account_url"`
	AccountURI string `json:"accounturi"`
}

// ChallengeURI returns the accounturi the CA's challenges last named for
// acct when it is not acct's URL, or "". Another instance sharing the
// storage may have learnt a new one, so storage is read again as the
// account is (accountRecheck, and at once after Refresh); when it does
// not answer, what was read last stands.
func (k *Keeper) ChallengeURI(ctx context.Context, acct acme.Account) string {
	m := &k.challengeURI
	m.mu.Lock()
	defer m.mu.Unlock()
	if storage := k.storage(); storage != nil && k.now().Sub(m.read) >= accountRecheck {
		data, err := storage.Load(ctx, locate(k.ca, k.email).challengeAccountURI())
		switch {
		case err == nil:
			var file challengeURIFile
			if json.Unmarshal(data, &file) == nil {
				m.file, m.read = file, k.now()
			}
		case errors.Is(err, fs.ErrNotExist):
			m.file, m.read = challengeURIFile{}, k.now()
		}
	}
	if m.file.AccountURL == acct.Location {
		return m.file.AccountURI
	}
	return ""
}

// RememberChallengeURI keeps uri, the accounturi a challenge named for
// acct, in memory and in storage beside the account's files, forgetting
// it when it is acct's URL.
func (k *Keeper) RememberChallengeURI(ctx context.Context, acct acme.Account, uri string) {
	if known := k.ChallengeURI(ctx, acct); known == uri || uri == acct.Location && known == "" {
		return
	}
	m := &k.challengeURI
	m.mu.Lock()
	defer m.mu.Unlock()
	storage := k.storage()
	key := locate(k.ca, k.email).challengeAccountURI()
	var err error
	m.read = k.now()
	if uri == acct.Location {
		m.file = challengeURIFile{}
		if storage != nil {
			if err = storage.Delete(ctx, key); errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		}
	} else {
		m.file = challengeURIFile{AccountURL: acct.Location, AccountURI: uri}
		k.logger.Warn("the CA's dns-persist-01 challenges name another accounturi than the account URL; records must name the challenge's",
			zap.String("account_url", acct.Location), zap.String("challenge_accounturi", uri))
		if storage != nil {
			var data []byte
			if data, err = json.Marshal(m.file); err == nil {
				err = storage.Store(ctx, key, data)
			}
		}
	}
	if err != nil {
		k.logger.Warn("could not store the accounturi the CA's challenges name; once storage is read again (after a restart, or within a minute) records are judged against what it holds, until the next order", zap.Error(err))
	}
}
