package camodel

import (
	"strings"

	"github.com/miekg/dns"
)

// OverDNS returns what a CA built on miekg/dns (Boulder, Pebble, and the
// plugin's own lookup) reads when value is published the way challtestsrv
// and zone files publish it: packed into a TXT record in strings of at
// most 255 octets, then unpacked. miekg/dns reads and writes TXT strings
// in presentation format, so a tab or a non-ASCII byte published arrives
// as a \DDD escape, and a \DDD escape published arrives as itself.
func OverDNS(value string) (string, error) {
	var chunks []string
	for len(value) > 255 {
		chunks = append(chunks, value[:255])
		value = value[255:]
	}
	chunks = append(chunks, value)
	msg := new(dns.Msg)
	msg.SetQuestion("_validation-persist.example.", dns.TypeTXT)
	msg.Answer = append(msg.Answer, &dns.TXT{
		Hdr: dns.RR_Header{Name: "_validation-persist.example.", Rrtype: dns.TypeTXT, Class: dns.ClassINET},
		Txt: chunks,
	})
	wire, err := msg.Pack()
	if err != nil {
		return "", err
	}
	var back dns.Msg
	if err := back.Unpack(wire); err != nil {
		return "", err
	}
	return strings.Join(back.Answer[0].(*dns.TXT).Txt, ""), nil
}
