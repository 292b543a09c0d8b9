package acmetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

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

// WithoutChallenge makes a CA that does not offer challenge type typ: it
// removes it from every authorization the CA returns. Responses are plain
// JSON (only requests are signed), so the client cannot tell.
func WithoutChallenge(typ string) func(http.Handler) http.Handler {
	return RewriteResponses(KindAuthz, func(authz map[string]any) { WithoutType(authz, typ) })
}

// WithoutType removes the challenges of type typ from an authorization.
func WithoutType(authz map[string]any, typ string) {
	challenges, _ := authz["challenges"].([]any)
	authz["challenges"] = slices.DeleteFunc(challenges, func(c any) bool {
		m, _ := c.(map[string]any)
		return m["type"] == typ
	})
}

// RewriteResponses returns a wrapper that edits the JSON object of every
// response to requests of kind.
func RewriteResponses(kind string, edit func(obj map[string]any)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if KindOf(r) != kind {
				next.ServeHTTP(w, r)
				return
			}
			rec := &bufferedResponse{header: http.Header{}}
			next.ServeHTTP(rec, r)
			body := rec.body.Bytes()
			var obj map[string]any
			if err := json.Unmarshal(body, &obj); err == nil {
				edit(obj)
				body, _ = json.Marshal(obj)
			}
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			w.WriteHeader(rec.status)
			w.Write(body)
		})
	}
}

type bufferedResponse struct {
	header http.Header
	body   bytes.Buffer
	status int
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *bufferedResponse) WriteHeader(code int) { b.status = code }
