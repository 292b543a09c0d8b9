package persist

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io/fs"
	"slices"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"go.uber.org/zap"
)

// A renewal order names the certificate it replaces in the order's
// `replaces` field (ACME Renewal Information, RFC 9773). Let's Encrypt
// exempts such orders from its rate limits, which matters to a platform
// renewing thousands of names, and the CA learns the old certificate may
// go. certmagic tells its own ACME issuer which certificate is being
// renewed through an unexported context key, so this issuer finds it
// itself: certmagic keeps the certificate it renews in storage, under
// the issuer's key and the names of the order.

// replacedCertificate returns the certificate an order for names renews,
// or nil when there is none this CA would accept as replaced: none is
// stored (a first obtain), or the stored one was obtained from another CA
// (another issuer shares the storage key only for the same CA URL, but a
// copied storage can hold anything) or by another ACME account (the CA
// lets only the account that obtained a certificate replace it).
func (iss *Issuer) replacedCertificate(ctx context.Context, names []string, acct acme.Account) *x509.Certificate {
	storage := iss.store.get()
	if storage == nil {
		return nil
	}
	// certmagic names a certificate's files after its sorted names
	namesKey := (&certmagic.CertificateResource{SANs: slices.Clone(names)}).NamesKey()
	issuerKey := iss.IssuerKey()
	metaJSON, err := storage.Load(ctx, certmagic.StorageKeys.SiteMeta(issuerKey, namesKey))
	if err != nil {
		// not stored is the first obtain; anything else costs only the
		// exemption, so the order goes ahead without replaces
		if !errors.Is(err, fs.ErrNotExist) {
			iss.logger.Warn("could not read the stored certificate's metadata; ordering without ARI replaces",
				zap.Strings("identifiers", names), zap.Error(err))
		}
		return nil
	}
	var meta struct {
		IssuerData acme.Certificate `json:"issuer_data"`
	}
	if err := json.Unmarshal(metaJSON, &meta); err != nil {
		iss.logger.Warn("the stored certificate's metadata is not valid JSON; ordering without ARI replaces",
			zap.Strings("identifiers", names), zap.Error(err))
		return nil
	}
	if stored := meta.IssuerData; stored.CA != iss.CA || stored.Account != acct.Location {
		iss.logger.Info("the stored certificate is from another CA or ACME account; ordering without ARI replaces",
			zap.Strings("identifiers", names),
			zap.String("stored_ca", stored.CA),
			zap.String("ca", iss.CA),
			zap.String("stored_account_url", stored.Account),
			zap.String("account_url", acct.Location))
		return nil
	}
	certPEM, err := storage.Load(ctx, certmagic.StorageKeys.SiteCert(issuerKey, namesKey))
	if err != nil {
		iss.logger.Warn("could not read the stored certificate; ordering without ARI replaces",
			zap.Strings("identifiers", names), zap.Error(err))
		return nil
	}
	leaf, err := firstCertificate(certPEM)
	if err != nil || len(leaf.AuthorityKeyId) == 0 {
		// the ARI certificate ID is built from the authority key ID
		iss.logger.Warn("the stored certificate has no usable ARI certificate ID; ordering without ARI replaces",
			zap.Strings("identifiers", names), zap.Error(err))
		return nil
	}
	return leaf
}

// obtainReplacing places the order params describe. When params names a
// certificate in Replaces and the CA refuses the field, it orders once
// more without it: a renewal without the rate-limit exemption beats none.
func (iss *Issuer) obtainReplacing(ctx context.Context, client *acmez.Client, params acmez.OrderParameters, names []string) ([]acme.Certificate, error) {
	if params.Replaces == nil {
		return client.ObtainCertificate(ctx, params)
	}
	certID, err := acme.ARIUniqueIdentifier(params.Replaces)
	if err != nil {
		return nil, err
	}
	iss.logger.Info("renewing with ARI replaces",
		zap.Strings("identifiers", names),
		zap.String("replaces", certID),
		zap.Time("replaced_not_after", params.Replaces.NotAfter))
	chains, err := client.ObtainCertificate(ctx, params)
	if order := orderFrom(ctx); err == nil || !refusesReplaces(err) || order != nil && order.created.Load() {
		return chains, err
	}
	iss.logger.Warn("the CA refused the order naming the certificate it replaces; ordering once more without ARI replaces, so this renewal is not exempt from rate limits",
		zap.Strings("identifiers", names),
		zap.String("replaces", certID),
		zap.Error(err))
	params.Replaces = nil
	return client.ObtainCertificate(ctx, params)
}

// refusesReplaces reports whether err is the CA refusing a new order for
// its `replaces` field: a problem outside any authorization (a failed
// validation carries its authorization, and ordering again would only
// fail it again) of a type CAs give for it. Let's Encrypt answers an
// unknown certificate with malformed and another account's with
// unauthorized. One already replaced (alreadyReplaced) acmez itself
// orders again without the field. The caller also makes sure the CA
// created no order, since those types answer other requests too.
func refusesReplaces(err error) bool {
	var problem acme.Problem
	if !errors.As(err, &problem) || problem.Resource != nil {
		return false
	}
	return problem.Type == acme.ProblemTypeMalformed || problem.Type == acme.ProblemTypeUnauthorized
}
