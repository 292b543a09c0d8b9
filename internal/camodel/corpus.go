package camodel

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Issuer and IDNIssuer are the names the table and the corpus write
// records for: Pebble's default issuer domain name, and an
// internationalized one (U-label IDNULabel), so that U-labels can match.
const (
	Issuer    = "pebble.letsencrypt.org"
	IDNIssuer = "xn--bcher-kva.example"
	IDNULabel = "bücher.example"
)

// Issuers returns the issuer domain names a CA judging the table and the
// corpus offers.
func Issuers() []string {
	return []string{Issuer, IDNIssuer}
}

// Case is one generated record value and the challenge it is judged for.
type Case struct {
	// Class is the kind of the first mutation (e.g. "issuer-case");
	// Mutation names every mutation applied.
	Class, Mutation string
	Value           string
	// Wildcard is set when the name validated is *.<domain>.
	Wildcard bool
}

// Corpus derives record values from valid records for account by
// mutations: each mutation alone on several valid records, then every
// pair of mutations of different classes on two of them. now sets
// persistUntil dates. Values are unique per challenge kind.
func Corpus(account string, now time.Time) []Case {
	future := strconv.FormatInt(now.AddDate(1, 0, 0).Unix(), 10)
	past := strconv.FormatInt(now.AddDate(0, 0, -1).Unix(), 10)
	muts := mutations(account, future, past)

	type base struct {
		rec      draft
		wildcard bool
	}
	var bases []base
	for _, wildcard := range []bool{false, true} {
		for _, policy := range []bool{false, true} {
			for _, until := range []bool{false, true} {
				rec := draft{issuer: Issuer, sep: "; "}.set("accounturi", account)
				if policy {
					rec = rec.set("policy", "wildcard")
				}
				if until {
					rec = rec.set("persistUntil", future)
				}
				bases = append(bases, base{rec, wildcard})
			}
		}
	}

	var out []Case
	seen := map[Case]bool{}
	emit := func(c Case) {
		key := Case{Value: c.Value, Wildcard: c.Wildcard}
		if !seen[key] {
			seen[key] = true
			out = append(out, c)
		}
	}
	for _, b := range bases {
		for _, m := range muts {
			emit(Case{Class: m.class, Mutation: m.name, Value: m.apply(b.rec).String(), Wildcard: b.wildcard})
		}
	}
	// pairs on the record most CAs see (a wildcard with its policy and a
	// persistUntil) and on the plainest
	for _, b := range []base{bases[len(bases)-1], bases[0]} {
		for i, m1 := range muts {
			for _, m2 := range muts[i+1:] {
				if m1.class == m2.class {
					continue
				}
				emit(Case{Class: m1.class, Mutation: m1.name + " + " + m2.name, Value: m2.apply(m1.apply(b.rec)).String(), Wildcard: b.wildcard})
			}
		}
	}
	return out
}

// Sample picks up to perClass cases of each class, spread over the class,
// from single mutations only.
func Sample(cases []Case, perClass int) []Case {
	byClass := map[string][]Case{}
	var classes []string
	for _, c := range cases {
		if strings.Contains(c.Mutation, " + ") {
			continue
		}
		if _, ok := byClass[c.Class]; !ok {
			classes = append(classes, c.Class)
		}
		byClass[c.Class] = append(byClass[c.Class], c)
	}
	var out []Case
	for _, class := range classes {
		list := byClass[class]
		n := min(perClass, len(list))
		for i := range n {
			out = append(out, list[i*len(list)/n])
		}
	}
	return out
}

// draft is a record value being built, in the parts mutations change.
type draft struct {
	lead, issuer string
	params       []param
	// sep comes before each parameter, tail after the last.
	sep, tail string
}

type param struct{ tag, eq, value string }

func (d draft) String() string {
	var b strings.Builder
	b.WriteString(d.lead + d.issuer)
	for _, p := range d.params {
		b.WriteString(d.sep + p.tag + p.eq + p.value)
	}
	b.WriteString(d.tail)
	return b.String()
}

// set gives the first parameter tagged tag (in any case) value, or
// appends one.
func (d draft) set(tag, value string) draft {
	d.params = slices.Clone(d.params)
	for i := range d.params {
		if strings.EqualFold(d.params[i].tag, tag) {
			d.params[i].value = value
			return d
		}
	}
	d.params = append(d.params, param{tag, "=", value})
	return d
}

// add appends a parameter, whatever is there already.
func (d draft) add(p param) draft {
	d.params = append(slices.Clone(d.params), p)
	return d
}

// each changes every parameter tagged tag (in any case), or all of them
// for tag "".
func (d draft) each(tag string, change func(*param)) draft {
	d.params = slices.Clone(d.params)
	for i := range d.params {
		if tag == "" || strings.EqualFold(d.params[i].tag, tag) {
			change(&d.params[i])
		}
	}
	return d
}

func (d draft) drop(tag string) draft {
	d.params = slices.DeleteFunc(slices.Clone(d.params), func(p param) bool { return strings.EqualFold(p.tag, tag) })
	return d
}

type mutation struct {
	class, name string
	apply       func(draft) draft
}

func mutations(account, future, past string) []mutation {
	var out []mutation
	group := func(class string, named map[string]func(draft) draft) {
		names := make([]string, 0, len(named))
		for name := range named {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			out = append(out, mutation{class, name, named[name]})
		}
	}
	issuer := func(name string) func(draft) draft {
		return func(d draft) draft { d.issuer = name; return d }
	}
	rename := func(from, to string) func(draft) draft {
		return func(d draft) draft { return d.each(from, func(p *param) { p.tag = to }) }
	}
	value := func(tag, v string) func(draft) draft {
		return func(d draft) draft { return d.set(tag, v) }
	}
	extra := func(params ...param) func(draft) draft {
		return func(d draft) draft {
			for _, p := range params {
				d = d.add(p)
			}
			return d
		}
	}
	ext := func(tag, v string) param { return param{tag, "=", v} }
	sep := func(s string) func(draft) draft {
		return func(d draft) draft { d.sep = s; return d }
	}

	group("issuer-case", map[string]func(draft) draft{
		"upper":       issuer(strings.ToUpper(Issuer)),
		"title":       issuer("Pebble.LetsEncrypt.Org"),
		"alternating": issuer("pEbBlE.lEtSeNcRyPt.OrG"),
	})
	group("issuer-dot", map[string]func(draft) draft{
		"trailing dot":                issuer(Issuer + "."),
		"two trailing dots":           issuer(Issuer + ".."),
		"leading dot":                 issuer("." + Issuer),
		"ideographic full stops":      issuer(strings.ReplaceAll(Issuer, ".", "\u3002")),
		"trailing ideographic stop":   issuer(Issuer + "\u3002"),
		"fullwidth full stops":        issuer(strings.ReplaceAll(Issuer, ".", "\uff0e")),
		"halfwidth ideographic stops": issuer(strings.ReplaceAll(Issuer, ".", "\uff61")),
		"upper with trailing dot":     issuer(strings.ToUpper(Issuer) + "."),
	})
	group("issuer-unicode", map[string]func(draft) draft{
		"U-label":                    issuer(IDNULabel),
		"U-label upper":              issuer(strings.ToUpper(IDNULabel)),
		"U-label decomposed":         issuer("bu\u0308cher.example"),
		"U-label trailing dot":       issuer(IDNULabel + "."),
		"U-label as DNS delivers it": issuer(`b\195\188cher.example`),
		"A-label":                    issuer(IDNIssuer),
		"A-label upper":              issuer(strings.ToUpper(IDNIssuer)),
		"fullwidth letters":          issuer(fullwidth(Issuer)),
		"soft hyphen":                issuer("pebble.lets\u00adencrypt.org"),
		"zero-width space":           issuer("pebble.lets\u200bencrypt.org"),
		"Cyrillic look-alike":        issuer("p\u0435bble.letsencrypt.org"),
	})
	group("issuer-other", map[string]func(draft) draft{
		"another CA":  issuer("letsencrypt.org"),
		"empty":       issuer(""),
		"subdomain":   issuer("x." + Issuer),
		"inner space": issuer("pebble .letsencrypt.org"),
		"port":        issuer(Issuer + ":443"),
		"star":        issuer("*.letsencrypt.org"),
		"underscore":  issuer("pebble_letsencrypt.org"),
		"quoted":      issuer(`"` + Issuer + `"`),
	})
	group("whitespace", map[string]func(draft) draft{
		"no spaces":          sep(";"),
		"spaces around ;":    sep("  ;  "),
		"tab after ;":        sep(";\t"),
		"tab before ;":       sep("\t;"),
		"tab as DNS gives":   sep(`;\009`),
		"NBSP after ;":       sep(";\u00a0"),
		"newline after ;":    sep(";\n"),
		"CR after ;":         sep(";\r"),
		"vertical tab":       sep(";\v"),
		"leading spaces":     func(d draft) draft { d.lead = "  "; return d },
		"leading tab":        func(d draft) draft { d.lead = "\t"; return d },
		"trailing spaces":    func(d draft) draft { d.tail = "  "; return d },
		"spaces around =":    func(d draft) draft { return d.each("", func(p *param) { p.eq = " = " }) },
		"tabs around =":      func(d draft) draft { return d.each("", func(p *param) { p.eq = "\t=\t" }) },
		"space before value": func(d draft) draft { return d.each("accounturi", func(p *param) { p.value = " " + p.value }) },
	})
	group("tag-case", map[string]func(draft) draft{
		"AccountURI":               rename("accounturi", "AccountURI"),
		"ACCOUNTURI":               rename("accounturi", "ACCOUNTURI"),
		"POLICY":                   rename("policy", "POLICY"),
		"persistuntil":             rename("persistUntil", "persistuntil"),
		"PERSISTUNTIL":             rename("persistUntil", "PERSISTUNTIL"),
		"dotted capital I":         rename("accounturi", "ACCOUNTUR\u0130"),
		"dotless small i":          rename("accounturi", "accountur\u0131"),
		"fullwidth accounturi":     rename("accounturi", fullwidth("accounturi")),
		"policy with dotted cap I": rename("policy", "POL\u0130CY"),
	})
	group("tag-syntax", map[string]func(draft) draft{
		"underscore":      extra(ext("x_y", "1")),
		"inner space":     extra(ext("bad tag", "1")),
		"star":            extra(ext("*", "")),
		"leading hyphen":  extra(ext("-bad", "1")),
		"trailing hyphen": extra(ext("bad-", "1")),
		"non-ASCII":       extra(ext("é", "1")),
		"dot":             extra(ext("a.b", "1")),
		"slash":           extra(ext("x/y", "z")),
		"inner tab":       extra(ext("tag\twith", "1")),
		"valid unknown":   extra(ext("x-future", "1")),
		"digits":          extra(ext("9", "9")),
		"first, before accounturi": func(d draft) draft {
			d.params = append([]param{ext("x_y", "1")}, d.params...)
			return d
		},
	})
	group("empty", map[string]func(draft) draft{
		"empty parameter":    extra(param{}),
		"trailing ;":         func(d draft) draft { d.tail = ";"; return d },
		"trailing ; space":   func(d draft) draft { d.tail = "; "; return d },
		"trailing ;;":        func(d draft) draft { d.tail = ";;"; return d },
		"no =":               extra(param{tag: "ext"}),
		"empty tag":          extra(param{eq: "=", value: "1"}),
		"lone =":             extra(param{eq: "="}),
		"empty accounturi":   value("accounturi", ""),
		"empty policy":       value("policy", ""),
		"empty persistUntil": value("persistUntil", ""),
		"empty unknown":      extra(ext("ext", "")),
		"no accounturi":      func(d draft) draft { return d.drop("accounturi") },
		"issuer only":        func(d draft) draft { d.params = nil; return d },
	})
	group("value-chars", map[string]func(draft) draft{
		"space":                  extra(ext("ext", "a b")),
		"inner tab":              extra(ext("ext", "a\tb")),
		"non-ASCII":              extra(ext("ext", "é")),
		"non-ASCII as DNS gives": extra(ext("ext", `\195\169`)),
		"DEL":                    extra(ext("ext", "\x7f")),
		"NUL":                    extra(ext("ext", "\x00")),
		"quote":                  extra(ext("ext", `"q"`)),
		"equals":                 extra(ext("ext", "a=b")),
		"invalid UTF-8":          extra(ext("ext", "\xff")),
		"accounturi non-ASCII":   value("accounturi", account+"é"),
		"accounturi space":       value("accounturi", account+" x"),
	})
	group("duplicate", map[string]func(draft) draft{
		"unknown twice":              extra(ext("ext", "1"), ext("ext", "2")),
		"unknown in two cases":       extra(ext("ext", "1"), ext("EXT", "2")),
		"empty unknown twice":        extra(ext("ext", ""), ext("ext", "")),
		"bad tag twice":              extra(ext("x_y", "1"), ext("x_y", "1")),
		"accounturi twice":           extra(ext("accounturi", account)),
		"accounturi twice, other":    extra(ext("accounturi", "https://other.example/acct/1")),
		"AccountURI and accounturi":  extra(ext("AccountURI", account)),
		"folded accounturi twice":    extra(ext("ACCOUNTUR\u0130", account)),
		"policy twice":               extra(ext("policy", "wildcard"), ext("policy", "wildcard")),
		"persistUntil twice":         extra(ext("persistUntil", future), ext("persistUntil", future)),
		"non-ASCII unknown twice":    extra(ext("é", "1"), ext("É", "1")),
		"invalid UTF-8 unknown tags": extra(ext("\xff", "1"), ext("\xfe", "1")),
	})
	group("policy", map[string]func(draft) draft{
		"WILDCARD":  value("policy", "WILDCARD"),
		"Wildcard":  value("policy", "Wildcard"),
		"other":     value("policy", "other"),
		"wildcard2": value("policy", "wildcard2"),
		"wild card": value("policy", "wild card"),
		"dotless i": value("policy", "w\u0131ldcard"),
		"absent":    func(d draft) draft { return d.drop("policy") },
		"wildcard":  value("policy", "wildcard"),
	})
	group("persist-until", map[string]func(draft) draft{
		"future":            value("persistUntil", future),
		"plus":              value("persistUntil", "+"+future),
		"leading zeros":     value("persistUntil", "000"+future),
		"plus, zeros":       value("persistUntil", "+00"+future),
		"minus one":         value("persistUntil", "-1"),
		"minus zero":        value("persistUntil", "-0"),
		"zero":              value("persistUntil", "0"),
		"past":              value("persistUntil", past),
		"plus past":         value("persistUntil", "+"+past),
		"plus alone":        value("persistUntil", "+"),
		"two signs":         value("persistUntil", "+-1"),
		"two pluses":        value("persistUntil", "++1"),
		"decimal":           value("persistUntil", future+".5"),
		"exponent":          value("persistUntil", "2e9"),
		"hex":               value("persistUntil", "0x7fffffff"),
		"underscore":        value("persistUntil", "1_"+future),
		"inner space":       value("persistUntil", future[:3]+" "+future[3:]),
		"max int64":         value("persistUntil", "9223372036854775807"),
		"over int64":        value("persistUntil", "9223372036854775808"),
		"min int64":         value("persistUntil", "-9223372036854775808"),
		"year 1":            value("persistUntil", "-62135596800"),
		"year 1, less 1s":   value("persistUntil", "-62135596801"),
		"Devanagari digits": value("persistUntil", "\u0967\u0968\u0969"),
		"fullwidth digits":  value("persistUntil", fullwidth(future)),
		"RFC 3339":          value("persistUntil", "2030-01-01T00:00:00Z"),
		"spaces around":     value("persistUntil", "  "+future+"  "),
		"absent":            func(d draft) draft { return d.drop("persistUntil") },
	})
	group("account", map[string]func(draft) draft{
		"other":          value("accounturi", "https://other.example/acct/1"),
		"upper-cased":    value("accounturi", strings.ToUpper(account)),
		"trailing slash": value("accounturi", account+"/"),
		"quoted":         value("accounturi", `"`+account+`"`),
		"escaped slash":  value("accounturi", strings.Replace(account, "/", "%2F", 1)),
	})
	group("order", map[string]func(draft) draft{
		"reversed": func(d draft) draft {
			d.params = slices.Clone(d.params)
			slices.Reverse(d.params)
			return d
		},
		"accounturi last": func(d draft) draft {
			for _, p := range d.params {
				if strings.EqualFold(p.tag, "accounturi") {
					return d.drop("accounturi").add(p)
				}
			}
			return d
		},
	})
	return out
}

// fullwidth spells ASCII letters, digits and dots in their fullwidth
// forms, which IDNA maps back.
func fullwidth(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '!' && r <= '~' {
			return r - '!' + '\uff01'
		}
		return r
	}, s)
}
