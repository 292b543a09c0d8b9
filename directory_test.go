package persist

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/judge"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// A fake -02 CA: the issuer detects the draft from its directory, offers
// its issuerDomainNames, and publishes the hashed accounturi.
func TestDraft02ExpectationFromFakeDirectory(t *testing.T) {
	t.Parallel()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{` + dirEndpoints + `,"meta":{"issuerDomainNames":["ca.example","alt.example"],"accountHashPrefix":"https://ca.example/h/"}}`))
	}))
	defer srv.Close()
	dir, err := fetchDirectory(context.Background(), srv.Client(), srv.URL, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if dir.Draft != record.Draft02 {
		t.Fatalf("draft = %v", dir.Draft)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	acct := acme.Account{Location: "https://ca.example/acct/7", PrivateKey: key}
	thumb, _ := acct.Thumbprint()

	spec := judge.Spec{CA: srv.URL}
	in := judge.Inputs{Dir: dir.Directory, Offered: spec.Offered(dir.Directory), Account: acct}
	exp, err := spec.Expectation(in, "example.com", true)
	if err != nil {
		t.Fatal(err)
	}
	perDomain, _ := record.HashedAccountURI("https://ca.example/h/", "example.com", thumb, acct.Location)
	anyDomain, _ := record.HashedAccountURI("https://ca.example/h/", record.AnyDomain, thumb, acct.Location)
	if len(exp.AccountURIs) != 2 || exp.AccountURIs[0] != perDomain || exp.AccountURIs[1] != anyDomain {
		t.Fatalf("AccountURIs = %v", exp.AccountURIs)
	}
	want, err := exp.Want(record.Evaluate(exp, nil, time.Now())).Value()
	if err != nil {
		t.Fatal(err)
	}
	if want != "ca.example; accounturi="+perDomain+"; policy=wildcard" {
		t.Errorf("record to publish = %q", want)
	}
	// a published record using the second name keeps that name
	v := record.Evaluate(exp, []string{"alt.example; accounturi=" + anyDomain + "; policy=wildcard"}, time.Now())
	if v.Status != record.StatusOK || v.IssuerDomainName != "alt.example" {
		t.Errorf("verdict = %+v", v)
	}
	// a configured issuer name the CA does not offer is refused
	spec.Preferred = "letsencrypt.org"
	if _, err := spec.Expectation(in, "example.com", false); err == nil || !strings.Contains(err.Error(), "not offered") {
		t.Errorf("unoffered issuer_domain_name: %v", err)
	}
	// the plain account URL is what -01 publishes
	spec.Preferred = ""
	in.Dir = judge.Directory{Draft: record.Draft01}
	if exp, err := spec.Expectation(in, "example.com", false); err != nil || len(exp.AccountURIs) != 1 || exp.AccountURIs[0] != acct.Location {
		t.Errorf("-01 accounturi = %v, %v", exp.AccountURIs, err)
	}
}
