package account

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/caddyserver/certmagic"
	"github.com/go-jose/go-jose/v4"
)

// Other ACME clients keep their accounts in folders of their own. This
// file reads them, as each client writes them, into a Foreign:
// the key, the account URL the client recorded, and the CA it names by
// its folders. It never writes there and never asks a CA.
//
//	lego v5:  <path>/accounts/<host>_<port>/<id>/account.json
//	          <path>/accounts/<host>_<port>/<id>/<id>.key
//	          account.json: {"id", "email", "server",
//	                         "registration": {..., "accountURL"}}
//	lego v4:  <path>/accounts/<host>_<port>/<email>/account.json
//	          <path>/accounts/<host>_<port>/<email>/keys/<email>.key
//	          account.json: {"email", "registration": {"body", "uri"}}
//	acme.sh:  <home>/ca/<host>/<directory path>/account.key (PEM)
//	          <home>/ca/<host>/<directory path>/ca.conf:
//	          ACCOUNT_URL='<url>' (the port is not in the folder name)
//	certbot:  <config>/accounts/<host[:port]>/<directory path>/<id>/
//	          private_key.json (a JWK), regr.json {"body", "uri"}, meta.json

// The clients whose storage is read, as --from names them.
const (
	fromLego    = "lego"
	fromAcmeSh  = "acme.sh"
	fromCertbot = "certbot"
)

// Clients are the clients an account can be imported from, as --from
// names them.
func Clients() []string {
	return []string{fromLego, fromAcmeSh, fromCertbot}
}

// Foreign is an account found in another client's storage. It is plain
// data, so that the command that read the client's folder can send it to
// the running Caddy (the import request is the one place it travels).
type Foreign struct {
	// Client is the client whose storage holds the account.
	Client string `json:"client"`
	// Dir is the account's folder.
	Dir string `json:"folder"`
	// Server is the CA as the client's files name it: a directory URL
	// (lego v5), or the folder the client derives from one; "" when the
	// folders do not tell.
	Server string `json:"server,omitempty"`
	// URL is the account URL the client recorded; "" when its files keep
	// none (a registration lego lost, acme.sh without ca.conf).
	URL string `json:"account_url,omitempty"`
	// Key is the account's private key, PEM-encoded.
	Key string `json:"key"`
}

// Matches reports whether the account may belong to the CA at ca, as far
// as the client's folders tell: whether they are those the client uses
// for the CA with that directory URL.
func (f Foreign) Matches(ca string) bool {
	if f.Server == "" {
		return true
	}
	u, err := url.Parse(ca)
	if err != nil {
		return false
	}
	switch f.Client {
	case fromLego:
		if strings.Contains(f.Server, "://") {
			// v5 keeps the directory URL
			return SameDirectory(ca, f.Server)
		}
		// v4 names the folder after the host and port, with ':' turned
		// into '_'
		return strings.NewReplacer(":", "_", "/", "_", `\`, "_").Replace(u.Host) == f.Server
	case fromAcmeSh:
		// ca/<host>/<path> after the directory URL, without its port;
		// older versions used ca/<host> alone
		path := strings.Trim(collapseSlashes(u.Path), "/")
		return f.Server == u.Hostname() || f.Server == u.Hostname()+"/"+path
	case fromCertbot:
		// accounts/<netloc><path>; on Windows ':' becomes '_'
		want := strings.TrimSuffix(u.Host+u.Path, "/")
		return f.Server == want || f.Server == strings.ReplaceAll(want, ":", "_")
	}
	return false
}

// signer decodes the account's key.
func (f Foreign) signer() (crypto.Signer, error) {
	key, err := certmagic.PEMDecodePrivateKey([]byte(f.Key))
	if err != nil {
		return nil, fmt.Errorf("the key of the %s account in %s is not a PEM-encoded private key", f.Client, f.Dir)
	}
	return key, nil
}

// foreign is a Foreign as a client's files give it, with its key read.
type foreign struct {
	Foreign
	key crypto.Signer
}

// pemOf encodes a key read from a client's files.
func pemOf(key crypto.Signer) (string, error) {
	keyPEM, err := certmagic.PEMEncodePrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("encoding the account key: %v", err)
	}
	return string(keyPEM), nil
}

// errNoForeignAccount is a folder that holds no account of the client.
var errNoForeignAccount = errors.New("nothing to import")

// FindForeign reads every account of client stored at or under
// root: the client's whole folder, its accounts folder, or one account's.
// An account whose files cannot be read is an error, not skipped: the
// account the operator means may be that one.
func FindForeign(client, root string) ([]Foreign, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	var marker string
	var read func(dir string) (foreign, error)
	switch client {
	case fromLego:
		marker, read = "account.json", readLegoAccount
	case fromAcmeSh:
		marker, read = "account.key", readAcmeShAccount
	case fromCertbot:
		marker, read = "private_key.json", readCertbotAccount
	default:
		return nil, fmt.Errorf("--from must be one of %s, not %q", strings.Join(Clients(), ", "), client)
	}
	if _, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("reading the %s folder: %w; give the folder %s keeps its accounts in %s", client, err, client, usualFolder(client))
	}
	var found []Foreign
	err = walkFollowing(root, maxImportDepth, func(dir string, names []string) error {
		if !slices.Contains(names, marker) {
			return nil
		}
		acct, err := read(dir)
		if err == nil {
			acct.Key, err = pemOf(acct.key)
		}
		if err != nil {
			return fmt.Errorf("%s account in %s: %w; nothing was imported: if another client wrote this folder, name it in --from, or give the folder of the one account to import", client, dir, err)
		}
		acct.Client, acct.Dir = client, dir
		found = append(found, acct.Foreign)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: no %s account (%s) at or under %s; give the folder %s keeps its accounts in %s",
			errNoForeignAccount, client, marker, root, client, usualFolder(client))
	}
	return found, nil
}

// maxImportDepth bounds how deep below the given folder accounts are
// looked for: certbot's are five levels below its config folder.
const maxImportDepth = 6

// maxImportFolders bounds how many folders are read in all: a client's
// folder holds a few per CA and account, and a larger tree is not one.
const maxImportFolders = 10000

// walkFollowing calls visit for root and each folder below it, up to
// depth levels down, with the names of the entries in it. Unlike
// filepath.WalkDir it follows symbolic links to folders: certbot links
// the folder of Let's Encrypt's current directory URL to an older one. A
// folder is read once however many links lead to it, so a link back up
// ends there.
func walkFollowing(root string, depth int, visit func(dir string, names []string) error) error {
	seen := make(map[string]bool)
	var walk func(dir string, depth int) error
	walk = func(dir string, depth int) error {
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return err
		}
		if seen[real] {
			return nil
		}
		if len(seen) == maxImportFolders {
			return fmt.Errorf("more than %d folders at or under %s, more than a client keeps its accounts in: give the client's own folder, or the folder of the one account", maxImportFolders, root)
		}
		seen[real] = true
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if err := visit(dir, names); err != nil {
			return err
		}
		if depth == 0 {
			return nil
		}
		for _, name := range names {
			sub := filepath.Join(dir, name)
			if info, err := os.Stat(sub); err != nil || !info.IsDir() {
				continue
			}
			if err := walk(sub, depth-1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root, depth)
}

// maxAccountFile bounds each file read: an account's files are a few
// kilobytes.
const maxAccountFile = 1 << 20

// readAccountFile reads a file of another client's account. Only a
// regular file is read (a FIFO or a device would block the read, or never
// end it), and no more than maxAccountFile octets.
func readAccountFile(file string) ([]byte, error) {
	// opened without blocking, so that a FIFO is seen for what it is
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", file, info.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxAccountFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxAccountFile {
		return nil, fmt.Errorf("%s is larger than %d octets, more than any account file holds", file, maxAccountFile)
	}
	return data, nil
}

// fileNameOf checks that name, which a client's file gives, is the name of
// a file in the account's folder, not a path out of it.
func fileNameOf(name string) error {
	if name == "." || name == ".." || strings.ContainsAny(name, `/\`) || filepath.Base(name) != name {
		return fmt.Errorf("account.json names its key %q, which is not a file name", name)
	}
	return nil
}

func usualFolder(client string) string {
	switch client {
	case fromLego:
		return "(lego's --path, ./.lego by default)"
	case fromAcmeSh:
		return "(~/.acme.sh, or acme.sh's --config-home)"
	default:
		return "(certbot's --config-dir, /etc/letsencrypt by default)"
	}
}

// legoAccountFile is lego's account.json, of v5 and of v4.
type legoAccountFile struct {
	ID           string `json:"id"`
	Email        string `json:"email"`
	Server       string `json:"server"`
	Registration *struct {
		// v5 keeps the account object with its URL beside the fields
		AccountURL string `json:"accountURL"`
		// v4 keeps the account object as body and its URL as uri
		URI string `json:"uri"`
	} `json:"registration"`
}

func readLegoAccount(dir string) (foreign, error) {
	data, err := readAccountFile(filepath.Join(dir, "account.json"))
	if err != nil {
		return foreign{}, err
	}
	var f legoAccountFile
	if err := json.Unmarshal(data, &f); err != nil {
		return foreign{}, fmt.Errorf("account.json is not lego's account file: %v", err)
	}
	acct := foreign{Foreign: Foreign{Server: f.Server}}
	if f.Registration != nil {
		acct.URL = firstNonEmpty(f.Registration.AccountURL, f.Registration.URI)
	}
	// v5 names the key after the account ID, v4 after the email, in keys/
	var keyFiles []string
	for _, id := range []string{f.ID, f.Email, filepath.Base(dir)} {
		if id == "" {
			continue
		}
		if err := fileNameOf(id); err != nil {
			return foreign{}, err
		}
		keyFiles = append(keyFiles, filepath.Join(dir, id+".key"), filepath.Join(dir, "keys", id+".key"))
	}
	if acct.key, err = readFirstKey(keyFiles); err != nil {
		return foreign{}, err
	}
	if f.Server == "" {
		// v4 keeps the server only in the folder name
		acct.Server = filepath.Base(filepath.Dir(dir))
	}
	return acct, nil
}

func readAcmeShAccount(dir string) (foreign, error) {
	key, err := readKeyFile(filepath.Join(dir, "account.key"))
	if err != nil {
		return foreign{}, err
	}
	acct := foreign{key: key}
	conf, err := readAccountFile(filepath.Join(dir, "ca.conf"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return foreign{}, err
	}
	acct.URL = shellAssignment(conf, "ACCOUNT_URL")
	// acme.sh names the folder after the directory URL (see Matches)
	if sub, ok := below(dir, "ca"); ok {
		acct.Server = sub
	}
	return acct, nil
}

// shellAssignment reads KEY='value' (or "value", or bare) from an acme.sh
// configuration file, the last assignment winning as when it is sourced.
func shellAssignment(conf []byte, key string) string {
	var value string
	scanner := bufio.NewScanner(bytes.NewReader(conf))
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		rest, ok := strings.CutPrefix(line, key+"=")
		if !ok {
			continue
		}
		if len(rest) >= 2 && (rest[0] == '\'' || rest[0] == '"') && rest[len(rest)-1] == rest[0] {
			rest = rest[1 : len(rest)-1]
		}
		value = rest
	}
	return value
}

// certbotRegistration is certbot's regr.json.
type certbotRegistration struct {
	URI string `json:"uri"`
}

func readCertbotAccount(dir string) (foreign, error) {
	jwkData, err := readAccountFile(filepath.Join(dir, "private_key.json"))
	if err != nil {
		return foreign{}, err
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(jwkData); err != nil {
		return foreign{}, fmt.Errorf("private_key.json is not a JWK: %v", err)
	}
	key, ok := jwk.Key.(crypto.Signer)
	if !ok || jwk.IsPublic() {
		return foreign{}, fmt.Errorf("private_key.json holds no private key (%T)", jwk.Key)
	}
	regData, err := readAccountFile(filepath.Join(dir, "regr.json"))
	if err != nil {
		return foreign{}, fmt.Errorf("the account has a key but no regr.json: %w", err)
	}
	var reg certbotRegistration
	if err := json.Unmarshal(regData, &reg); err != nil {
		return foreign{}, fmt.Errorf("regr.json is not certbot's registration: %v", err)
	}
	acct := foreign{Foreign: Foreign{URL: reg.URI}, key: key}
	// certbot names the folder accounts/<netloc><path>/<account id>
	// (see Matches)
	if sub, ok := below(filepath.Dir(dir), "accounts"); ok {
		acct.Server = sub
	}
	return acct, nil
}

// below returns the part of dir after its last path element named
// parent, with '/' separators, if there is one.
func below(dir, parent string) (string, bool) {
	parts := strings.Split(filepath.ToSlash(dir), "/")
	for i := len(parts) - 2; i >= 0; i-- {
		if parts[i] == parent {
			return strings.Join(parts[i+1:], "/"), true
		}
	}
	return "", false
}

func collapseSlashes(s string) string {
	for strings.Contains(s, "//") {
		s = strings.ReplaceAll(s, "//", "/")
	}
	return s
}

// SameDirectory reports whether two directory URLs name the same CA: they
// are compared ignoring a trailing '/'.
func SameDirectory(a, b string) bool {
	return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

// readFirstKey reads the first of files that exists.
func readFirstKey(files []string) (crypto.Signer, error) {
	for _, file := range files {
		key, err := readKeyFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return key, err
	}
	return nil, fmt.Errorf("no account key: none of %s exists", strings.Join(files, ", "))
}

// readKeyFile reads the first private key of a PEM file, passing over
// other blocks (openssl may write EC PARAMETERS before the key).
func readKeyFile(file string) (crypto.Signer, error) {
	data, err := readAccountFile(file)
	if err != nil {
		return nil, err
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%s holds no PEM private key", file)
		}
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			continue
		}
		key, err := certmagic.PEMDecodePrivateKey(pem.EncodeToMemory(block))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", file, err)
		}
		return key, nil
	}
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
