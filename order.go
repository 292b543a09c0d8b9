package persist

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// orderPlan is what an order needs from the records: one base domain per
// record, and whether each must allow wildcards.
type orderPlan struct {
	names    []string
	bases    []string
	wildcard map[string]bool
	// plain is set for a base that is itself among the names, not only
	// its wildcard.
	plain map[string]bool
	// under holds, for each base, the names it serves: itself and its
	// wildcard, as given.
	under map[string][]string
}

// planOrder reads the names of a CSR. A wildcard *.example.com and
// example.com share the record at _validation-persist.example.com, which
// then needs policy=wildcard.
func planOrder(csr *x509.CertificateRequest) (orderPlan, error) {
	if len(csr.IPAddresses) > 0 {
		return orderPlan{}, refuseIPAddress(csr.IPAddresses[0].String())
	}
	return planNames(csr.DNSNames)
}

// refuseIPAddress refuses name when it is an IP address: the record sits
// under a domain name, so no CA validates an IP address this way. Every
// flow that takes names (issuance, the commands, the on-demand
// permission) refuses them here.
func refuseIPAddress(name string) error {
	if certmagic.SubjectIsIP(name) {
		return fmt.Errorf("%s is an IP address; dns-persist-01 validates domain names only", name)
	}
	return nil
}

func planNames(names []string) (orderPlan, error) {
	plan := orderPlan{names: names, wildcard: make(map[string]bool), plain: make(map[string]bool), under: make(map[string][]string)}
	if len(names) == 0 {
		return plan, errors.New("no domain names to obtain a certificate for")
	}
	for _, name := range names {
		base, wildcard, err := record.BaseDomain(name)
		if err != nil {
			return plan, err
		}
		if _, seen := plan.wildcard[base]; !seen {
			plan.bases = append(plan.bases, base)
		}
		plan.wildcard[base] = plan.wildcard[base] || wildcard
		plan.plain[base] = plan.plain[base] || !wildcard
		plan.under[base] = append(plan.under[base], name)
	}
	slices.Sort(plan.bases)
	return plan, nil
}

// orderState travels with one order through acmez to the solver, in the
// context, since acmez gives the solver only the challenge. What the check
// before the order found reaches the solver through the resolver's recent
// answers, so the solver does not ask DNS again.
type orderState struct {
	plan orderPlan
	// in holds the account and directory of the order; its issuer names
	// are the ones known before the order, nil when only the challenges
	// will tell.
	in      recordInputs
	started time.Time
	// offers is what the order's authorizations offered (see notoffered.go).
	offers authzOffers
	// caaChecked is set when CAA allowed the names, with the issuer names
	// of in, before the order was placed.
	caaChecked bool
	// created is set once the CA created an order (a POST answered 201
	// Created): a failure after it is not the CA refusing newOrder.
	created atomic.Bool
}

type orderKey struct{}

func withOrder(ctx context.Context, o *orderState) context.Context {
	return context.WithValue(ctx, orderKey{}, o)
}

func orderFrom(ctx context.Context) *orderState {
	o, _ := ctx.Value(orderKey{}).(*orderState)
	return o
}
