package persist

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
)

// An account another client registered can be the issuer's: its records
// already name its URL, so bringing it here changes nothing in DNS. The
// import asks the CA for the account of the key (newAccount with
// onlyReturnExisting), so it never registers one, and stores it where
// certmagic keeps accounts for the issuer's CA and email, under the
// registration lock, never over another account.

var (
	// errImportUnknownAtCA is a key the CA knows no account for.
	errImportUnknownAtCA = errors.New("the CA knows no account for this key")
	// errImportURLMismatch is a CA that names another account URL for the
	// key than the client's files do.
	errImportURLMismatch = errors.New("the CA names another account URL for this key")
	// errImportPinned is a config whose account_key is another key.
	errImportPinned = errors.New("the config pins another account_key")
)

// importOutcome says what an import did.
type importOutcome struct {
	// Account is the account as the CA describes it.
	Account acme.Account
	// StoredAt is the registration's storage key.
	StoredAt string
	// AlreadyStored is set when storage held this very account already.
	AlreadyStored bool
	// Pinned is set when the config's account_key is this key, so
	// nothing needed storing.
	Pinned bool
}

// importAccount makes src the issuer's account: it confirms the account
// at the CA by its key and stores it, unless storage holds another
// account for the issuer's CA and email. Nothing is stored when the CA
// knows no account for the key, or names another URL for it than src.
func (iss *Issuer) importAccount(ctx context.Context, src foreignAccount) (importOutcome, error) {
	a := iss.accounts
	storage := a.storage()
	if storage == nil {
		return importOutcome{}, errNoStorage
	}
	loc := locateAccount(a.ca, a.email)
	if a.pinnedKey != nil && !sameKey(a.pinnedKey, src.key) {
		return importOutcome{}, fmt.Errorf("%w for %s; the issuer uses that key's account whatever storage holds: remove account_key from the config to use the imported account, or put this key in account_key", errImportPinned, a.ca)
	}
	// refuse early, before asking the CA, when the place is taken
	if err := importable(ctx, storage, loc, src); err != nil {
		return importOutcome{}, err
	}

	acct, err := a.lookUp(ctx, src.key)
	switch {
	case errors.Is(err, errAccountUnknown):
		return importOutcome{}, fmt.Errorf("%w: %s knows no account for the key in %s, so nothing was imported: check that the folder holds the account for this CA (a staging account is not a production account), or let this issuer register its own account and publish its records (see docs/accounts.md)",
			errImportUnknownAtCA, a.ca, src.dir)
	case err != nil:
		return importOutcome{}, err
	case acct.Status != acme.StatusValid:
		return importOutcome{}, fmt.Errorf("ACME account %s has status %q at %s; it cannot obtain certificates, and records naming it no longer work; nothing was imported", acct.Location, acct.Status, a.ca)
	case src.url != "" && acct.Location != src.url:
		return importOutcome{}, fmt.Errorf("%w: %s says the account of the key in %s is %s, while %s recorded %s; records naming %s will not pass at this CA. Nothing was imported: check that the folder holds the account for %s; if it does, records must name %s: put the key in account_key and publish the records that caddy persist records prints",
			errImportURLMismatch, a.ca, src.dir, acct.Location, src.client, src.url, src.url, a.ca, acct.Location)
	}

	out := importOutcome{Account: acct, StoredAt: loc.Reg, Pinned: a.pinnedKey != nil}
	_, err = a.withLock(ctx, storage, loc, func() (acme.Account, error) {
		// another instance may have registered or imported meanwhile
		if err := importable(ctx, storage, loc, src); err != nil {
			return acme.Account{}, err
		}
		stored, err := loadStoredAccount(ctx, storage, loc)
		if err == nil && stored.Location == acct.Location {
			out.AlreadyStored = true
			return stored, nil
		}
		return acct, saveAccount(ctx, storage, loc, acct)
	})
	if err != nil {
		return importOutcome{}, err
	}
	a.forget()
	a.logger.Info("imported an ACME account from another client",
		zap.String("from", string(src.client)),
		zap.String("folder", src.dir),
		zap.String("account_url", acct.Location),
		zap.String("stored_at", loc.Reg))
	return out, nil
}

// importable refuses a location that holds another account, or account
// files that cannot be used: they are never overwritten.
func importable(ctx context.Context, storage certmagic.Storage, loc accountLocation, src foreignAccount) error {
	stored, err := loadStoredAccount(ctx, storage, loc)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err == nil, errors.Is(err, errRegistrationMissing):
		if sameKey(stored.PrivateKey, src.key) {
			return nil
		}
		return fmt.Errorf("%w: %s holds the account %s for this CA and email, and records may name it. Nothing was imported. To use the imported account instead, move that account's files (%s and %s) aside first (see \"Bringing an account from another client\" in docs/accounts.md), or give the issuer another email",
			errDifferentKey, describeStorage(storage), storedURL(ctx, storage, loc), loc.Reg, loc.Key)
	default:
		return err
	}
}
