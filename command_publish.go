package persist

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/certmagic"
	"github.com/spf13/cobra"

	"github.com/dnspersist/caddy-persist/internal/dnslookup"
	"github.com/dnspersist/caddy-persist/internal/dnspublish"
	"github.com/dnspersist/caddy-persist/internal/record"
	"github.com/dnspersist/caddy-persist/internal/redact"
)

// `caddy persist publish` writes the records the config needs through a
// DNS provider module (dns.providers.*, as a user builds them in for
// dns-01), then waits until every nameserver serves them. The provider's
// token belongs to the operator's shell for this one command: it is given
// on the command line, parsed here, and never sent to Caddy, stored, or
// printed. That is the point of dns-persist-01: no server holds a token
// that can change DNS.

// publishPoll is how often the wait asks whether every nameserver serves
// the records: a zone transfer after NOTIFY takes a second or two.
const publishPoll = time.Second

func publishCommand() *cobra.Command {
	cmd := persistSubcommand("publish", "Publishes the records through a DNS provider module, once", `
Publishes the records 'caddy persist records' prints through a DNS provider
module built into this Caddy (dns.providers.*, the modules of caddy-dns that
dns-01 uses), then waits until every nameserver of each zone serves them, as
the issuer's check sees them, with progress on stderr. It exits 0 only when
every record passes.

--dns gives the provider as in the tls directive's dns subdirective, e.g.
--dns 'cloudflare {env.CF_API_TOKEN}', or as its JSON, e.g.
--dns '{"name":"cloudflare","api_token":"{env.CF_API_TOKEN}"}'. The token
stays in this command: it is not sent to Caddy, written to storage or any
file, or printed; errors that quote it print [REDACTED] in its place.

Each record that does not pass gets its value added beside whatever else is
at the name (another CA's record included); nothing else is changed. A
draft -02 value made with the account's key before a rollover is replaced
by the new one. With --remove-stale, values naming an account the issuer
used before (after 'caddy persist account replace --deactivate-old', say)
are removed too, and nothing else. Each zone is found by its SOA record, as
the check finds it. --dry-run prints the changes and makes none. A change
the provider refuses stops the command: those made before it stay, and
running the command again completes the rest.
`, cmdPersistPublish)
	cmd.Use += " --dns <provider> [--remove-stale] [--dry-run] [--timeout <duration>]"
	cmd.Flags().String("dns", "", "The DNS provider module and its settings, in Caddyfile syntax or JSON (required)")
	cmd.Flags().Bool("remove-stale", false, "Also remove the values naming an account the issuer no longer uses")
	cmd.Flags().Bool("dry-run", false, "Print the changes, and make none")
	cmd.Flags().Duration("timeout", 10*time.Minute, "How long to wait for every nameserver to serve the records")
	return cmd
}

func cmdPersistPublish(fl caddycmd.Flags) (int, error) {
	return runPublish(fl, os.Stdout, os.Stderr)
}

// runPublish publishes the records of the config fl names through the
// provider of --dns, printing through writers that keep its secrets out.
func runPublish(fl caddycmd.Flags, stdout, stderr io.Writer) (int, error) {
	provider, err := loadDNSProvider(fl.String("dns"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer provider.cleanup()
	if stderr == io.Writer(os.Stderr) {
		// Caddy's logs, and any the provider writes, go to os.Stderr
		restore, err := redactStderr(provider.secrets)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		defer restore()
		stderr = os.Stderr
	}
	out, errOut := redact.NewWriter(stdout, provider.secrets), redact.NewWriter(stderr, provider.secrets)
	defer out.Close()
	defer errOut.Close()
	code, err := publish(fl, provider, out, errOut)
	return code, redact.Error(err, provider.secrets)
}

// redactStderr makes os.Stderr, for Caddy's logs and the log package, a
// pipe whose lines reach the real one with secrets kept out; restore puts
// the real one back, and returns once everything written is through.
func redactStderr(secrets []string) (restore func(), err error) {
	real := os.Stderr
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		through := redact.NewWriter(real, secrets)
		io.Copy(through, r)
		through.Close()
	}()
	os.Stderr = w
	log.SetOutput(w)
	// Caddy's default logger holds the stderr it was built with
	if err := quietLogs(); err != nil {
		os.Stderr = real
		w.Close()
		<-done
		return nil, err
	}
	return func() {
		os.Stderr = real
		log.SetOutput(real)
		quietLogs()
		w.Close()
		<-done
	}, nil
}

func publish(fl caddycmd.Flags, provider dnsProvider, stdout, stderr io.Writer) (int, error) {
	domains, err := fl.GetStringArray("domain")
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	timeout, err := fl.GetDuration("timeout")
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	removeStale, dryRun := fl.Bool("remove-stale"), fl.Bool("dry-run")
	// the config is read (and, with no Caddy running, loaded) once for
	// every look that follows
	source, err := openReports(fl, domains, stderr)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	// the records as records reports them: the first run registers the
	// account they name, as records does, unless it is a dry run, which
	// changes nothing
	if !dryRun {
		if _, err := source(false, false, stderr); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	}
	reports, err := source(true, false, io.Discard)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if len(reports) == 0 {
		fmt.Fprintln(stderr, noNamesAdvice)
		return caddy.ExitCodeSuccess, nil
	}
	changes := publishChanges(reports, removeStale)
	for _, c := range changes {
		fmt.Fprintln(stdout, c)
	}
	if dryRun {
		fmt.Fprintf(stderr, "Dry run: %d changes through %s, none made.\n", len(changes), provider.name)
		return caddy.ExitCodeSuccess, nil
	}
	if len(changes) > 0 {
		resolver := dnslookup.New(dnslookup.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		done, err := dnspublish.Apply(ctx, provider.provider, resolver.Zone, changes)
		cancel()
		if err != nil {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("the DNS provider %s: %w; %d of %d changes were made before it, and running the command again completes the rest", provider.name, err, len(done), len(changes))
		}
		fmt.Fprintf(stderr, "Made %d changes through %s; waiting until every nameserver serves them.\n", len(done), provider.name)
	}
	return awaitPublished(source, removeStale, timeout, stdout, stderr)
}

// publishChanges are the changes that make every record pass: the value
// to publish where it is not served yet, the -02 values of the account's
// earlier keys it replaces, and, with removeStale, the values naming an
// account the issuer used before. A record that is published but not yet
// served by every nameserver, or that DNS could not be asked about, or
// that DNSSEC refuses, gets none: writing it again changes nothing.
func publishChanges(reports []RecordReport, removeStale bool) []dnspublish.Change {
	var changes []dnspublish.Change
	add := func(c dnspublish.Change) {
		if !slices.Contains(changes, c) {
			changes = append(changes, c)
		}
	}
	for _, r := range reports {
		status := cmp.Or(r.RecordStatus, r.Status)
		needed := r.PreviousKey || status == record.StatusMissing || status == record.StatusMismatch
		// a record name that is an alias is published where it leads
		at := cmp.Or(r.PublishAt, r.RecordName)
		if needed && len(r.Behind) == 0 && r.Value != "" && !slices.Contains(r.Published, r.Value) {
			add(dnspublish.Change{Name: at, Value: r.Value})
		}
		for _, stale := range r.Stale {
			if stale.PreviousKey || removeStale {
				add(dnspublish.Change{Name: at, Value: stale.Value, Remove: true})
			}
		}
	}
	return changes
}

// awaitPublished checks the records until every one passes at every
// nameserver (and, with removeStale, no stale value is left), saying on
// stderr what it waits for each time that changes, and then prints the
// check's lines.
func awaitPublished(source reportSource, removeStale bool, timeout time.Duration, stdout, stderr io.Writer) (int, error) {
	started := time.Now()
	deadline := started.Add(timeout)
	said := ""
	for {
		reports, err := source(true, false, io.Discard)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		var waiting []string
		for _, r := range reports {
			if line, ok := publishedLine(r, removeStale); !ok {
				waiting = append(waiting, line)
			}
		}
		if len(waiting) == 0 {
			for _, r := range reports {
				line, _ := publishedLine(r, removeStale)
				fmt.Fprintln(stdout, line)
			}
			fmt.Fprintf(stderr, "Every record passes at every nameserver (%s).\n", time.Since(started).Round(time.Second))
			return caddy.ExitCodeSuccess, nil
		}
		if now := strings.Join(waiting, "\n"); now != said {
			fmt.Fprintf(stderr, "Waiting for %d of %d records (%s):\n%s\n", len(waiting), len(reports), time.Since(started).Round(time.Second), now)
			said = now
		}
		if time.Now().Add(publishPoll).After(deadline) {
			return caddy.ExitCodeFailedStartup, fmt.Errorf("after %s, %d of %d dns-persist-01 records do not pass at every nameserver (see above); run caddy persist check to follow them, or publish again", timeout, len(waiting), len(reports))
		}
		time.Sleep(publishPoll)
	}
}

// publishedLine is the check's line of r, and whether r passes as the
// publish command wants: ok (or expiring), with no value of an earlier
// key left, and with removeStale no stale value at all.
func publishedLine(r RecordReport, removeStale bool) (string, bool) {
	line := recordLine(r, false)
	status := cmp.Or(r.RecordStatus, r.Status)
	ok := (status == record.StatusOK || status == record.StatusExpiring) && !r.PreviousKey
	for _, stale := range r.Stale {
		if stale.PreviousKey || removeStale {
			ok = false
			line += fmt.Sprintf(" (stale value still served: %q)", stale.Value)
		}
	}
	return line, ok
}

// dnsProvider is a provisioned dns.providers module and what of its
// settings must never be printed.
type dnsProvider struct {
	name     string
	provider certmagic.DNSProvider
	secrets  []string
	cleanup  context.CancelFunc
}

// loadDNSProvider builds the provider spec names: a provider name and its
// Caddyfile tokens, as after `dns` in a tls block, or its JSON object with
// the name in "name". The module's own UnmarshalCaddyfile parses it, and
// Provision expands its placeholders.
func loadDNSProvider(spec string) (dnsProvider, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return dnsProvider{}, fmt.Errorf("--dns is required: the DNS provider to publish with, e.g. --dns 'cloudflare {env.CF_API_TOKEN}'; %s", providersAvailable())
	}
	name, raw, err := providerJSON(spec)
	if err != nil {
		return dnsProvider{}, err
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	loaded, err := ctx.LoadModuleByID("dns.providers."+name, raw)
	if err != nil {
		cancel()
		return dnsProvider{}, fmt.Errorf("the DNS provider %s: %w", name, redact.Error(err, providerSecrets(raw)))
	}
	provider, ok := loaded.(certmagic.DNSProvider)
	if !ok {
		cancel()
		return dnsProvider{}, fmt.Errorf("the module dns.providers.%s cannot add and delete records (it is a %T)", name, loaded)
	}
	settings, _ := json.Marshal(loaded)
	secrets := append(providerSecrets(raw), providerSecrets(settings)...)
	return dnsProvider{name: name, provider: provider, secrets: secrets, cleanup: cancel}, nil
}

// providerJSON turns spec into the module's name and JSON, through its
// UnmarshalCaddyfile unless spec is JSON already.
func providerJSON(spec string) (string, json.RawMessage, error) {
	if strings.HasPrefix(spec, "{") {
		var named struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal([]byte(spec), &named); err != nil || named.Name == "" {
			return "", nil, fmt.Errorf("--dns is not a JSON object with the provider's name in \"name\" (value not shown): %v", redact.Error(err, []string{spec}))
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(spec), &fields); err != nil {
			return "", nil, errors.New("--dns is not a JSON object (value not shown)")
		}
		delete(fields, "name")
		raw, err := json.Marshal(fields)
		if err != nil {
			return "", nil, err
		}
		return named.Name, raw, checkProvider(named.Name)
	}
	tokens, err := caddyfile.Tokenize([]byte(spec), "--dns")
	if err != nil {
		return "", nil, fmt.Errorf("--dns: %w", redact.Error(err, strings.Fields(spec)))
	}
	d := caddyfile.NewDispenser(tokens)
	d.Next()
	name := d.Val()
	if err := checkProvider(name); err != nil {
		return "", nil, err
	}
	unm, err := caddyfile.UnmarshalModule(d, "dns.providers."+name)
	if err != nil {
		// the module's error may quote any token, a token included:
		// every value (a token that is not first on its line) is kept
		// out, as given and expanded
		return "", nil, fmt.Errorf("--dns: %w", redact.Error(err, tokenValues(tokens)))
	}
	raw, err := json.Marshal(unm)
	return name, raw, err
}

// tokenValues are the tokens of a provider's Caddyfile that are not
// first on their line (the values, not the subdirectives), as given and
// with placeholders expanded.
func tokenValues(tokens []caddyfile.Token) []string {
	repl := caddy.NewReplacer()
	var values []string
	for i, tok := range tokens {
		if i == 0 || tok.Line != tokens[i-1].Line || tok.Text == "{" || tok.Text == "}" {
			continue
		}
		values = append(values, tok.Text)
		if expanded := repl.ReplaceAll(tok.Text, ""); expanded != tok.Text && expanded != "" {
			values = append(values, expanded)
		}
	}
	return values
}

// checkProvider refuses a provider this Caddy was not built with, listing
// those it was.
func checkProvider(name string) error {
	if _, err := caddy.GetModule("dns.providers." + name); err != nil {
		return fmt.Errorf("no DNS provider module %q: %s", name, providersAvailable())
	}
	return nil
}

// providersAvailable names the dns.providers modules this Caddy has, and
// how to build one in.
func providersAvailable() string {
	var names []string
	for _, m := range caddy.GetModules("dns.providers") {
		names = append(names, m.ID.Name())
	}
	build := "xcaddy build --with github.com/dnspersist/caddy-persist --with github.com/caddy-dns/<provider>"
	if len(names) == 0 {
		return "this Caddy has no DNS provider module; build one in with " + build
	}
	return "this Caddy has the DNS provider modules " + strings.Join(names, ", ") + "; build another in with " + build
}

// providerSecrets are the values of a provider's settings that may be
// secret, as given and with placeholders expanded: every string but those
// whose field names a place or a kind of key rather than a credential.
// Keeping a value out of the output that was not secret costs a word in
// an error; printing a token that was costs the domain.
func providerSecrets(settings json.RawMessage) []string {
	var fields any
	if json.Unmarshal(settings, &fields) != nil {
		return nil
	}
	repl := caddy.NewReplacer()
	var secrets []string
	var walk func(field string, v any)
	walk = func(field string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, inner := range v {
				walk(k, inner)
			}
		case []any:
			for _, inner := range v {
				walk(field, inner)
			}
		case string:
			if len(v) < 4 || notSecretField(field) {
				return
			}
			secrets = append(secrets, v)
			if expanded := repl.ReplaceAll(v, ""); expanded != v && expanded != "" {
				secrets = append(secrets, expanded)
			}
		}
	}
	walk("", fields)
	return secrets
}

// notSecretField reports whether a provider setting of this name is a
// place or a kind of thing (a server, a zone, a key's name or algorithm)
// rather than a credential.
func notSecretField(field string) bool {
	field = strings.ToLower(field)
	for _, word := range []string{"token", "secret", "password", "credential"} {
		if strings.Contains(field, word) {
			return false
		}
	}
	for _, suffix := range []string{"server", "servers", "host", "endpoint", "url", "zone", "region", "name", "alg", "algorithm", "type", "ttl"} {
		if strings.HasSuffix(field, suffix) {
			return true
		}
	}
	return false
}
