package persist

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dnspersist/caddy-persist/internal/account"
	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// persistCommandTree is `caddy persist` as Caddy's command line builds
// it.
func persistCommandTree(t *testing.T) *cobra.Command {
	t.Helper()
	registered, ok := caddycmd.Commands()["persist"]
	if !ok {
		t.Fatal("caddy persist is not registered")
	}
	root := &cobra.Command{Use: registered.Name, Short: registered.Short}
	registered.CobraFunc(root)
	return root
}

// persistCommand finds the subcommand at path and parses args with its
// own flags, as `caddy persist <path> <args>` would.
func persistCommand(t *testing.T, args ...string) (*cobra.Command, caddycmd.Flags) {
	t.Helper()
	sub, rest, err := persistCommandTree(t).Find(args)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.ParseFlags(rest); err != nil {
		t.Fatalf("caddy persist %s: %v", strings.Join(args, " "), err)
	}
	return sub, caddycmd.Flags{FlagSet: sub.Flags()}
}

// The command list shows each subcommand's Short: one short sentence,
// not the first line of its help cut where the line ends.
func TestEveryPersistCommandSaysWhatItDoesInOneShortSentence(t *testing.T) {
	t.Parallel()
	var walk func(cmd *cobra.Command, path string)
	seen := 0
	walk = func(cmd *cobra.Command, path string) {
		seen++
		short := cmd.Short
		switch {
		case short == "" || len(short) > 72 || strings.ContainsAny(short, "\n."):
			t.Errorf("caddy %s: Short %q is not one short sentence (at most 72 characters, no period)", path, short)
		case strings.Count(short, "(") != strings.Count(short, ")"):
			t.Errorf("caddy %s: Short %q is cut mid-sentence", path, short)
		}
		for _, sub := range cmd.Commands() {
			walk(sub, path+" "+sub.Name())
		}
	}
	walk(persistCommandTree(t), "persist")
	if seen < 7 {
		t.Errorf("found %d commands; want persist, records, check, account and its four actions", seen)
	}
}

// docs/records.md says check takes records' flags: every one of them is
// check's too, --caa included.
func TestCheckTakesEveryFlagOfRecords(t *testing.T) {
	t.Parallel()
	records, _ := persistCommand(t, "records")
	check, _ := persistCommand(t, "check")
	records.Flags().VisitAll(func(f *pflag.Flag) {
		if check.Flags().Lookup(f.Name) == nil {
			t.Errorf("check has no --%s, which records has", f.Name)
		}
	})
}

// check --caa checks the records and prints the CAA records that lock
// each domain to the account, as records --caa does.
func TestCheckWithCAAPrintsTheCAARecords(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	storage := t.TempDir()
	caddyfile := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(persistSiteCaddyfile(storage, ca, "caa.check.test")), 0o600); err != nil {
		t.Fatal(err)
	}
	ti := newTestIssuer(t, ca, storage, nil)
	ti.publish(t, "caa.check.test", false)

	run := func(args ...string) string {
		_, fl := persistCommand(t, append(args, "--config", caddyfile, "--local")...)
		var out, errOut bytes.Buffer
		caddyGlobals.Lock()
		defer caddyGlobals.Unlock()
		if _, err := runPersistCommand(fl, args[0] == "check", &out, &errOut); err != nil {
			t.Fatalf("caddy persist %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String()
	}
	checked := run("check", "--caa")
	if !strings.Contains(checked, "_validation-persist.caa.check.test: ok") {
		t.Errorf("check --caa does not check the record:\n%s", checked)
	}
	printed := run("records", "--caa")
	var caaLines []string
	for line := range strings.Lines(printed) {
		if strings.Contains(line, " CAA ") {
			caaLines = append(caaLines, line)
		}
	}
	if len(caaLines) == 0 {
		t.Fatalf("records --caa printed no CAA record:\n%s", printed)
	}
	for _, line := range caaLines {
		if !strings.Contains(checked, line) {
			t.Errorf("check --caa does not print the CAA record %q that records --caa prints:\n%s", line, checked)
		}
	}
}

// A config served only on demand names no domain, so records prints
// none and registers nothing; what it says to do next works: the
// register command creates the account, and then a --domain record
// names it.
func TestAConfigServedOnDemandIsToldTheStepThatWorks(t *testing.T) {
	t.Parallel()
	ca := startCA(t, acmetest.Options{})
	storage := t.TempDir()
	caddyfile := filepath.Join(t.TempDir(), "Caddyfile")
	body := `{
	storage file_system ` + storage + `
	admin off
	on_demand_tls {
		permission persist
	}
}

https:// {
	tls {
		on_demand
		issuer persist ` + ca.URL + ` {
			email ops@example.test
			trusted_roots ` + ca.TLSRootsFile + `
			resolvers ` + testDNSAddr + `
		}
	}
}
`
	if err := os.WriteFile(caddyfile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	records := func(args ...string) (string, string, error) {
		_, fl := persistCommand(t, append([]string{"records", "--config", caddyfile, "--local"}, args...)...)
		var out, errOut bytes.Buffer
		caddyGlobals.Lock()
		defer caddyGlobals.Unlock()
		_, err := runPersistCommand(fl, false, &out, &errOut)
		return out.String(), errOut.String(), err
	}
	out, errOut, err := records()
	if err != nil || out != "" || !strings.Contains(errOut, "caddy persist account register creates the account") {
		t.Fatalf("records on an on-demand config: %v, stdout %q, stderr %q", err, out, errOut)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount); n != 0 {
		t.Fatalf("%d accounts registered by records without names", n)
	}
	if !strings.Contains(account.ErrNoAccountYet.Error(), "caddy persist account register") {
		t.Errorf("the error of a missing account does not name the register command: %v", account.ErrNoAccountYet)
	}

	_, fl := persistCommand(t, "account", "register", "--config", caddyfile, "--local")
	var changed, errOut2 bytes.Buffer
	caddyGlobals.Lock()
	_, err = runAccountCommand(fl, "register", &accountScope{}, &changed, &errOut2)
	caddyGlobals.Unlock()
	if err != nil {
		t.Fatalf("account register: %v\n%s", err, errOut2.String())
	}
	url := newTestIssuer(t, ca, storage, nil).accountURL(t)
	if !strings.Contains(changed.String(), url) {
		t.Errorf("account register printed %q, not the account %s", changed.String(), url)
	}
	out, _, err = records("--domain", "t1.ondemand.test")
	if err != nil || !strings.Contains(out, "accounturi="+url) {
		t.Errorf("records --domain after register: %v, %q", err, out)
	}
	if n := ca.Counts.Get(acmetest.KindNewAccount); n != 1 {
		t.Errorf("%d accounts registered, want the one of register", n)
	}
}
