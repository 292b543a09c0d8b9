package persist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
)

// Draft -01 (§3.1) lets a dns-persist-01 challenge carry accounturi, the
// account URI the CA validates the record against; Boulder sets it when
// configured with account URI prefixes. It is usually the account URL
// the records were printed with, but need not be: when a challenge names
// it, the solver judges the record against it, as the CA will, and a
// record printed for the account URL fails before the challenge is
// answered. acmez does not parse the field; the ACME client's transport
// reads it from the authorizations of each order (notoffered.go).
//
// A challenge's accounturi that is not the account URL is remembered, in
// memory and in storage beside the account's files, so that the check before an order, the reports
// and the on-demand permission judge records against it too, here and
// after a restart, until a challenge names another or none (the account
// URL).

// noteAccountURI keeps the accounturi of the challenge at url.
func (o *authzOffers) noteAccountURI(url, uri string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.accountURIs == nil {
		o.accountURIs = make(map[string]string)
	}
	o.accountURIs[url] = uri
}

// accountURIOf returns the accounturi the challenge at url carries, or ""
// when it carries none.
func (o *authzOffers) accountURIOf(url string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.accountURIs[url]
}

// ChallengeAccountError is a record that does not pass because the CA's
// challenge names another accounturi than the account URL the records
// were printed with: the CA validates against the challenge's.
type ChallengeAccountError struct {
	// Domain is the base domain of the record.
	Domain string
	// ChallengeURI is the accounturi the challenge names.
	ChallengeURI string
	// AccountURL is the account's URL, which the records name.
	AccountURL string
	// Err is the failed check, a *RecordError (or several, joined).
	Err error
}

func (e *ChallengeAccountError) Error() string {
	return fmt.Sprintf("the CA's dns-persist-01 challenge for %s names accounturi %s, not the account URL %s the records were printed with, and the CA validates the record against the challenge's (see \"The challenge names another account URI\" in docs/troubleshooting.md): %v",
		e.Domain, e.ChallengeURI, e.AccountURL, e.Err)
}

func (e *ChallengeAccountError) Unwrap() error { return e.Err }

// withChallengeAccount explains a failed check of a record judged against
// a challenge's accounturi that is not the account URL.
func withChallengeAccount(err error, domain string, in recordInputs) error {
	if err == nil || in.challengeURI == "" || in.challengeURI == in.acct.Location {
		return err
	}
	var recErr *RecordError
	if !errors.As(err, &recErr) {
		return err
	}
	return &ChallengeAccountError{Domain: domain, ChallengeURI: in.challengeURI, AccountURL: in.acct.Location, Err: err}
}

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

// challengeURIFor returns the accounturi the CA's challenges last named
// for acct when it is not acct's URL, or "". Another instance sharing the
// storage may have learnt a new one, so storage is read again as the
// account is (accountRecheck, and at once before an order); when it does
// not answer, what was read last stands.
func (iss *Issuer) challengeURIFor(ctx context.Context, acct acme.Account) string {
	m := &iss.st.challengeURI
	m.mu.Lock()
	defer m.mu.Unlock()
	if storage := iss.storage(); storage != nil && iss.now().Sub(m.read) >= accountRecheck {
		data, err := storage.Load(ctx, locateAccount(iss.CA, iss.Email).challengeAccountURI())
		switch {
		case err == nil:
			var file challengeURIFile
			if json.Unmarshal(data, &file) == nil {
				m.file, m.read = file, iss.now()
			}
		case errors.Is(err, fs.ErrNotExist):
			m.file, m.read = challengeURIFile{}, iss.now()
		}
	}
	if m.file.AccountURL == acct.Location {
		return m.file.AccountURI
	}
	return ""
}

// rememberChallengeURI keeps the accounturi a challenge named for acct,
// forgetting it when it is acct's URL.
func (iss *Issuer) rememberChallengeURI(ctx context.Context, acct acme.Account, uri string) {
	if known := iss.challengeURIFor(ctx, acct); known == uri || uri == acct.Location && known == "" {
		return
	}
	m := &iss.st.challengeURI
	m.mu.Lock()
	defer m.mu.Unlock()
	storage := iss.storage()
	key := locateAccount(iss.CA, iss.Email).challengeAccountURI()
	var err error
	m.read = iss.now()
	if uri == acct.Location {
		m.file = challengeURIFile{}
		if storage != nil {
			if err = storage.Delete(ctx, key); errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		}
	} else {
		m.file = challengeURIFile{AccountURL: acct.Location, AccountURI: uri}
		iss.logger.Warn("the CA's dns-persist-01 challenges name another accounturi than the account URL; records must name the challenge's",
			zap.String("account_url", acct.Location), zap.String("challenge_accounturi", uri))
		if storage != nil {
			var data []byte
			if data, err = json.Marshal(m.file); err == nil {
				err = storage.Store(ctx, key, data)
			}
		}
	}
	if err != nil {
		iss.logger.Warn("could not store the accounturi the CA's challenges name; once storage is read again (after a restart, or within a minute) records are judged against what it holds, until the next order", zap.Error(err))
	}
}
