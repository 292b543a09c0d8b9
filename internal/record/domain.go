package record

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// BaseDomain returns the domain whose record authorizes name: the name
// itself, or for "*.example.com" the parent "example.com". The result is a
// lowercase A-label without a trailing dot; wildcard reports the "*.".
func BaseDomain(name string) (base string, wildcard bool, err error) {
	name = strings.TrimSuffix(strings.TrimSpace(name), ".")
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		name, wildcard = rest, true
	}
	base, err = NormalizeDomain(name)
	return base, wildcard, err
}

// NormalizeDomain turns a domain name into the form records and hashes use:
// a lowercase A-label without a trailing dot, within RFC 1035's limits. It
// takes the steps of the drafts' section 9.2 in their order (case-fold,
// NFC, A-label, then drop the trailing dot), as Let's Encrypt does for
// issuer domain names: the order matters for a name that ends in a dot
// only once mapped, such as one ending in U+3002.
func NormalizeDomain(name string) (string, error) {
	if strings.Contains(name, "*") {
		return "", fmt.Errorf("domain name %q: a wildcard may only be the whole leftmost label", name)
	}
	ascii, err := idna.Lookup.ToASCII(norm.NFC.String(strings.ToLower(name)))
	if err != nil {
		return "", fmt.Errorf("domain name %q is not a valid internationalized domain name: %v", name, err)
	}
	ascii = strings.TrimSuffix(strings.ToLower(ascii), ".")
	if ascii == "" {
		return "", errors.New("domain name is empty")
	}
	if len(ascii) > maxDomainOctets {
		return "", fmt.Errorf("domain name %q is %d octets long; the limit is %d", ascii, len(ascii), maxDomainOctets)
	}
	for _, label := range strings.Split(ascii, ".") {
		if label == "" {
			return "", fmt.Errorf("domain name %q has an empty label", ascii)
		}
		if len(label) > maxLabelOctets {
			return "", fmt.Errorf("domain name %q has a label of %d octets; the limit is %d", ascii, len(label), maxLabelOctets)
		}
	}
	if ascii == name {
		// a name already in this form keeps its own storage: callers
		// that hold both (the on-demand decision cache, among them)
		// hold one copy
		return name, nil
	}
	return ascii, nil
}
