package persist

import (
	"context"
	"errors"
	"time"

	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
)

// Instances sharing a storage share the account, and any of them may roll
// its key over or switch to a replacement (`caddy persist account`); the
// others hold the old one in memory. They pick the new one up from
// storage without a restart: issuance and the reports compare the
// remembered account with storage before they use it, the other flows at
// most accountRecheck later, and a CA refusing a request signed with the
// remembered key makes issuance look again at once and retry.

// accountRecheck is how long a remembered account is used before it is
// compared with storage again, by the flows that use it most (the
// on-demand permission, the daily check).
const accountRecheck = time.Minute

// sameAccount reports whether a and b are the same account with the same
// key.
func sameAccount(a, b acme.Account) bool {
	return a.Location == b.Location && sameKey(a.PrivateKey, b.PrivateKey)
}

// recheck compares held, the remembered account, with storage, and uses
// the stored one when it differs, returning the account to use. Storage
// is read without holding a.mu, which every flow takes, so a slow store
// holds up no on-demand decision. A storage that cannot be read now is no
// reason to drop a working account, so held stays then.
func (a *accounts) recheck(ctx context.Context, held acme.Account) acme.Account {
	storage := a.storage()
	if storage == nil {
		return held
	}
	stored, err := loadInUse(ctx, storage, locateAccount(a.ca, a.email))
	if err != nil || sameAccount(stored, held) {
		return held
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// another caller may have changed it meanwhile: its change stands
	if a.current != nil && sameAccount(*a.current, held) {
		a.adopt(stored, "the ACME account in storage changed (its key was rolled over, or a replacement was switched to); using it")
	}
	if a.current == nil {
		return stored
	}
	return *a.current
}

// adopt makes acct the remembered account, saying why. The caller holds
// a.mu.
func (a *accounts) adopt(acct acme.Account, why string) {
	old := ""
	if a.current != nil {
		old = a.current.Location
	}
	a.logger.Info(why, zap.String("account_url", acct.Location), zap.String("previous_account_url", old))
	a.current, a.checked = &acct, a.now()
}

// pickUpChanged is for a CA that refused a request signed by used: another
// instance may have rolled its key over or switched to a replacement, or a
// key change may have been left unfinished with the CA holding the new
// key. It returns the account to retry with, once, when storage holds
// another, or when it completes that key change; otherwise ok is false
// and the refusal stands.
func (a *accounts) pickUpChanged(ctx context.Context, used acme.Account, refusal error) (acct acme.Account, ok bool) {
	if a.pinnedKey != nil || !refusesAccount(refusal) {
		return used, false
	}
	storage := a.storage()
	if storage == nil {
		return used, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	loc := locateAccount(a.ca, a.email)
	stored, err := loadInUse(ctx, storage, loc)
	if err != nil {
		return used, false
	}
	if !sameAccount(stored, used) {
		a.adopt(stored, "the CA refused the remembered ACME account, and storage holds a changed one; using it")
		return stored, true
	}
	if !storage.Exists(ctx, loc.rolloverKey()) {
		return used, false
	}
	var changed bool
	acct, err = a.withLock(ctx, storage, loc, func() (acme.Account, error) {
		stored, err := loadStoredAccount(ctx, storage, loc)
		if err != nil {
			return acme.Account{}, err
		}
		stored, changed, err = a.finishRollover(ctx, storage, loc, stored)
		changed = changed || !sameAccount(stored, used)
		return stored, err
	})
	if err != nil {
		a.logger.Warn("the CA refused the ACME account's key, and completing an unfinished key change failed", zap.String("account_url", used.Location), zap.Error(err))
		return used, false
	}
	if !changed {
		return used, false
	}
	a.adopt(acct, "the CA refused the ACME account's key; completed the key change a rollover left unfinished, and using the new key")
	return acct, true
}

// refusesAccount reports whether err is the CA refusing a request for
// who signed it rather than for what it asks: a signature the account's
// key does not verify (Pebble and Boulder answer malformed), a key or
// algorithm it does not take, an account it does not know or no longer
// lets act (deactivated: unauthorized). A problem of an authorization,
// such as a failed validation, is not.
func refusesAccount(err error) bool {
	var problem acme.Problem
	if !errors.As(err, &problem) || problem.Resource != nil {
		return false
	}
	switch problem.Type {
	case acme.ProblemTypeMalformed, acme.ProblemTypeUnauthorized, acme.ProblemTypeBadSignatureAlgorithm,
		acme.ProblemTypeBadPublicKey, acme.ProblemTypeAccountDoesNotExist:
		return true
	}
	return false
}

// expireAccountState makes the next use of the account, and of the
// accounturi its challenges named, read storage again: another instance
// may have changed either.
func (iss *Issuer) expireAccountState() {
	iss.accounts.expire()
	iss.st.challengeURI.expire()
}
