package caddytest

import (
	"os"
	"testing"
)

// RequireTiersEnv names the environment variable that makes every test
// tier mandatory. `.ci/run` sets it to 1: there a tier that cannot get
// what it needs is a broken CI machine, not a reason to skip.
const RequireTiersEnv = "PERSIST_REQUIRE_TIERS"

// TiersRequired reports whether RequireTiersEnv is set to 1.
func TiersRequired() bool {
	return os.Getenv(RequireTiersEnv) == "1"
}

// SkipTier skips t because its tier cannot run on this machine, with one
// line that says what the tier needs and how to get it. Where every tier
// is required, it fails t with the same line instead.
func SkipTier(t testing.TB, line string) {
	t.Helper()
	if TiersRequired() {
		t.Fatalf("%s (%s=1: every tier must run)", line, RequireTiersEnv)
	}
	t.Skip(line)
}
