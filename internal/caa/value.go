// Package caa reads and writes CAA records (RFC 8659) with the account and
// method parameters of RFC 8657, and judges whether a CAA RRset lets a CA
// issue to an account validating with a given method. It follows Let's
// Encrypt's reading (Boulder, va/caa.go) where that reading is more
// lenient than the RFCs, with a warning, and refuses what it refuses.
package caa

import (
	"fmt"
	"strings"
)

// Record is one CAA resource record.
type Record struct {
	Flag  uint8
	Tag   string
	Value string
}

// String is the record's data as a zone file writes it: flag, tag and
// quoted value.
func (r Record) String() string {
	return fmt.Sprintf("%d %s %s", r.Flag, r.Tag, quote(r.Value))
}

// ZoneLine is the record at name as a zone file line.
func ZoneLine(name string, r Record) string {
	return strings.TrimSuffix(name, ".") + ". IN CAA " + r.String()
}

func quote(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// Param is one tag=value parameter of an issue or issuewild value.
type Param struct {
	Tag   string
	Value string
}

// IssueValue is a parsed issue or issuewild property value.
type IssueValue struct {
	// Issuer is the issuer domain name; empty for a value that names no
	// CA, such as ";", which forbids issuance.
	Issuer string
	Params []Param
	// Spaced is set when whitespace surrounds an "=": RFC 8659 allows it,
	// RFC 6844, which some CAs still parse by, does not.
	Spaced bool
}

func isWSP(r rune) bool { return r == ' ' || r == '\t' }

// ParseIssueValue parses an issue or issuewild value (RFC 8659 §4.2):
// an optional issuer domain name, then ";"-separated tag=value
// parameters, with whitespace allowed around each part.
func ParseIssueValue(v string) (IssueValue, error) {
	parts := strings.Split(v, ";")
	out := IssueValue{Issuer: strings.TrimFunc(parts[0], isWSP)}
	params := parts[1:]
	// "name;" and ";" have a separator and no parameters
	if len(params) == 1 && strings.TrimFunc(params[0], isWSP) == "" {
		params = nil
	}
	for _, p := range params {
		tag, value, ok := strings.Cut(p, "=")
		if !ok {
			return out, fmt.Errorf("parameter %q is not tag=value", strings.TrimFunc(p, isWSP))
		}
		if strings.HasSuffix(tag, " ") || strings.HasSuffix(tag, "\t") || strings.HasPrefix(value, " ") || strings.HasPrefix(value, "\t") {
			out.Spaced = true
		}
		tag, value = strings.TrimFunc(tag, isWSP), strings.TrimFunc(value, isWSP)
		if !validTag(tag) {
			return out, fmt.Errorf("parameter tag %q must be letters, digits and inner hyphens", tag)
		}
		for _, r := range value {
			// RFC 8659: value = *(%x21-3A / %x3C-7E)
			if r < 0x21 || r == ';' || r > 0x7e {
				return out, fmt.Errorf("parameter %s has a value with a character CAA does not allow: %q", tag, value)
			}
		}
		out.Params = append(out.Params, Param{Tag: tag, Value: value})
	}
	return out, nil
}

// validTag reports whether tag is (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT)).
func validTag(tag string) bool {
	if tag == "" || tag[0] == '-' || tag[len(tag)-1] == '-' {
		return false
	}
	for _, r := range tag {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// String renders the value as this package writes it: no spaces around
// "=", one space after each ";".
func (v IssueValue) String() string {
	var b strings.Builder
	b.WriteString(v.Issuer)
	for _, p := range v.Params {
		b.WriteString("; ")
		b.WriteString(p.Tag + "=" + p.Value)
	}
	if v.Issuer == "" && len(v.Params) == 0 {
		return ";"
	}
	return b.String()
}
