package account

import (
	"context"
	"crypto"
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

// The refusals of an import, which leave everything as it was; each is a
// *StateError, since what the CA or the config holds refuses it.
var (
	// errImportUnknownAtCA is a key the CA knows no account for.
	errImportUnknownAtCA = &StateError{errors.New("the CA knows no account for this key")}
	// errImportURLMismatch is a CA that names another account URL for the
	// key than the client's files do.
	errImportURLMismatch = &StateError{errors.New("the CA names another account URL for this key")}
	// errImportPinned is a config whose account_key is another key.
	errImportPinned = &StateError{errors.New("the config pins another account_key")}
)

// Imported says what an import did.
type Imported struct {
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

// Import makes src the keeper's account: it confirms the account at the
// CA by its key and stores it, unless storage holds another account for
// the keeper's CA and email. Nothing is stored when the CA knows no
// account for the key, or names another URL for it than src.
func (k *Keeper) Import(ctx context.Context, src Foreign) (Imported, error) {
	storage := k.storage()
	if storage == nil {
		return Imported{}, errNoStorage
	}
	loc := locate(k.ca, k.email)
	key, err := src.signer()
	if err != nil {
		return Imported{}, err
	}
	if k.pinnedKey != nil && !sameKey(k.pinnedKey, key) {
		return Imported{}, fmt.Errorf("%w for %s; the issuer uses that key's account whatever storage holds: remove account_key from the config to use the imported account, or put this key in account_key", errImportPinned, k.ca)
	}
	// refuse early, before asking the CA, when the place is taken
	if err := importable(ctx, storage, loc, key); err != nil {
		return Imported{}, err
	}

	acct, err := k.lookUp(ctx, key)
	switch {
	case errors.Is(err, errAccountUnknown):
		return Imported{}, fmt.Errorf("%w: %s knows no account for the key in %s, so nothing was imported: check that the folder holds the account for this CA (a staging account is not a production account), or let this issuer register its own account and publish its records (see docs/accounts.md)",
			errImportUnknownAtCA, k.ca, src.Dir)
	case err != nil:
		return Imported{}, err
	case acct.Status != acme.StatusValid:
		return Imported{}, &StateError{fmt.Errorf("ACME account %s has status %q at %s; it cannot obtain certificates, and records naming it no longer work; nothing was imported", acct.Location, acct.Status, k.ca)}
	case src.URL != "" && acct.Location != src.URL:
		return Imported{}, fmt.Errorf("%w: %s says the account of the key in %s is %s, while %s recorded %s; records naming %s will not pass at this CA. Nothing was imported: check that the folder holds the account for %s; if it does, records must name %s: put the key in account_key and publish the records that caddy persist records prints",
			errImportURLMismatch, k.ca, src.Dir, acct.Location, src.Client, src.URL, src.URL, k.ca, acct.Location)
	}

	out := Imported{Account: acct, StoredAt: loc.Reg, Pinned: k.pinnedKey != nil}
	_, err = k.withLock(ctx, storage, loc, func() (acme.Account, error) {
		// another instance may have registered or imported meanwhile
		if err := importable(ctx, storage, loc, key); err != nil {
			return acme.Account{}, err
		}
		stored, err := loadStored(ctx, storage, loc)
		if err == nil && stored.Location == acct.Location {
			out.AlreadyStored = true
			return stored, nil
		}
		return acct, save(ctx, storage, loc, acct)
	})
	if err != nil {
		return Imported{}, err
	}
	k.Forget()
	k.logger.Info("imported an ACME account from another client",
		zap.String("from", string(src.Client)),
		zap.String("folder", src.Dir),
		zap.String("account_url", acct.Location),
		zap.String("stored_at", loc.Reg))
	return out, nil
}

// importable refuses a location that holds another account, or account
// files that cannot be used: they are never overwritten.
func importable(ctx context.Context, storage certmagic.Storage, loc location, key crypto.Signer) error {
	stored, err := loadStored(ctx, storage, loc)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err == nil, errors.Is(err, errRegistrationMissing):
		if sameKey(stored.PrivateKey, key) {
			return nil
		}
		return &StateError{fmt.Errorf("%w: %s holds the account %s for this CA and email, and records may name it. Nothing was imported. To use the imported account instead, move that account's files (%s and %s) aside first (see \"Bringing an account from another client\" in docs/accounts.md), or give the issuer another email",
			errDifferentKey, DescribeStorage(storage), storedURL(ctx, storage, loc), loc.Reg, loc.Key)}
	default:
		return err
	}
}
