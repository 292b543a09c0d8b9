package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
)

// A draft -02 record hashes the thumbprint of the account's key, so a key
// rollover changes the value to publish. CAs keep accepting values hashed
// with earlier keys, so the check must too: the thumbprints of an
// account's earlier keys are kept beside it (never the keys, which the CA
// no longer accepts), and a record made with one passes, flagged so that
// it gets republished.

// previousKey is a key an account had before a rollover.
type previousKey struct {
	AccountURL string `json:"account_url"`
	// Thumbprint is the key's RFC 7638 thumbprint, as -02 hashes it.
	Thumbprint string    `json:"thumbprint"`
	RolledOver time.Time `json:"rolled_over"`
}

// loadPreviousKeys reads the previous keys kept at loc; none is no error.
func loadPreviousKeys(ctx context.Context, storage certmagic.Storage, loc location) ([]previousKey, error) {
	data, err := storage.Load(ctx, loc.previousThumbprints())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &StorageError{Key: loc.previousThumbprints(), Err: err, readFailed: true}
	}
	var keys []previousKey
	if err := json.Unmarshal(data, &keys); err != nil {
		return nil, &StorageError{Key: loc.previousThumbprints(), Err: fmt.Errorf("corrupt JSON: %v; restore it from a backup, or move it away to stop accepting records made with earlier keys", err)}
	}
	return keys, nil
}

// rememberPreviousKey adds a key to those kept at loc, once. The caller
// holds the account's lock.
func rememberPreviousKey(ctx context.Context, storage certmagic.Storage, loc location, key previousKey) error {
	keys, err := loadPreviousKeys(ctx, storage, loc)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(keys, func(k previousKey) bool {
		return k.AccountURL == key.AccountURL && k.Thumbprint == key.Thumbprint
	}) {
		return nil
	}
	data, err := json.MarshalIndent(append(keys, key), "", "\t")
	if err != nil {
		return err
	}
	return storeVerified(ctx, storage, loc.previousThumbprints(), data)
}

// thumbprintsBefore are the thumbprints of the earlier keys of the
// account at url, whose key now has thumbprint current.
func thumbprintsBefore(keys []previousKey, url, current string) []string {
	var out []string
	for _, k := range keys {
		if k.AccountURL == url && k.Thumbprint != current && !slices.Contains(out, k.Thumbprint) {
			out = append(out, k.Thumbprint)
		}
	}
	return out
}

// PreviousThumbprints returns the thumbprints of acct's earlier keys,
// read from storage once per account and key: a draft -02 record made
// with one of them still passes at the CA.
func (k *Keeper) PreviousThumbprints(ctx context.Context, acct acme.Account) ([]string, error) {
	current, err := acct.Thumbprint()
	if err != nil {
		return nil, fmt.Errorf("computing the account key thumbprint: %v", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.previous.account == acct.Location && k.previous.thumbprint == current {
		return k.previous.thumbprints, nil
	}
	storage := k.storage()
	if storage == nil {
		return nil, nil
	}
	keys, err := loadPreviousKeys(ctx, storage, locate(k.ca, k.email))
	if err != nil {
		return nil, err
	}
	k.previous.account, k.previous.thumbprint = acct.Location, current
	k.previous.thumbprints = thumbprintsBefore(keys, acct.Location, current)
	return k.previous.thumbprints, nil
}
