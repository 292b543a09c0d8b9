package persist

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// docs/troubleshooting.md has one entry per message: every warning and
// error the plugin can log must be on it, by the words before its first
// ";" (the rest is advice the page gives at length), so that a message
// added to the code without its entry fails here.
func TestTroubleshootingHasEveryLogMessage(t *testing.T) {
	t.Parallel()
	page, err := os.ReadFile("docs/troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	internal, err := filepath.Glob("internal/*/*.go")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, internal...)

	fset := token.NewFileSet()
	byPackage := make(map[string][]*ast.File)
	for _, f := range files {
		// the test fixtures, and the etcd storage only tests use
		if strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f, "internal/acmetest/") || strings.HasPrefix(f, "internal/storagetest/") || strings.HasPrefix(f, "internal/etcdstorage/") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		byPackage[filepath.Dir(f)] = append(byPackage[filepath.Dir(f)], file)
	}
	var messages []string
	for _, pkg := range byPackage {
		returned := stringsReturned(pkg)
		for _, file := range pkg {
			messages = append(messages, logMessages(t, fset, file, returned)...)
		}
	}
	if len(messages) < 50 {
		t.Fatalf("found %d log messages; the scan is broken (not run from the module root?)", len(messages))
	}
	var missing []string
	for _, msg := range messages {
		lead, _, _ := strings.Cut(msg, ";")
		if !strings.Contains(string(page), lead) && !slices.Contains(missing, lead) {
			missing = append(missing, lead)
		}
	}
	if len(missing) > 0 {
		t.Errorf("docs/troubleshooting.md has no entry for %d logged messages; add a row quoting each:\n%s", len(missing), strings.Join(missing, "\n"))
	}
}

// logMessages returns the messages of the Warn and Error calls of file:
// the string given, or every string assigned in the function to the
// variable given, directly or as returned by a function of the package.
func logMessages(t *testing.T, fset *token.FileSet, file *ast.File, returned map[string][]string) []string {
	var out []string
	for _, decl := range file.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		assigned := stringsAssigned(fn.Body, returned)
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Warn" && sel.Sel.Name != "Error" {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "zap" {
				return true // zap.Error is a field, not a message
			}
			if s, ok := stringValue(call.Args[0]); ok {
				out = append(out, s)
				return true
			}
			if id, ok := call.Args[0].(*ast.Ident); ok && len(assigned[id.Name]) > 0 {
				out = append(out, assigned[id.Name]...)
				return true
			}
			t.Errorf("%s: the message of this %s call is neither a string nor a variable given strings here; the troubleshooting test cannot read it", fset.Position(call.Pos()), sel.Sel.Name)
			return true
		})
	}
	return out
}

// stringsReturned maps each function of a package that returns strings
// to the string literals it returns.
func stringsReturned(files []*ast.File) map[string][]string {
	returned := make(map[string][]string)
	for _, file := range files {
		for _, decl := range file.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil || fn.Recv != nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if _, ok := n.(*ast.FuncLit); ok {
					return false
				}
				if ret, ok := n.(*ast.ReturnStmt); ok && len(ret.Results) == 1 {
					if s, ok := stringValue(ret.Results[0]); ok {
						returned[fn.Name.Name] = append(returned[fn.Name.Name], s)
					}
				}
				return true
			})
		}
	}
	return returned
}

// stringsAssigned maps each variable of body to the strings assigned to
// it, and to those returned by the package's functions it is assigned
// the result of.
func stringsAssigned(body *ast.BlockStmt, returned map[string][]string) map[string][]string {
	assigned := make(map[string][]string)
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			for i, lhs := range n.Lhs {
				id, ok := lhs.(*ast.Ident)
				if !ok || i >= len(n.Rhs) {
					continue
				}
				if s, ok := stringValue(n.Rhs[i]); ok {
					assigned[id.Name] = append(assigned[id.Name], s)
				}
				if call, ok := n.Rhs[i].(*ast.CallExpr); ok {
					if fn, ok := call.Fun.(*ast.Ident); ok {
						assigned[id.Name] = append(assigned[id.Name], returned[fn.Name]...)
					}
				}
			}
		case *ast.ValueSpec:
			for i, id := range n.Names {
				if i < len(n.Values) {
					if s, ok := stringValue(n.Values[i]); ok {
						assigned[id.Name] = append(assigned[id.Name], s)
					}
				}
			}
		}
		return true
	})
	return assigned
}

// stringValue is the value of a string literal, or of literals joined by
// +.
func stringValue(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		if e.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.BinaryExpr:
		if e.Op != token.ADD {
			return "", false
		}
		left, ok := stringValue(e.X)
		if !ok {
			return "", false
		}
		right, ok := stringValue(e.Y)
		return left + right, ok
	case *ast.ParenExpr:
		return stringValue(e.X)
	}
	return "", false
}
