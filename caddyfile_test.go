package persist

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddytls"
	"github.com/mholt/acmez/v3/acme"

	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/adapt")

// TestUnmarshalCaddyfileAllSubdirectives parses blocks that together use
// every subdirective in every accepted form and compares each field of the
// resulting Issuer.
func TestUnmarshalCaddyfileAllSubdirectives(t *testing.T) {
	t.Parallel()
	yes := true
	tests := []struct {
		name  string
		input string
		want  Issuer
	}{
		{
			name: "every subdirective, dir as subdirective",
			input: `persist {
				dir https://acme.example.test/directory
				email admin@example.test
				account_key {env.PERSIST_ACCOUNT_KEY}
				eab kid-123 c2VjcmV0LW1hYy1rZXk
				profile shortlived
				timeout 90s
				trusted_roots /etc/ca/root1.pem /etc/ca/root2.pem
				preferred_chains smallest
				lifetime 6d
				issuer_domain_name letsencrypt.org
				persist_until 2027-06-30T00:00:00Z
				resolvers 1.1.1.1 8.8.8.8:53 [2001:db8::53]:5353
				propagation_timeout -1
			}`,
			want: Issuer{
				CA:                   "https://acme.example.test/directory",
				Email:                "admin@example.test",
				AccountKey:           "{env.PERSIST_ACCOUNT_KEY}",
				ExternalAccount:      &acme.EAB{KeyID: "kid-123", MACKey: "c2VjcmV0LW1hYy1rZXk"},
				Profile:              "shortlived",
				ACMETimeout:          caddy.Duration(90 * time.Second),
				TrustedRootsPEMFiles: []string{"/etc/ca/root1.pem", "/etc/ca/root2.pem"},
				PreferredChains:      &caddytls.ChainPreference{Smallest: &yes},
				CertificateLifetime:  caddy.Duration(6 * 24 * time.Hour),
				IssuerDomainName:     "letsencrypt.org",
				PersistUntil:         "2027-06-30T00:00:00Z",
				Resolvers:            []string{"1.1.1.1", "8.8.8.8:53", "[2001:db8::53]:5353"},
				PropagationTimeout:   caddy.Duration(-1),
			},
		},
		{
			name: "every subdirective, inline dir and block forms",
			input: `persist https://ca.internal.test:14000/dir {
				email "ops@example.test"
				account_key {file./etc/persist/account.pem}
				eab {env.EAB_KID} {env.EAB_HMAC}
				profile tlsserver
				timeout 2m30s
				trusted_roots /srv/pebble.minica.pem
				preferred_chains {
					root_common_name "ISRG Root X1" "ISRG Root X2"
				}
				lifetime 90m
				issuer_domain_name ca.internal.test
				persist_until 1814400000
				resolvers 127.0.0.1:5353
				propagation_timeout 45s
			}`,
			want: Issuer{
				CA:                   "https://ca.internal.test:14000/dir",
				Email:                "ops@example.test",
				AccountKey:           "{file./etc/persist/account.pem}",
				ExternalAccount:      &acme.EAB{KeyID: "{env.EAB_KID}", MACKey: "{env.EAB_HMAC}"},
				Profile:              "tlsserver",
				ACMETimeout:          caddy.Duration(150 * time.Second),
				TrustedRootsPEMFiles: []string{"/srv/pebble.minica.pem"},
				PreferredChains:      &caddytls.ChainPreference{RootCommonName: []string{"ISRG Root X1", "ISRG Root X2"}},
				CertificateLifetime:  caddy.Duration(90 * time.Minute),
				IssuerDomainName:     "ca.internal.test",
				PersistUntil:         "1814400000",
				Resolvers:            []string{"127.0.0.1:5353"},
				PropagationTimeout:   caddy.Duration(45 * time.Second),
			},
		},
		{
			name: "preferred_chains any_common_name, placeholders skip value checks",
			input: `persist {
				preferred_chains {
					any_common_name R10 "E5"
				}
				issuer_domain_name {env.ISSUER_NAME}
				persist_until {env.PERSIST_UNTIL}
			}`,
			want: Issuer{
				PreferredChains:  &caddytls.ChainPreference{AnyCommonName: []string{"R10", "E5"}},
				IssuerDomainName: "{env.ISSUER_NAME}",
				PersistUntil:     "{env.PERSIST_UNTIL}",
			},
		},
		{
			name:  "inline dir without block",
			input: `persist https://acme.example.test/directory`,
			want:  Issuer{CA: "https://acme.example.test/directory"},
		},
		{
			name:  "bare name",
			input: `persist`,
			want:  Issuer{},
		},
		{
			name:  "empty block",
			input: "persist {\n}",
			want:  Issuer{},
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got Issuer
			d := caddyfile.NewTestDispenser(tc.input)
			if err := got.UnmarshalCaddyfile(d); err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			compareIssuerFields(t, &got, &tc.want)
			if d.Next() {
				t.Errorf("token %q (line %d) left unconsumed", d.Val(), d.Line())
			}
		})
	}
}

// compareIssuerFields reports every exported field of got that differs from
// want, then checks that nothing else (unexported state) was set either.
func compareIssuerFields(t *testing.T, got, want *Issuer) {
	t.Helper()
	gv, wv := reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem()
	typ := gv.Type()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s = %s, want %s", f.Name, showValue(g), showValue(w))
		}
	}
	if !t.Failed() && !reflect.DeepEqual(*got, *want) {
		t.Errorf("unexported fields were set: got %+v", *got)
	}
}

// showValue prints a field value with pointers followed, so a mismatch in
// a *acme.EAB or *caddytls.ChainPreference shows the values, not addresses.
func showValue(v any) string {
	switch v := v.(type) {
	case caddy.Duration:
		return fmt.Sprintf("%s (%d)", time.Duration(v), int64(v))
	case *acme.EAB:
		if v == nil {
			return "<nil>"
		}
		return fmt.Sprintf("&%+v", *v)
	case *caddytls.ChainPreference:
		if v == nil {
			return "<nil>"
		}
		smallest := "<nil>"
		if v.Smallest != nil {
			smallest = fmt.Sprint(*v.Smallest)
		}
		return fmt.Sprintf("&{Smallest:%s RootCommonName:%q AnyCommonName:%q}", smallest, v.RootCommonName, v.AnyCommonName)
	case []string:
		if v == nil {
			return "[]string(nil)"
		}
		return fmt.Sprintf("%q", v)
	default:
		return fmt.Sprintf("%#v", v)
	}
}

// TestUnmarshalCaddyfileErrorsCarryLine feeds one bad input of each kind
// and checks that the error names the line of the offending token, in the
// form the Dispenser uses (", at Testfile:<line>"), and says what is wrong.
func TestUnmarshalCaddyfileErrorsCarryLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		lines    []string // joined with newlines; lines[0] is line 1
		wantLine int
		wantMsg  string
	}{
		// unknown subdirective
		{"unknown subdirective", lines("emial admin@example.test"), 3, "unrecognized persist issuer property: emial"},
		{"unknown subdirective without args", lines("ca"), 3, "unrecognized persist issuer property: ca"},

		// missing arguments
		{"dir without arg", lines("dir"), 3, "wrong argument count or unexpected line ending after 'dir'"},
		{"email without arg", []string{"persist {", "\tprofile default", "\temail", "}"}, 3, "wrong argument count or unexpected line ending after 'email'"},
		{"account_key without arg", lines("account_key"), 3, "account_key takes exactly one argument"},
		{"account_key with two args", lines("account_key SECRET-PEM extra"), 3, "account_key takes exactly one argument, the PEM key or a placeholder for it (value not shown)"},
		{"eab without args", lines("eab"), 3, "eab takes exactly two arguments"},
		{"eab with one arg", lines("eab kid-123"), 3, "eab takes exactly two arguments"},
		{"profile without arg", lines("profile"), 3, "wrong argument count or unexpected line ending after 'profile'"},
		{"timeout without arg", lines("timeout"), 3, "wrong argument count or unexpected line ending after 'timeout'"},
		{"trusted_roots without arg", lines("trusted_roots"), 3, "wrong argument count or unexpected line ending after 'trusted_roots'"},
		{"lifetime without arg", lines("lifetime"), 3, "wrong argument count or unexpected line ending after 'lifetime'"},
		{"issuer_domain_name without arg", lines("issuer_domain_name"), 3, "wrong argument count or unexpected line ending after 'issuer_domain_name'"},
		{"persist_until without arg", lines("persist_until"), 3, "wrong argument count or unexpected line ending after 'persist_until'"},
		{"resolvers without arg", lines("resolvers"), 3, "wrong argument count or unexpected line ending after 'resolvers'"},
		{"propagation_timeout without arg", lines("propagation_timeout"), 3, "wrong argument count or unexpected line ending after 'propagation_timeout'"},

		// too many arguments
		{"email with two args", []string{"persist {", "\tprofile default", "\temail a@example.test b@example.test", "}"}, 3, "wrong argument count"},
		{"dir with two args", lines("dir https://a.test/dir https://b.test/dir"), 3, "wrong argument count"},
		{"eab with three args", lines("eab kid SECRET-MAC extra"), 3, "eab takes exactly two arguments, <key_id> <mac_key> (values not shown)"},
		{"profile with two args", lines("profile a b"), 3, "wrong argument count"},
		{"timeout with two args", lines("timeout 1m 2m"), 3, "wrong argument count"},
		{"issuer_domain_name with two args", lines("issuer_domain_name letsencrypt.org example.org"), 3, "wrong argument count"},
		{"persist_until with two args", lines("persist_until 2027-06-30T00:00:00Z 1814400000"), 3, "wrong argument count"},
		{"propagation_timeout with two args", lines("propagation_timeout -1 30s"), 3, "wrong argument count"},
		{"inline dir with two args", []string{"# the issuer name is on line 3", "", "persist https://a.test/dir https://b.test/dir {", "\temail admin@example.test", "}"}, 3, "wrong argument count"},

		// a plain-http directory says which token, on its line
		{"dir over plain http", lines("dir http://acme.example.com/dir"), 3, `dir "http://acme.example.com/dir" uses plain http on a public host; use https`},
		{"inline dir over plain http", []string{"# the issuer name is on line 3", "", "persist http://acme.example.com/dir {", "\temail admin@example.test", "}"}, 3, `the directory URL of persist "http://acme.example.com/dir" uses plain http`},
		{"dir not a URL", lines("dir ftp://acme.example.com/dir"), 3, `dir "ftp://acme.example.com/dir" must be an https:// URL`},

		// bad durations
		{"timeout not a duration", lines("timeout abc"), 3, "invalid timeout duration abc"},
		{"timeout -1 is not an off switch", lines("timeout -1"), 3, "invalid timeout duration -1"},
		{"timeout zero", lines("timeout 0s"), 3, "timeout must be positive: 0s"},
		{"lifetime negative", lines("lifetime -5s"), 3, "lifetime must be positive: -5s"},
		{"lifetime not a duration", lines("lifetime forever"), 3, "invalid lifetime duration forever"},
		{"propagation_timeout zero", lines("propagation_timeout 0"), 3, "propagation_timeout must be positive, or -1 to turn the check off: 0"},
		{"propagation_timeout negative", lines("propagation_timeout -2s"), 3, "propagation_timeout must be positive, or -1 to turn the check off: -2s"},
		{"propagation_timeout not a duration", lines("propagation_timeout soon"), 3, "invalid propagation_timeout duration soon"},

		// bad issuer_domain_name
		{"issuer_domain_name uppercase", lines("issuer_domain_name LetsEncrypt.org"), 3, "must be lowercase"},
		{"issuer_domain_name trailing dot", lines("issuer_domain_name letsencrypt.org."), 3, "must not end with a dot"},
		{"issuer_domain_name bad label", lines("issuer_domain_name lets_encrypt.org"), 3, "is not a valid domain name"},

		// bad persist_until
		{"persist_until word", lines("persist_until tomorrow"), 3, `persist_until "tomorrow" is neither an RFC 3339 date`},
		{"persist_until month 13", lines("persist_until 2027-13-01"), 3, `persist_until "2027-13-01" is neither an RFC 3339 date`},
		{"persist_until date without time", lines("persist_until 2027-06-30"), 3, `persist_until "2027-06-30" is neither an RFC 3339 date`},
		{"persist_until seconds overflow", lines("persist_until 99999999999999999999"), 3, `persist_until "99999999999999999999"`},

		// directory given twice
		{"dir twice", []string{"persist {", "\tdir https://a.test/dir", "\tdir https://b.test/dir", "}"}, 3, "dir is given more than once"},
		{"inline dir and dir", []string{"persist https://a.test/dir {", "\temail admin@example.test", "\tdir https://b.test/dir", "}"}, 3, "directory is already specified: https://a.test/dir"},

		// repeated subdirectives
		{"email repeated", []string{"persist {", "\temail a@example.test", "\temail b@example.test", "}"}, 3, "email is given more than once"},
		{"resolvers repeated", []string{"persist {", "\tresolvers 1.1.1.1", "\tprofile default", "\tresolvers 8.8.8.8", "}"}, 4, "resolvers is given more than once"},
		{"preferred_chains repeated", []string{"persist {", "\tpreferred_chains smallest", "\tpreferred_chains smallest", "}"}, 3, "preferred_chains is given more than once"},

		// bad preferred_chains
		{"preferred_chains unknown arg", lines("preferred_chains biggest"), 3, "Invalid argument 'biggest'"},
		{"preferred_chains without options", lines("preferred_chains"), 3, "No options for preferred_chains received"},
		{"preferred_chains empty block", lines("preferred_chains {", "\t}"), 4, "No options for preferred_chains received"},
		{"preferred_chains smallest with extra arg", lines("preferred_chains smallest root"), 3, "wrong argument count"},
		{"preferred_chains smallest with block", lines("preferred_chains smallest {", "\t\troot_common_name X", "\t}"), 4, "No more options are accepted when using the 'smallest' option"},
		{"preferred_chains unknown option", lines("preferred_chains {", "\t\tleaf_common_name X", "\t}"), 4, "Received unrecognized parameter 'leaf_common_name'"},
		{"preferred_chains root_common_name without arg", lines("preferred_chains {", "\t\troot_common_name", "\t}"), 4, "wrong argument count or unexpected line ending after 'root_common_name'"},
		{"preferred_chains root and any", lines("preferred_chains {", "\t\troot_common_name X", "\t\tany_common_name Y", "\t}"), 5, "Can't set any_common_name when root_common_name is already set"},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			input := strings.Join(tc.lines, "\n")
			var iss Issuer
			err := iss.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
			if err == nil {
				t.Fatalf("no error for input:\n%s", numbered(input))
			}
			msg := err.Error()
			wantAt := fmt.Sprintf(", at Testfile:%d", tc.wantLine)
			if !strings.HasSuffix(msg, wantAt) {
				t.Errorf("error %q does not end with %q (line %d) for input:\n%s", msg, wantAt, tc.wantLine, numbered(input))
			}
			if !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("error %q does not contain %q", msg, tc.wantMsg)
			}
			// secrets in a bad line must not be echoed back
			if strings.Contains(msg, "SECRET") {
				t.Errorf("error %q repeats a secret", msg)
			}
		})
	}
}

// lines returns a persist block whose line 2 is a valid subdirective and
// whose line 3 (and on) is the given text.
func lines(rest ...string) []string {
	out := []string{"persist {", "\temail admin@example.test"}
	for _, l := range rest {
		out = append(out, "\t"+l)
	}
	return append(out, "}")
}

func numbered(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(s, "\n") {
		fmt.Fprintf(&b, "%3d| %s\n", i+1, l)
	}
	return b.String()
}

// TestCaddyfileAdaptGolden adapts whole Caddyfiles that use the issuer with
// Caddy's real caddyfile adapter and compares the indented JSON with the
// golden files testdata/adapt/<name>.json. Run with -update to rewrite them.
func TestCaddyfileAdaptGolden(t *testing.T) {
	t.Parallel()
	inputs, err := filepath.Glob(filepath.Join("testdata", "adapt", "*.caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no testdata/adapt/*.caddyfile inputs")
	}
	for _, input := range inputs {
		name := strings.TrimSuffix(filepath.Base(input), ".caddyfile")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(input)
			if err != nil {
				t.Fatal(err)
			}
			got := adaptCaddyfile(t, body)

			golden := strings.TrimSuffix(input, ".caddyfile") + ".json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("adapted JSON differs from %s (run with -update to accept):\n%s", golden, lineDiff(string(want), string(got)))
			}

			if !bytes.Contains(got, []byte(`"module": "persist"`)) {
				t.Errorf(`adapted JSON has no "module": "persist":\n%s`, got)
			}
			checkPersistIssuersDecode(t, got)
		})
	}
}

// adaptCaddyfile runs the caddyfile adapter, requires no error and no
// warnings, and returns the JSON indented with tabs plus a final newline.
func adaptCaddyfile(t *testing.T, body []byte) []byte {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		t.Fatal("caddyfile adapter is not registered")
	}
	out, warnings, err := adapter.Adapt(body, nil)
	if err != nil {
		t.Fatalf("Adapt: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("adapt warning: %s", w)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		t.Fatalf("indenting adapted JSON: %v", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

// checkPersistIssuersDecode finds every object with "module": "persist" in
// the adapted config and checks that the rest of it decodes into an Issuer
// with no unknown field, i.e. the JSON keys match the struct tags.
func checkPersistIssuersDecode(t *testing.T, config []byte) {
	t.Helper()
	var root any
	if err := json.Unmarshal(config, &root); err != nil {
		t.Fatal(err)
	}
	var found []map[string]any
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["module"] == "persist" {
				found = append(found, v)
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(root)
	if len(found) == 0 {
		t.Fatal(`no object with "module": "persist" in the adapted JSON`)
	}
	for _, obj := range found {
		delete(obj, "module")
		raw, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		var iss Issuer
		if err := dec.Decode(&iss); err != nil {
			t.Errorf("persist issuer JSON %s does not decode into Issuer: %v", raw, err)
		}
	}
}

// lineDiff shows the first line where want and got differ, with context.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("first difference at line %d:\n- %s\n+ %s\n--- got ---\n%s", i+1, wl, gl, got)
		}
	}
	return "(no line differs)"
}

// TestCaddyfileAdaptErrorCarriesLine checks that an error from the issuer's
// Caddyfile parsing surfaces through the real adapter with the Caddyfile
// name and line of the bad token.
func TestCaddyfileAdaptErrorCarriesLine(t *testing.T) {
	t.Parallel()
	body := strings.Join([]string{
		"example.test {",
		"\ttls {",
		"\t\tissuer persist {",
		"\t\t\temail admin@example.test",
		"\t\t\tpropagation_timeout 0",
		"\t\t}",
		"\t}",
		"}",
		"",
	}, "\n")
	_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(body), nil)
	if err == nil {
		t.Fatal("no error adapting a Caddyfile with propagation_timeout 0")
	}
	if msg := err.Error(); !strings.Contains(msg, "propagation_timeout must be positive") || !strings.Contains(msg, "Caddyfile:5") {
		t.Errorf("error %q should name the problem and Caddyfile:5", msg)
	}
}

func TestUnmarshalPermissionCaddyfile(t *testing.T) {
	t.Parallel()
	parse := func(input string) (Permission, error) {
		var p Permission
		err := p.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		return p, err
	}
	p, err := parse("persist {\n\tcache_ttl 10m\n\tnegative_ttl 45s\n\tmax_concurrent_lookups 8\n}")
	if err != nil {
		t.Fatal(err)
	}
	if p.CacheTTL != caddy.Duration(10*time.Minute) || p.NegativeTTL != caddy.Duration(45*time.Second) || p.MaxConcurrentLookups != 8 {
		t.Errorf("parsed %+v", p)
	}
	for input, want := range map[string]string{
		"persist extra": "wrong argument count",
		"persist {\n\tcache_ttl 1m\n\tcache_ttl 2m\n}":              "cache_ttl is given more than once",
		"persist {\n\tnegative_ttl 0s\n}":                           "negative_ttl must be positive",
		"persist {\n\tmax_concurrent_lookups 0\n}":                  "max_concurrent_lookups must be a positive whole number",
		"persist {\n\tcache_tll 1m\n}":                              "unrecognized persist permission property: cache_tll",
		"persist {\n\tnegative_ttl soon\n}":                         "invalid negative_ttl duration soon",
		"persist {\n\tmax_concurrent_lookups 4 5\n}":                "wrong argument count",
		"persist {\n\tcache_ttl\n}":                                 "wrong argument count",
		"persist {\n\tmax_concurrent_lookups 3\n\tcache_ttl -1s\n}": "cache_ttl must be positive",
	} {
		if _, err := parse(input); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", input, err, want)
		}
	}
}

// The examples the docs point to load as they are: each adapts without a
// warning, provisions, and has a persist issuer serving its names.
func TestExamplesLoad(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("examples/*")
	if err != nil {
		t.Fatal(err)
	}
	loaded := 0
	for _, file := range files {
		var cfgJSON []byte
		switch filepath.Ext(file) {
		case ".Caddyfile":
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			cfgJSON = adaptCaddyfile(t, body)
		case ".json":
			if cfgJSON, err = os.ReadFile(file); err != nil {
				t.Fatal(err)
			}
		default:
			continue
		}
		var cfg caddy.Config
		if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		ctx, err := provisionConfig(&cfg)
		if err != nil {
			t.Errorf("%s does not load: %v", file, err)
			continue
		}
		if _, err := servedNames(ctx, nil, nil); err != nil {
			t.Errorf("%s: %v", file, err)
		}
		loaded++
	}
	if loaded < 6 {
		t.Errorf("loaded %d examples, want the 6 Caddyfiles and JSON configs", loaded)
	}
}
