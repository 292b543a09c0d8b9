package persist

import (
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

func TestPlainHTTPDirectoryOnlyForInternalHosts(t *testing.T) {
	t.Parallel()
	for ca, ok := range map[string]bool{
		"https://acme.example.com/directory":  true,
		"http://acme.example.com/directory":   false,
		"http://127.0.0.1:14000/dir":          true,
		"http://localhost:14000/dir":          true,
		"http://[::1]:14000/dir":              true,
		"http://10.1.2.3/dir":                 true,
		"http://ca.internal/dir":              true,
		"ftp://acme.example.com/directory":    false,
		"acme-v02.api.letsencrypt.org/direct": false,
	} {
		err := (&Issuer{CA: ca, now: time.Now}).Validate()
		if (err == nil) != ok {
			t.Errorf("Validate(ca=%s) = %v, want ok=%v", ca, err, ok)
		}
	}
}

// Certificates in storage are shared with an `acme` issuer of the same CA
// only if both name the CA's folder alike.
func TestIssuerKeyIsTheACMEIssuers(t *testing.T) {
	t.Parallel()
	for _, ca := range []string{DefaultCA, "https://127.0.0.1:14000/dir", "https://ca.example:8443/acme/directory/"} {
		if got, want := (&Issuer{CA: ca}).IssuerKey(), (&certmagic.ACMEIssuer{CA: ca}).IssuerKey(); got != want {
			t.Errorf("IssuerKey(%s) = %s, the acme issuer's is %s", ca, got, want)
		}
	}
}
