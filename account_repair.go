package persist

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
)

// restoreFromCA is the way back for an account whose key survives while
// its registration file is lost or damaged: the CA knows the account by
// its key, so asking it loses nothing. A damaged registration is kept as
// <file>.<setAsideAs>-<unix> before the rebuilt one is stored; setAsideAs
// is empty when the file is lost. errAccountUnknown means the CA has never
// seen the key, and nothing was changed.
func (a *accounts) restoreFromCA(ctx context.Context, storage certmagic.Storage, loc accountLocation, key crypto.Signer, setAsideAs string) (acme.Account, error) {
	acct, err := a.lookUp(ctx, key)
	if err != nil {
		return acme.Account{}, err
	}
	if setAsideAs != "" {
		if err := setAside(ctx, storage, []string{loc.Reg}, setAsideAs, a.now().Unix()); err != nil {
			return acme.Account{}, err
		}
	}
	if a.pinnedKey != nil {
		a.keepPinnedCopy(ctx, storage, loc, acct)
	} else if err := saveAccount(ctx, storage, loc, acct); err != nil {
		return acme.Account{}, err
	}
	return acct, nil
}

// recoverRegistration rebuilds a lost registration file from the CA. A
// stored key the CA has never seen is what a registration interrupted
// before the CA answered leaves behind; with register, that key is
// registered now. It all happens under the registration lock: a key
// without its registration is also what another instance registering
// right now has stored so far, and that registration is then waited for
// rather than raced at the CA.
func (a *accounts) recoverRegistration(ctx context.Context, storage certmagic.Storage, loc accountLocation, register bool) (acme.Account, error) {
	return a.withLock(ctx, storage, loc, func() (acme.Account, error) {
		stored, err := loadStoredAccount(ctx, storage, loc)
		if err == nil {
			return stored, nil
		}
		if !errors.Is(err, errRegistrationMissing) {
			return acme.Account{}, err
		}
		acct, err := a.restoreFromCA(ctx, storage, loc, stored.PrivateKey, "")
		if err == nil {
			a.logger.Warn("restored a missing account registration from the CA",
				zap.String("account_url", acct.Location), zap.String("stored_at", loc.Reg))
		}
		if !errors.Is(err, errAccountUnknown) {
			return acct, err
		}
		if !register {
			return acme.Account{}, noAccountYet(storage, loc)
		}
		a.logger.Warn("the stored account key has no account at the CA (a registration was interrupted); registering it")
		return a.register(ctx, storage, loc, stored.PrivateKey, false)
	})
}

// replacement is an account replaced by new_account_if_missing.
type replacement struct {
	oldURL, newURL string
}

// replaceUnusable handles stored account files that cannot be used, as
// new_account_if_missing allows. When only the registration is damaged and
// the CA still knows the key, the registration is rebuilt and the account
// kept; when the CA has never seen the key, or the key itself is damaged,
// a new account is registered. The old files are set aside either way.
// The caller holds a.mu.
func (a *accounts) replaceUnusable(ctx context.Context, storage certmagic.Storage, loc accountLocation, cause *StorageError, storedKey crypto.Signer) (acme.Account, error) {
	return a.withLock(ctx, storage, loc, func() (acme.Account, error) {
		// another instance may have repaired it while we waited for the lock
		if acct, err := loadStoredAccount(ctx, storage, loc); err == nil {
			return acct, nil
		}
		if cause.Key == loc.Reg && storedKey != nil {
			acct, err := a.restoreFromCA(ctx, storage, loc, storedKey, "unusable")
			if err == nil {
				a.logger.Warn("rebuilt an unusable account registration from the CA; the account is unchanged and the old file is kept",
					zap.String("account_url", acct.Location), zap.String("unusable_file", cause.Key))
			}
			if !errors.Is(err, errAccountUnknown) {
				// a CA that cannot answer now is no reason to give up an
				// account it may still know
				return acct, err
			}
		}

		oldURL := storedURL(ctx, storage, loc)
		if err := setAside(ctx, storage, []string{loc.Key, loc.Reg}, "unusable", a.now().Unix()); err != nil {
			return acme.Account{}, err
		}
		acct, err := a.registerNew(ctx, storage, loc)
		if err != nil {
			return acme.Account{}, err
		}
		a.replaced = &replacement{oldURL: oldURL, newURL: acct.Location}
		a.logger.Error("replaced an unusable ACME account, as new_account_if_missing allows; every published record must be republished",
			zap.String("old_account_url", oldURL),
			zap.String("new_account_url", acct.Location),
			zap.String("unusable_file", cause.Key),
			zap.NamedError("cause", cause.Err))
		return acct, nil
	})
}

// takeReplacement returns, once, the replacement whose records have not
// been logged yet.
func (a *accounts) takeReplacement() *replacement {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.replaced
	a.replaced = nil
	return r
}

// replaceVanished handles a CA that says it no longer knows the account:
// every record naming it is useless, so the operator is told first, with
// the old URL; then the old files are set aside (never deleted) and a new
// account is registered, or the one another instance registered is used.
// replaced says which; the caller then logs the records to publish.
func (a *accounts) replaceVanished(ctx context.Context, old acme.Account) (acct acme.Account, replaced bool, err error) {
	// one answer could be a CA's hiccup: ask again, by key, before acting
	if found, err := a.lookUp(ctx, old.PrivateKey); err == nil {
		a.logger.Warn("the CA said the ACME account does not exist, but it still knows the key; keeping the account",
			zap.String("account_url", found.Location))
		return found, false, nil
	} else if !errors.Is(err, errAccountUnknown) {
		return acme.Account{}, false, fmt.Errorf("the CA said ACME account %s does not exist, and confirming that failed: %w", old.Location, err)
	}
	a.logger.Error("the CA says the ACME account no longer exists; every dns-persist-01 record naming it has stopped working",
		zap.String("old_account_url", old.Location),
		zap.String("ca", a.ca))

	a.mu.Lock()
	defer a.mu.Unlock()
	storage := a.storage()
	loc := locateAccount(a.ca, a.email)
	acct, err = a.withLock(ctx, storage, loc, func() (acme.Account, error) {
		stored, err := loadStoredAccount(ctx, storage, loc)
		ours := err == nil && (a.pinnedKey == nil || sameKey(stored.PrivateKey, a.pinnedKey))
		// another instance sharing the storage may have replaced it
		// already, or rolled its key over (the CA knows no account for
		// the old key then)
		if ours && !sameAccount(stored, old) {
			return stored, nil
		}
		// a pinned key may live only in the config, beside another
		// account's files, which are not this one's to move
		if ours || a.pinnedKey == nil {
			if err := setAside(ctx, storage, []string{loc.Key, loc.Reg}, "vanished", a.now().Unix()); err != nil {
				return acme.Account{}, err
			}
		}
		return a.registerNew(ctx, storage, loc)
	})
	if err != nil {
		return acme.Account{}, false, err
	}
	a.current = &acct
	return acct, true, nil
}
