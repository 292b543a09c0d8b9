package record

import (
	"slices"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/camodel"
)

// The check follows Let's Encrypt (Boulder) where CAs differ, and warns;
// it refuses what every CA refuses. These tests hold it against
// camodel's independent models of Boulder and Pebble, whose Pebble side
// the plugin's tests also hold against Pebble itself.

const compatAccount = "https://ca.example/acct/1"

var compatNow = time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)

// judgement is how the plugin and each CA judge one value.
type judgement struct {
	boulder, pebble, intended bool
	verdict                   Verdict
}

func (j judgement) plugin() bool { return j.verdict.Status == StatusOK }

func judge(value string, wildcard bool) judgement {
	ch := camodel.Challenge{IssuerNames: camodel.Issuers(), AccountURL: compatAccount, Wildcard: wildcard, At: compatNow}
	exp := Expectation{Domain: "example.com", Offered: camodel.Issuers(), AccountURIs: []string{compatAccount}, Wildcard: wildcard}
	// what the check means to be: Boulder's rules with the drafts' advice
	// that any duplicate tag is malformed
	intended := camodel.Boulder()
	intended.AnyDuplicateTag = true
	values := []string{value}
	return judgement{
		boulder:  camodel.Boulder().Accepts(ch, values),
		pebble:   camodel.Pebble().Accepts(ch, values),
		intended: intended.Accepts(ch, values),
		verdict:  Evaluate(exp, values, compatNow),
	}
}

func warningKinds(v Verdict) []WarningKind {
	var kinds []WarningKind
	for _, w := range v.Warnings {
		kinds = append(kinds, w.Kind)
	}
	return kinds
}

func TestTableOfOutcomes(t *testing.T) {
	for _, row := range camodel.Table() {
		value := row.Expand(compatAccount, compatNow)
		j := judge(value, row.Wildcard)
		if j.boulder != row.Boulder || j.pebble != row.Pebble {
			t.Errorf("%s: %q: the models say Boulder %v, Pebble %v; the table %v, %v", row.Name, value, j.boulder, j.pebble, row.Boulder, row.Pebble)
		}
		if j.plugin() != row.Plugin {
			t.Errorf("%s: %q: the check says %s (%s), the table %v", row.Name, value, j.verdict.Status, j.verdict.Reason(), row.Plugin)
		}
		kinds := warningKinds(j.verdict)
		if row.Warning == "" && len(kinds) > 0 || row.Warning != "" && !slices.Contains(kinds, WarningKind(row.Warning)) {
			t.Errorf("%s: %q: warnings %v, the table %q", row.Name, value, j.verdict.Warnings, row.Warning)
		}
	}
}

// TestCorpusAgainstCAModels judges every generated value, as the parsers
// receive it and as DNS delivers it, and holds the check to its promise.
func TestCorpusAgainstCAModels(t *testing.T) {
	cases := camodel.Corpus(compatAccount, compatNow)
	var counts struct{ judged, both, neither, boulderOnly, warned, duplicates int }
	for _, c := range cases {
		overDNS, err := camodel.OverDNS(c.Value)
		if err != nil {
			t.Fatalf("%s: %q does not fit a TXT record: %v", c.Mutation, c.Value, err)
		}
		forms := []string{c.Value}
		if overDNS != c.Value {
			forms = append(forms, overDNS)
		}
		for _, value := range forms {
			counts.judged++
			j := judge(value, c.Wildcard)
			fail := func(what string) {
				t.Errorf("%s (%s): %q, wildcard %v: %s: Boulder %v, Pebble %v, check %s (%s), warnings %v",
					c.Mutation, c.Class, value, c.Wildcard, what, j.boulder, j.pebble, j.verdict.Status, j.verdict.Reason(), j.verdict.Warnings)
			}
			switch {
			case j.plugin() && !j.boulder:
				fail("passes what Let's Encrypt refuses")
			case j.plugin() && !j.pebble && len(j.verdict.Warnings) == 0:
				fail("passes what Pebble refuses without a warning")
			case !j.plugin() && j.boulder && j.pebble:
				fail("refuses what both CAs accept")
			case j.plugin() != j.intended:
				fail("differs from Let's Encrypt's rules with duplicate tags refused")
			}
			if len(j.verdict.Warnings) > 0 {
				if canonical, _ := j.verdict.Matched.Value(); canonical == j.verdict.MatchedValue {
					fail("warns about a canonical value")
				}
				counts.warned++
			}
			switch {
			case j.boulder && j.pebble:
				counts.both++
			case j.boulder && j.plugin():
				counts.boulderOnly++
			case j.boulder:
				counts.duplicates++
			case !j.pebble:
				counts.neither++
			}
		}
	}
	t.Logf("%d generated values, %d judgements: both CAs accept %d, neither %d, only Boulder %d (passed with a warning), only Boulder but a duplicate tag %d (refused); %d passes warned",
		len(cases), counts.judged, counts.both, counts.neither, counts.boulderOnly, counts.duplicates, counts.warned)
	// the corpus must reach every outcome, or the test proves little
	if counts.both == 0 || counts.neither == 0 || counts.boulderOnly == 0 || counts.duplicates == 0 {
		t.Errorf("the corpus misses an outcome: %+v", counts)
	}
}

// FuzzEvaluateAgainstCAs holds the check to the CA models on arbitrary
// values: it passes exactly what Let's Encrypt's rules pass, less
// duplicate tags, and warns whenever Pebble would refuse.
func FuzzEvaluateAgainstCAs(f *testing.F) {
	for _, row := range camodel.Table() {
		f.Add(row.Expand(compatAccount, compatNow), row.Wildcard)
	}
	f.Fuzz(func(t *testing.T, value string, wildcard bool) {
		j := judge(value, wildcard)
		if j.plugin() != j.intended || j.plugin() && !j.pebble && len(j.verdict.Warnings) == 0 {
			t.Fatalf("%q, wildcard %v: check %s (%s), warnings %v; Boulder %v, Pebble %v, Boulder with duplicates refused %v",
				value, wildcard, j.verdict.Status, j.verdict.Reason(), j.verdict.Warnings, j.boulder, j.pebble, j.intended)
		}
	})
}
