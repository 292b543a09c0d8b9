package persist

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// CONTRIBUTING.md maps the flows to the files: every non-test Go file of
// the root package and every package under internal/ must be on it, so
// that the map stays true as files come and go.
func TestContributingMapsEveryFile(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("CONTRIBUTING.md")
	if err != nil {
		t.Fatal(err)
	}
	mapped := func(name string) bool { return strings.Contains(string(doc), "`"+name+"`") }

	roots, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, f := range roots {
		if !strings.HasSuffix(f, "_test.go") && !mapped(f) {
			missing = append(missing, f)
		}
	}
	packages, err := filepath.Glob("internal/*/*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range packages {
		if pkg := filepath.Dir(f); !mapped(pkg) && !slices.Contains(missing, pkg) {
			missing = append(missing, pkg)
		}
	}
	if len(roots) == 0 || len(packages) == 0 {
		t.Fatalf("found %d root files and %d internal files: not run from the module root", len(roots), len(packages))
	}
	if len(missing) > 0 {
		t.Errorf("CONTRIBUTING.md does not map %s; add each to the table of its flow", strings.Join(missing, ", "))
	}
}
