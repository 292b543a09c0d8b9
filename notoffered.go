package persist

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

// A CA that does not offer dns-persist-01 (Let's Encrypt production,
// today) answers an order with authorizations offering other challenges
// only. acmez then fails the order with a plain "no solvers available"
// error (acmez client.go, nextChallenge: an fmt.Errorf, no type to match)
// and deactivates the authorizations; certmagic would retry, spending an
// order each time. So the issuer reads the authorizations itself: the ACME
// client's transport notes, during an order, which challenge types each
// pending authorization offers. acmez fetches every authorization of an
// order before it presents for any, so by the solver's first Present, or
// by the time acmez gives up, the order knows whether one lacks
// dns-persist-01. Reading what the CA said (RFC 8555 §7.1.4), rather than
// matching acmez's wording, keeps the detection independent of acmez.

// maxObservedOctets bounds how much of a response is read to find an
// authorization; authorizations are a few hundred octets.
const maxObservedOctets = 64 << 10

// ChallengeNotOfferedError says the CA offered no dns-persist-01 challenge,
// so no certificate can come from it whatever is published. After one, the
// issuer places no order with the CA for notOfferedTTL.
type ChallengeNotOfferedError struct {
	// CA is the directory URL.
	CA string
	// Identifier is the name whose authorization lacked the challenge.
	Identifier string
	// Offered are the challenge types that authorization offered.
	Offered []string
	// ObservedAt is when the authorization was seen.
	ObservedAt time.Time
}

// notOfferedAdvice is what to do about a CA that does not offer the
// challenge.
const notOfferedAdvice = `use a CA that offers it (Let's Encrypt staging does; see docs/several-cas.md, https://github.com/dnspersist/caddy-persist/blob/main/docs/several-cas.md#a-ca-that-does-not-offer-dns-persist-01), or add "issuer acme" after "issuer persist" so Caddy falls back to another challenge`

func (e *ChallengeNotOfferedError) Error() string {
	return fmt.Sprintf("%s; no order is placed with it until %s. To obtain certificates, %s",
		e.summary(), e.RetryAfter().UTC().Format(time.RFC3339), notOfferedAdvice)
}

// summary says what the CA did, without what follows from it.
func (e *ChallengeNotOfferedError) summary() string {
	return fmt.Sprintf("CA %s did not offer dns-persist-01 at %s (its authorization for %s offered: %s)",
		e.CA, e.ObservedAt.UTC().Format(time.RFC3339), e.Identifier, strings.Join(e.Offered, ", "))
}

// RetryAfter is when the issuer asks the CA again.
func (e *ChallengeNotOfferedError) RetryAfter() time.Time {
	return e.ObservedAt.Add(notOfferedTTL)
}

// authzOffers is what the pending authorizations of one order offered, as
// the CA's responses showed them.
type authzOffers struct {
	mu sync.Mutex
	// lacking is the first authorization without dns-persist-01.
	lacking *lackingAuthz
	// accountURIs holds, by challenge URL, the accounturi of each
	// dns-persist-01 challenge that carries one (draft -01 §3.1): the
	// URI the CA validates the record against. acmez does not parse it.
	accountURIs map[string]string
}

type lackingAuthz struct {
	identifier string
	offered    []string
}

// observe notes body if it is a pending authorization.
func (o *authzOffers) observe(body []byte) {
	var authz struct {
		Status     string          `json:"status"`
		Identifier acme.Identifier `json:"identifier"`
		Wildcard   bool            `json:"wildcard"`
		Challenges []struct {
			Type       string `json:"type"`
			URL        string `json:"url"`
			AccountURI string `json:"accounturi"`
		} `json:"challenges"`
	}
	if json.Unmarshal(body, &authz) != nil || authz.Identifier.Value == "" || authz.Status != acme.StatusPending {
		return
	}
	offered := make([]string, 0, len(authz.Challenges))
	for _, c := range authz.Challenges {
		offered = append(offered, c.Type)
		if c.Type == acme.ChallengeTypeDNSPersist01 && c.AccountURI != "" {
			o.noteAccountURI(c.URL, c.AccountURI)
		}
	}
	if slices.Contains(offered, acme.ChallengeTypeDNSPersist01) {
		return
	}
	name := authz.Identifier.Value
	if authz.Wildcard {
		name = "*." + name
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lacking == nil {
		o.lacking = &lackingAuthz{identifier: name, offered: offered}
	}
}

// notOffered returns the error, observed at at, for an order to the CA
// at ca one of whose authorizations offered no dns-persist-01, or nil.
func (o *authzOffers) notOffered(ca string, at time.Time) *ChallengeNotOfferedError {
	o.mu.Lock()
	defer o.mu.Unlock()
	l := o.lacking
	if l == nil {
		return nil
	}
	return &ChallengeNotOfferedError{CA: ca, Identifier: l.identifier, Offered: slices.Clone(l.offered), ObservedAt: at}
}

// noteAccountURI keeps the accounturi of the challenge at url.
func (o *authzOffers) noteAccountURI(url, uri string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.accountURIs == nil {
		o.accountURIs = make(map[string]string)
	}
	o.accountURIs[url] = uri
}

// accountURIOf returns the accounturi the challenge at url carries, or ""
// when it carries none.
func (o *authzOffers) accountURIOf(url string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.accountURIs[url]
}

// authzObserver is the ACME client's transport: during an order (the
// request's context carries its orderState) it shows each successful POST
// response to the order's authzOffers, and passes the response on intact.
type authzObserver struct {
	next http.RoundTripper
}

func (o authzObserver) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.next.RoundTrip(req)
	order := orderFrom(req.Context())
	if err != nil || order == nil || req.Method != http.MethodPost {
		return resp, err
	}
	if resp.StatusCode == http.StatusCreated {
		order.created.Store(true)
	}
	if resp.StatusCode != http.StatusOK {
		return resp, err
	}
	head, readErr := io.ReadAll(io.LimitReader(resp.Body, maxObservedOctets+1))
	// whatever was read is given back ahead of the rest, and a read error
	// reaches acmez from the body as it would have
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
	if readErr == nil && len(head) <= maxObservedOctets {
		order.offers.observe(head)
	}
	return resp, nil
}

// CloseIdleConnections lets the issuer's Cleanup reach the transport.
func (o authzObserver) CloseIdleConnections() {
	if c, ok := o.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Interface guard
var _ http.RoundTripper = authzObserver{}
