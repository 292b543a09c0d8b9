// Package account keeps the one ACME account every dns-persist-01 record
// names: where it lives in storage (where certmagic keeps accounts), how
// it is loaded, registered once and repaired, and its deliberate changes
// (a new key, a replacement, an import from another client). Each step
// that writes runs under certmagic's registration lock and leaves a state
// that every instance sharing the storage, and the next run, completes.
// It imports no Caddy package: the plugin hands it a Config (its errors
// still name the config's options and commands, which is what a user
// changes or runs).
package account

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
// way to the account: stored, pinned or registered. storage.go reads and
// writes the files, registration.go asks the CA for an account or creates
// one, and repair.go rebuilds or replaces an account whose files or CA
// entry are gone. Repair uses registration, registration uses storage,
// and never the other way round. The deliberate changes, asked for by the
// operator, are in rollover.go (a new key), replace.go (a new account)
// and import.go (another client's account); thumbprints.go keeps what is
// left of earlier keys, refresh.go picks up what another instance
// changed, challenge_uri.go remembers the accounturi the CA's challenges
// name, and status.go asks the CA for the account's state.

// Config is what a Keeper needs from its issuer.
type Config struct {
	// CA is the directory URL of the account's CA.
	CA string
	// Email names the account in storage, with the CA.
	Email string
	// PinnedKey is the configured account_key, if any: the account is
	// then the CA's account for that key, whatever storage holds.
	PinnedKey crypto.Signer
	// EAB binds a registration to an external account.
	EAB *acme.EAB
	// NewIfMissing lets an unusable stored account be replaced by a new
	// one, loudly (new_account_if_missing).
	NewIfMissing bool
	// Secrets are values no error may repeat.
	Secrets []string
	// Client returns the ACME client of the CA.
	Client func() (*acmez.Client, error)
	// Storage returns the storage the account lives in; nil before the
	// issuer has one.
	Storage func() certmagic.Storage
	Logger  *zap.Logger
	Now     func() time.Time
}

// Keeper keeps the one ACME account an issuer uses. Every published
// record names it, so it is loaded from storage where certmagic keeps
// accounts, found at the CA by a pinned key, or registered once under
// certmagic's lock, and never silently replaced.
type Keeper struct {
	ca           string
	email        string
	pinnedKey    crypto.Signer
	eab          *acme.EAB
	newIfMissing bool
	secrets      []string
	client       func() (*acmez.Client, error)
	storage      func() certmagic.Storage
	logger       *zap.Logger
	now          func() time.Time

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
	replaced *replacedUnusable
	// challengeURI is what the CA's challenges name (challenge_uri.go).
	challengeURI challengeURIMemory
}

// New returns the keeper of the account cfg describes. It reads nothing
// until asked.
func New(cfg Config) *Keeper {
	return &Keeper{
		ca:           cfg.CA,
		email:        cfg.Email,
		pinnedKey:    cfg.PinnedKey,
		eab:          cfg.EAB,
		newIfMissing: cfg.NewIfMissing,
		secrets:      cfg.Secrets,
		client:       cfg.Client,
		storage:      cfg.Storage,
		logger:       cfg.Logger,
		now:          cfg.Now,
	}
}

// ErrNoAccountYet is an account asked for without registering one, when
// there is none.
var ErrNoAccountYet = errors.New("no ACME account yet, so no record can name it; create it with `caddy persist account register` (POST /persist/account/register), or with `caddy persist records`, which registers it for the names it prints")

// Get returns the account to use, loading it from storage, finding it at
// the CA by its pinned key, or, with register, registering it, in that
// order. Without register a missing account is ErrNoAccountYet. The
// result is remembered until Forget (the issuer forgets it when its
// storage changes), and compared with storage once per accountRecheck
// (see recheck), or at once after Refresh.
func (k *Keeper) Get(ctx context.Context, register bool) (acme.Account, error) {
	k.mu.Lock()
	if acct, ok := k.held(ctx); ok {
		return acct, nil
	}
	defer k.mu.Unlock()
	acct, err := k.loadOrRegister(ctx, register)
	if err == nil {
		err = k.usable(acct)
	}
	if err != nil {
		return acme.Account{}, err
	}
	k.current, k.checked = &acct, k.now()
	return acct, nil
}

// held returns the remembered account, compared with storage when that is
// due, which only reads. The caller holds k.mu; held releases it when it
// returns an account, and keeps it held when there is none.
func (k *Keeper) held(ctx context.Context) (acme.Account, bool) {
	if k.current == nil {
		return acme.Account{}, false
	}
	held := *k.current
	due := k.pinnedKey == nil && k.now().Sub(k.checked) >= accountRecheck
	if due {
		// one caller looks; the others go on with the held account
		k.checked = k.now()
	}
	k.mu.Unlock()
	if due {
		return k.recheck(ctx, held), true
	}
	return held, true
}

// usable refuses an account the CA no longer lets obtain certificates.
func (k *Keeper) usable(acct acme.Account) error {
	if acct.Status != acme.StatusValid {
		return fmt.Errorf("ACME account %s has status %q at %s; it cannot be used to obtain certificates, and records naming it no longer work", acct.Location, acct.Status, k.ca)
	}
	return nil
}

// Peek returns the account as Get would, for a report, which must change
// nothing: it registers no account, repairs none and writes nothing. A
// pinned account storage does not hold, and a stored key whose
// registration is lost, are looked up at the CA by the key and not
// stored; the next Get of a flow that may write stores them.
func (k *Keeper) Peek(ctx context.Context) (acme.Account, error) {
	k.mu.Lock()
	if acct, ok := k.held(ctx); ok {
		return acct, nil
	}
	k.mu.Unlock()
	storage := k.storage()
	if storage == nil {
		return acme.Account{}, errNoStorage
	}
	loc := locate(k.ca, k.email)
	acct, err := k.peekStored(ctx, storage, loc)
	if err == nil {
		err = k.usable(acct)
	}
	if err != nil {
		return acme.Account{}, err
	}
	return acct, nil
}

// peekStored is Peek's way to the account: storage, else the CA by the
// key. The key is the pinned one, or the one stored without its
// registration.
func (k *Keeper) peekStored(ctx context.Context, storage certmagic.Storage, loc location) (acme.Account, error) {
	key := k.pinnedKey
	if key == nil {
		acct, err := loadInUse(ctx, storage, loc)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return acme.Account{}, noAccountYet(storage, loc)
		case !errors.Is(err, errRegistrationMissing):
			return acct, err
		}
		key = acct.PrivateKey
	} else if acct, err := loadStored(ctx, storage, loc); err == nil && sameKey(acct.PrivateKey, key) {
		return acct, nil
	}
	acct, err := k.lookUp(ctx, key)
	if errors.Is(err, errAccountUnknown) {
		return acme.Account{}, noAccountYet(storage, loc)
	}
	return acct, err
}

// Forget drops the remembered account, so the next Get looks again.
func (k *Keeper) Forget() {
	k.mu.Lock()
	k.current = nil
	k.mu.Unlock()
}

// Refresh makes the next Get compare the remembered account with
// storage, and the next ChallengeURI read storage again, for a flow about
// to use them at the CA or to show them: another instance may have
// changed either.
func (k *Keeper) Refresh() {
	k.mu.Lock()
	k.checked = time.Time{}
	k.mu.Unlock()
	k.challengeURI.expire()
}

// Registered returns the URL of the account this keeper registered, if
// any.
func (k *Keeper) Registered() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.registered
}

// StoredAt is the storage key of the account's registration, the JSON
// file certmagic keeps beside its key.
func (k *Keeper) StoredAt() string {
	return locate(k.ca, k.email).Reg
}

func (k *Keeper) loadOrRegister(ctx context.Context, register bool) (acme.Account, error) {
	storage := k.storage()
	if storage == nil {
		return acme.Account{}, errNoStorage
	}
	loc := locate(k.ca, k.email)

	if k.pinnedKey != nil {
		return k.pinned(ctx, storage, loc, register)
	}

	acct, err := loadInUse(ctx, storage, loc)
	if err == nil {
		return acct, nil
	}
	if errors.Is(err, errRegistrationMissing) {
		return k.recoverRegistration(ctx, storage, loc, register)
	}
	var unusable *StorageError
	// a file storage could not read is not a damaged one: replacing it
	// would set aside a good account because the store is down
	if errors.As(err, &unusable) && !unusable.readFailed && k.newIfMissing && register {
		return k.replaceUnusable(ctx, storage, loc, unusable, acct.PrivateKey)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return acme.Account{}, err
	}
	if !register {
		return acme.Account{}, noAccountYet(storage, loc)
	}

	return k.withLock(ctx, storage, loc, func() (acme.Account, error) {
		acct, err := loadInUse(ctx, storage, loc)
		if err == nil {
			k.logger.Info("using the ACME account another instance registered", zap.String("account_url", acct.Location))
			return acct, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return acme.Account{}, err
		}
		return k.registerNew(ctx, storage, loc)
	})
}

// pinned returns the account of the configured account_key: from storage
// if it is there, else from the CA (rebuilding a lost or corrupt
// registration file on the way), registering it only if the CA has never
// seen the key and register allows.
func (k *Keeper) pinned(ctx context.Context, storage certmagic.Storage, loc location, register bool) (acme.Account, error) {
	keyPEM, err := certmagic.PEMEncodePrivateKey(k.pinnedKey)
	if err != nil {
		return acme.Account{}, err
	}
	corruptReg := false
	if stored, err := storage.Load(ctx, loc.Key); err == nil && equalPEM(stored, keyPEM) {
		acct, err := loadStored(ctx, storage, loc)
		var unusable *StorageError
		switch {
		case err == nil:
			return acct, nil
		case errors.As(err, &unusable) && unusable.Key == loc.Reg:
			corruptReg = true
		case !errors.Is(err, errRegistrationMissing):
			return acme.Account{}, err
		}
	} else if k.email == "" {
		acct, foundAt, err := findByKey(ctx, storage, k.ca, keyPEM)
		switch {
		case err == nil:
			return acct, nil
		case errors.Is(err, errRegistrationMissing):
			loc = foundAt
		case !errors.Is(err, fs.ErrNotExist):
			return acme.Account{}, err
		}
	}

	return k.withLock(ctx, storage, loc, func() (acme.Account, error) {
		var acct acme.Account
		var err error
		if corruptReg {
			acct, err = k.restoreFromCA(ctx, storage, loc, k.pinnedKey, "corrupt")
			if err == nil {
				k.logger.Warn("rebuilt a corrupt account registration from the CA for the configured account_key; the corrupt file is kept",
					zap.String("account_url", acct.Location), zap.String("stored_at", loc.Reg))
			}
		} else {
			acct, err = k.lookUp(ctx, k.pinnedKey)
			if err == nil {
				k.keepPinnedCopy(ctx, storage, loc, acct)
			}
		}
		if errors.Is(err, errAccountUnknown) {
			if !register {
				return acme.Account{}, fmt.Errorf("%w: the CA knows no account for the configured account_key", ErrNoAccountYet)
			}
			k.logger.Info("the CA has no account for the configured account_key; registering it")
			return k.register(ctx, storage, loc, k.pinnedKey, true)
		}
		return acct, err
	})
}

// keepPinnedCopy keeps a copy of a pinned account in storage when the
// location is free, so that `acme` issuers and later runs find it. The
// account is used either way: its key lives in the config.
func (k *Keeper) keepPinnedCopy(ctx context.Context, storage certmagic.Storage, loc location, acct acme.Account) {
	if err := save(ctx, storage, loc, acct); err != nil {
		k.logger.Warn("using the account of the configured account_key without storing it",
			zap.String("account_url", acct.Location), zap.Error(err))
	}
}

// errNoStorage is an issuer used outside a Caddy config, which gives it
// the storage its account lives in.
var errNoStorage = errors.New("no storage: the issuer was not given a certmagic config, as Caddy gives every issuer of a loaded config; load it through a Caddy config (caddy run, or the persist commands with --config)")

// ownedStorage is the storage and location of an account this plugin may
// change: one storage holds, not one account_key pins.
func (k *Keeper) ownedStorage() (certmagic.Storage, location, error) {
	if k.pinnedKey != nil {
		return nil, location{}, ErrPinned
	}
	storage := k.storage()
	if storage == nil {
		return nil, location{}, errNoStorage
	}
	return storage, locate(k.ca, k.email), nil
}

// loadExisting loads the stored account at loc, for a change to it: a
// missing one is ErrNoAccountYet, since a change never registers one.
func loadExisting(ctx context.Context, storage certmagic.Storage, loc location) (acme.Account, error) {
	acct, err := loadStored(ctx, storage, loc)
	if errors.Is(err, fs.ErrNotExist) {
		return acme.Account{}, noAccountYet(storage, loc)
	}
	return acct, err
}

// noAccountYet says where the account was looked for, since the commands
// may run with another storage than the server.
func noAccountYet(storage certmagic.Storage, loc location) error {
	return fmt.Errorf("%w (looked for %s in %s)", ErrNoAccountYet, loc.Reg, DescribeStorage(storage))
}
