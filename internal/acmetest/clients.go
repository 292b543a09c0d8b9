package acmetest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/md5"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/caddyserver/certmagic"
	"github.com/go-jose/go-jose/v4"
)

// The writers below put an account on disk as another ACME client keeps
// it, for the import tests (see internal/account's import_formats.go for
// the layouts and where they come from); lego's own layout is written by
// lego itself in the e2e test. Each returns the account's folder.

// WriteCertbotAccount writes an account as certbot keeps it under its
// config folder: accounts/<host:port><path>/<id>/ with the key as a JWK
// in private_key.json, regr.json naming the account URL, and meta.json.
func WriteCertbotAccount(configDir, directory string, key crypto.Signer, accountURL string) (string, error) {
	u, err := url.Parse(directory)
	if err != nil {
		return "", err
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", err
	}
	// certbot names the folder after the MD5 of the public key's PEM
	id := md5.Sum(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	dir := filepath.Join(configDir, "accounts", u.Host+u.Path, hex.EncodeToString(id[:]))
	jwk, err := jose.JSONWebKey{Key: key}.MarshalJSON()
	if err != nil {
		return "", err
	}
	regr, err := json.Marshal(map[string]any{"body": map[string]any{}, "uri": accountURL})
	if err != nil {
		return "", err
	}
	return dir, writeFiles(dir, map[string]string{
		"private_key.json": string(jwk),
		"regr.json":        string(regr),
		"meta.json":        `{"creation_dt": "2026-01-02T03:04:05Z", "creation_host": "old-host.example"}`,
	})
}

// WriteAcmeShAccount writes an account as acme.sh keeps it under its
// home: ca/<host>/<directory path>/ with account.key (as openssl writes
// an EC key, parameters first), account.json and ca.conf naming the URL.
func WriteAcmeShAccount(home, directory string, key *ecdsa.PrivateKey, accountURL string) (string, error) {
	u, err := url.Parse(directory)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	keyPEM = append(keyPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
	dir := filepath.Join(home, "ca", u.Hostname(), strings.Trim(u.Path, "/"))
	return dir, writeFiles(dir, map[string]string{
		"account.key":  string(keyPEM),
		"account.json": `{"status":"valid","contact":["mailto:old@example.test"],"orders":"` + accountURL + `/orders"}`,
		"ca.conf":      "CA_EMAIL='old@example.test'\nACCOUNT_URL='" + accountURL + "'\nCA_KEY_HASH='abc'\n",
	})
}

// WriteLegoV4Account writes an account as lego v4 kept it under its
// --path: accounts/<host>_<port>/<email>/account.json, with the account
// URL as registration.uri, and the key in keys/<email>.key.
func WriteLegoV4Account(path, directory, email string, key crypto.Signer, accountURL string) (string, error) {
	u, err := url.Parse(directory)
	if err != nil {
		return "", err
	}
	keyPEM, err := certmagic.PEMEncodePrivateKey(key)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(path, "accounts", strings.ReplaceAll(u.Host, ":", "_"), email)
	reg, err := json.Marshal(map[string]any{
		"email":        email,
		"registration": map[string]any{"body": map[string]any{"status": "valid"}, "uri": accountURL},
	})
	if err != nil {
		return "", err
	}
	return dir, writeFiles(dir, map[string]string{"account.json": string(reg), "keys/" + email + ".key": string(keyPEM)})
}

func writeFiles(dir string, files map[string]string) error {
	for name, content := range files {
		file := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}
