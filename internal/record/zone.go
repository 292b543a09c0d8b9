package record

import "strings"

// ZoneLine renders the record as one line of a zone file, for example
// `_validation-persist.example.com. IN TXT "letsencrypt.org; accounturi=..."`,
// with values longer than one character-string split.
func ZoneLine(base, value string) string {
	var b strings.Builder
	b.WriteString(Name(base))
	b.WriteString(". IN TXT")
	for _, s := range splitStrings(value) {
		b.WriteString(` "`)
		for i := 0; i < len(s); i++ {
			if s[i] == '"' || s[i] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(s[i])
		}
		b.WriteByte('"')
	}
	return b.String()
}

// splitStrings splits a value into the character-strings of one TXT record,
// each at most 255 octets. Resolvers join them back without a separator.
func splitStrings(value string) []string {
	if value == "" {
		return []string{""}
	}
	var out []string
	for len(value) > maxStringOctets {
		out = append(out, value[:maxStringOctets])
		value = value[maxStringOctets:]
	}
	return append(out, value)
}
