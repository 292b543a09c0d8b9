package persist

import (
	"os"
	"strings"
	"testing"
)

func TestStorageOwnerWarningNamesTheServiceUsersStorage(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("gives a folder to another user; needs root")
	}
	dir := t.TempDir()
	if err := os.Chown(dir, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	warning := storageOwnerWarning([]string{"/nonexistent/caddy", dir}, 0)
	if !strings.Contains(warning, dir+" belongs to another user (uid 4242)") || !strings.Contains(warning, dir+"/.local/share/caddy") {
		t.Errorf("warning = %q", warning)
	}
	if w := storageOwnerWarning([]string{dir}, 4242); w != "" {
		t.Errorf("the owner itself is warned: %q", w)
	}
}
