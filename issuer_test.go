package persist

import (
	"testing"
	"time"
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
