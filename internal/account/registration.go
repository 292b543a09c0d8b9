package account

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/redact"
)

// withLock runs f under certmagic's account registration lock, so that
// every instance sharing the storage ends up with the one account the
// first of them registered.
func (k *Keeper) withLock(ctx context.Context, storage certmagic.Storage, loc location, f func() (acme.Account, error)) (acme.Account, error) {
	if err := storage.Lock(ctx, loc.LockKey); err != nil {
		return acme.Account{}, fmt.Errorf("locking account registration: %v", err)
	}
	defer func() {
		if err := storage.Unlock(context.WithoutCancel(ctx), loc.LockKey); err != nil {
			k.logger.Error("unlocking account registration", zap.String("lock", loc.LockKey), zap.Error(err))
		}
	}()
	return f()
}

// registerNew registers the pinned account_key, or else a new key. The
// caller holds the registration lock.
func (k *Keeper) registerNew(ctx context.Context, storage certmagic.Storage, loc location) (acme.Account, error) {
	if k.pinnedKey != nil {
		return k.register(ctx, storage, loc, k.pinnedKey, true)
	}
	key, err := newKey()
	if err != nil {
		return acme.Account{}, fmt.Errorf("generating account key: %v", err)
	}
	return k.register(ctx, storage, loc, key, false)
}

// register creates the account for key at the CA and stores it, saying
// so. The caller holds the registration lock.
func (k *Keeper) register(ctx context.Context, storage certmagic.Storage, loc location, key crypto.Signer, pinned bool) (acme.Account, error) {
	acct, err := k.registerAt(ctx, storage, loc, key, pinned)
	if err != nil {
		return acme.Account{}, err
	}
	k.registered = acct.Location
	k.logger.Warn("registered a new ACME account; dns-persist-01 records must name it (if records for another account are published, restore that account instead: see account_key)",
		zap.String("account_url", acct.Location),
		zap.String("ca", k.ca),
		zap.String("stored_at", loc.Reg))
	return acct, nil
}

// registerAt creates an account for key at the CA and stores it at loc.
// The caller holds the registration lock. The key is stored before the CA
// is asked, so an interruption cannot lose an account the CA created; a
// pinned key, which lives in the config, may go unstored if another key
// occupies the location.
func (k *Keeper) registerAt(ctx context.Context, storage certmagic.Storage, loc location, key crypto.Signer, pinned bool) (acme.Account, error) {
	keyStored := true
	if err := storeKey(ctx, storage, loc, key); err != nil {
		if !pinned || !errors.Is(err, errDifferentKey) {
			return acme.Account{}, err
		}
		keyStored = false
	}
	client, err := k.client()
	if err != nil {
		return acme.Account{}, err
	}
	acct := acme.Account{PrivateKey: key, TermsOfServiceAgreed: true}
	if k.email != "" {
		acct.Contact = []string{"mailto:" + k.email}
	}
	if k.eab != nil {
		if err := acct.SetExternalAccountBinding(ctx, client.Client, *k.eab); err != nil {
			return acme.Account{}, fmt.Errorf("binding external account %s: %v", k.eab.KeyID, redact.Error(err, k.secrets))
		}
	}
	acct, err = client.NewAccount(ctx, acct)
	if err != nil {
		return acme.Account{}, fmt.Errorf("registering ACME account at %s: %w", k.ca, redact.Error(err, k.secrets))
	}
	if keyStored {
		// the CA has the account now: store it even if the caller gave up
		if err := save(context.WithoutCancel(ctx), storage, loc, acct); err != nil {
			return acme.Account{}, fmt.Errorf("ACME account %s was registered but could not be stored: %w", acct.Location, err)
		}
	}
	return acct, nil
}

var errAccountUnknown = errors.New("the CA knows no account for this key")

// lookUp asks the CA for the account of key without creating one.
func (k *Keeper) lookUp(ctx context.Context, key crypto.Signer) (acme.Account, error) {
	client, err := k.client()
	if err != nil {
		return acme.Account{}, err
	}
	acct, err := client.GetAccount(ctx, acme.Account{PrivateKey: key})
	if err != nil {
		var problem acme.Problem
		if errors.As(err, &problem) && problem.Type == acme.ProblemTypeAccountDoesNotExist {
			return acme.Account{}, errAccountUnknown
		}
		return acme.Account{}, fmt.Errorf("looking up the ACME account of the key at %s: %w", k.ca, err)
	}
	acct.PrivateKey = key
	return acct, nil
}
