package persist

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/record"
)

// replaceVanishedAccount handles a CA that no longer knows the account:
// every record naming it is useless, so the operator is told first, with
// the old URL; then the old files are set aside (never deleted), a new
// account is registered, and the records to publish for it are logged.
func (iss *Issuer) replaceVanishedAccount(ctx context.Context, old acme.Account, dir caDirectory, plan orderPlan) (acme.Account, error) {
	// one answer could be a CA's hiccup: ask again, by key, before acting
	if found, err := iss.lookUpAccount(ctx, old.PrivateKey); err == nil {
		iss.logger.Warn("the CA said the ACME account does not exist, but it still knows the key; keeping the account",
			zap.String("account_url", found.Location))
		return found, nil
	} else if !errors.Is(err, errAccountUnknown) {
		return acme.Account{}, fmt.Errorf("the CA said ACME account %s does not exist, and confirming that failed: %w", old.Location, err)
	}
	iss.logger.Error("the CA says the ACME account no longer exists; every dns-persist-01 record naming it has stopped working",
		zap.String("old_account_url", old.Location),
		zap.String("ca", iss.CA))

	iss.st.acctMu.Lock()
	defer iss.st.acctMu.Unlock()
	storage := iss.getStorage()
	loc := locateAccount(iss.CA, iss.Email)
	acct, err := iss.withRegistrationLock(ctx, storage, loc, func() (acme.Account, error) {
		stored, err := loadStoredAccount(ctx, storage, loc)
		ours := err == nil && (iss.accountKey == nil || sameKey(stored.PrivateKey, iss.accountKey))
		// another instance sharing the storage may have replaced it already
		if ours && stored.Location != old.Location {
			return stored, nil
		}
		// a pinned key may live only in the config, beside another
		// account's files, which are not this one's to move
		if ours || iss.accountKey == nil {
			if err := setAside(ctx, storage, []string{loc.Key, loc.Reg}, "vanished", iss.now().Unix()); err != nil {
				return acme.Account{}, err
			}
		}
		return iss.registerWithKeyOrNew(ctx, storage, loc)
	})
	if err != nil {
		return acme.Account{}, err
	}
	iss.st.acct = &acct

	iss.logger.Error("replaced the vanished ACME account; publish the new records, or no certificate can be obtained",
		zap.String("old_account_url", old.Location),
		zap.String("new_account_url", acct.Location),
		zap.Strings("records", iss.zoneLines(plan, acct, dir)))
	return acct, nil
}

// setAside moves the given account files to names ending in
// ".<why>-<unix>", so the old key is kept but the place is free. A file is
// deleted only once its copy has been stored and read back intact; a file
// that cannot be read stops everything, since it cannot be copied.
func setAside(ctx context.Context, storage certmagic.Storage, keys []string, why string, now int64) error {
	suffix := "." + why + "-" + strconv.FormatInt(now, 10)
	var copied []string
	for _, key := range keys {
		data, err := storage.Load(ctx, key)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading %s to keep a copy before replacing the account: %w (nothing was changed)", key, err)
		}
		if err := storage.Store(ctx, key+suffix, data); err != nil {
			return fmt.Errorf("keeping a copy of %s before replacing the account: %w (nothing was changed)", key, err)
		}
		if back, err := storage.Load(ctx, key+suffix); err != nil || !bytes.Equal(back, data) {
			return fmt.Errorf("the copy %s of %s does not read back intact; nothing was deleted", key+suffix, key)
		}
		copied = append(copied, key)
	}
	for _, key := range copied {
		if err := storage.Delete(ctx, key); err != nil && storage.Exists(ctx, key) {
			return fmt.Errorf("moving %s aside: %w", key, err)
		}
	}
	return nil
}

// replacement is an account replaced by new_account_if_missing.
type replacement struct {
	oldURL, newURL string
}

// replaceUnusableAccount handles stored account files that cannot be used,
// as new_account_if_missing allows. When only the registration is damaged
// and the CA still knows the key, the registration is rebuilt and the
// account kept; otherwise a new account is registered. The old files are
// set aside either way. The caller holds acctMu.
func (iss *Issuer) replaceUnusableAccount(ctx context.Context, storage certmagic.Storage, loc accountLocation, cause *StorageError, storedKey crypto.Signer) (acme.Account, error) {
	return iss.withRegistrationLock(ctx, storage, loc, func() (acme.Account, error) {
		// another instance may have repaired it while we waited for the lock
		if acct, err := loadStoredAccount(ctx, storage, loc); err == nil {
			return acct, nil
		}
		now := iss.now().Unix()
		if cause.Key == loc.Reg && storedKey != nil {
			if acct, err := iss.lookUpAccount(ctx, storedKey); err == nil {
				if err := setAside(ctx, storage, []string{loc.Reg}, "unusable", now); err != nil {
					return acme.Account{}, err
				}
				if err := saveAccount(ctx, storage, loc, acct); err != nil {
					return acme.Account{}, err
				}
				iss.logger.Warn("rebuilt an unusable account registration from the CA; the account is unchanged and the old file is kept",
					zap.String("account_url", acct.Location), zap.String("unusable_file", cause.Key))
				return acct, nil
			}
		}

		oldURL := "unknown (the registration is unreadable)"
		if reg, err := storage.Load(ctx, loc.Reg); err == nil {
			var old acme.Account
			if json.Unmarshal(reg, &old) == nil && old.Location != "" {
				oldURL = old.Location
			}
		}
		if err := setAside(ctx, storage, []string{loc.Key, loc.Reg}, "unusable", now); err != nil {
			return acme.Account{}, err
		}
		acct, err := iss.registerWithKeyOrNew(ctx, storage, loc)
		if err != nil {
			return acme.Account{}, err
		}
		iss.st.replaced = &replacement{oldURL: oldURL, newURL: acct.Location}
		iss.logger.Error("replaced an unusable ACME account, as new_account_if_missing allows; every published record must be republished",
			zap.String("old_account_url", oldURL),
			zap.String("new_account_url", acct.Location),
			zap.String("unusable_file", cause.Key),
			zap.NamedError("cause", cause.Err))
		return acct, nil
	})
}

// registerWithKeyOrNew registers the pinned account_key, or a new key.
func (iss *Issuer) registerWithKeyOrNew(ctx context.Context, storage certmagic.Storage, loc accountLocation) (acme.Account, error) {
	if iss.accountKey != nil {
		return iss.registerAccount(ctx, storage, loc, iss.accountKey, true)
	}
	key, err := newAccountKey()
	if err != nil {
		return acme.Account{}, fmt.Errorf("generating account key: %v", err)
	}
	return iss.registerAccount(ctx, storage, loc, key, false)
}

// logReplacementRecords logs, once, the records an order's names need
// after new_account_if_missing replaced the account.
func (iss *Issuer) logReplacementRecords(plan orderPlan, acct acme.Account, dir caDirectory) {
	iss.st.acctMu.Lock()
	r := iss.st.replaced
	iss.st.replaced = nil
	iss.st.acctMu.Unlock()
	if r == nil {
		return
	}
	iss.logger.Error("republish these records for the new ACME account",
		zap.String("old_account_url", r.oldURL),
		zap.String("new_account_url", r.newURL),
		zap.Strings("records", iss.zoneLines(plan, acct, dir)))
}

// zoneLines renders the records an order's names need, as zone file lines.
// They need the issuer domain names; without them the list is empty.
func (iss *Issuer) zoneLines(plan orderPlan, acct acme.Account, dir caDirectory) []string {
	offered := iss.offeredBeforeOrder(dir)
	if offered == nil {
		return nil
	}
	var lines []string
	for _, base := range plan.bases {
		exp, err := iss.expectation(base, plan.wildcard[base], offered, acct, dir)
		if err != nil {
			continue
		}
		rec := exp.Want(record.Verdict{})
		if value, err := rec.Value(); err == nil {
			lines = append(lines, record.ZoneLine(base, value))
		}
	}
	return lines
}
