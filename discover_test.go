package persist

import (
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/caddyserver/certmagic"
)

func namesOf(sets []servedSet) [][]string {
	var out [][]string
	for _, s := range sets {
		names := slices.Clone(s.Names)
		slices.Sort(names)
		out = append(out, names)
	}
	return out
}

func TestServedNamesFollowsCaddysPolicies(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := provisionCaddyfile(t, `{
	storage file_system `+dir+`
	admin off
}

example.test, *.example.test, www.example.test {
	tls {
		issuer persist {
			email a@example.test
		}
	}
	respond "a"
}

other.test {
	tls {
		issuer persist {
			email b@example.test
		}
	}
	respond "b"
}

plain.test {
	tls internal
	respond "c"
}
`)
	sets, err := servedNames(ctx, nil, []string{"Tenant.Example.", "*.tenant.example", "other.test"})
	if err != nil {
		t.Fatal(err)
	}
	got := namesOf(sets)
	want := [][]string{
		{"*.example.test", "*.tenant.example", "example.test", "tenant.example"},
		{"other.test"},
	}
	if len(got) != 2 || !slices.Equal(got[0], want[0]) || !slices.Equal(got[1], want[1]) {
		t.Errorf("served names = %v, want %v (www.example.test is served by the wildcard; plain.test is not persist's)", got, want)
	}
	if sets[0].Issuer.Email != "a@example.test" || sets[1].Issuer.Email != "b@example.test" {
		t.Errorf("sets belong to %s and %s", sets[0].Issuer.Email, sets[1].Issuer.Email)
	}
}

func TestServedNamesWithGlobalCertIssuer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := provisionCaddyfile(t, `{
	storage file_system `+dir+`
	admin off
	cert_issuer persist {
		email ops@example.test
	}
}

a.test, b.test {
	respond "a"
}
`)
	sets, err := servedNames(ctx, []string{"automated.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := namesOf(sets); len(got) != 1 || !slices.Equal(got[0], []string{"a.test", "automated.test", "b.test"}) {
		t.Errorf("served names = %v", got)
	}
}

func TestServedNamesWithoutPersistIssuer(t *testing.T) {
	t.Parallel()
	ctx := provisionCaddyfile(t, "{\n\tstorage file_system "+t.TempDir()+"\n\tadmin off\n}\n\nplain.test {\n\ttls internal\n\trespond \"x\"\n}\n")
	if _, err := servedNames(ctx, nil, []string{"x.test"}); err == nil || !strings.Contains(err.Error(), "cert_issuer persist") {
		t.Errorf("error = %v", err)
	}
}

func TestServedNamesGivesEveryPersistIssuerOfAPolicyItsNames(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := provisionCaddyfile(t, `{
	storage file_system `+dir+`
	admin off
}

example.test, *.example.test {
	tls {
		issuer persist https://first-ca.test/directory {
			email a@example.test
		}
		issuer persist https://second-ca.test/directory {
			email a@example.test
		}
	}
	respond "a"
}
`)
	sets, err := servedNames(ctx, nil, []string{"tenant.example"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 || sets[0].Issuer.CA != "https://first-ca.test/directory" || sets[1].Issuer.CA != "https://second-ca.test/directory" {
		t.Fatalf("sets = %+v, want one per CA, in the policy's order", sets)
	}
	want := []string{"*.example.test", "example.test", "tenant.example"}
	for _, got := range namesOf(sets) {
		if !slices.Equal(got, want) {
			t.Errorf("names = %v, want %v for each CA", got, want)
		}
	}
}

func TestCheckOutcomeWithSeveralCAs(t *testing.T) {
	t.Parallel()
	reports := []RecordReport{
		{Domain: "a.test", CADirectory: "https://one/dir", Status: "ok"},
		{Domain: "a.test", RecordName: "_validation-persist.a.test", CADirectory: "https://two/dir", Status: "missing"},
		{Domain: "b.test", CADirectory: "https://one/dir", Status: "missing"},
		{Domain: "b.test", CADirectory: "https://two/dir", Status: "ok"},
	}
	if !spansCAs(reports) || spansCAs(reports[:1]) {
		t.Error("spansCAs does not tell one CA from two")
	}
	if err := checkOutcome(reports, false); err == nil || !strings.Contains(err.Error(), "2 of 4") {
		t.Errorf("every CA: %v, want 2 of 4 not ok", err)
	}
	if err := checkOutcome(reports, true); err != nil {
		t.Errorf("--any with one ok record per domain: %v", err)
	}
	reports[3].Status = "mismatch"
	if err := checkOutcome(reports, true); err == nil || !strings.Contains(err.Error(), "b.test") || strings.Contains(err.Error(), "a.test") {
		t.Errorf("--any with b.test lacking: %v", err)
	}
	if line := recordLine(reports[1], true); !strings.HasPrefix(line, "_validation-persist.a.test (ca https://two/dir): missing") {
		t.Errorf("check line %q does not name its CA", line)
	}
}

// The policy index chooses the policy a scan with certmagic.MatchWildcard
// over every subject chooses, for names that match exactly, through
// wildcards of one or more labels, and not at all.
func TestPolicyIndexMatchesCertmagic(t *testing.T) {
	t.Parallel()
	lists := [][]string{
		{"a.example.test", "*.b.example.test"},
		{"*.*.example.test", "Mixed.Case.test"},
		{"*.c.example.test"},
		nil,
	}
	policies := make([]*caddytls.AutomationPolicy, len(lists))
	for i := range policies {
		policies[i] = new(caddytls.AutomationPolicy)
	}
	scan := func(lists [][]string, name string) *caddytls.AutomationPolicy {
		for i, subjects := range lists {
			if len(subjects) == 0 {
				return policies[i]
			}
			for _, s := range subjects {
				if certmagic.MatchWildcard(name, s) {
					return policies[i]
				}
			}
		}
		return nil
	}
	for _, n := range []int{len(lists), len(lists) - 1} {
		index := &policyIndex{policies: policies[:n], subjects: subjectSets(lists[:n])}
		for _, name := range []string{
			"a.example.test", "x.b.example.test", "b.example.test", "y.x.b.example.test",
			"x.c.example.test", "x.y.example.test", "mixed.case.test", "MIXED.case.TEST",
			"other.test", "example.test", "*.b.example.test", "a..example.test",
		} {
			if got, want := index.policyFor(name), scan(lists[:n], name); got != want {
				t.Errorf("%d policies, %s: the index chose policy %p, a scan chooses %p", n, name, got, want)
			}
		}
	}
}
