package caa

import (
	"fmt"
	"slices"
	"strings"
)

// Request is the issuance a CAA RRset is judged for.
type Request struct {
	// Issuers are the CA's issuer domain names (its caaIdentities).
	Issuers []string
	// AccountURI is the account's URL, which accounturi must equal.
	AccountURI string
	// Method is the validation method, e.g. dns-persist-01.
	Method string
	// Wildcard is set for a name *.<domain>: issuewild then governs when
	// present.
	Wildcard bool
}

// Result is the judgement of a CAA RRset for a Request.
type Result struct {
	Allowed bool
	// Reason says why issuance is forbidden, or what allowed it.
	Reason string
	// Warnings say what an allowing record relies on that Let's Encrypt
	// accepts and a stricter reading of the RFCs may not.
	Warnings []string
	// Tag is the property that governed: issue or issuewild; empty when
	// no property governs issuance.
	Tag string
}

// tags Let's Encrypt knows besides issue and issuewild: critical or not,
// they do not block issuance.
var knownTags = []string{"iodef", "issuemail", "issuevmc"}

// Evaluate judges the relevant RRset (RFC 8659 §3: the first non-empty one
// at the name or a parent) for req. An empty set allows issuance.
func Evaluate(set []Record, req Request) Result {
	var issue, wild []Record
	// warnings about the set as a whole, given with any allowing verdict
	var setWarnings []string
	for _, r := range set {
		switch tag := strings.ToLower(r.Tag); {
		case tag == "issue":
			issue = append(issue, r)
		case tag == "issuewild":
			wild = append(wild, r)
		case slices.Contains(knownTags, tag):
		case r.Flag&128 != 0:
			return Result{Reason: fmt.Sprintf("CAA record %s has the critical flag on tag %q, which CAs do not know, so none may issue; remove it or clear its flag", r.String(), r.Tag)}
		case r.Flag&1 != 0:
			// RFC 8659 marks only the bit 128 critical; Let's Encrypt
			// also honours bit 1, which early implementations set. CAs
			// differ, so the check passes and says so
			setWarnings = append(setWarnings, fmt.Sprintf("CAA record %s sets flag bit 1 on tag %q, which Let's Encrypt reads as critical and so refuses issuance, while RFC 8659 CAs ignore it; remove it or set its flag to 0", r.String(), r.Tag))
		}
	}
	relevant, tag := issue, "issue"
	if req.Wildcard && len(wild) > 0 {
		relevant, tag = wild, "issuewild"
	}
	if len(relevant) == 0 {
		return Result{Allowed: true, Reason: "no CAA issue property applies", Warnings: setWarnings}
	}

	var why []string
	for _, r := range relevant {
		ok, reason, warnings := judgeRecord(r, req)
		if ok {
			return Result{Allowed: true, Reason: fmt.Sprintf("CAA record %s allows it", r.String()), Warnings: append(setWarnings, warnings...), Tag: tag}
		}
		why = append(why, r.String()+" "+reason)
	}
	return Result{Reason: "no CAA " + tag + " record allows this CA, account and method: " + strings.Join(why, "; "), Tag: tag}
}

// judgeRecord reports whether one issue or issuewild record lets req
// through, why not, and what it relies on.
func judgeRecord(r Record, req Request) (bool, string, []string) {
	v, err := ParseIssueValue(r.Value)
	if err != nil {
		return false, "is malformed (" + err.Error() + ")", nil
	}
	if v.Issuer == "" {
		return false, "names no CA, which forbids issuance", nil
	}
	var warnings []string
	if !slices.Contains(req.Issuers, v.Issuer) {
		if !slices.ContainsFunc(req.Issuers, func(n string) bool { return strings.EqualFold(strings.TrimSuffix(v.Issuer, "."), n) }) {
			return false, fmt.Sprintf("names another CA (%s; this CA is %s)", v.Issuer, strings.Join(req.Issuers, ", ")), nil
		}
		// CAs differ here: Let's Encrypt compares byte for byte and
		// refuses, one comparing domain names as DNS does accepts; the
		// check passes and says so rather than block a CA that issues
		warnings = append(warnings, fmt.Sprintf("CAA record %s names %s, which Let's Encrypt compares byte for byte with its own name and refuses, while CAs comparing it as a domain name accept it; write it as %s", r.String(), v.Issuer, strings.Join(req.Issuers, " or ")))
	}
	if v.Spaced {
		warnings = append(warnings, fmt.Sprintf("CAA record %s has spaces around \"=\", which RFC 8659 allows but CAs that parse by RFC 6844 refuse; write %q", r.String(), v.String()))
	}
	var accounts, methods []string
	for _, p := range v.Params {
		switch {
		case p.Tag == "accounturi":
			accounts = append(accounts, p.Value)
		case p.Tag == "validationmethods":
			methods = append(methods, p.Value)
		case strings.EqualFold(p.Tag, "accounturi") || strings.EqualFold(p.Tag, "validationmethods"):
			// Let's Encrypt matches parameter tags exactly and ignores
			// this one; a CA matching them without case would apply it
			warnings = append(warnings, fmt.Sprintf("CAA record %s has parameter %s, which Let's Encrypt ignores, so it restricts nothing there, while other CAs may apply it; write it in lower case", r.String(), p.Tag))
		}
	}
	switch {
	case len(accounts) > 1:
		return false, "has more than one accounturi, which CAs refuse", nil
	case len(accounts) == 1 && accounts[0] != req.AccountURI:
		return false, fmt.Sprintf("is for another account (accounturi=%s; this account is %s)", accounts[0], req.AccountURI), nil
	case len(methods) > 1:
		return false, "has more than one validationmethods, which CAs refuse", nil
	case len(methods) == 1:
		listed := strings.Split(methods[0], ",")
		for _, m := range listed {
			if !validMethod(m) {
				return false, fmt.Sprintf("has validationmethods %q, which is not a comma-separated list of method names", methods[0]), nil
			}
		}
		if !slices.Contains(listed, req.Method) {
			return false, fmt.Sprintf("allows other validation methods only (validationmethods=%s, not %s)", methods[0], req.Method), nil
		}
	}
	return true, "", warnings
}

// validMethod reports whether m is letters, digits and hyphens.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Publish returns the records that lock issuance at a domain to req's
// account and method, at each of its CA's issuer domain names: an issue
// record per name, and an issuewild record per name when req is for a
// wildcard.
func Publish(req Request) []Record {
	var out []Record
	tags := []string{"issue"}
	if req.Wildcard {
		tags = append(tags, "issuewild")
	}
	for _, tag := range tags {
		for _, issuer := range req.Issuers {
			v := IssueValue{Issuer: issuer, Params: []Param{{"accounturi", req.AccountURI}, {"validationmethods", req.Method}}}
			out = append(out, Record{Tag: tag, Value: v.String()})
		}
	}
	return out
}
