package record

import (
	"strings"
	"testing"
)

// The draft -02 test vectors (SPEC.md, from the draft's example).
func TestHashedAccountURIDraftVectors(t *testing.T) {
	const thumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	const acct = "https://ca.example/acct/123"
	cases := map[string]string{
		"example.com":  "5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw",
		"EXAMPLE.com.": "5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw",
		AnyDomain:      "NpDnSwUthQK8zCgFdefYxAdAVPnygMLbs9US6oO-5ug",
	}
	for domain, digest := range cases {
		got, err := HashedAccountURI("https://ca.example/acct-hash/", domain, thumbprint, acct)
		if err != nil {
			t.Fatal(err)
		}
		if want := "https://ca.example/acct-hash/sha-256/" + digest; got != want {
			t.Errorf("HashedAccountURI(%q) = %q, want %q", domain, got, want)
		}
	}
	if _, err := HashedAccountURI("", "example.com", "", acct); err == nil {
		t.Error("HashedAccountURI without a thumbprint succeeded")
	}
}

func TestCheckIssuerNames(t *testing.T) {
	if err := CheckIssuerNames(nil); err == nil {
		t.Error("an empty list passed")
	}
	eleven := strings.Split("a,b,c,d,e,f,g,h,i,j,k", ",")
	if err := CheckIssuerNames(eleven); err == nil || !strings.Contains(err.Error(), "11") {
		t.Errorf("eleven names: %v", err)
	}
	if err := CheckIssuerNames(eleven[:10]); err != nil {
		t.Errorf("ten names: %v", err)
	}
	if err := CheckIssuerNames([]string{"Bad.Example"}); err == nil {
		t.Error("an uppercase name passed")
	}
}
