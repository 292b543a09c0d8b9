// Package storagetest is test support: what a test sees of the folder of
// a certmagic file storage, to tell what a step changed, kept or set
// aside there.
package storagetest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Snapshot describes every file under dir, with its contents, leaving out
// certmagic's locks, which come and go: two snapshots differ when a file
// was added, removed or changed. A file that vanishes while it is read
// (as a lock can) is left out.
func Snapshot(t testing.TB, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || strings.Contains(path, "/locks/") {
			return nil
		}
		data, _ := os.ReadFile(path)
		b.WriteString(path + "=" + string(data) + ";")
		return nil
	})
	return b.String()
}

// List returns the names in the folder dir.
func List(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// Holding returns a file under dir whose contents include data, ignoring
// the space around it, or "" when none does.
func Holding(t testing.TB, dir string, data []byte) string {
	t.Helper()
	found := ""
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if content, _ := os.ReadFile(path); bytes.Contains(content, bytes.TrimSpace(data)) {
				found = path
			}
		}
		return nil
	})
	return found
}
