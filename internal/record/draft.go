package record

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// Draft identifies the version of draft-ietf-acme-dns-persist a CA speaks.
type Draft int

const (
	// Draft01 puts the plain account URL in the record. Let's Encrypt
	// staging and Pebble speak it.
	Draft01 Draft = 1
	// Draft02 puts a hash of the domain, account key and account URL in
	// the record, and announces itself in the directory's meta.
	Draft02 Draft = 2
)

// String returns the draft's name as it appears in output, e.g. "draft-01".
func (d Draft) String() string {
	return fmt.Sprintf("draft-%02d", int(d))
}

// AnyDomain is the domain input of a draft -02 hash that is valid for
// every domain.
const AnyDomain = "*"

// HashedAccountURI computes the draft -02 accounturi:
//
//	prefix + "sha-256/" + base64url(SHA-256(len(d) || d || thumbprint || accountURL))
//
// where d is the record's base domain (or AnyDomain) and thumbprint is the
// RFC 7638 thumbprint of the account's current key.
func HashedAccountURI(prefix, domain, thumbprint, accountURL string) (string, error) {
	d := domain
	if d != AnyDomain {
		var err error
		if d, err = NormalizeDomain(domain); err != nil {
			return "", err
		}
	}
	if thumbprint == "" || accountURL == "" {
		return "", errors.New("hashing the accounturi needs the account key thumbprint and URL")
	}
	h := sha256.New()
	h.Write([]byte{byte(len(d))})
	h.Write([]byte(d))
	h.Write([]byte(thumbprint))
	h.Write([]byte(accountURL))
	return prefix + "sha-256/" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)), nil
}

// CheckIssuerNames validates a CA's list of issuer domain names: the drafts
// call a list that is empty or longer than ten malformed.
func CheckIssuerNames(names []string) error {
	if len(names) == 0 {
		return errors.New("the CA offers no issuer domain names")
	}
	if len(names) > maxIssuerNames {
		return fmt.Errorf("the CA offers %d issuer domain names; more than %d is malformed", len(names), maxIssuerNames)
	}
	for _, n := range names {
		if err := CheckIssuerDomainName(n); err != nil {
			return fmt.Errorf("the CA offers a bad issuer domain name: %v", err)
		}
	}
	return nil
}
