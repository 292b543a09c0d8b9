// Package redact keeps secrets (a pinned account key, an EAB MAC key, a
// DNS provider's token) out of what the plugin prints: errors that other
// libraries built may quote them, and so may a line the command writes.
package redact

import (
	"bytes"
	"errors"
	"io"
	"strings"
)

// Mark stands where a secret was.
const Mark = "[REDACTED]"

// Error returns err with every secret in its text replaced by Mark; err
// itself, for errors.Is and errors.As, when its text holds none.
func Error(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	redacted := String(msg, secrets)
	if redacted == msg {
		return err
	}
	return errors.New(redacted)
}

// String returns s with every secret replaced by Mark.
func String(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, Mark)
		}
	}
	return s
}

// Writer passes what is written to w with every secret replaced, a line
// at a time, so that a secret written in two pieces is caught too; Close
// writes what is left of a last line without a newline.
type Writer struct {
	w       io.Writer
	secrets []string
	pending []byte
}

// NewWriter returns a Writer to w that replaces secrets.
func NewWriter(w io.Writer, secrets []string) *Writer {
	return &Writer{w: w, secrets: secrets}
}

func (r *Writer) Write(p []byte) (int, error) {
	r.pending = append(r.pending, p...)
	end := bytes.LastIndexByte(r.pending, '\n')
	if end < 0 {
		return len(p), nil
	}
	lines := string(r.pending[:end+1])
	r.pending = append(r.pending[:0], r.pending[end+1:]...)
	if _, err := io.WriteString(r.w, String(lines, r.secrets)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close writes the rest of a last line.
func (r *Writer) Close() error {
	if len(r.pending) == 0 {
		return nil
	}
	_, err := io.WriteString(r.w, String(string(r.pending), r.secrets))
	r.pending = r.pending[:0]
	return err
}
