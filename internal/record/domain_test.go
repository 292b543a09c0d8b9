package record

import (
	"strings"
	"testing"
)

func TestBaseDomainAndRecordName(t *testing.T) {
	cases := []struct {
		name, base string
		wildcard   bool
	}{
		{"example.com", "example.com", false},
		{"*.example.com", "example.com", true},
		{"Sub.Example.COM.", "sub.example.com", false},
		{"*.bücher.example", "xn--bcher-kva.example", true},
	}
	for _, c := range cases {
		base, wildcard, err := BaseDomain(c.name)
		if err != nil {
			t.Fatalf("BaseDomain(%q): %v", c.name, err)
		}
		if base != c.base || wildcard != c.wildcard {
			t.Errorf("BaseDomain(%q) = %q, %v; want %q, %v", c.name, base, wildcard, c.base, c.wildcard)
		}
	}
	if got := Name("example.com"); got != "_validation-persist.example.com" {
		t.Errorf("RecordName = %q", got)
	}
	for _, bad := range []string{"", "*", "a.*.example.com", "**.example.com", strings.Repeat("a", 64) + ".example", strings.Repeat("abcdefghi.", 26) + "com"} {
		if _, _, err := BaseDomain(bad); err == nil {
			t.Errorf("BaseDomain(%q) succeeded, want an error", bad)
		}
	}
}
