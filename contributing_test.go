package persist

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// CONTRIBUTING.md maps the flows to the files: every non-test Go file of
// the root package and of internal/account, and every package under
// internal/, must be on it, so that the map stays true as files come and
// go.
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
	// the account's package is a layer of flows too: its files are mapped
	// one by one, as account/<file>
	accountFiles, err := filepath.Glob("internal/account/*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range accountFiles {
		if name := strings.TrimPrefix(f, "internal/"); !strings.HasSuffix(f, "_test.go") && !mapped(name) {
			missing = append(missing, name)
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
	if len(roots) == 0 || len(packages) == 0 || len(accountFiles) == 0 {
		t.Fatalf("found %d root files, %d internal files and %d of internal/account: not run from the module root", len(roots), len(packages), len(accountFiles))
	}
	if len(missing) > 0 {
		t.Errorf("CONTRIBUTING.md does not map %s; add each to the table of its flow", strings.Join(missing, ", "))
	}
}

// The plotting library of the benchmark charts lives in a module of its
// own (bench/charts): a user's build of the plugin never needs it.
func TestUsersNeverBuildThePlottingLibrary(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "mod", "why", "-m", "gonum.org/v1/plot").CombinedOutput()
	if err != nil {
		t.Fatalf("go mod why: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "(main module does not need module gonum.org/v1/plot)") {
		t.Errorf("the plugin's module needs the plotting library:\n%s", out)
	}
	if _, err := os.Stat("bench/charts/go.mod"); err != nil {
		t.Errorf("bench/charts is not a module of its own: %v", err)
	}
}
