package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/caddyserver/certmagic"
)

// runStorage is a fresh certmagic.FileStorage for one run, holding only
// the ACME accounts found in warmDir (acme/<issuer>/users/...), as the
// storage of a Caddy that registered its account long ago and has no
// certificate for the new names yet.
func runStorage(tmp, warmDir string) (*certmagic.FileStorage, error) {
	dir, err := os.MkdirTemp(tmp, "run-")
	if err != nil {
		return nil, err
	}
	err = filepath.WalkDir(filepath.Join(warmDir, "acme"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(warmDir, path)
		if err != nil {
			return err
		}
		if !strings.Contains(filepath.ToSlash(rel), "/users/") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o600)
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &certmagic.FileStorage{Path: dir}, nil
}

// removeStorage deletes a run's storage folder.
func removeStorage(s *certmagic.FileStorage) {
	if s != nil {
		os.RemoveAll(s.Path)
	}
}
