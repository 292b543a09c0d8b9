package persist

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
)

// The account code is split by what it touches. This file decides which
// way to the account: stored, pinned or registered. account_storage.go
// reads and writes the files, account_registration.go asks the CA for an
// account or creates one, and account_repair.go rebuilds or replaces an
// account whose files or CA entry are gone. Repair uses registration,
// registration uses storage, and never the other way round. The
// account's deliberate changes, asked for by the operator, are in
// account_rollover.go (a new key), account_replace.go (a new account) and
// account_thumbprints.go (what is kept of earlier keys);
// account_refresh.go picks up what another instance changed.

// accounts keeps the one ACME account an issuer uses. Every published
// record names it, so it is loaded from storage where certmagic keeps
// accounts, found at the CA by a pinned key, or registered once under
// certmagic's lock, and never silently replaced.
type accounts struct {
	ca           string
	email        string
	pinnedKey    crypto.Signer // account_key, if configured
	eab          *acme.EAB
	newIfMissing bool
	secrets      []string
	client       func() (*acmez.Client, error)
	// storage is the issuer's storage, where accounts live.
	storage func() certmagic.Storage
	logger  *zap.Logger
	now     func() time.Time

	mu      sync.Mutex
	current *acme.Account
	// checked is when current was last compared with storage, where
	// another instance may have rolled its key over or replaced it.
	checked time.Time
	// previous caches the thumbprints of the earlier keys of an account
	// and key.
	previous struct {
		account, thumbprint string
		thumbprints         []string
	}
	// registered is the URL of an account registered by this value.
	registered string
	// replaced, when set, is an account replacement whose records have
	// not been logged yet.
	replaced *replacement
}

var errNoAccountYet = errors.New("no ACME account yet, so no record can name it; run `caddy persist records` or GET /persist/records to create it")

// get returns the account to use, loading it from storage, finding it at
// the CA by its pinned key, or, with register, registering it, in that
// order. Without register a missing account is errNoAccountYet. The
// result is remembered until forget (the issuer forgets it when its
// storage changes), and compared with storage once per accountRecheck
// (see recheck).
func (a *accounts) get(ctx context.Context, register bool) (acme.Account, error) {
	a.mu.Lock()
	if a.current != nil {
		held := *a.current
		due := a.pinnedKey == nil && a.now().Sub(a.checked) >= accountRecheck
		if due {
			// one caller looks; the others go on with the held account
			a.checked = a.now()
		}
		a.mu.Unlock()
		if due {
			return a.recheck(ctx, held), nil
		}
		return held, nil
	}
	defer a.mu.Unlock()
	acct, err := a.loadOrRegister(ctx, register)
	if err != nil {
		return acme.Account{}, err
	}
	if acct.Status != acme.StatusValid {
		return acme.Account{}, fmt.Errorf("ACME account %s has status %q at %s; it cannot be used to obtain certificates, and records naming it no longer work", acct.Location, acct.Status, a.ca)
	}
	a.current, a.checked = &acct, a.now()
	return acct, nil
}

// forget drops the remembered account, so the next get looks again.
func (a *accounts) forget() {
	a.mu.Lock()
	a.current = nil
	a.mu.Unlock()
}

// expire makes the next get compare the remembered account with storage,
// for a flow about to use it at the CA or to show it.
func (a *accounts) expire() {
	a.mu.Lock()
	a.checked = time.Time{}
	a.mu.Unlock()
}

// registeredURL returns the URL of the account registered here, if any.
func (a *accounts) registeredURL() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.registered
}

func (a *accounts) loadOrRegister(ctx context.Context, register bool) (acme.Account, error) {
	storage := a.storage()
	if storage == nil {
		return acme.Account{}, errNoStorage
	}
	loc := locateAccount(a.ca, a.email)

	if a.pinnedKey != nil {
		return a.pinned(ctx, storage, loc, register)
	}

	acct, err := loadInUse(ctx, storage, loc)
	if err == nil {
		return acct, nil
	}
	if errors.Is(err, errRegistrationMissing) {
		return a.recoverRegistration(ctx, storage, loc, register)
	}
	var unusable *StorageError
	// a file storage could not read is not a damaged one: replacing it
	// would set aside a good account because the store is down
	if errors.As(err, &unusable) && !unusable.readFailed && a.newIfMissing && register {
		return a.replaceUnusable(ctx, storage, loc, unusable, acct.PrivateKey)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return acme.Account{}, err
	}
	if !register {
		return acme.Account{}, noAccountYet(storage, loc)
	}

	return a.withLock(ctx, storage, loc, func() (acme.Account, error) {
		acct, err := loadInUse(ctx, storage, loc)
		if err == nil {
			a.logger.Info("using the ACME account another instance registered", zap.String("account_url", acct.Location))
			return acct, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return acme.Account{}, err
		}
		return a.registerNew(ctx, storage, loc)
	})
}

// pinned returns the account of the configured account_key: from storage
// if it is there, else from the CA (rebuilding a lost or corrupt
// registration file on the way), registering it only if the CA has never
// seen the key and register allows.
func (a *accounts) pinned(ctx context.Context, storage certmagic.Storage, loc accountLocation, register bool) (acme.Account, error) {
	keyPEM, err := certmagic.PEMEncodePrivateKey(a.pinnedKey)
	if err != nil {
		return acme.Account{}, err
	}
	corruptReg := false
	if stored, err := storage.Load(ctx, loc.Key); err == nil && equalPEM(stored, keyPEM) {
		acct, err := loadStoredAccount(ctx, storage, loc)
		var unusable *StorageError
		switch {
		case err == nil:
			return acct, nil
		case errors.As(err, &unusable) && unusable.Key == loc.Reg:
			corruptReg = true
		case !errors.Is(err, errRegistrationMissing):
			return acme.Account{}, err
		}
	} else if a.email == "" {
		acct, foundAt, err := findAccountByKey(ctx, storage, a.ca, keyPEM)
		switch {
		case err == nil:
			return acct, nil
		case errors.Is(err, errRegistrationMissing):
			loc = foundAt
		case !errors.Is(err, fs.ErrNotExist):
			return acme.Account{}, err
		}
	}

	return a.withLock(ctx, storage, loc, func() (acme.Account, error) {
		var acct acme.Account
		var err error
		if corruptReg {
			acct, err = a.restoreFromCA(ctx, storage, loc, a.pinnedKey, "corrupt")
			if err == nil {
				a.logger.Warn("rebuilt a corrupt account registration from the CA for the configured account_key; the corrupt file is kept",
					zap.String("account_url", acct.Location), zap.String("stored_at", loc.Reg))
			}
		} else {
			acct, err = a.lookUp(ctx, a.pinnedKey)
			if err == nil {
				a.keepPinnedCopy(ctx, storage, loc, acct)
			}
		}
		if errors.Is(err, errAccountUnknown) {
			if !register {
				return acme.Account{}, fmt.Errorf("%w: the CA knows no account for the configured account_key", errNoAccountYet)
			}
			a.logger.Info("the CA has no account for the configured account_key; registering it")
			return a.register(ctx, storage, loc, a.pinnedKey, true)
		}
		return acct, err
	})
}

// keepPinnedCopy keeps a copy of a pinned account in storage when the
// location is free, so that `acme` issuers and later runs find it. The
// account is used either way: its key lives in the config.
func (a *accounts) keepPinnedCopy(ctx context.Context, storage certmagic.Storage, loc accountLocation, acct acme.Account) {
	if err := saveAccount(ctx, storage, loc, acct); err != nil {
		a.logger.Warn("using the account of the configured account_key without storing it",
			zap.String("account_url", acct.Location), zap.Error(err))
	}
}

// errNoStorage is an issuer used outside a Caddy config, which gives it
// the storage its account lives in.
var errNoStorage = errors.New("no storage: the issuer was not given a certmagic config, as Caddy gives every issuer of a loaded config; load it through a Caddy config (caddy run, or the persist commands with --config)")

// ownedStorage is the storage and location of an account this plugin may
// change: one storage holds, not one account_key pins.
func (a *accounts) ownedStorage() (certmagic.Storage, accountLocation, error) {
	if a.pinnedKey != nil {
		return nil, accountLocation{}, errPinnedAccount
	}
	storage := a.storage()
	if storage == nil {
		return nil, accountLocation{}, errNoStorage
	}
	return storage, locateAccount(a.ca, a.email), nil
}

// loadExisting loads the stored account at loc, for a change to it: a
// missing one is errNoAccountYet, since a change never registers one.
func loadExisting(ctx context.Context, storage certmagic.Storage, loc accountLocation) (acme.Account, error) {
	acct, err := loadStoredAccount(ctx, storage, loc)
	if errors.Is(err, fs.ErrNotExist) {
		return acme.Account{}, noAccountYet(storage, loc)
	}
	return acct, err
}

// noAccountYet says where the account was looked for, since the commands
// may run with another storage than the server.
func noAccountYet(storage certmagic.Storage, loc accountLocation) error {
	return fmt.Errorf("%w (looked for %s in %s)", errNoAccountYet, loc.Reg, describeStorage(storage))
}
