package persist

import (
	"cmp"
	"strings"

	"github.com/dnspersist/caddy-persist/internal/dnslookup"
	"github.com/dnspersist/caddy-persist/internal/record"
)

// Each kind of failure a check finds is worded once, here. A record is a
// RecordReport and a CAA policy a CAAReport, whoever looks: the issuer's
// errors (which Caddy logs) are those reports rendered by recordLine and
// caaLine, `caddy persist check` prints the same lines, the admin API
// serves the reports as JSON, and the log's notices take their fields
// from them.

// recordLine is the one line that says what a check found of a record:
// where the record goes, its CA when the records of several CAs share
// names, the status and why, what a passing record relies on, and, when
// the record does not pass, the record to publish. A record refused by
// DNSSEC gets none: what it says may be right, and the signatures are
// what to mend.
func recordLine(r RecordReport, withCA bool) string {
	line := r.RecordName
	if withCA {
		line += " (ca " + r.CADirectory + ")"
	}
	line += ": " + string(r.Status)
	if r.Reason != "" {
		line += ": " + r.Reason
	}
	for _, w := range r.Warnings {
		line += " (warning: " + w + ")"
	}
	if r.PreviousKey {
		line += " (" + previousKeyNote + ")"
	}
	if itself := cmp.Or(r.RecordStatus, r.Status); (itself != record.StatusOK || r.PreviousKey) && itself != record.StatusDNSSEC && r.ZoneLine != "" {
		line += "; publish: " + r.ZoneLine
	}
	return line
}

// previousKeyNote is what recordLine says of a passing -02 record made
// with a previous key of the account.
const previousKeyNote = "made with a previous account key; republish to follow the draft"

// caaLine is the one line that says what a check found of the CAA policy
// of domain: none when it allows this CA, account and method without
// warnings; else the status and why, who serves the records that forbid,
// where they are, and the CAA records to publish.
func caaLine(domain, ca string, c *CAAReport) string {
	if c == nil || c.Status == caaAllowed && len(c.Warnings) == 0 {
		return ""
	}
	line := domain
	if ca != "" {
		line += " (ca " + ca + ")"
	}
	line += ": caa: " + c.Status
	if c.Reason != "" {
		line += ": " + c.Reason
	}
	if len(c.Servers) > 0 {
		line += " (served by " + strings.Join(c.Servers, ", ") + ")"
	}
	for _, w := range c.Warnings {
		line += " (warning: " + w + ")"
	}
	if c.Status != caaAllowed {
		if c.FoundAt != "" {
			line += "; found at " + c.FoundAt + ": " + strings.Join(c.Found, " and ")
		}
		if len(c.Publish) > 0 {
			line += "; publish: " + strings.Join(c.Publish, " and ")
		}
	}
	return line
}

// dnssecReason is the reason of an answer refused by DNSSEC, a record's
// or a CAA policy's: the servers that give it and the broken link.
func dnssecReason(servers []string, e *dnslookup.DNSSECError) string {
	return "at " + strings.Join(servers, ", ") + ": " + e.Error()
}

// warningDetails lists what a passing record relies on that Let's
// Encrypt accepts and stricter CAs refuse, each naming the canonical
// record to publish instead.
func warningDetails(v record.Verdict) []string {
	var out []string
	for _, w := range v.Warnings {
		out = append(out, w.Detail)
	}
	return out
}
