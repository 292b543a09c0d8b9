package account

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
// is read without holding k.mu, which every flow takes, so a slow store
// holds up no on-demand decision. A storage that cannot be read now is no
// reason to drop a working account, so held stays then.
func (k *Keeper) recheck(ctx context.Context, held acme.Account) acme.Account {
	storage := k.storage()
	if storage == nil {
		return held
	}
	stored, err := loadInUse(ctx, storage, locate(k.ca, k.email))
	if err != nil || sameAccount(stored, held) {
		return held
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	// another caller may have changed it meanwhile: its change stands
	if k.current != nil && sameAccount(*k.current, held) {
		k.adopt(stored, "the ACME account in storage changed (its key was rolled over, or a replacement was switched to); using it")
	}
	if k.current == nil {
		return stored
	}
	return *k.current
}

// adopt makes acct the remembered account, saying why. The caller holds
// k.mu.
func (k *Keeper) adopt(acct acme.Account, why string) {
	old := ""
	if k.current != nil {
		old = k.current.Location
	}
	k.logger.Info(why, zap.String("account_url", acct.Location), zap.String("previous_account_url", old))
	k.current, k.checked = &acct, k.now()
}

// Refused is for a CA that refused a request signed by used: another
// instance may have rolled its key over or switched to a replacement, or a
// key change may have been left unfinished with the CA holding the new
// key. It returns the account to retry with, once, when storage holds
// another, or when it completes that key change; otherwise ok is false
// and the refusal stands.
func (k *Keeper) Refused(ctx context.Context, used acme.Account, refusal error) (acct acme.Account, ok bool) {
	if k.pinnedKey != nil || !refusesAccount(refusal) {
		return used, false
	}
	storage := k.storage()
	if storage == nil {
		return used, false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	loc := locate(k.ca, k.email)
	stored, err := loadInUse(ctx, storage, loc)
	if err != nil {
		return used, false
	}
	if !sameAccount(stored, used) {
		k.adopt(stored, "the CA refused the remembered ACME account, and storage holds a changed one; using it")
		return stored, true
	}
	if !storage.Exists(ctx, loc.rolloverKey()) {
		return used, false
	}
	var changed bool
	acct, err = k.withLock(ctx, storage, loc, func() (acme.Account, error) {
		stored, err := loadStored(ctx, storage, loc)
		if err != nil {
			return acme.Account{}, err
		}
		stored, changed, err = k.finishRollover(ctx, storage, loc, stored)
		changed = changed || !sameAccount(stored, used)
		return stored, err
	})
	if err != nil {
		k.logger.Warn("the CA refused the ACME account's key, and completing an unfinished key change failed", zap.String("account_url", used.Location), zap.Error(err))
		return used, false
	}
	if !changed {
		return used, false
	}
	k.adopt(acct, "the CA refused the ACME account's key; completed the key change a rollover left unfinished, and using the new key")
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
