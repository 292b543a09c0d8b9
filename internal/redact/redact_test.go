package redact

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestErrorReplacesEverySecretAndKeepsAnErrorWithoutOne(t *testing.T) {
	t.Parallel()
	secrets := []string{"tok-123456", "", "mac-abcdef"}
	err := errors.New("GET https://api.example/zones?token=tok-123456 failed; mac mac-abcdef refused")
	got := Error(err, secrets).Error()
	if strings.Contains(got, "tok-123456") || strings.Contains(got, "mac-abcdef") || strings.Count(got, Mark) != 2 {
		t.Errorf("redacted: %q", got)
	}
	wrapped := &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}
	if kept := Error(wrapped, secrets); kept != error(wrapped) || !errors.Is(kept, fs.ErrNotExist) {
		t.Errorf("an error holding no secret became %v", kept)
	}
	if Error(nil, secrets) != nil {
		t.Error("nil became an error")
	}
}

// A secret written in two pieces, as a logger or fmt may write a line,
// is caught, and nothing is lost of what surrounds it.
func TestWriterCatchesASecretSplitAcrossWrites(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	w := NewWriter(&out, []string{"tok-123456"})
	for _, piece := range []string{"first line tok-12", "3456 end\nsecond ", "line tok-123456"} {
		if _, err := w.Write([]byte(piece)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := "first line " + Mark + " end\nsecond line " + Mark
	if out.String() != want {
		t.Errorf("wrote %q, want %q", out.String(), want)
	}
}
