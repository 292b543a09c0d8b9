package dnslookup

// DNSSECError is a link of the chain from a signed zone's DS down to an
// answer that does not verify, as a validating resolver would find it.
type DNSSECError struct {
	// Zone is the signed zone whose chain is broken.
	Zone string
	// Link names the broken link: "ds" (no DNSKEY matches the DS at the
	// parent), "dnskey" (the DNSKEY RRset is not signed by a key the DS
	// names), "rrsig" (the signature over the answer is missing, expired,
	// not yet valid or wrong) or "denial" (the proof that a record does
	// not exist is missing or wrong).
	Link string
	// Detail says what is wrong, e.g. "the RRSIG over
	// _validation-persist.example.com TXT expired at
	// 2026-11-30T10:00:00Z".
	Detail string
}

func (e *DNSSECError) Error() string {
	return e.Detail + "; the CA's resolver will answer SERVFAIL"
}
