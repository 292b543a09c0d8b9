package persist

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
)

// replaceVanishedAccount handles a CA that no longer knows the account:
// every record naming it is useless, so the operator is told first, with
// the old URL; then the old files are set aside (never deleted), a new
// account is registered, and the records to publish for it are logged.
func (iss *Issuer) replaceVanishedAccount(ctx context.Context, old acme.Account, dir caDirectory, plan orderPlan) (acme.Account, error) {
	iss.logger.Error("the CA says the ACME account no longer exists; every dns-persist-01 record naming it has stopped working",
		zap.String("old_account_url", old.Location),
		zap.String("ca", iss.CA))

	iss.st.acctMu.Lock()
	defer iss.st.acctMu.Unlock()
	storage := iss.getStorage()
	loc := locateAccount(iss.CA, iss.Email)
	if err := storage.Lock(ctx, loc.LockKey); err != nil {
		return acme.Account{}, fmt.Errorf("locking account registration: %v", err)
	}
	defer func() {
		if err := storage.Unlock(context.WithoutCancel(ctx), loc.LockKey); err != nil {
			iss.logger.Error("unlocking account registration", zap.String("lock", loc.LockKey), zap.Error(err))
		}
	}()

	// another instance sharing the storage may have replaced it already
	acct, err := loadStoredAccount(ctx, storage, loc)
	if err != nil || acct.Location == old.Location {
		if err := setAside(ctx, storage, loc, "vanished", iss.now().Unix()); err != nil {
			return acme.Account{}, err
		}
		key := iss.accountKey
		if key == nil {
			if key, err = newAccountKey(); err != nil {
				return acme.Account{}, fmt.Errorf("generating account key: %v", err)
			}
		}
		acct, err = iss.registerAccount(ctx, storage, loc, key)
		if err != nil {
			return acme.Account{}, err
		}
	}
	iss.st.acct = &acct

	iss.logger.Error("replaced the vanished ACME account; publish the new records, or no certificate can be obtained",
		zap.String("old_account_url", old.Location),
		zap.String("new_account_url", acct.Location),
		zap.Strings("records", iss.zoneLines(plan, acct, dir)))
	return acct, nil
}

// setAside moves the account files at loc to names ending in
// ".<why>-<unix>", so the old key is kept but the place is free.
func setAside(ctx context.Context, storage certmagic.Storage, loc accountLocation, why string, now int64) error {
	suffix := "." + why + "-" + strconv.FormatInt(now, 10)
	for _, key := range []string{loc.Key, loc.Reg} {
		data, err := storage.Load(ctx, key)
		if err != nil {
			continue
		}
		if err := storage.Store(ctx, key+suffix, data); err != nil {
			return fmt.Errorf("keeping a copy of %s before replacing the account: %w", key, err)
		}
	}
	for _, key := range []string{loc.Reg, loc.Key} {
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

// replaceUnusableAccount registers a new account in place of one whose
// stored files cannot be used, as new_account_if_missing allows. The
// caller holds acctMu.
func (iss *Issuer) replaceUnusableAccount(ctx context.Context, storage certmagic.Storage, loc accountLocation, cause *StorageError) (acme.Account, error) {
	if err := storage.Lock(ctx, loc.LockKey); err != nil {
		return acme.Account{}, fmt.Errorf("locking account registration: %v", err)
	}
	defer func() {
		if err := storage.Unlock(context.WithoutCancel(ctx), loc.LockKey); err != nil {
			iss.logger.Error("unlocking account registration", zap.String("lock", loc.LockKey), zap.Error(err))
		}
	}()
	// another instance may have replaced it while we waited for the lock
	if acct, err := loadStoredAccount(ctx, storage, loc); err == nil {
		return acct, nil
	}

	oldURL := "unknown (the registration is unreadable)"
	if reg, err := storage.Load(ctx, loc.Reg); err == nil {
		var old acme.Account
		if json.Unmarshal(reg, &old) == nil && old.Location != "" {
			oldURL = old.Location
		}
	}
	if err := setAside(ctx, storage, loc, "unusable", iss.now().Unix()); err != nil {
		return acme.Account{}, err
	}
	key := iss.accountKey
	if key == nil {
		var err error
		if key, err = newAccountKey(); err != nil {
			return acme.Account{}, fmt.Errorf("generating account key: %v", err)
		}
	}
	acct, err := iss.registerAccount(ctx, storage, loc, key)
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
		rec := exp.Want(Verdict{Issuer: chooseIssuer(exp, nil)})
		if value, err := rec.Value(); err == nil {
			lines = append(lines, ZoneLine(base, value))
		}
	}
	return lines
}
