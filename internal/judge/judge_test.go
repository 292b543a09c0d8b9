package judge

import (
	"slices"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/dnspersist/caddy-persist/internal/dnslookup"
	"github.com/dnspersist/caddy-persist/internal/record"
)

const issuer = "ca.example"

func inputs(url string) Inputs {
	return Inputs{Dir: Directory{Draft: record.Draft01}, Offered: []string{issuer}, Account: acme.Account{Location: url}}
}

// An apex and its wildcard are one base domain, which then needs
// policy=wildcard; the bases come sorted.
func TestPlanNamesGivesOneRecordPerBase(t *testing.T) {
	t.Parallel()
	plan, err := PlanNames([]string{"b.test", "*.a.test", "a.test"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(plan.Bases, []string{"a.test", "b.test"}) || !plan.Wildcard["a.test"] || !plan.Plain["a.test"] || plan.Wildcard["b.test"] ||
		!slices.Equal(plan.Under["a.test"], []string{"*.a.test", "a.test"}) {
		t.Errorf("plan %+v", plan)
	}
	if _, err := PlanNames(nil); err == nil {
		t.Error("no names planned without an error")
	}
}

// A record passes only when every server serves a passing one; the
// servers that lag behind the others are named, and when none passes
// none is behind.
func TestEvaluateNamesTheServersBehind(t *testing.T) {
	t.Parallel()
	now := time.Now()
	exp, err := Spec{CA: "https://ca.example/dir"}.Expectation(inputs("https://ca.example/acct/1"), "lag.test", false)
	if err != nil {
		t.Fatal(err)
	}
	ours := issuer + "; accounturi=https://ca.example/acct/1"
	j := Judgement{Exp: exp, Answer: dnslookup.Answer{Views: []dnslookup.View{
		{Values: []string{ours}, Servers: []string{"ns1"}},
		{Values: nil, Servers: []string{"ns2"}},
	}}}
	if j.Evaluate(now) || !slices.Equal(j.Behind, []string{"ns2"}) || j.State() != StateMissing {
		t.Errorf("one server behind: passed %v, behind %v, state %s", j.Passed(), j.Behind, j.State())
	}
	j.Answer.Views[1].Values = []string{ours}
	if !j.Evaluate(now) || len(j.Behind) != 0 || j.State() != StateOK {
		t.Errorf("both serving it: passed %v, behind %v, state %s", j.Passed(), j.Behind, j.State())
	}
	j.Answer.Views = []dnslookup.View{{Values: nil, Servers: []string{"ns1"}}, {Values: nil, Servers: []string{"ns2"}}}
	if j.Evaluate(now) || len(j.Behind) != 0 {
		t.Errorf("neither serving it: behind %v", j.Behind)
	}
}

// A record of this account past its persistUntil is expired, unless it
// also lacks what the names need; another account's is a mismatch.
func TestMismatchStateSaysExpiredOnlyForOurRecord(t *testing.T) {
	t.Parallel()
	has := func(kinds ...record.MismatchKind) func(record.MismatchKind) bool {
		return func(k record.MismatchKind) bool { return slices.Contains(kinds, k) }
	}
	for _, c := range []struct {
		kinds []record.MismatchKind
		want  string
	}{
		{[]record.MismatchKind{record.MismatchExpired}, StateExpired},
		{[]record.MismatchKind{record.MismatchExpired, record.MismatchPolicy}, StateMismatch},
		{[]record.MismatchKind{record.MismatchAccount}, StateMismatch},
	} {
		if got := MismatchState(has(c.kinds...)); got != c.want {
			t.Errorf("%v: %s, want %s", c.kinds, got, c.want)
		}
	}
}

// A value naming a former account is stale; a value naming the account
// in use never is, even when storage lists it as former, and another
// CA's record is not ours.
func TestStaleNeverNamesTheAccountInUse(t *testing.T) {
	t.Parallel()
	c := &Checker{Spec: Spec{CA: "https://ca.example/dir"}, Now: time.Now}
	in := inputs("https://ca.example/acct/new")
	exp, err := c.Spec.Expectation(in, "stale.test", false)
	if err != nil {
		t.Fatal(err)
	}
	old := issuer + "; accounturi=https://ca.example/acct/old"
	current := issuer + "; accounturi=https://ca.example/acct/new"
	other := "other.example; accounturi=https://ca.example/acct/old"
	j := Judgement{Exp: exp, Answer: dnslookup.Answer{Views: []dnslookup.View{{Values: []string{old, current, other}}}}}
	former := []acme.Account{{Location: "https://ca.example/acct/old"}, {Location: "https://ca.example/acct/new"}}
	stale := c.Stale(in, j, former)
	if len(stale) != 1 || stale[0].Value != old || stale[0].AccountURL != "https://ca.example/acct/old" || stale[0].PreviousKey {
		t.Errorf("stale %+v, want only the old account's value", stale)
	}
}
