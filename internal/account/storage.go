package account

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
)

// Accounts are kept exactly where certmagic keeps them, so that the `acme`
// issuer and this one share the account for a CA and email:
//
//	acme/<issuer key>/users/<email>/<username>.json
//	acme/<issuer key>/users/<email>/<username>.key
//
// and registration takes certmagic's lock of the same name. The functions
// here only read and write those files; they never ask the CA.

// emptyEmail stands in for the email in storage keys when none is set.
const emptyEmail = "default"

// IssuerKey is certmagic's issuer key for a CA URL, which names the
// CA's folder in storage; certmagic computes it from the URL alone.
func IssuerKey(ca string) string {
	return (&certmagic.ACMEIssuer{CA: ca}).IssuerKey()
}

// location names the storage keys of one account.
type location struct {
	Reg     string
	Key     string
	Users   string
	LockKey string
}

func locate(ca, email string) location {
	email = strings.ToLower(email)
	folder := email
	if folder == "" {
		folder = emptyEmail
	}
	user := folder
	if at := strings.Index(folder, "@"); at > 0 {
		user = folder[:at]
	} else if at == 0 {
		user = folder[1:]
	}
	if user == "" {
		user = emptyEmail
	}
	users := path.Join("acme", certmagic.StorageKeys.Safe(IssuerKey(ca)), "users")
	dir := path.Join(users, certmagic.StorageKeys.Safe(folder))
	lock := "register_acme_account"
	if email != "" {
		lock += "_" + email
	}
	return location{
		Reg:     path.Join(dir, certmagic.StorageKeys.Safe(user)+".json"),
		Key:     path.Join(dir, certmagic.StorageKeys.Safe(user)+".key"),
		Users:   users,
		LockKey: lock,
	}
}

// The account's life adds files beside its two, named after the account's
// user (rollover and replacement keep their state here, so that every
// instance sharing the storage, and every later run, sees it):
//
//	<username>.rollover.key                the new key while a key change is under way
//	<username>.previous-thumbprints.json   the thumbprints of earlier keys, never the keys
//	<username>.replacement.json and .key   a replacement account, until the switch
//	<username>.replaced.json and .key      the old account after the switch, until it is deactivated
//	<username>.challenge-accounturi.json   the accounturi the CA's challenges name, when not the account URL

// base is the storage key of the account's files without the extension.
func (loc location) base() string {
	return strings.TrimSuffix(loc.Reg, ".json")
}

// rolloverKey holds the new key of a key change the CA may not have taken
// yet.
func (loc location) rolloverKey() string {
	return loc.base() + ".rollover.key"
}

// previousThumbprints lists the thumbprints of the account's earlier keys.
func (loc location) previousThumbprints() string {
	return loc.base() + ".previous-thumbprints.json"
}

// challengeAccountURI holds the accounturi the CA's challenges named for
// the account, when it is not the account's URL (challenge_uri.go).
func (loc location) challengeAccountURI() string {
	return loc.base() + ".challenge-accounturi.json"
}

// replacement is where a replacement account waits for the switch.
func (loc location) replacement() location {
	return loc.beside("replacement")
}

// replaced is where the old account waits, after the switch, until it is
// deactivated.
func (loc location) replaced() location {
	return loc.beside("replaced")
}

// beside is the location of another account's files in the same folder,
// under the same lock.
func (loc location) beside(role string) location {
	base := loc.base() + "." + role
	return location{Reg: base + ".json", Key: base + ".key", Users: loc.Users, LockKey: loc.LockKey}
}

// StorageError is stored account data that cannot be used. Issuance for the
// CA stops until a person repairs it; the plugin never overwrites it.
type StorageError struct {
	Key string
	Err error
	// readFailed says the storage could not read the file, which is no
	// sign that the file is damaged (a store without quorum, a network
	// error, a permission).
	readFailed bool
}

func (e *StorageError) Error() string {
	if e.readFailed {
		return fmt.Sprintf("reading ACME account file %s failed: %v (nothing was found damaged and nothing was changed; issuance for this CA is tried again when storage reads it)", e.Key, e.Err)
	}
	return fmt.Sprintf("ACME account file %s: %v (issuance for this CA is stopped; nothing was overwritten; see \"Recovering an account\" in docs/accounts.md)", e.Key, e.Err)
}

func (e *StorageError) Unwrap() error { return e.Err }

var (
	errRegistrationMissing = errors.New("account registration missing")
	errDifferentKey        = errors.New("a different account key is stored here; refusing to overwrite it")
)

// loadStored reads the account at loc. It returns fs.ErrNotExist only
// when neither file exists, and errRegistrationMissing, with the key, when
// only the key does.
func loadStored(ctx context.Context, storage certmagic.Storage, loc location) (acme.Account, error) {
	regBytes, regErr := storage.Load(ctx, loc.Reg)
	keyBytes, keyErr := storage.Load(ctx, loc.Key)
	switch {
	case errors.Is(regErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return acme.Account{}, fs.ErrNotExist
	case keyErr != nil && errors.Is(keyErr, fs.ErrNotExist):
		return acme.Account{}, &StorageError{Key: loc.Key, Err: errors.New("the account key is missing while its registration exists; restore the key from a backup")}
	case keyErr != nil:
		return acme.Account{}, &StorageError{Key: loc.Key, Err: keyErr, readFailed: true}
	case regErr != nil && !errors.Is(regErr, fs.ErrNotExist):
		return acme.Account{}, &StorageError{Key: loc.Reg, Err: regErr, readFailed: true}
	}

	key, err := certmagic.PEMDecodePrivateKey(keyBytes)
	if err != nil {
		return acme.Account{}, &StorageError{Key: loc.Key, Err: fmt.Errorf("unreadable private key: %v", err)}
	}
	if regErr != nil {
		// the key survived but its registration did not; the CA can tell
		// us the account URL for the key, which loses nothing
		return acme.Account{PrivateKey: key}, errRegistrationMissing
	}
	// with an unusable registration the readable key is returned too, so
	// that a deliberate repair can ask the CA for the account's URL
	var acct acme.Account
	if err := json.Unmarshal(regBytes, &acct); err != nil {
		return acme.Account{PrivateKey: key}, &StorageError{Key: loc.Reg, Err: fmt.Errorf("corrupt account JSON: %v", err)}
	}
	if acct.Location == "" {
		return acme.Account{PrivateKey: key}, &StorageError{Key: loc.Reg, Err: errors.New("the account JSON has no location (account URL)")}
	}
	acct.PrivateKey = key
	return acct, nil
}

// storedURL returns the account URL the registration at loc names, or a
// note that it cannot be read.
func storedURL(ctx context.Context, storage certmagic.Storage, loc location) string {
	if reg, err := storage.Load(ctx, loc.Reg); err == nil {
		var old acme.Account
		if json.Unmarshal(reg, &old) == nil && old.Location != "" {
			return old.Location
		}
	}
	return "unknown (the registration is unreadable)"
}

// storeKey stores an account key at loc unless that very key is there
// already. It never replaces a different key.
func storeKey(ctx context.Context, storage certmagic.Storage, loc location, key crypto.Signer) error {
	keyPEM, err := certmagic.PEMEncodePrivateKey(key)
	if err != nil {
		return err
	}
	existing, err := storage.Load(ctx, loc.Key)
	switch {
	case err == nil && !equalPEM(existing, keyPEM):
		return &StorageError{Key: loc.Key, Err: errDifferentKey}
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return &StorageError{Key: loc.Key, Err: err}
	}
	if err := storage.Store(ctx, loc.Key, keyPEM); err != nil {
		return fmt.Errorf("storing account key %s: %w", loc.Key, err)
	}
	return nil
}

// save stores the key, then the registration, so that a crash in
// between leaves a key the CA can still find. It never replaces a different
// key already stored at the location.
func save(ctx context.Context, storage certmagic.Storage, loc location, acct acme.Account) error {
	if err := storeKey(ctx, storage, loc, acct.PrivateKey); err != nil {
		return err
	}
	regBytes, err := json.MarshalIndent(acct, "", "\t")
	if err != nil {
		return err
	}
	if err := storage.Store(ctx, loc.Reg, regBytes); err != nil {
		return fmt.Errorf("storing account %s: %w", loc.Reg, err)
	}
	return nil
}

// findByKey scans the CA's accounts in storage for one whose key
// equals keyPEM, as certmagic does for a pinned key without an email.
func findByKey(ctx context.Context, storage certmagic.Storage, ca string, keyPEM []byte) (acme.Account, location, error) {
	users := locate(ca, "").Users
	folders, err := storage.List(ctx, users, false)
	if err != nil {
		return acme.Account{}, location{}, fs.ErrNotExist
	}
	for _, folder := range folders {
		email := path.Base(folder)
		if email == emptyEmail {
			email = ""
		}
		loc := locate(ca, email)
		stored, err := storage.Load(ctx, loc.Key)
		if err != nil || !equalPEM(stored, keyPEM) {
			continue
		}
		acct, err := loadStored(ctx, storage, loc)
		return acct, loc, err
	}
	return acme.Account{}, location{}, fs.ErrNotExist
}

// setAside moves the given account files to names ending in
// ".<why>-<unix>" (then ".2", ".3" for more in the same second), so the
// old key is kept but the place is free. A file is
// deleted only once its copy has been stored and read back intact; a file
// that cannot be read stops everything, since it cannot be copied.
func setAside(ctx context.Context, storage certmagic.Storage, keys []string, why string, now int64) error {
	suffix := "." + why + "-" + strconv.FormatInt(now, 10)
	var copied []string
	for _, key := range keys {
		aside := key + suffix
		// a file set aside in the same second is kept too
		for n := 2; storage.Exists(ctx, aside); n++ {
			aside = key + suffix + "." + strconv.Itoa(n)
		}
		err := copyVerified(ctx, storage, key, aside)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%w (nothing was changed)", err)
		}
		copied = append(copied, key)
	}
	for _, key := range copied {
		if err := storage.Delete(ctx, key); err != nil && storage.Exists(ctx, key) {
			return fmt.Errorf("moving %s aside: %w", key, err)
		}
	}
	return nil
}

// copyVerified copies the file at from to to, and reads the copy back. It
// returns fs.ErrNotExist, unwrapped, when there is nothing at from.
func copyVerified(ctx context.Context, storage certmagic.Storage, from, to string) error {
	data, err := storage.Load(ctx, from)
	if errors.Is(err, fs.ErrNotExist) {
		return fs.ErrNotExist
	}
	if err != nil {
		return fmt.Errorf("reading %s to keep a copy: %w", from, err)
	}
	return storeVerified(ctx, storage, to, data)
}

// storeVerified stores data at key and reads it back.
func storeVerified(ctx context.Context, storage certmagic.Storage, key string, data []byte) error {
	if err := storage.Store(ctx, key, data); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	back, err := storage.Load(ctx, key)
	if err != nil {
		return fmt.Errorf("reading %s back after storing it: %w", key, err)
	}
	if !bytes.Equal(back, data) {
		return fmt.Errorf("%s does not read back intact after storing it: the storage altered it", key)
	}
	return nil
}

// DescribeStorage names a storage for people: the folder of file storage.
func DescribeStorage(storage certmagic.Storage) string {
	if fs, ok := storage.(*certmagic.FileStorage); ok {
		return "file storage at " + fs.Path
	}
	return fmt.Sprintf("%T", storage)
}

func newKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// equalPEM compares two PEM encodings, ignoring surrounding whitespace.
func equalPEM(a, b []byte) bool {
	return bytes.Equal(bytes.TrimSpace(a), bytes.TrimSpace(b))
}

// sameKey reports whether two private keys have the same public key.
func sameKey(a, b crypto.Signer) bool {
	pa, ok := a.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pa.Equal(b.Public())
}
