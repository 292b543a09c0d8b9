package account

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"

	"github.com/dnspersist/caddy-persist/internal/redact"
)

// A rollover gives the account a new key (RFC 8555, section 7.3.5): the
// account URL stays, so -01 records stay as they are, while -02 records,
// which hash the key's thumbprint, get new values (the old ones keep
// passing). It runs under the account's registration lock, so instances
// sharing the storage change the key once, in this order:
//
//  1. the new key is stored at <user>.rollover.key, and the old key's
//     thumbprint among the previous ones;
//  2. the CA is told;
//  3. the new key replaces the old one at <user>.key (the old key is not
//     kept: the CA no longer accepts it), and the rollover key goes.
//
// An error from the CA at step 2 is no proof that the key did not change
// (an answer lost on the way), so the CA is asked which key it has, by the
// new key. An interruption after 1 leaves the rollover key: whoever finds
// it (the next rollover, or an instance whose key the CA refuses) asks the
// CA the same, and completes step 3 if it took the key, or drops the key
// if not.

// ErrPinned is a change asked of an account that account_key pins.
var ErrPinned = &StateError{errors.New("account_key pins this account in the config, so it cannot be changed here: the config would go on naming the old key; change it with the client that holds the key and update account_key, or remove account_key to let storage hold the account (see docs/accounts.md)")}

// Rollover is the outcome of a rollover.
type Rollover struct {
	Account acme.Account
	// Resumed says the rollover completed one an earlier run left
	// unfinished, rather than starting another.
	Resumed bool
}

// Rollover gives the stored account a new key at the CA and in storage.
// It never registers an account, and refuses a pinned one (ErrPinned).
func (k *Keeper) Rollover(ctx context.Context) (Rollover, error) {
	storage, loc, err := k.ownedStorage()
	if err != nil {
		return Rollover{}, err
	}
	var out Rollover
	_, err = k.withLock(ctx, storage, loc, func() (acme.Account, error) {
		acct, err := loadExisting(ctx, storage, loc)
		if err != nil {
			return acme.Account{}, err
		}
		if out.Account, out.Resumed, err = k.finishRollover(ctx, storage, loc, acct); err != nil || out.Resumed {
			return out.Account, err
		}
		out.Account, err = k.changeKey(ctx, storage, loc, acct)
		return out.Account, err
	})
	k.Forget()
	if err != nil {
		return Rollover{}, err
	}
	k.logger.Warn("rolled the ACME account over to a new key; the account URL is unchanged (draft -02 records, which hash the key, should be republished)",
		zap.String("account_url", out.Account.Location), zap.String("ca", k.ca), zap.Bool("resumed", out.Resumed))
	return out, nil
}

// changeKey makes a new key, tells the CA, and stores the key. The caller
// holds the lock.
func (k *Keeper) changeKey(ctx context.Context, storage certmagic.Storage, loc location, acct acme.Account) (acme.Account, error) {
	next, err := newKey()
	if err != nil {
		return acme.Account{}, fmt.Errorf("generating account key: %v", err)
	}
	nextPEM, err := certmagic.PEMEncodePrivateKey(next)
	if err != nil {
		return acme.Account{}, err
	}
	if err := storeVerified(ctx, storage, loc.rolloverKey(), nextPEM); err != nil {
		return acme.Account{}, fmt.Errorf("keeping the new account key before telling the CA: %w; nothing was changed", err)
	}
	thumbprint, err := acct.Thumbprint()
	if err != nil {
		return acme.Account{}, fmt.Errorf("computing the account key thumbprint: %v", err)
	}
	if err := rememberPreviousKey(ctx, storage, loc, previousKey{AccountURL: acct.Location, Thumbprint: thumbprint, RolledOver: k.now().UTC()}); err != nil {
		return acme.Account{}, fmt.Errorf("keeping the current key's thumbprint, so that -02 records made with it keep passing: %w; nothing was changed at the CA", err)
	}
	client, err := k.client()
	if err != nil {
		return acme.Account{}, err
	}
	if _, err := client.AccountKeyRollover(ctx, acct, next); err != nil {
		// no answer is no refusal: acmez retries a request whose answer
		// was lost or failed, signed with the old key, which the CA
		// refuses once it has taken the new one; so ask it
		resolved, changed, lookErr := k.finishRollover(context.WithoutCancel(ctx), storage, loc, acct)
		switch {
		case lookErr == nil && changed:
			k.logger.Warn("the CA's answer to the key change was an error, but it has taken the new key", zap.String("account_url", acct.Location), zap.Error(err))
			return resolved, nil
		case lookErr == nil:
			return acme.Account{}, fmt.Errorf("the CA did not change the key of ACME account %s: %w; nothing was changed, and the account keeps its key", acct.Location, redact.Error(err, k.secrets))
		}
		return acme.Account{}, fmt.Errorf("changing the key of ACME account %s at %s: %w; asking the CA which key it has then failed too (%v), so the new key is kept at %s: run the rollover again, which asks the CA and completes the change", acct.Location, k.ca, redact.Error(err, k.secrets), lookErr, loc.rolloverKey())
	}
	acct.PrivateKey = next
	// the CA has the new key now: store it even if the caller gave up
	return acct, promoteKey(context.WithoutCancel(ctx), storage, loc, nextPEM, k.logger)
}

// finishRollover completes a key change left unfinished, if the rollover
// key is there: when the CA has taken it, it becomes the account's key
// (changed is set); when the CA does not know it and still knows the old
// key as the account's, it is set aside. The caller holds the lock.
func (k *Keeper) finishRollover(ctx context.Context, storage certmagic.Storage, loc location, acct acme.Account) (_ acme.Account, changed bool, _ error) {
	nextPEM, err := storage.Load(ctx, loc.rolloverKey())
	if errors.Is(err, fs.ErrNotExist) {
		return acct, false, nil
	}
	if err != nil {
		return acct, false, &StorageError{Key: loc.rolloverKey(), Err: err, readFailed: true}
	}
	next, err := certmagic.PEMDecodePrivateKey(nextPEM)
	if err != nil {
		return acct, false, &StorageError{Key: loc.rolloverKey(), Err: fmt.Errorf("unreadable private key: %v (it is the new key of an unfinished rollover; if the CA took it, the account's key is lost: restore the file from a backup)", err)}
	}
	if sameKey(next, acct.PrivateKey) {
		// stored already; only its leftover copy remained
		return acct, true, storage.Delete(ctx, loc.rolloverKey())
	}
	found, err := k.lookUp(ctx, next)
	switch {
	case errors.Is(err, errAccountUnknown):
		// a CA answering from a lagging replica may not know the new
		// key yet: only the old key still being the account's proves
		// the change never happened, and even then the key is set
		// aside, not deleted
		if kept, err := k.lookUp(ctx, acct.PrivateKey); err != nil || kept.Location != acct.Location {
			return acct, false, fmt.Errorf("a rollover of ACME account %s was left unfinished, and the CA knows neither its new key nor, as the account's, its old one (%v); nothing was changed and both keys are kept: try again later", acct.Location, err)
		}
		k.logger.Info("setting aside the key of an unfinished rollover: the CA never took it, and the account keeps its key", zap.String("key", loc.rolloverKey()))
		return acct, false, setAside(ctx, storage, []string{loc.rolloverKey()}, "untaken", k.now().Unix())
	case err != nil:
		return acct, false, fmt.Errorf("a rollover of ACME account %s was left unfinished, and asking the CA which key it has failed: %w; nothing was changed: try again once the CA answers", acct.Location, err)
	case found.Location != acct.Location:
		return acct, false, &StorageError{Key: loc.rolloverKey(), Err: fmt.Errorf("the key of an unfinished rollover belongs to another account at the CA, %s, not to %s; nothing was changed: move the file away once you know where it comes from", found.Location, acct.Location)}
	}
	acct.PrivateKey = next
	k.logger.Warn("completed a rollover left unfinished: the CA has the new key", zap.String("account_url", acct.Location))
	return acct, true, promoteKey(ctx, storage, loc, nextPEM, k.logger)
}

// promoteKey makes the rollover key the account's key, then drops the
// rollover key. The old key is not kept: the CA no longer accepts it.
func promoteKey(ctx context.Context, storage certmagic.Storage, loc location, keyPEM []byte, logger *zap.Logger) error {
	if err := storeVerified(ctx, storage, loc.Key, keyPEM); err != nil {
		return fmt.Errorf("the CA has the account's new key, but storing it failed: %w; the key is kept at %s: run the rollover again to complete it", err, loc.rolloverKey())
	}
	if err := storage.Delete(ctx, loc.rolloverKey()); err != nil {
		// a leftover copy of the account's key: the next rollover drops it
		logger.Warn("could not delete the rollover key after storing it as the account's key", zap.String("key", loc.rolloverKey()), zap.Error(err))
	}
	return nil
}
