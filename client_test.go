package persist

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
	"github.com/dnspersist/caddy-persist/internal/record"
)

const dirEndpoints = `"newNonce":"https://ca/n","newAccount":"https://ca/a","newOrder":"https://ca/o"`

func TestParseDirectoryDetectsDraft(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		body    string
		draft   record.Draft
		names   []string
		prefix  string
		wantErr string
	}{
		{name: "draft-01 with caaIdentities", body: `{` + dirEndpoints + `,"meta":{"caaIdentities":["letsencrypt.org"]}}`, draft: record.Draft01, names: []string{"letsencrypt.org"}},
		{name: "draft-01 without names", body: `{` + dirEndpoints + `}`, draft: record.Draft01},
		{name: "draft-02", body: `{` + dirEndpoints + `,"meta":{"caaIdentities":["x.example"],"issuerDomainNames":["ca.example","ca2.example"],"accountHashPrefix":"https://ca/h/"}}`,
			draft: record.Draft02, names: []string{"ca.example", "ca2.example"}, prefix: "https://ca/h/"},
		{name: "issuerDomainNames alone is not -02", body: `{` + dirEndpoints + `,"meta":{"issuerDomainNames":["ca.example"]}}`, draft: record.Draft01},
		{name: "draft-02 with no names", body: `{` + dirEndpoints + `,"meta":{"issuerDomainNames":[],"accountHashPrefix":""}}`, wantErr: "no issuer domain names"},
		{name: "draft-02 with eleven names", body: `{` + dirEndpoints + `,"meta":{"issuerDomainNames":["a","b","c","d","e","f","g","h","i","j","k"],"accountHashPrefix":""}}`, wantErr: "more than 10"},
		{name: "not JSON", body: `<html>`, wantErr: "not valid JSON"},
		{name: "not ACME", body: `{"hello":1}`, wantErr: "not an ACME directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, err := parseDirectory("https://ca/dir", []byte(c.body), time.Now())
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if dir.Draft != c.draft || strings.Join(dir.IssuerNames, ",") != strings.Join(c.names, ",") || dir.HashPrefix != c.prefix {
				t.Errorf("got %+v", dir)
			}
		})
	}
}

func TestCAOfferingTooManyIssuerNamesIsRefused(t *testing.T) {
	t.Parallel()
	names := []string{"a.example", "b.example", "c.example", "d.example", "e.example", "f.example", "g.example", "h.example", "i.example", "j.example", "k.example"}
	ca := startCA(t, acmetest.Options{IssuerNames: names})
	iss := newTestIssuer(t, ca, t.TempDir(), nil)
	_, err := iss.Issue(context.Background(), newCSR(t, "many.test"))
	if err == nil || !strings.Contains(err.Error(), "11 issuer domain names") {
		t.Fatalf("error = %v", err)
	}
	if n := ca.Counts.Get(acmetest.KindNewOrder); n != 0 {
		t.Errorf("%d orders", n)
	}
}
