package persist

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/go-jose/go-jose/v4"
	"github.com/mholt/acmez/v3/acme"
)

// confirmAccountValid asks the CA for the account's current state with a
// POST-as-GET of the account URL (an empty payload). Draft -02 asks clients
// to do this before handing record inputs to anyone: a record naming a
// deactivated account would never work. acmez sends only non-empty account
// payloads, hence this request of our own.
func confirmAccountValid(ctx context.Context, client *http.Client, dir caDirectory, acct acme.Account) error {
	nonce, err := fetchNonce(ctx, client, dir.NewNonce)
	if err != nil {
		return err
	}
	for range 3 {
		body, err := signPostAsGet(acct, nonce)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, acct.Location, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/jose+json")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("asking the CA about account %s: %w", acct.Location, err)
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		nonce = resp.Header.Get("Replay-Nonce")

		if resp.StatusCode == http.StatusOK {
			var state struct {
				Status string `json:"status"`
			}
			if err := json.Unmarshal(data, &state); err != nil {
				return fmt.Errorf("the CA's answer about account %s is not JSON: %v", acct.Location, err)
			}
			if state.Status != acme.StatusValid {
				return fmt.Errorf("ACME account %s is %q at the CA; records naming it will not work; configure another account (see docs/accounts.md)", acct.Location, state.Status)
			}
			return nil
		}
		var problem acme.Problem
		_ = json.Unmarshal(data, &problem)
		if problem.Type == acme.ProblemTypeBadNonce && nonce != "" {
			continue
		}
		return fmt.Errorf("the CA refused to show ACME account %s (HTTP %d: %s %s); records naming it will not work until the account is usable", acct.Location, resp.StatusCode, problem.Type, problem.Detail)
	}
	return fmt.Errorf("the CA kept rejecting nonces while asking about account %s; try again later", acct.Location)
}

func fetchNonce(ctx context.Context, client *http.Client, url string) (string, error) {
	if url == "" {
		return "", errors.New("the ACME directory has no newNonce URL")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("getting a nonce from the CA: %w", err)
	}
	resp.Body.Close()
	nonce := resp.Header.Get("Replay-Nonce")
	if nonce == "" {
		return "", fmt.Errorf("the CA gave no nonce at %s (HTTP %d)", url, resp.StatusCode)
	}
	return nonce, nil
}

// signPostAsGet builds the flattened JWS of an empty payload, signed by the
// account key and naming the account URL as its kid, per RFC 8555 6.3.
func signPostAsGet(acct acme.Account, nonce string) ([]byte, error) {
	alg, err := signatureAlgorithm(acct.PrivateKey)
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{}).
		WithHeader("nonce", nonce).
		WithHeader("url", acct.Location)
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: alg,
		Key:       jose.JSONWebKey{Key: acct.PrivateKey, KeyID: acct.Location},
	}, opts)
	if err != nil {
		return nil, fmt.Errorf("preparing to sign with the account key: %v", err)
	}
	jws, err := signer.Sign([]byte{})
	if err != nil {
		return nil, fmt.Errorf("signing with the account key: %v", err)
	}
	return []byte(jws.FullSerialize()), nil
}

func signatureAlgorithm(key crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return jose.ES256, nil
		case 384:
			return jose.ES384, nil
		case 521:
			return jose.ES512, nil
		}
	case *rsa.PrivateKey:
		return jose.RS256, nil
	case ed25519.PrivateKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("unsupported account key type %T; use an ECDSA (P-256, P-384, P-521), RSA or Ed25519 key", key)
}
