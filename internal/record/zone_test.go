package record

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestSplitStringsAndZoneLine(t *testing.T) {
	long := "ca.example; accounturi=https://ca.example/acct/" + strings.Repeat("9", 300)
	parts := splitStrings(long)
	if len(parts) != 2 || len(parts[0]) != 255 || strings.Join(parts, "") != long {
		t.Fatalf("SplitStrings gave %d parts of %d octets", len(parts), len(parts[0]))
	}
	line := ZoneLine("example.com", long)
	if !strings.HasPrefix(line, `_validation-persist.example.com. IN TXT "ca.example; `) || strings.Count(line, `" "`) != 1 {
		t.Errorf("ZoneLine = %q", line)
	}
	if got := ZoneLine("example.com", `a"b\c`); got != `_validation-persist.example.com. IN TXT "a\"b\\c"` {
		t.Errorf("ZoneLine escaping = %q", got)
	}
}

// A zone line must read back, in a DNS server's parser, as the value,
// split strings included. (miekg/dns keeps escapes in its parsed strings,
// so quotes and backslashes are covered by TestSplitStringsAndZoneLine.)
func TestZoneLineParsesBackToTheValue(t *testing.T) {
	for _, value := range []string{
		"letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1; policy=wildcard",
		"ca.example; accounturi=https://ca.example/acct/" + strings.Repeat("7", 400),
	} {
		rr, err := dns.NewRR(ZoneLine("example.com", value))
		if err != nil {
			t.Fatalf("ZoneLine for %q does not parse: %v", value, err)
		}
		txt := rr.(*dns.TXT)
		if got := strings.Join(txt.Txt, ""); got != value || txt.Hdr.Name != "_validation-persist.example.com." {
			t.Errorf("parsed back %q at %s, want %q", got, txt.Hdr.Name, value)
		}
	}
}
