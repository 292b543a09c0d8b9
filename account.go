package persist

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
	"net/url"
	"path"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
)

// Accounts are kept exactly where certmagic keeps them, so that the `acme`
// issuer and this one share the account for a CA and email:
//
//	acme/<issuer key>/users/<email>/<username>.json
//	acme/<issuer key>/users/<email>/<username>.key
//
// and registration takes certmagic's lock of the same name.

// emptyEmail stands in for the email in storage keys when none is set.
const emptyEmail = "default"

// issuerKeyFor is certmagic's issuer key for a CA URL: its host, plus its
// path with slashes turned into hyphens.
func issuerKeyFor(ca string) string {
	key := ca
	if u, err := url.Parse(ca); err == nil {
		key = u.Host
		p := strings.Trim(strings.NewReplacer("/", "-", `\`, "-").Replace(u.Path), "-")
		if p != "" {
			key += "-" + p
		}
	}
	return key
}

// accountLocation names the storage keys of one account.
type accountLocation struct {
	Reg     string
	Key     string
	Users   string
	LockKey string
}

func locateAccount(ca, email string) accountLocation {
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
	users := path.Join("acme", certmagic.StorageKeys.Safe(issuerKeyFor(ca)), "users")
	dir := path.Join(users, certmagic.StorageKeys.Safe(folder))
	lock := "register_acme_account"
	if email != "" {
		lock += "_" + email
	}
	return accountLocation{
		Reg:     path.Join(dir, certmagic.StorageKeys.Safe(user)+".json"),
		Key:     path.Join(dir, certmagic.StorageKeys.Safe(user)+".key"),
		Users:   users,
		LockKey: lock,
	}
}

// StorageError is stored account data that cannot be used. Issuance for the
// CA stops until a person repairs it; the plugin never overwrites it.
type StorageError struct {
	Key string
	Err error
}

func (e *StorageError) Error() string {
	return fmt.Sprintf("ACME account file %s: %v (issuance for this CA is stopped; nothing was overwritten; see \"Recovering an account\" in the README)", e.Key, e.Err)
}

func (e *StorageError) Unwrap() error { return e.Err }

// loadStoredAccount reads the account at loc. It returns fs.ErrNotExist only
// when neither file exists.
func loadStoredAccount(ctx context.Context, storage certmagic.Storage, loc accountLocation) (acme.Account, error) {
	regBytes, regErr := storage.Load(ctx, loc.Reg)
	keyBytes, keyErr := storage.Load(ctx, loc.Key)
	switch {
	case errors.Is(regErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return acme.Account{}, fs.ErrNotExist
	case keyErr != nil && errors.Is(keyErr, fs.ErrNotExist):
		return acme.Account{}, &StorageError{Key: loc.Key, Err: errors.New("the account key is missing while its registration exists; restore the key from a backup")}
	case keyErr != nil:
		return acme.Account{}, &StorageError{Key: loc.Key, Err: keyErr}
	case regErr != nil && !errors.Is(regErr, fs.ErrNotExist):
		return acme.Account{}, &StorageError{Key: loc.Reg, Err: regErr}
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
	var acct acme.Account
	if err := json.Unmarshal(regBytes, &acct); err != nil {
		return acme.Account{}, &StorageError{Key: loc.Reg, Err: fmt.Errorf("corrupt account JSON: %v", err)}
	}
	if acct.Location == "" {
		return acme.Account{}, &StorageError{Key: loc.Reg, Err: errors.New("the account JSON has no location (account URL)")}
	}
	acct.PrivateKey = key
	return acct, nil
}

var errRegistrationMissing = errors.New("account registration missing")

// saveAccount stores the key, then the registration, so that a crash in
// between leaves a key the CA can still find. It never replaces a different
// key already stored at the location.
func saveAccount(ctx context.Context, storage certmagic.Storage, loc accountLocation, acct acme.Account) error {
	keyPEM, err := certmagic.PEMEncodePrivateKey(acct.PrivateKey)
	if err != nil {
		return err
	}
	existing, err := storage.Load(ctx, loc.Key)
	switch {
	case err == nil && !bytes.Equal(bytes.TrimSpace(existing), bytes.TrimSpace(keyPEM)):
		return &StorageError{Key: loc.Key, Err: errors.New("a different account key is stored here; refusing to overwrite it")}
	case errors.Is(err, fs.ErrNotExist):
		if err := storage.Store(ctx, loc.Key, keyPEM); err != nil {
			return fmt.Errorf("storing account key %s: %w", loc.Key, err)
		}
	case err != nil:
		return &StorageError{Key: loc.Key, Err: err}
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

// findAccountByKey scans the CA's accounts in storage for one whose key
// equals keyPEM, as certmagic does for a pinned key without an email.
func findAccountByKey(ctx context.Context, storage certmagic.Storage, ca string, keyPEM []byte) (acme.Account, accountLocation, error) {
	users := locateAccount(ca, "").Users
	folders, err := storage.List(ctx, users, false)
	if err != nil {
		return acme.Account{}, accountLocation{}, fs.ErrNotExist
	}
	for _, folder := range folders {
		email := path.Base(folder)
		if email == emptyEmail {
			email = ""
		}
		loc := locateAccount(ca, email)
		stored, err := storage.Load(ctx, loc.Key)
		if err != nil || !bytes.Equal(bytes.TrimSpace(stored), bytes.TrimSpace(keyPEM)) {
			continue
		}
		acct, err := loadStoredAccount(ctx, storage, loc)
		return acct, loc, err
	}
	return acme.Account{}, accountLocation{}, fs.ErrNotExist
}

func newAccountKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// getAccount returns the account to use, loading it from storage, finding
// it at the CA by its pinned key, or registering it, in that order. The
// result is remembered until SetConfig changes storage.
func (iss *Issuer) getAccount(ctx context.Context) (acme.Account, error) {
	iss.st.acctMu.Lock()
	defer iss.st.acctMu.Unlock()
	if iss.st.acct != nil {
		return *iss.st.acct, nil
	}
	acct, err := iss.loadOrRegisterAccount(ctx)
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

func (iss *Issuer) loadOrRegisterAccount(ctx context.Context) (acme.Account, error) {
	storage := iss.getStorage()
	if storage == nil {
		return acme.Account{}, errors.New("no storage configured (the issuer was not given a certmagic config)")
	}
	loc := locateAccount(iss.CA, iss.Email)

	if iss.accountKey != nil {
		return iss.pinnedAccount(ctx, storage, loc)
	}

	acct, err := loadStoredAccount(ctx, storage, loc)
	if err == nil {
		return acct, nil
	}
	if errors.Is(err, errRegistrationMissing) {
		return iss.recoverRegistration(ctx, storage, loc, acct.PrivateKey)
	}
	var unusable *StorageError
	if errors.As(err, &unusable) && iss.NewAccountIfMissing {
		return iss.replaceUnusableAccount(ctx, storage, loc, unusable)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return acme.Account{}, err
	}

	// register under certmagic's lock, so that every instance sharing the
	// storage ends up with the one account the first of them registered
	if err := storage.Lock(ctx, loc.LockKey); err != nil {
		return acme.Account{}, fmt.Errorf("locking account registration: %v", err)
	}
	defer func() {
		if err := storage.Unlock(context.WithoutCancel(ctx), loc.LockKey); err != nil {
			iss.logger.Error("unlocking account registration", zap.String("lock", loc.LockKey), zap.Error(err))
		}
	}()
	acct, err = loadStoredAccount(ctx, storage, loc)
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
	return iss.registerAccount(ctx, storage, loc, key)
}

// registerAccount creates an account for key at the CA and stores it. The
// caller holds the registration lock.
func (iss *Issuer) registerAccount(ctx context.Context, storage certmagic.Storage, loc accountLocation, key crypto.Signer) (acme.Account, error) {
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
	if err := saveAccount(ctx, storage, loc, acct); err != nil {
		return acme.Account{}, fmt.Errorf("ACME account %s was registered but could not be stored: %w", acct.Location, err)
	}
	iss.st.registered = acct.Location
	iss.logger.Warn("registered a new ACME account; dns-persist-01 records must name it (if records for another account are published, restore that account instead: see account_key)",
		zap.String("account_url", acct.Location),
		zap.String("ca", iss.CA),
		zap.String("stored_at", loc.Reg))
	return acct, nil
}

// pinnedAccount returns the account of the configured account_key: from
// storage if it is there, else from the CA, registering it only if the CA
// has never seen the key.
func (iss *Issuer) pinnedAccount(ctx context.Context, storage certmagic.Storage, loc accountLocation) (acme.Account, error) {
	keyPEM, err := certmagic.PEMEncodePrivateKey(iss.accountKey)
	if err != nil {
		return acme.Account{}, err
	}
	if stored, err := storage.Load(ctx, loc.Key); err == nil && bytes.Equal(bytes.TrimSpace(stored), bytes.TrimSpace(keyPEM)) {
		acct, err := loadStoredAccount(ctx, storage, loc)
		if err == nil {
			return acct, nil
		}
		if !errors.Is(err, errRegistrationMissing) {
			return acme.Account{}, err
		}
	} else if iss.Email == "" {
		if acct, foundAt, err := findAccountByKey(ctx, storage, iss.CA, keyPEM); err == nil {
			return acct, nil
		} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errRegistrationMissing) {
			return acme.Account{}, err
		} else if errors.Is(err, errRegistrationMissing) {
			loc = foundAt
		}
	}

	if err := storage.Lock(ctx, loc.LockKey); err != nil {
		return acme.Account{}, fmt.Errorf("locking account registration: %v", err)
	}
	defer func() {
		if err := storage.Unlock(context.WithoutCancel(ctx), loc.LockKey); err != nil {
			iss.logger.Error("unlocking account registration", zap.String("lock", loc.LockKey), zap.Error(err))
		}
	}()
	acct, err := iss.lookUpAccount(ctx, iss.accountKey)
	if errors.Is(err, errAccountUnknown) {
		iss.logger.Info("the CA has no account for the configured account_key; registering it")
		return iss.registerAccount(ctx, storage, loc, iss.accountKey)
	}
	if err != nil {
		return acme.Account{}, err
	}
	iss.storePinned(ctx, storage, loc, acct)
	return acct, nil
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
// knows the account by its key. It never registers a new account.
func (iss *Issuer) recoverRegistration(ctx context.Context, storage certmagic.Storage, loc accountLocation, key crypto.Signer) (acme.Account, error) {
	acct, err := iss.lookUpAccount(ctx, key)
	if errors.Is(err, errAccountUnknown) {
		return acme.Account{}, &StorageError{Key: loc.Reg, Err: errors.New("the registration is missing and the CA knows no account for the stored key")}
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

// sameKey reports whether two private keys have the same public key.
func sameKey(a, b crypto.Signer) bool {
	pa, ok := a.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pa.Equal(b.Public())
}
