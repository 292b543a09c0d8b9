package record

import (
	"testing"
	"time"
)

// Micro-benchmarks of reading and judging a record. They report figures
// and never assert timings.
//
//	go test -run '^$' -bench . -benchmem ./internal/record

const (
	benchAccountURL = "https://acme-v02.api.letsencrypt.org/acme/acct/1234567890"
	benchIssuer     = "letsencrypt.org"
	// benchValue is a typical published record: wildcard policy and a
	// persistUntil, the longest common form.
	benchValue = benchIssuer + "; accounturi=" + benchAccountURL + "; policy=wildcard; persistUntil=1830297600"
	// benchOtherCA is a record for another CA sharing the name, which
	// the check skips as a CA does.
	benchOtherCA = "ca.example.net; accounturi=https://ca.example.net/acct/42"
)

// benchNow is before benchValue's persistUntil (2028-01-01).
var benchNow = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

func BenchmarkParseRecord(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(benchValue); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	exp := Expectation{
		Domain:      "example.com",
		Offered:     []string{benchIssuer},
		AccountURIs: []string{benchAccountURL},
		Wildcard:    true,
	}
	values := []string{benchOtherCA, benchValue}
	b.ReportAllocs()
	for b.Loop() {
		if v := Evaluate(exp, values, benchNow); v.Status != StatusOK {
			b.Fatalf("verdict %s: %s", v.Status, v.Reason())
		}
	}
}
