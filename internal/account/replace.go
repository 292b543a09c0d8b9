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

// A replacement moves to a new account, for a key that may have leaked,
// in three runs of `caddy persist account replace`, each under the
// account's registration lock and each leaving a state in storage that
// every instance and the next run see:
//
//  1. without flags: a new account is registered and kept at
//     <user>.replacement.*; orders go on with the current account, and
//     the new account's records are printed;
//  2. --switch, once its records pass: the current account is copied to
//     <user>.replaced.*, the new one takes its place at <user>.*, and
//     the replacement files go;
//  3. --deactivate-old: the old account is deactivated at the CA (RFC
//     8555, section 7.3.6), then its files are set aside
//     (<file>.deactivated-<unix>), never deleted.
//
// Every step writes before it removes, so an interruption leaves a state
// the same step completes when run again, and no key is lost.

// StateError is a change the account's state does not allow yet, rather
// than a failure; it says which step comes first.
type StateError struct{ error }

func (e *StateError) Unwrap() error { return e.error }

// ReplaceStep is a step of a replacement.
type ReplaceStep int

// The steps of a replacement, in their order.
const (
	// Begin registers the replacement, once: later runs return the one
	// registered, and complete a registration left unfinished.
	Begin ReplaceStep = iota
	// Pending returns the replacement awaiting the switch, if any, and
	// changes nothing.
	Pending
	// Switch makes the pending replacement the account; the old one is
	// kept as the replaced account until DeactivateOld.
	Switch
	// DeactivateOld deactivates the replaced account at the CA and sets
	// its files aside.
	DeactivateOld
)

// Replacement is where a replacement stands after a step.
type Replacement struct {
	// Account is the replacement (Begin; Pending, zero when none is
	// pending), or the account in use after the Switch.
	Account acme.Account
	// Old is the replaced account (Switch, DeactivateOld).
	Old acme.Account
	// Created says Begin registered the replacement in this run.
	Created bool
	// Done says a Switch or DeactivateOld found the replacement
	// complete already: switched to, and the old account deactivated.
	Done bool
}

// Replace takes the replacement one step. It refuses a pinned account
// (ErrPinned), and a step the state does not allow yet with a
// *StateError naming the step that comes first.
func (k *Keeper) Replace(ctx context.Context, step ReplaceStep) (Replacement, error) {
	var r Replacement
	var err error
	switch step {
	case Begin:
		r.Account, r.Created, err = k.beginReplacement(ctx)
	case Pending:
		var st replacementState
		if st, err = k.replacementState(ctx); err == nil && st.pending != nil {
			r.Account = *st.pending
		}
	case Switch:
		r.Old, r.Account, r.Done, err = k.switchToReplacement(ctx)
	case DeactivateOld:
		r.Old, r.Done, err = k.deactivateReplaced(ctx)
	default:
		err = fmt.Errorf("unknown replacement step %d", step)
	}
	return r, err
}

var (
	errNoReplacement       = errors.New("no replacement account is pending: run `caddy persist account replace` without --switch first, which registers one and prints its records")
	errNothingToDeactivate = errors.New("no replaced account awaits deactivation: --deactivate-old deactivates the old account once `caddy persist account replace --switch` has moved to the replacement")
)

// replacementState is where a replacement stands in storage.
type replacementState struct {
	// pending is the replacement, registered and not switched to yet.
	pending *acme.Account
	// replaced is the old account after the switch, until it is
	// deactivated.
	replaced *acme.Account
}

// replacementState reads the replacement's files.
func (k *Keeper) replacementState(ctx context.Context) (replacementState, error) {
	storage, loc, err := k.ownedStorage()
	if err != nil {
		return replacementState{}, err
	}
	var st replacementState
	for _, slot := range []struct {
		loc  location
		into **acme.Account
	}{{loc.replacement(), &st.pending}, {loc.replaced(), &st.replaced}} {
		acct, err := loadStored(ctx, storage, slot.loc)
		switch {
		case err == nil:
			*slot.into = &acct
		case errors.Is(err, errRegistrationMissing):
			// a registration or a switch left unfinished: the next step
			// completes it
		case !errors.Is(err, fs.ErrNotExist):
			return replacementState{}, err
		}
	}
	return st, nil
}

// beginReplacement returns the pending replacement, registering it if
// there is none; created says this run registered it (or completed a
// registration an earlier run left unfinished).
func (k *Keeper) beginReplacement(ctx context.Context) (pending acme.Account, created bool, err error) {
	storage, loc, err := k.ownedStorage()
	if err != nil {
		return acme.Account{}, false, err
	}
	next := loc.replacement()
	pending, err = k.withLock(ctx, storage, loc, func() (acme.Account, error) {
		current, err := loadExisting(ctx, storage, loc)
		if err != nil {
			return acme.Account{}, err
		}
		acct, err := loadStored(ctx, storage, next)
		switch {
		case err == nil:
			return acct, nil
		case errors.Is(err, errRegistrationMissing):
			// the key was stored and the CA may have answered: ask it
			created = true
			found, err := k.lookUp(ctx, acct.PrivateKey)
			if errors.Is(err, errAccountUnknown) {
				return k.registerAt(ctx, storage, next, acct.PrivateKey, false)
			}
			if err != nil {
				return acme.Account{}, err
			}
			return found, save(ctx, storage, next, found)
		case !errors.Is(err, fs.ErrNotExist):
			return acme.Account{}, err
		}
		if old, err := loadStored(ctx, storage, loc.replaced()); err == nil && old.Location != current.Location {
			return acme.Account{}, &StateError{fmt.Errorf("the account was replaced before, and the old account %s still awaits deactivation (its files are %s and .key): run `caddy persist account replace --deactivate-old` first", old.Location, loc.replaced().Reg)}
		}
		key, err := newKey()
		if err != nil {
			return acme.Account{}, fmt.Errorf("generating account key: %v", err)
		}
		created = true
		return k.registerAt(ctx, storage, next, key, false)
	})
	if err != nil {
		return acme.Account{}, false, err
	}
	if created {
		k.logger.Warn("registered a replacement ACME account, as caddy persist account replace asked; orders go on with the current account until the replacement's records pass and caddy persist account replace --switch runs",
			zap.String("replacement_account_url", pending.Location), zap.String("ca", k.ca), zap.String("stored_at", next.Reg))
	}
	return pending, created, nil
}

// loadInUse loads the account at loc as orders use it. A switch
// interrupted between copying the replacement's key and its registration
// leaves the replacement's key beside the old account's URL, which the CA
// refuses; the replacement, still stored whole beside, is then the
// account, as it is once the switch is done.
func loadInUse(ctx context.Context, storage certmagic.Storage, loc location) (acme.Account, error) {
	acct, err := loadStored(ctx, storage, loc)
	if err != nil {
		return acct, err
	}
	pending, err := loadStored(ctx, storage, loc.replacement())
	if err == nil && pending.Location != acct.Location && sameKey(pending.PrivateKey, acct.PrivateKey) {
		return pending, nil
	}
	return acct, nil
}

// switchToReplacement makes the pending replacement the account. The old
// account is kept as the replaced one. Run when the switch is done, it
// returns the same accounts again; once the old one is deactivated too,
// it says the replacement is done.
func (k *Keeper) switchToReplacement(ctx context.Context) (old, current acme.Account, done bool, err error) {
	storage, loc, err := k.ownedStorage()
	if err != nil {
		return acme.Account{}, acme.Account{}, false, err
	}
	next, prev := loc.replacement(), loc.replaced()
	// a run that finds the switch made says so without logging it again
	switched := false
	current, err = k.withLock(ctx, storage, loc, func() (acme.Account, error) {
		main, err := loadExisting(ctx, storage, loc)
		if err != nil {
			return acme.Account{}, err
		}
		pending, err := loadStored(ctx, storage, next)
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, errRegistrationMissing) && sameKey(pending.PrivateKey, main.PrivateKey):
			// switched; at most a copy of the key is left over
			if err := storage.Delete(ctx, next.Key); err != nil && storage.Exists(ctx, next.Key) {
				return acme.Account{}, fmt.Errorf("deleting %s, left over by the switch: %w", next.Key, err)
			}
			if old, err = loadStored(ctx, storage, prev); err == nil && old.Location != main.Location {
				return main, nil
			}
			if old, done = deactivatedBefore(ctx, storage, prev); done && old.Location != main.Location {
				return main, nil
			}
			return acme.Account{}, &StateError{errNoReplacement}
		case errors.Is(err, errRegistrationMissing):
			return acme.Account{}, &StateError{errors.New("the replacement's registration was left unfinished: run `caddy persist account replace` without --switch, which completes it, then publish its records")}
		case err != nil:
			return acme.Account{}, err
		}

		if !sameKey(main.PrivateKey, pending.PrivateKey) {
			// main is wholly the old account: keep it before it changes.
			// A key change of it left unfinished is completed first:
			// its key file would stay beside the replacement, and the
			// old account would be kept with a key the CA may no longer
			// take, which the deactivation signs with
			if _, _, err := k.finishRollover(ctx, storage, loc, main); err != nil {
				return acme.Account{}, fmt.Errorf("a key change of the current account was left unfinished, and completing it before the switch failed: %w; nothing was switched", err)
			}
			if kept, err := loadStored(ctx, storage, prev); err == nil && kept.Location != main.Location {
				return acme.Account{}, &StateError{fmt.Errorf("an account replaced before, %s, still awaits deactivation at %s: run `caddy persist account replace --deactivate-old` first", kept.Location, prev.Reg)}
			}
			for _, f := range [][2]string{{loc.Key, prev.Key}, {loc.Reg, prev.Reg}} {
				if err := copyVerified(ctx, storage, f[0], f[1]); err != nil {
					return acme.Account{}, fmt.Errorf("keeping the old account before the switch: %w; nothing was switched", err)
				}
			}
		}
		if old, err = loadStored(ctx, storage, prev); err != nil {
			return acme.Account{}, err
		}
		for _, f := range [][2]string{{next.Key, loc.Key}, {next.Reg, loc.Reg}} {
			if err := copyVerified(ctx, storage, f[0], f[1]); err != nil {
				return acme.Account{}, fmt.Errorf("switching to the replacement: %w; the old account is kept at %s: run --switch again to complete the switch", err, prev.Reg)
			}
		}
		// the registration goes first: a key left alone is recognized
		// above as a copy of the account's
		for _, key := range []string{next.Reg, next.Key} {
			if err := storage.Delete(ctx, key); err != nil && storage.Exists(ctx, key) {
				return acme.Account{}, fmt.Errorf("the switch is done, but deleting %s failed: %w; run --switch again to tidy up", key, err)
			}
		}
		switched = true
		return pending, nil
	})
	k.Forget()
	if err != nil {
		return acme.Account{}, acme.Account{}, false, err
	}
	if !switched {
		return old, current, done, nil
	}
	k.logger.Warn("switched to the replacement ACME account; the old account still works at the CA until `caddy persist account replace --deactivate-old`",
		zap.String("account_url", current.Location), zap.String("old_account_url", old.Location), zap.String("ca", k.ca))
	return old, current, done, nil
}

// deactivateReplaced deactivates the old account at the CA, then sets its
// files aside. A CA that answers that the account may no longer act
// (unauthorized) may have deactivated it already, as when an earlier
// run's answer was lost, or may refuse the key for another cause; the
// files are set aside only once the CA confirms the first.
func (k *Keeper) deactivateReplaced(ctx context.Context) (old acme.Account, done bool, err error) {
	storage, loc, err := k.ownedStorage()
	if err != nil {
		return acme.Account{}, false, err
	}
	prev := loc.replaced()
	old, err = k.withLock(ctx, storage, loc, func() (acme.Account, error) {
		main, err := loadExisting(ctx, storage, loc)
		if err != nil {
			return acme.Account{}, err
		}
		old, err := loadStored(ctx, storage, prev)
		if errors.Is(err, fs.ErrNotExist) {
			if storage.Exists(ctx, loc.replacement().Reg) {
				return acme.Account{}, &StateError{fmt.Errorf("%w; a replacement is pending: switch to it first (--switch, once its records pass)", errNothingToDeactivate)}
			}
			if old, done = deactivatedBefore(ctx, storage, prev); done && old.Location != main.Location {
				return old, nil
			}
			return acme.Account{}, &StateError{errNothingToDeactivate}
		}
		if err != nil {
			return acme.Account{}, err
		}
		if main.Location == old.Location {
			return acme.Account{}, &StateError{fmt.Errorf("the switch to the replacement was left unfinished, so %s is still the account in use: run --switch to complete it; nothing was deactivated", old.Location)}
		}
		client, err := k.client()
		if err != nil {
			return acme.Account{}, err
		}
		_, err = client.UpdateAccount(ctx, acme.Account{Status: acme.StatusDeactivated, Location: old.Location, PrivateKey: old.PrivateKey})
		var problem acme.Problem
		switch {
		case errors.As(err, &problem) && problem.Type == acme.ProblemTypeUnauthorized:
			if err := k.confirmDeactivated(ctx, old, problem); err != nil {
				return acme.Account{}, err
			}
			k.logger.Info("the CA no longer lets the old ACME account act: it was deactivated already", zap.String("old_account_url", old.Location), zap.String("detail", problem.Detail))
		case err != nil:
			return acme.Account{}, fmt.Errorf("deactivating the old ACME account %s at %s: %w; nothing was changed, and its key is kept at %s: run `caddy persist account replace --deactivate-old` again", old.Location, k.ca, redact.Error(err, k.secrets), prev.Key)
		}
		if err := setAside(ctx, storage, []string{prev.Key, prev.Reg}, "deactivated", k.now().Unix()); err != nil {
			return acme.Account{}, fmt.Errorf("the old ACME account %s is deactivated, but setting its files aside failed: %w; run --deactivate-old again to complete it", old.Location, err)
		}
		k.logger.Warn("deactivated the old ACME account; records naming it no longer work and may be removed",
			zap.String("old_account_url", old.Location), zap.String("ca", k.ca))
		return old, nil
	})
	return old, done, err
}

// deactivatedBefore returns the old account of a replacement completed
// before, the last one --deactivate-old set aside at prev; ok is false
// when there is none.
func deactivatedBefore(ctx context.Context, storage certmagic.Storage, prev location) (old acme.Account, ok bool) {
	aside := setAsideAccounts(ctx, storage, prev, "deactivated")
	if len(aside) == 0 {
		return acme.Account{}, false
	}
	return aside[len(aside)-1].acct, true
}

// confirmDeactivated asks the CA, by old's key, whether the account it
// refused (unauthorized) is deactivated: Boulder and Pebble answer
// newAccount with onlyReturnExisting for a deactivated account's key with
// unauthorized, and for a live one with the account. Anything else leaves
// the old account's files where they are.
func (k *Keeper) confirmDeactivated(ctx context.Context, old acme.Account, refusal acme.Problem) error {
	found, err := k.lookUp(ctx, old.PrivateKey)
	var problem acme.Problem
	switch {
	case errors.As(err, &problem) && problem.Type == acme.ProblemTypeUnauthorized:
		return nil
	case err == nil:
		return fmt.Errorf("the CA refused to deactivate the old ACME account %s (unauthorized: %s), yet it knows the key as the account %s, %q; nothing was set aside, and the old account may still obtain certificates: run `caddy persist account replace --deactivate-old` again, and if it is refused again, deactivate the account with a client that holds its current key", old.Location, refusal.Detail, found.Location, found.Status)
	case errors.Is(err, errAccountUnknown):
		return fmt.Errorf("the CA refused to deactivate the old ACME account %s (unauthorized: %s), and knows no account for the key stored for it, whose key may have been changed elsewhere; nothing was set aside, and the account may still obtain certificates: deactivate it with a client that holds its current key", old.Location, refusal.Detail)
	}
	return fmt.Errorf("the CA refused to deactivate the old ACME account %s (unauthorized: %s), and asking it whether the account is deactivated failed: %w; nothing was set aside: run `caddy persist account replace --deactivate-old` again", old.Location, refusal.Detail, err)
}
