package acmetest

import (
	"fmt"
	"net/http"

	"github.com/mholt/acmez/v3/acme"
)

// WriteProblem answers, in a test's Options.Wrap, as a CA refusing a
// request with an ACME problem (RFC 8555, section 6.7).
func WriteProblem(w http.ResponseWriter, status int, problemType, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":%q,"detail":%q,"status":%d}`, problemType, detail, status)
}

// ServerInternal answers, in a test's Options.Wrap, as a CA whose server
// failed.
func ServerInternal(w http.ResponseWriter) {
	WriteProblem(w, http.StatusInternalServerError, acme.ProblemTypeServerInternal, "injected by the test")
}
