package acmetest

import (
	"fmt"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// waitForDNS returns once the server at addr answers over UDP and TCP.
func waitForDNS(addr string) error {
	q := new(dns.Msg)
	q.SetQuestion("ready.test.", dns.TypeA)
	deadline := time.Now().Add(10 * time.Second)
	for _, network := range []string{"udp", "tcp"} {
		client := &dns.Client{Net: network, Timeout: 200 * time.Millisecond}
		for {
			if _, _, err := client.Exchange(q, addr); err == nil {
				break
			} else if time.Now().After(deadline) {
				return fmt.Errorf("test DNS server at %s does not answer over %s: %v", addr, network, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// txtWrites counts SetTXT calls per name, for tests that assert nobody
// touched DNS. It is process-wide, as the one DNS server is.
var txtWrites = struct {
	sync.Mutex
	n map[string]int
}{n: make(map[string]int)}

// SetTXT replaces the TXT records at name (no trailing dot needed) with one
// record per value.
func SetTXT(name string, values ...string) error {
	srv, _, err := DNS()
	if err != nil {
		return err
	}
	txtWrites.Lock()
	txtWrites.n[name]++
	txtWrites.Unlock()
	srv.DeleteDNSTXTRecord(name)
	for _, v := range values {
		srv.AddDNSTXTRecord(name, v)
	}
	return nil
}

// TXTWrites returns how many times SetTXT has written name's TXT records.
func TXTWrites(name string) int {
	txtWrites.Lock()
	defer txtWrites.Unlock()
	return txtWrites.n[name]
}
