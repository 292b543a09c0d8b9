package persist

import (
	"errors"
	"strings"
)

// secrets lists the configured values that must never appear in a log
// line, an error or any output.
func (iss *Issuer) secrets() []string {
	var out []string
	if iss.AccountKey != "" {
		out = append(out, iss.AccountKey)
	}
	if iss.ExternalAccount != nil && iss.ExternalAccount.MACKey != "" {
		out = append(out, iss.ExternalAccount.MACKey)
	}
	return out
}

// redactError returns err with every secret in its text replaced.
func redactError(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	redacted := msg
	for _, s := range secrets {
		redacted = strings.ReplaceAll(redacted, s, "[REDACTED]")
	}
	if redacted == msg {
		return err
	}
	return errors.New(redacted)
}
