package record

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"
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
// a lowercase A-label without a trailing dot, within RFC 1035's limits.
func NormalizeDomain(name string) (string, error) {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "", errors.New("domain name is empty")
	}
	if strings.Contains(name, "*") {
		return "", fmt.Errorf("domain name %q: a wildcard may only be the whole leftmost label", name)
	}
	ascii, err := idna.Lookup.ToASCII(strings.ToLower(name))
	if err != nil {
		return "", fmt.Errorf("domain name %q is not a valid internationalized domain name: %v", name, err)
	}
	ascii = strings.ToLower(ascii)
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
	return ascii, nil
}
