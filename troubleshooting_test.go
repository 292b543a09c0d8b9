package persist

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// docs/troubleshooting.md has one entry per message: every warning and
// error the plugin can log must be quoted on it, in a code span that
// starts with the message's words before its first ";" (the rest is
// advice the page gives at length), so that a message added to the code
// without its entry fails here. A log call whose message the scan cannot
// read fails too, rather than go unchecked.
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
	err = filepath.WalkDir("internal", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && notLogging(path):
			return filepath.SkipDir
		case strings.HasSuffix(path, ".go"):
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	fset := token.NewFileSet()
	byPackage := make(map[string][]*ast.File)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
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
		if !strings.Contains(string(page), "`"+lead) && !slices.Contains(missing, lead) {
			missing = append(missing, lead)
		}
	}
	if len(missing) > 0 {
		t.Errorf("docs/troubleshooting.md quotes no entry starting with %d logged messages; add a row quoting each:\n%s", len(missing), strings.Join(missing, "\n"))
	}
}

// notLogging are the folders whose logs no user meets: the test
// fixtures, and the etcd storage and test binaries only the tests use.
func notLogging(dir string) bool {
	for _, prefix := range []string{"internal/acmetest", "internal/fakedns", "internal/storagetest", "internal/etcdstorage", "internal/etcdtest", "internal/legotest", "internal/caddytest"} {
		if dir == prefix || strings.HasPrefix(dir, prefix+"/") {
			return true
		}
	}
	return false
}

// logMethods are the zap.Logger methods that log at warning level or
// above; a SugaredLogger's formatted ones are refused, since their
// messages are built at run time.
var logMethods = map[string]bool{"Warn": true, "Error": true, "DPanic": true, "Panic": true, "Fatal": true,
	"Warnf": false, "Warnw": false, "Errorf": false, "Errorw": false, "Log": false, "Check": false}

// logMessages returns the messages of the warning and error log calls of
// file: the string given, or every string assigned in the function to the
// variable given, directly or as returned by a function of the package.
func logMessages(t *testing.T, fset *token.FileSet, file *ast.File, returned map[string][]string) []string {
	packages := make(map[string]bool)
	for _, imp := range file.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		name := path[strings.LastIndex(path, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		packages[name] = true
	}
	var out []string
	for _, decl := range file.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		assigned, unreadable := stringsAssigned(fn.Body, returned)
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			readable, logs := logMethods[sel.Sel.Name]
			if pkg, ok := sel.X.(*ast.Ident); !logs || ok && packages[pkg.Name] {
				return true // fmt.Errorf, zap.Error: not a logger's
			}
			pos := fset.Position(call.Pos())
			if !readable {
				t.Errorf("%s: %s builds its message at run time; log a fixed message with fields, which the troubleshooting page can quote", pos, sel.Sel.Name)
				return true
			}
			if s, ok := stringValue(call.Args[0]); ok {
				out = append(out, s)
				return true
			}
			if id, ok := call.Args[0].(*ast.Ident); ok && len(assigned[id.Name]) > 0 && !unreadable[id.Name] {
				out = append(out, assigned[id.Name]...)
				return true
			}
			t.Errorf("%s: the message of this %s call is neither a string nor a variable given only strings here; the troubleshooting test cannot read it", pos, sel.Sel.Name)
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
// the result of; unreadable are the variables also given anything else.
func stringsAssigned(body *ast.BlockStmt, returned map[string][]string) (assigned map[string][]string, unreadable map[string]bool) {
	assigned, unreadable = make(map[string][]string), make(map[string]bool)
	give := func(name string, value ast.Expr) {
		if s, ok := stringValue(value); ok {
			assigned[name] = append(assigned[name], s)
			return
		}
		if call, ok := value.(*ast.CallExpr); ok {
			if fn, ok := call.Fun.(*ast.Ident); ok && len(returned[fn.Name]) > 0 {
				assigned[name] = append(assigned[name], returned[fn.Name]...)
				return
			}
		}
		unreadable[name] = true
	}
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			for i, lhs := range n.Lhs {
				if id, ok := lhs.(*ast.Ident); ok && len(n.Lhs) == len(n.Rhs) {
					give(id.Name, n.Rhs[i])
				}
			}
		case *ast.ValueSpec:
			for i, id := range n.Names {
				if i < len(n.Values) {
					give(id.Name, n.Values[i])
				}
			}
		}
		return true
	})
	return assigned, unreadable
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
