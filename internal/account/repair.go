package account

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
func (k *Keeper) restoreFromCA(ctx context.Context, storage certmagic.Storage, loc location, key crypto.Signer, setAsideAs string) (acme.Account, error) {
	acct, err := k.lookUp(ctx, key)
	if err != nil {
		return acme.Account{}, err
	}
	if setAsideAs != "" {
		if err := setAside(ctx, storage, []string{loc.Reg}, setAsideAs, k.now().Unix()); err != nil {
			return acme.Account{}, err
		}
	}
	if k.pinnedKey != nil {
		k.keepPinnedCopy(ctx, storage, loc, acct)
	} else if err := save(ctx, storage, loc, acct); err != nil {
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
func (k *Keeper) recoverRegistration(ctx context.Context, storage certmagic.Storage, loc location, register bool) (acme.Account, error) {
	return k.withLock(ctx, storage, loc, func() (acme.Account, error) {
		stored, err := loadStored(ctx, storage, loc)
		if err == nil {
			return stored, nil
		}
		if !errors.Is(err, errRegistrationMissing) {
			return acme.Account{}, err
		}
		acct, err := k.restoreFromCA(ctx, storage, loc, stored.PrivateKey, "")
		if err == nil {
			k.logger.Warn("restored a missing account registration from the CA",
				zap.String("account_url", acct.Location), zap.String("stored_at", loc.Reg))
		}
		if !errors.Is(err, errAccountUnknown) {
			return acct, err
		}
		if !register {
			return acme.Account{}, noAccountYet(storage, loc)
		}
		k.logger.Warn("the stored account key has no account at the CA (a registration was interrupted); registering it")
		return k.register(ctx, storage, loc, stored.PrivateKey, false)
	})
}

// replacedUnusable is an account replaced by new_account_if_missing.
type replacedUnusable struct {
	oldURL, newURL string
}

// replaceUnusable handles stored account files that cannot be used, as
// new_account_if_missing allows. When only the registration is damaged and
// the CA still knows the key, the registration is rebuilt and the account
// kept; when the CA has never seen the key, or the key itself is damaged,
// a new account is registered. The old files are set aside either way.
// The caller holds k.mu.
func (k *Keeper) replaceUnusable(ctx context.Context, storage certmagic.Storage, loc location, cause *StorageError, storedKey crypto.Signer) (acme.Account, error) {
	return k.withLock(ctx, storage, loc, func() (acme.Account, error) {
		// another instance may have repaired it while we waited for the lock
		if acct, err := loadStored(ctx, storage, loc); err == nil {
			return acct, nil
		}
		if cause.Key == loc.Reg && storedKey != nil {
			acct, err := k.restoreFromCA(ctx, storage, loc, storedKey, "unusable")
			if err == nil {
				k.logger.Warn("rebuilt an unusable account registration from the CA; the account is unchanged and the old file is kept",
					zap.String("account_url", acct.Location), zap.String("unusable_file", cause.Key))
			}
			if !errors.Is(err, errAccountUnknown) {
				// a CA that cannot answer now is no reason to give up an
				// account it may still know
				return acct, err
			}
		}

		oldURL := storedURL(ctx, storage, loc)
		if err := setAside(ctx, storage, []string{loc.Key, loc.Reg}, "unusable", k.now().Unix()); err != nil {
			return acme.Account{}, err
		}
		acct, err := k.registerNew(ctx, storage, loc)
		if err != nil {
			return acme.Account{}, err
		}
		k.replaced = &replacedUnusable{oldURL: oldURL, newURL: acct.Location}
		k.logger.Error("replaced an unusable ACME account, as new_account_if_missing allows; every published record must be republished",
			zap.String("old_account_url", oldURL),
			zap.String("new_account_url", acct.Location),
			zap.String("unusable_file", cause.Key),
			zap.NamedError("cause", cause.Err))
		return acct, nil
	})
}

// TakeReplaced returns, once, the old and new URLs of an account that
// new_account_if_missing replaced, so that the caller logs the records
// the new one needs; ok is false when there is none to log.
func (k *Keeper) TakeReplaced() (oldURL, newURL string, ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	r := k.replaced
	k.replaced = nil
	if r == nil {
		return "", "", false
	}
	return r.oldURL, r.newURL, true
}

// Vanished handles a CA that says it no longer knows the account old:
// every record naming it is useless, so the operator is told first, with
// the old URL; then the old files are set aside (never deleted) and a new
// account is registered, or the one another instance registered is used.
// replaced says which; the caller then logs the records to publish.
func (k *Keeper) Vanished(ctx context.Context, old acme.Account) (acct acme.Account, replaced bool, err error) {
	// one answer could be a CA's hiccup: ask again, by key, before acting
	if found, err := k.lookUp(ctx, old.PrivateKey); err == nil {
		k.logger.Warn("the CA said the ACME account does not exist, but it still knows the key; keeping the account",
			zap.String("account_url", found.Location))
		return found, false, nil
	} else if !errors.Is(err, errAccountUnknown) {
		return acme.Account{}, false, fmt.Errorf("the CA said ACME account %s does not exist, and confirming that failed: %w", old.Location, err)
	}
	k.logger.Error("the CA says the ACME account no longer exists; every dns-persist-01 record naming it has stopped working",
		zap.String("old_account_url", old.Location),
		zap.String("ca", k.ca))

	k.mu.Lock()
	defer k.mu.Unlock()
	storage := k.storage()
	loc := locate(k.ca, k.email)
	acct, err = k.withLock(ctx, storage, loc, func() (acme.Account, error) {
		stored, err := loadStored(ctx, storage, loc)
		ours := err == nil && (k.pinnedKey == nil || sameKey(stored.PrivateKey, k.pinnedKey))
		// another instance sharing the storage may have replaced it
		// already, or rolled its key over (the CA knows no account for
		// the old key then)
		if ours && !sameAccount(stored, old) {
			return stored, nil
		}
		// a pinned key may live only in the config, beside another
		// account's files, which are not this one's to move
		if ours || k.pinnedKey == nil {
			if err := setAside(ctx, storage, []string{loc.Key, loc.Reg}, "vanished", k.now().Unix()); err != nil {
				return acme.Account{}, err
			}
		}
		return k.registerNew(ctx, storage, loc)
	})
	if err != nil {
		return acme.Account{}, false, err
	}
	k.current = &acct
	return acct, true, nil
}
