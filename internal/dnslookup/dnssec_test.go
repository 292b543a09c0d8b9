package dnslookup

import (
	"context"
	"crypto"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnspersist/caddy-persist/internal/fakedns"
)

// signedZone is a zone signed with keys generated for the test, served by
// a group of nameservers, with its DS records at the recursive server the
// resolver discovers it through.
type signedZone struct {
	name      string
	recursive *fakedns.Server
	group     []*fakedns.Server
	ksk, zsk  *fakedns.ZoneKey
	r         *Resolver
}

// newSignedZone serves zone from n servers, each signing it as sign says
// (which may leave the signing as it is: a KSK and a ZSK, NSEC).
func newSignedZone(t testing.TB, zone string, n int, sign func(i int, sg *fakedns.Signing)) *signedZone {
	t.Helper()
	z := &signedZone{name: zone, recursive: fakedns.StartForTest(t), group: fakedns.StartGroupForTest(t, n)}
	zoneOnGroup(z.recursive, z.group, zone, allIndexes(n)...)
	z.ksk, z.zsk = fakedns.SignedZone(t, z.recursive, zone, z.group, sign)
	z.r = groupResolver(t, z.recursive, z.group, Options{})
	return z
}

func (z *signedZone) setTXT(name string, values ...string) {
	for _, s := range z.group {
		s.SetTXT(name, values...)
	}
}

func (z *signedZone) lookup(t *testing.T, name string) Answer {
	t.Helper()
	ans, err := z.r.LookupTXT(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return ans
}

func (z *signedZone) queries() int {
	n := z.recursive.Queries()
	for _, s := range z.group {
		n += s.Queries()
	}
	return n
}

func (z *signedZone) resetCounts() {
	z.recursive.ResetCounts()
	for _, s := range z.group {
		s.ResetCounts()
	}
}

func TestDNSSECValidChainPasses(t *testing.T) {
	t.Parallel()
	for _, nsec3 := range []bool{false, true} {
		t.Run(fmt.Sprintf("nsec3=%v", nsec3), func(t *testing.T) {
			t.Parallel()
			z := newSignedZone(t, "valid.test", 2, func(_ int, sg *fakedns.Signing) { sg.NSEC3 = nsec3 })
			name := "_validation-persist.www.valid.test"
			z.setTXT(name, ours)
			for _, s := range z.group {
				s.SetCAA(t, "valid.test", `0 issue "ca.example"`)
				s.SetCAA(t, "caa.valid.test", `0 issue "ca.example"`)
			}

			v := onlyView(t, z.lookup(t, name))
			if v.DNSSEC != nil || len(v.Servers) != 2 || !slices.Equal(v.Values, []string{ours}) {
				t.Fatalf("view = %+v, want the record from both servers, verified", v)
			}
			for _, absent := range []string{
				"_validation-persist.absent.valid.test", // NXDOMAIN
				"caa.valid.test",                        // NODATA: it has a CAA record
				"www.valid.test",                        // NODATA: an empty non-terminal
			} {
				if v := onlyView(t, z.lookup(t, absent)); v.DNSSEC != nil || len(v.Values) != 0 {
					t.Errorf("no TXT at %s, proven so: %+v (%v)", absent, v, v.DNSSEC)
				}
			}
			// no CAA at www, an empty non-terminal, nor at sub below it:
			// the climb goes on to the apex
			caa, err := z.r.LookupCAA(context.Background(), "sub.www.valid.test")
			if err != nil {
				t.Fatal(err)
			}
			if set := onlySet(t, caa); set.DNSSEC != nil || set.Name != "valid.test" {
				t.Errorf("CAA set = %+v (%v), want the apex's, verified", set, set.DNSSEC)
			}

			// warm, a check asks for the record with its signatures and
			// nothing more: DS and DNSKEY records are kept
			z.resetCounts()
			z.lookup(t, name)
			if n := z.queries(); n != 2 {
				t.Errorf("a warm check of a signed zone made %d queries, want 2 (TXT at each server)", n)
			}
		})
	}
}

func TestDNSSECFaultAtOneServer(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Second)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	other := fakedns.NewZoneKey(t, "fault.test", false)
	name := "_validation-persist.fault.test"
	cases := []struct {
		name  string
		fault func(z *signedZone, sg *fakedns.Signing)
		link  string
		want  string
	}{
		{"expired", func(_ *signedZone, sg *fakedns.Signing) { sg.Inception, sg.Expiration = past.Add(-time.Hour), past },
			linkRRSIG, "the RRSIG over " + name + " TXT expired at " + past.UTC().Format(time.RFC3339)},
		{"not yet valid", func(_ *signedZone, sg *fakedns.Signing) { sg.Inception = future },
			linkRRSIG, "the RRSIG over " + name + " TXT is not valid before " + future.UTC().Format(time.RFC3339)},
		{"another key", func(_ *signedZone, sg *fakedns.Signing) { sg.SignAnswersWith = other },
			linkRRSIG, fmt.Sprintf("the RRSIG over %s TXT is by key tag %d of fault.test, which is not among the DNSKEY RRset of fault.test", name, other.DNSKEY.KeyTag())},
		{"missing RRSIG", func(z *signedZone, _ *fakedns.Signing) { z.group[1].SetFault(name, fakedns.Unsigned) },
			linkRRSIG, "there is no RRSIG over " + name + " TXT"},
		{"DNSKEY RRset expired", func(_ *signedZone, sg *fakedns.Signing) {
			sg.KeyInception, sg.KeyExpiration = past.Add(-time.Hour), past
		},
			linkDNSKEY, "the RRSIG over fault.test DNSKEY expired at " + past.UTC().Format(time.RFC3339)},
		{"DNSKEY RRset signed by another key", func(z *signedZone, sg *fakedns.Signing) { sg.KSK = z.zsk },
			linkDS, "no DNSKEY of fault.test"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			z := newSignedZone(t, "fault.test", 2, nil)
			sg := fakedns.Signing{KSK: z.ksk, ZSK: z.zsk}
			c.fault(z, &sg)
			z.group[1].SignZone("fault.test", sg)
			z.setTXT(name, ours)

			ans := z.lookup(t, name)
			if len(ans.Views) != 2 {
				t.Fatalf("views = %+v, want ns1's and ns2's apart", ans.Views)
			}
			good, bad := ans.Views[0], ans.Views[1]
			if good.DNSSEC != nil || !strings.HasPrefix(good.Servers[0], "ns1.") {
				t.Errorf("ns1's view = %+v (%v), want it verified", good, good.DNSSEC)
			}
			if len(bad.Servers) != 1 || !strings.HasPrefix(bad.Servers[0], "ns2.fault.test ") || bad.DNSSEC == nil {
				t.Fatalf("ns2's view = %+v, want a DNSSEC failure", bad)
			}
			if e := bad.DNSSEC; e.Zone != "fault.test" || e.Link != c.link || !strings.HasPrefix(e.Detail, c.want) || !strings.HasSuffix(e.Error(), "; the CA's resolver will answer SERVFAIL; "+e.remedy()) || !strings.Contains(e.remedy(), "fault.test") {
				t.Errorf("ns2: %+v, want link %s and a detail starting %q", e, c.link, c.want)
			}
			if !slices.Equal(bad.Values, []string{ours}) {
				t.Errorf("ns2's values = %q; they stay what it serves", bad.Values)
			}
		})
	}
}

func TestDNSSECDSMatchingNoKey(t *testing.T) {
	t.Parallel()
	z := newSignedZone(t, "dsmismatch.test", 2, nil)
	name := "_validation-persist.dsmismatch.test"
	z.setTXT(name, ours)
	stale := fakedns.NewZoneKey(t, "dsmismatch.test", true)
	// a key rollover that left the DS naming a key the zone dropped
	z.recursive.SetDS("dsmismatch.test", stale.DS())

	v := onlyView(t, z.lookup(t, name))
	want := fmt.Sprintf("no DNSKEY of dsmismatch.test (key tags %d, %d) matches its DS records at the parent (key tags %d)", z.ksk.DNSKEY.KeyTag(), z.zsk.DNSKEY.KeyTag(), stale.DNSKEY.KeyTag())
	if len(v.Servers) != 2 || v.DNSSEC == nil || v.DNSSEC.Link != linkDS || v.DNSSEC.Detail != want {
		t.Errorf("view = %+v (%+v), want both servers failing at the DS: %q", v, v.DNSSEC, want)
	}
}

func TestDNSSECDeniesAbsenceOnlyWithAProof(t *testing.T) {
	t.Parallel()
	for _, nsec3 := range []bool{false, true} {
		t.Run(fmt.Sprintf("nsec3=%v", nsec3), func(t *testing.T) {
			t.Parallel()
			past := time.Now().Add(-time.Hour)
			z := newSignedZone(t, "denial.test", 2, func(i int, sg *fakedns.Signing) {
				sg.NSEC3 = nsec3
				if i == 1 {
					sg.Inception, sg.Expiration = past.Add(-time.Hour), past
				}
			})
			z.setTXT("_validation-persist.other.denial.test", ours)

			ans := z.lookup(t, "_validation-persist.denial.test")
			if len(ans.Views) != 2 || ans.Views[0].DNSSEC != nil {
				t.Fatalf("views = %+v, want ns1's proof verified and ns2's apart", ans.Views)
			}
			// the SOA and NSEC or NSEC3 records of the proof are checked
			if e := ans.Views[1].DNSSEC; e == nil || e.Link != linkDenial || !strings.Contains(e.Detail, "expired at") {
				t.Errorf("ns2's proof: %+v, want its expired signatures", e)
			}
		})
	}
}

// The proofs themselves, from what a signed server serves: the records
// that prove one thing prove no other.
func TestDNSSECProofsProveOnlyWhatTheySay(t *testing.T) {
	t.Parallel()
	for _, nsec3 := range []bool{false, true} {
		t.Run(fmt.Sprintf("nsec3=%v", nsec3), func(t *testing.T) {
			t.Parallel()
			z := newSignedZone(t, "proof.test", 1, func(_ int, sg *fakedns.Signing) { sg.NSEC3 = nsec3 })
			z.group[0].SetCAA(t, "caa.proof.test", `0 issue "ca.example"`)
			z.group[0].SetTXT("_validation-persist.b.proof.test", ours)
			proofFor := func(name string, qtype uint16) (denialProof, *dns.Msg) {
				t.Helper()
				q := newQuery(name, qtype, askAuthoritative)
				msg, err := exchange(context.Background(), q, z.group[0].Addr, DefaultQueryTimeout)
				if err != nil {
					t.Fatal(err)
				}
				var p denialProof
				for _, rr := range msg.Ns {
					switch rr := rr.(type) {
					case *dns.NSEC:
						p.nsec = append(p.nsec, rr)
					case *dns.NSEC3:
						p.nsec3 = append(p.nsec3, rr)
					}
				}
				return p, msg
			}

			nodata, _ := proofFor("caa.proof.test.", dns.TypeTXT)
			if !nodata.proves("caa.proof.test.", dns.TypeTXT, false) {
				t.Error("the NODATA proof for TXT at caa.proof.test does not prove it")
			}
			if nodata.proves("caa.proof.test.", dns.TypeCAA, false) {
				t.Error("the NODATA proof for TXT proves that there is no CAA record, which there is")
			}
			nxdomain, msg := proofFor("_validation-persist.a.proof.test.", dns.TypeTXT)
			if msg.Rcode != dns.RcodeNameError || !nxdomain.proves("_validation-persist.a.proof.test.", dns.TypeTXT, true) {
				t.Errorf("the NXDOMAIN proof (rcode %s) does not prove it", dns.RcodeToString[msg.Rcode])
			}
			if nxdomain.proves("_validation-persist.b.proof.test.", dns.TypeTXT, true) {
				t.Error("the NXDOMAIN proof for a proves that b, which exists, does not")
			}
			// an NSEC3 proof of NXDOMAIN may hold, as the record covering
			// a's hash, the one whose owner is caa's hash; its type bitmap
			// then really proves caa has no TXT. Otherwise nothing in it
			// speaks of caa.
			matchesCAA := slices.ContainsFunc(nxdomain.nsec3, func(r *dns.NSEC3) bool { return r.Match("caa.proof.test.") })
			if got := nxdomain.proves("caa.proof.test.", dns.TypeTXT, false); got != matchesCAA {
				t.Errorf("an NXDOMAIN proof for another name proves NODATA at caa: %v, want %v (whether it holds an NSEC3 record of caa's hash)", got, matchesCAA)
			}
			if (denialProof{}).proves("_validation-persist.a.proof.test.", dns.TypeTXT, true) {
				t.Error("no records prove NXDOMAIN")
			}
		})
	}
}

func TestDNSSECCNAMEIntoASignedZone(t *testing.T) {
	t.Parallel()
	recursive := fakedns.StartForTest(t)
	group := fakedns.StartGroupForTest(t, 3)
	zoneOnGroup(recursive, group, "customer.test", 0)
	zoneOnGroup(recursive, group, "provider.test", 1, 2)
	fakedns.SignedZone(t, recursive, "provider.test", group[1:], func(i int, sg *fakedns.Signing) {
		if i == 1 {
			sg.Inception, sg.Expiration = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
		}
	})
	name := "_validation-persist.customer.test"
	group[0].SetCNAME(name, "customer.provider.test")
	for _, s := range group[1:] {
		s.SetTXT("customer.provider.test", ours)
	}

	ans, err := groupResolver(t, recursive, group, Options{}).LookupTXT(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if len(ans.Views) != 2 {
		t.Fatalf("views = %+v, want the provider's two servers apart", ans.Views)
	}
	for i, v := range ans.Views {
		if !slices.Equal(v.CNAMEs, []string{"customer.provider.test"}) || !slices.Equal(v.Values, []string{ours}) || !strings.HasPrefix(v.Servers[0], fmt.Sprintf("ns%d.provider.test ", i+1)) {
			t.Errorf("view %d = %+v", i, v)
		}
	}
	if ans.Views[0].DNSSEC != nil {
		t.Errorf("ns1.provider.test: %v", ans.Views[0].DNSSEC)
	}
	if e := ans.Views[1].DNSSEC; e == nil || e.Zone != "provider.test" || !strings.Contains(e.Detail, "customer.provider.test TXT expired") {
		t.Errorf("ns2.provider.test: %+v, want its expired RRSIG over the target", e)
	}
}

func TestDNSSECCNAMEWithinASignedZone(t *testing.T) {
	t.Parallel()
	z := newSignedZone(t, "alias.test", 1, nil)
	name := "_validation-persist.alias.test"
	z.group[0].SetCNAME(name, "records.alias.test")
	z.group[0].SetTXT("records.alias.test", ours)

	v := onlyView(t, z.lookup(t, name))
	if v.DNSSEC != nil || !slices.Equal(v.CNAMEs, []string{"records.alias.test"}) {
		t.Fatalf("view = %+v (%v)", v, v.DNSSEC)
	}
	// a CNAME served without its signature fails even though the record
	// it leads to verifies
	z.group[0].SetFault(name, fakedns.Unsigned)
	v = onlyView(t, z.lookup(t, name))
	if v.DNSSEC == nil || !strings.HasPrefix(v.DNSSEC.Detail, "there is no RRSIG over "+name+" CNAME") {
		t.Errorf("view = %+v (%v), want the CNAME's missing RRSIG", v, v.DNSSEC)
	}
}

func TestDNSSECUnsignedZoneCostsOneDSQuery(t *testing.T) {
	t.Parallel()
	recursive := fakedns.StartForTest(t)
	group := fakedns.StartGroupForTest(t, 2)
	zoneOnGroup(recursive, group, "plain.test", 0, 1)
	name := "_validation-persist.plain.test"
	for _, s := range group {
		s.SetTXT(name, ours)
	}
	r := groupResolver(t, recursive, group, Options{})
	for range 3 {
		if _, err := r.LookupTXT(context.Background(), name); err != nil {
			t.Fatal(err)
		}
	}
	if n := recursive.QueriesFor("plain.test", dns.TypeDS); n != 1 {
		t.Errorf("three checks asked for the DS records %d times, want once", n)
	}
	for i, s := range group {
		if n := s.QueriesFor("plain.test", dns.TypeDNSKEY); n != 0 {
			t.Errorf("ns%d was asked for DNSKEY records of an unsigned zone %d times", i+1, n)
		}
	}
}

func TestDNSSECKeysAreFetchedAgainAfterARollover(t *testing.T) {
	t.Parallel()
	z := newSignedZone(t, "roll.test", 1, nil)
	name := "_validation-persist.roll.test"
	z.setTXT(name, ours)
	if v := onlyView(t, z.lookup(t, name)); v.DNSSEC != nil {
		t.Fatal(v.DNSSEC)
	}
	// a new zone signing key, published and signing at once: the kept
	// DNSKEY RRset lacks it
	next := fakedns.NewZoneKey(t, "roll.test", false)
	z.group[0].SignZone("roll.test", fakedns.Signing{KSK: z.ksk, ZSK: next})
	if v := onlyView(t, z.lookup(t, name)); v.DNSSEC != nil {
		t.Errorf("after the rollover: %v", v.DNSSEC)
	}
	if n := z.group[0].QueriesFor("roll.test", dns.TypeDNSKEY); n != 2 {
		t.Errorf("DNSKEY queries = %d, want 2: once cold, once when the kept keys failed", n)
	}
}

// TestDNSSECKeysValidatedOnceAreJudgedAgainWhenTheDSChanges: a DNSKEY
// RRset is verified once and reused, but only under the DS records it
// was verified against: a parent that now names another key breaks the
// chain at once, and one naming the key again mends it.
func TestDNSSECKeysValidatedOnceAreJudgedAgainWhenTheDSChanges(t *testing.T) {
	t.Parallel()
	z := newSignedZone(t, "memo.test", 1, nil)
	name := "_validation-persist.memo.test"
	z.setTXT(name, ours)
	if v := onlyView(t, z.lookup(t, name)); v.DNSSEC != nil {
		t.Fatal(v.DNSSEC)
	}
	now := time.Now()
	stranger := fakedns.NewZoneKey(t, "memo.test.", true)
	z.r.trust.Put("memo.test.", zoneTrust{ds: []*dns.DS{stranger.DS()}}, now, now.Add(time.Hour))
	if v := onlyView(t, z.lookup(t, name)); v.DNSSEC == nil || v.DNSSEC.Link != linkDS {
		t.Errorf("with a DS naming another key: %v, want the ds link broken", v.DNSSEC)
	}
	z.r.trust.Put("memo.test.", zoneTrust{ds: []*dns.DS{z.ksk.DS()}}, now, now.Add(time.Hour))
	if v := onlyView(t, z.lookup(t, name)); v.DNSSEC != nil {
		t.Errorf("with the DS naming the key again: %v", v.DNSSEC)
	}
}

// Signatures are judged at the resolver's clock, not the machine's: a
// check that runs past a signature's end fails as the CA's would then.
func TestDNSSECValidityIsJudgedAtTheResolversClock(t *testing.T) {
	t.Parallel()
	z := newSignedZone(t, "clock.test", 1, nil)
	name := "_validation-persist.clock.test"
	z.setTXT(name, ours)
	later := time.Now().Add(31 * 24 * time.Hour)
	z.r = groupResolver(t, z.recursive, z.group, Options{Now: func() time.Time { return later }})
	// fakedns signs for 30 days
	if v := onlyView(t, z.lookup(t, name)); v.DNSSEC == nil || v.DNSSEC.Link != linkDNSKEY || !strings.Contains(v.DNSSEC.Detail, "expired at") {
		t.Errorf("31 days on: %+v (%v), want the DNSKEY RRset's signature expired", v, v.DNSSEC)
	}
}

func TestDNSSECUnsupportedAlgorithmIsInsecure(t *testing.T) {
	t.Parallel()
	past := time.Now().Add(-time.Hour)
	z := newSignedZone(t, "ed448.test", 1, func(_ int, sg *fakedns.Signing) {
		sg.Inception, sg.Expiration = past.Add(-time.Hour), past
	})
	name := "_validation-persist.ed448.test"
	z.setTXT(name, ours)
	ds := z.ksk.DS()
	ds.Algorithm = dns.ED448
	z.recursive.SetDS("ed448.test", ds)
	// validators treat a zone they cannot verify as unsigned
	if v := onlyView(t, z.lookup(t, name)); v.DNSSEC != nil {
		t.Errorf("a DS record of an algorithm miekg/dns cannot verify failed the check: %v", v.DNSSEC)
	}
}

func TestDNSSECCAAInTheZone(t *testing.T) {
	t.Parallel()
	z := newSignedZone(t, "caasigned.test", 2, func(i int, sg *fakedns.Signing) {
		if i == 1 {
			sg.SignAnswersWith = fakedns.NewZoneKey(t, "caasigned.test", false)
		}
	})
	for _, s := range z.group {
		s.SetCAA(t, "caasigned.test", `0 issue "ca.example"`)
	}
	ans, err := z.r.LookupCAA(context.Background(), "www.caasigned.test")
	if err != nil {
		t.Fatal(err)
	}
	// www does not exist: ns2's proof fails, which ends its climb there;
	// ns1 proves it, and the climb goes on to the apex, where ns2 is
	// asked again, as a CA's resolver may ask either
	want := []struct {
		name, server, link string
	}{
		{"www.caasigned.test", "ns2.", linkDenial},
		{"caasigned.test", "ns1.", ""},
		{"caasigned.test", "ns2.", linkRRSIG},
	}
	if len(ans.Sets) != len(want) {
		t.Fatalf("sets = %+v", ans.Sets)
	}
	for i, w := range want {
		set := ans.Sets[i]
		link := ""
		if set.DNSSEC != nil {
			link = set.DNSSEC.Link
		}
		if set.Name != w.name || !strings.HasPrefix(set.Servers[0], w.server) || link != w.link {
			t.Errorf("set %d = %+v (%v), want %s from %s, DNSSEC link %q", i, set, set.DNSSEC, w.name, w.server, w.link)
		}
	}
}

func TestDNSSECThroughAConfiguredResolver(t *testing.T) {
	t.Parallel()
	srv := fakedns.StartForTest(t)
	srv.AddZone("viaresolver.test")
	ksk := fakedns.NewZoneKey(t, "viaresolver.test", true)
	past := time.Now().Add(-time.Hour)
	srv.SignZone("viaresolver.test", fakedns.Signing{KSK: ksk, ZSK: ksk, Inception: past.Add(-time.Hour), Expiration: past})
	srv.SetDS("viaresolver.test", ksk.DS())
	name := "_validation-persist.viaresolver.test"
	srv.SetTXT(name, ours)

	r := New(Options{Resolvers: []string{srv.Addr}})
	ans, err := r.LookupTXT(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if v := onlyView(t, ans); v.DNSSEC == nil || v.DNSSEC.Link != linkRRSIG {
		t.Errorf("a resolver that hands over expired signatures: %+v, want the RRSIG failing", v)
	}
	srv.SignZone("viaresolver.test", fakedns.Signing{KSK: ksk, ZSK: ksk})
	if ans, err = r.LookupTXT(context.Background(), name); err != nil || onlyView(t, ans).DNSSEC != nil {
		t.Errorf("re-signed: %+v, %v", ans, err)
	}
}

// A wildcard answer (its RRSIG counts fewer labels than its owner has)
// verifies only with a proof that the name itself does not exist. The
// message is built and signed here, the zone's DS and keys put where the
// resolver keeps them.
func TestDNSSECWildcardAnswerNeedsAProof(t *testing.T) {
	t.Parallel()
	const zone, qname = "wild.test.", "_validation-persist.wild.test."
	key := &dns.DNSKEY{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600}, Flags: dns.ZONE | dns.SEP, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	priv, err := key.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sign := func(rrs ...dns.RR) *dns.RRSIG {
		sig := &dns.RRSIG{Algorithm: key.Algorithm, KeyTag: key.KeyTag(), SignerName: zone, Inception: uint32(now.Add(-time.Hour).Unix()), Expiration: uint32(now.Add(time.Hour).Unix())}
		if err := sig.Sign(priv.(crypto.Signer), rrs); err != nil {
			t.Fatal(err)
		}
		return sig
	}
	r := New(Options{Resolvers: []string{"127.0.0.1:1"}, Now: func() time.Time { return now }})
	srv := server{addr: "127.0.0.1:1", label: "ns1.wild.test"}
	r.trust.Put(zone, zoneTrust{ds: []*dns.DS{key.ToDS(dns.SHA256)}}, now, now.Add(time.Hour))
	r.dnskeys.Put(srv.addr+"|"+zone, &keyRRset{rrset: []dns.RR{key}, sigs: []*dns.RRSIG{sign(key)}}, now, now.Add(time.Hour))

	wild := &dns.TXT{Hdr: dns.RR_Header{Name: "*." + zone, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{ours}}
	sig := sign(wild)
	expanded := dns.Copy(wild)
	expanded.Header().Name = qname
	sig.Hdr.Name = qname
	nsec := &dns.NSEC{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: 60}, NextDomain: "*." + zone, TypeBitMap: []uint16{dns.TypeSOA, dns.TypeNS, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeDNSKEY}}
	// "*" sorts before "_": the NSEC after the wildcard covers the name
	after := &dns.NSEC{Hdr: dns.RR_Header{Name: "*." + zone, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: 60}, NextDomain: zone, TypeBitMap: []uint16{dns.TypeTXT, dns.TypeRRSIG, dns.TypeNSEC}}

	l := &lookup{r: r, qtype: dns.TypeTXT}
	for _, c := range []struct {
		name  string
		proof []dns.RR
		fails bool
	}{
		{"no proof", nil, true},
		{"a proof of another interval", []dns.RR{nsec, sign(nsec)}, true},
		{"the covering NSEC", []dns.RR{after, sign(after)}, false},
	} {
		msg := &dns.Msg{Answer: []dns.RR{expanded, sig}, Ns: c.proof}
		e, err := l.judgeDNSSEC(context.Background(), srv, zone, msg, qname, qname, nil, []dns.RR{expanded})
		if err != nil {
			t.Fatal(err)
		}
		if (e != nil) != c.fails || e != nil && (e.Link != linkDenial || !strings.Contains(e.Detail, "comes from the wildcard *.wild.test")) {
			t.Errorf("%s: %v, want a failure: %v", c.name, e, c.fails)
		}
	}
}

// An unsigned zone below a signed one, served by the same servers: a
// CNAME into it is followed within one answer, and the target's missing
// signature is no fault, since the child has no DS records.
func TestDNSSECUnsignedChildZoneServedAlongside(t *testing.T) {
	t.Parallel()
	z := newSignedZone(t, "parent.test", 1, nil)
	fakedns.ServeZone(z.recursive, "child.parent.test", z.group[0])
	name := "_validation-persist.parent.test"
	z.group[0].SetCNAME(name, "records.child.parent.test")
	z.group[0].SetTXT("records.child.parent.test", ours)

	v := onlyView(t, z.lookup(t, name))
	if v.DNSSEC != nil || !slices.Equal(v.Values, []string{ours}) {
		t.Errorf("view = %+v (%v), want the record, its unsigned zone not held against it", v, v.DNSSEC)
	}
	// once the child has DS records, its own signatures are missing
	other := newSignedZone(t, "child.parent.test", 1, nil)
	z.recursive.SetDS("child.parent.test", other.ksk.DS())
	z.r = groupResolver(t, z.recursive, z.group, Options{})
	if v := onlyView(t, z.lookup(t, name)); v.DNSSEC == nil || v.DNSSEC.Zone != "child.parent.test" {
		t.Errorf("view = %+v (%v), want the signed child's missing keys", v, v.DNSSEC)
	}
}
