package persist

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

// getAccount returns the account to use, loading it from storage, finding
// it at the CA by its pinned key, or registering it, in that order. The
// result is remembered until SetConfig changes storage.
func (iss *Issuer) getAccount(ctx context.Context) (acme.Account, error) {
	return iss.account(ctx, true)
}

// existingAccount returns the account if it is loaded, stored, or known to
// the CA by the pinned key, without ever registering one.
func (iss *Issuer) existingAccount(ctx context.Context) (acme.Account, bool) {
	acct, err := iss.account(ctx, false)
	return acct, err == nil
}

func (iss *Issuer) account(ctx context.Context, register bool) (acme.Account, error) {
	iss.st.acctMu.Lock()
	defer iss.st.acctMu.Unlock()
	if iss.st.acct != nil {
		return *iss.st.acct, nil
	}
	acct, err := iss.loadOrRegisterAccount(ctx, register)
	if err != nil {
		return acme.Account{}, err
	}
	if acct.Status != acme.StatusValid {
		return acme.Account{}, fmt.Errorf("ACME account %s has status %q at %s; it cannot be used to obtain certificates, and records naming it no longer work", acct.Location, acct.Status, iss.CA)
	}
	iss.st.acct = &acct
	return acct, nil
}

// registeredAccount returns the URL of the account this issuer
// registered, if it registered one.
func (iss *Issuer) registeredAccount() string {
	iss.st.acctMu.Lock()
	defer iss.st.acctMu.Unlock()
	return iss.st.registered
}

// forgetAccount drops the remembered account, e.g. after the CA says it is
// gone.
func (iss *Issuer) forgetAccount() {
	iss.st.acctMu.Lock()
	iss.st.acct = nil
	iss.st.acctMu.Unlock()
}

// withRegistrationLock runs f under certmagic's account registration lock,
// so that every instance sharing the storage ends up with the one account
// the first of them registered.
func (iss *Issuer) withRegistrationLock(ctx context.Context, storage certmagic.Storage, loc accountLocation, f func() (acme.Account, error)) (acme.Account, error) {
	if err := storage.Lock(ctx, loc.LockKey); err != nil {
		return acme.Account{}, fmt.Errorf("locking account registration: %v", err)
	}
	defer func() {
		if err := storage.Unlock(context.WithoutCancel(ctx), loc.LockKey); err != nil {
			iss.logger.Error("unlocking account registration", zap.String("lock", loc.LockKey), zap.Error(err))
		}
	}()
	return f()
}

func (iss *Issuer) loadOrRegisterAccount(ctx context.Context, register bool) (acme.Account, error) {
	storage := iss.getStorage()
	if storage == nil {
		return acme.Account{}, errors.New("no storage configured (the issuer was not given a certmagic config)")
	}
	loc := locateAccount(iss.CA, iss.Email)

	if iss.accountKey != nil {
		return iss.pinnedAccount(ctx, storage, loc, register)
	}

	acct, err := loadStoredAccount(ctx, storage, loc)
	if err == nil {
		return acct, nil
	}
	if errors.Is(err, errRegistrationMissing) {
		return iss.recoverRegistration(ctx, storage, loc, acct.PrivateKey, register)
	}
	var unusable *StorageError
	if errors.As(err, &unusable) && iss.NewAccountIfMissing && register {
		return iss.replaceUnusableAccount(ctx, storage, loc, unusable, acct.PrivateKey)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return acme.Account{}, err
	}
	if !register {
		return acme.Account{}, iss.noAccountYet(storage, loc)
	}

	return iss.withRegistrationLock(ctx, storage, loc, func() (acme.Account, error) {
		acct, err := loadStoredAccount(ctx, storage, loc)
		if err == nil {
			iss.logger.Info("using the ACME account another instance registered", zap.String("account_url", acct.Location))
			return acct, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return acme.Account{}, err
		}
		key, err := newAccountKey()
		if err != nil {
			return acme.Account{}, fmt.Errorf("generating account key: %v", err)
		}
		return iss.registerAccount(ctx, storage, loc, key, false)
	})
}

// noAccountYet says where the account was looked for, since the commands
// may run with another storage than the server.
func (iss *Issuer) noAccountYet(storage certmagic.Storage, loc accountLocation) error {
	return fmt.Errorf("%w (looked for %s in %s)", errNoAccountYet, loc.Reg, describeStorage(storage))
}

// describeStorage names a storage for people: the folder of file storage.
func describeStorage(storage certmagic.Storage) string {
	if fs, ok := storage.(*certmagic.FileStorage); ok {
		return "file storage at " + fs.Path
	}
	return fmt.Sprintf("%T", storage)
}

// registerAccount creates an account for key at the CA and stores it. The
// caller holds the registration lock. The key is stored before the CA is
// asked, so an interruption cannot lose an account the CA created; a pinned
// key, which lives in the config, may go unstored if another key occupies
// the location.
func (iss *Issuer) registerAccount(ctx context.Context, storage certmagic.Storage, loc accountLocation, key crypto.Signer, pinned bool) (acme.Account, error) {
	keyStored := true
	if err := storeKey(ctx, storage, loc, key); err != nil {
		if !pinned || !errors.Is(err, errDifferentKey) {
			return acme.Account{}, err
		}
		keyStored = false
	}
	client, err := iss.acmeClient()
	if err != nil {
		return acme.Account{}, err
	}
	acct := acme.Account{PrivateKey: key, TermsOfServiceAgreed: true}
	if iss.Email != "" {
		acct.Contact = []string{"mailto:" + iss.Email}
	}
	if iss.ExternalAccount != nil {
		if err := acct.SetExternalAccountBinding(ctx, client.Client, *iss.ExternalAccount); err != nil {
			return acme.Account{}, fmt.Errorf("binding external account %s: %v", iss.ExternalAccount.KeyID, redactError(err, iss.secrets()))
		}
	}
	acct, err = client.NewAccount(ctx, acct)
	if err != nil {
		return acme.Account{}, fmt.Errorf("registering ACME account at %s: %w", iss.CA, redactError(err, iss.secrets()))
	}
	if keyStored {
		// the CA has the account now: store it even if the caller gave up
		if err := saveAccount(context.WithoutCancel(ctx), storage, loc, acct); err != nil {
			return acme.Account{}, fmt.Errorf("ACME account %s was registered but could not be stored: %w", acct.Location, err)
		}
	}
	iss.st.registered = acct.Location
	iss.logger.Warn("registered a new ACME account; dns-persist-01 records must name it (if records for another account are published, restore that account instead: see account_key)",
		zap.String("account_url", acct.Location),
		zap.String("ca", iss.CA),
		zap.String("stored_at", loc.Reg))
	return acct, nil
}

// pinnedAccount returns the account of the configured account_key: from
// storage if it is there, else from the CA (repairing a lost or corrupt
// registration file on the way), registering it only if the CA has never
// seen the key and register allows.
func (iss *Issuer) pinnedAccount(ctx context.Context, storage certmagic.Storage, loc accountLocation, register bool) (acme.Account, error) {
	keyPEM, err := certmagic.PEMEncodePrivateKey(iss.accountKey)
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
	} else if iss.Email == "" {
		acct, foundAt, err := findAccountByKey(ctx, storage, iss.CA, keyPEM)
		switch {
		case err == nil:
			return acct, nil
		case errors.Is(err, errRegistrationMissing):
			loc = foundAt
		case !errors.Is(err, fs.ErrNotExist):
			return acme.Account{}, err
		}
	}

	return iss.withRegistrationLock(ctx, storage, loc, func() (acme.Account, error) {
		acct, err := iss.lookUpAccount(ctx, iss.accountKey)
		if errors.Is(err, errAccountUnknown) {
			if !register {
				return acme.Account{}, fmt.Errorf("%w: the CA knows no account for the configured account_key", errNoAccountYet)
			}
			iss.logger.Info("the CA has no account for the configured account_key; registering it")
			return iss.registerAccount(ctx, storage, loc, iss.accountKey, true)
		}
		if err != nil {
			return acme.Account{}, err
		}
		if corruptReg {
			if err := setAside(ctx, storage, []string{loc.Reg}, "corrupt", iss.now().Unix()); err != nil {
				return acme.Account{}, err
			}
			iss.logger.Warn("rebuilt a corrupt account registration from the CA for the configured account_key; the corrupt file is kept",
				zap.String("account_url", acct.Location), zap.String("stored_at", loc.Reg))
		}
		iss.storePinned(ctx, storage, loc, acct)
		return acct, nil
	})
}

// storePinned keeps a copy of a pinned account in storage when the
// location is free, so that `acme` issuers and later runs find it.
func (iss *Issuer) storePinned(ctx context.Context, storage certmagic.Storage, loc accountLocation, acct acme.Account) {
	if err := saveAccount(ctx, storage, loc, acct); err != nil {
		iss.logger.Warn("using the account of the configured account_key without storing it",
			zap.String("account_url", acct.Location), zap.Error(err))
	}
}

// recoverRegistration rebuilds a lost registration file from the CA, which
// knows the account by its key. A stored key the CA has never seen is what
// a registration interrupted before the CA answered leaves behind; with
// register, that key is registered now.
func (iss *Issuer) recoverRegistration(ctx context.Context, storage certmagic.Storage, loc accountLocation, key crypto.Signer, register bool) (acme.Account, error) {
	acct, err := iss.lookUpAccount(ctx, key)
	if errors.Is(err, errAccountUnknown) {
		if !register {
			return acme.Account{}, iss.noAccountYet(storage, loc)
		}
		return iss.withRegistrationLock(ctx, storage, loc, func() (acme.Account, error) {
			acct, err := loadStoredAccount(ctx, storage, loc)
			if err == nil {
				return acct, nil
			}
			if !errors.Is(err, errRegistrationMissing) {
				return acme.Account{}, err
			}
			iss.logger.Warn("the stored account key has no account at the CA (a registration was interrupted); registering it")
			return iss.registerAccount(ctx, storage, loc, acct.PrivateKey, false)
		})
	}
	if err != nil {
		return acme.Account{}, err
	}
	if err := saveAccount(ctx, storage, loc, acct); err != nil {
		return acme.Account{}, err
	}
	iss.logger.Warn("restored a missing account registration from the CA",
		zap.String("account_url", acct.Location), zap.String("stored_at", loc.Reg))
	return acct, nil
}

var errAccountUnknown = errors.New("the CA knows no account for this key")

// lookUpAccount asks the CA for the account of key without creating one.
func (iss *Issuer) lookUpAccount(ctx context.Context, key crypto.Signer) (acme.Account, error) {
	client, err := iss.acmeClient()
	if err != nil {
		return acme.Account{}, err
	}
	acct, err := client.GetAccount(ctx, acme.Account{PrivateKey: key})
	if err != nil {
		var problem acme.Problem
		if errors.As(err, &problem) && problem.Type == acme.ProblemTypeAccountDoesNotExist {
			return acme.Account{}, errAccountUnknown
		}
		return acme.Account{}, fmt.Errorf("looking up the ACME account of the key at %s: %w", iss.CA, err)
	}
	acct.PrivateKey = key
	return acct, nil
}
