package dnspublish

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/libdns/libdns"
)

// zoneRecorder is a DNS host's API as libdns sees it: it keeps the TXT
// values of each zone and refuses the values it is told to.
type zoneRecorder struct {
	calls  []string
	refuse string
}

func (z *zoneRecorder) call(verb, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	for _, r := range recs {
		rr := r.RR()
		if rr.Data == z.refuse {
			return nil, errors.New("refused by the host")
		}
		z.calls = append(z.calls, fmt.Sprintf("%s %s %s %s %s ttl=%s", verb, zone, rr.Name, rr.Type, rr.Data, rr.TTL))
	}
	return recs, nil
}

func (z *zoneRecorder) AppendRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return z.call("append", zone, recs)
}

func (z *zoneRecorder) DeleteRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return z.call("delete", zone, recs)
}

func zoneOfTest(_ context.Context, name string) (string, error) {
	if strings.HasSuffix(name, "nozone.test.") {
		return "", errors.New("no SOA record at or above " + name)
	}
	return "example.test.", nil
}

// Additions come before removals whatever the order given, each in the
// zone of its name by its name relative to the zone; a refused change
// stops the rest and names itself and its zone.
func TestApplyAddsBeforeItRemovesAndStopsAtARefusal(t *testing.T) {
	t.Parallel()
	changes := []Change{
		{Name: "_validation-persist.a.example.test", Value: "old", Remove: true},
		{Name: "_validation-persist.a.example.test", Value: "new"},
		{Name: "_validation-persist.b.example.test.", Value: "other"},
	}
	host := new(zoneRecorder)
	done, err := Apply(context.Background(), host, zoneOfTest, changes)
	if err != nil || len(done) != 3 {
		t.Fatalf("done %v, %v", done, err)
	}
	// a removal matches the value whatever TTL it was published with
	want := []string{
		"append example.test. _validation-persist.a TXT new ttl=1h0m0s",
		"append example.test. _validation-persist.b TXT other ttl=1h0m0s",
		"delete example.test. _validation-persist.a TXT old ttl=0s",
	}
	if strings.Join(host.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(host.calls, "\n"), strings.Join(want, "\n"))
	}

	host = &zoneRecorder{refuse: "other"}
	done, err = Apply(context.Background(), host, zoneOfTest, changes)
	var refused *Error
	if !errors.As(err, &refused) || refused.Change != changes[2] || refused.Zone != "example.test." || len(done) != 1 || len(host.calls) != 1 {
		t.Fatalf("a refused change: done %v, calls %v, %v", done, host.calls, err)
	}
	if msg := err.Error(); !strings.Contains(msg, `adding "other" at _validation-persist.b.example.test. in the zone example.test.: refused by the host`) {
		t.Errorf("error %q", msg)
	}

	_, err = Apply(context.Background(), new(zoneRecorder), zoneOfTest, []Change{{Name: "x.nozone.test", Value: "v"}})
	if !errors.As(err, &refused) || refused.Zone != "" || !strings.Contains(err.Error(), "finding its zone: no SOA record") {
		t.Errorf("no zone: %v", err)
	}
}

func TestChangeLineIsAZoneFileLine(t *testing.T) {
	t.Parallel()
	add := Change{Name: "_validation-persist.example.test", Value: `ca.example; accounturi=https://ca.example/acct/1`}
	if got := add.String(); got != `+ _validation-persist.example.test. 3600 IN TXT "ca.example; accounturi=https://ca.example/acct/1"` {
		t.Errorf("addition %q", got)
	}
	add.Remove = true
	if got := add.String(); !strings.HasPrefix(got, "- _validation-persist.example.test. 3600 IN TXT ") {
		t.Errorf("removal %q", got)
	}
}

// listingRecorder is a host whose API also lists the zone's records.
type listingRecorder struct {
	zoneRecorder
	held []libdns.Record
}

func (l *listingRecorder) GetRecords(context.Context, string) ([]libdns.Record, error) {
	return l.held, nil
}

// A value the host holds already (a run before added it, and no server
// served it yet) is not added twice; the zone is listed once.
func TestApplyAddsNoValueTheHostHolds(t *testing.T) {
	t.Parallel()
	host := &listingRecorder{held: []libdns.Record{
		libdns.TXT{Name: "_validation-persist.a", Text: "new"},
		libdns.TXT{Name: "_validation-persist.b", Text: "someone else's"},
	}}
	changes := []Change{
		{Name: "_validation-persist.a.example.test", Value: "new"},
		{Name: "_validation-persist.b.example.test", Value: "ours"},
	}
	done, err := Apply(context.Background(), host, zoneOfTest, changes)
	if err != nil || len(done) != 2 {
		t.Fatalf("done %v, %v", done, err)
	}
	if want := "append example.test. _validation-persist.b TXT ours ttl=1h0m0s"; len(host.calls) != 1 || host.calls[0] != want {
		t.Errorf("calls %q, want only %q", host.calls, want)
	}
}
