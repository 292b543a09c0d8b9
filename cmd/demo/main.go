// Command demo shows the persist issuer's whole job on one machine, with no
// internet and no configuration: it starts a test CA (Pebble) and a test
// DNS server, runs Caddy with the persist issuer for *.demo.test and
// demo.test, shows the record Caddy asks for, publishes it the way an
// operator would, and fetches https://hello.demo.test through Caddy.
//
//	go run ./cmd/demo          # run the demo and exit
//	go run ./cmd/demo --keep   # leave the server running until Ctrl-C
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	keep := flag.Bool("keep", false, "leave the server running until Ctrl-C, and print how to reach it")
	flag.Parse()
	if err := run(*keep); err != nil {
		fmt.Fprintln(os.Stderr, "\ndemo failed:", err)
		os.Exit(1)
	}
}

func run(keep bool) error {
	d, err := newDemo()
	if err != nil {
		return err
	}
	defer d.close()

	say("caddy-persist demo: a wildcard certificate with no DNS credentials.")
	say("Everything runs on this machine: a test CA, a test DNS server and Caddy.")

	if err := d.step("Start a local ACME CA (Pebble) and a DNS server for *.demo.test", d.startInfrastructure); err != nil {
		return err
	}
	if err := d.step("Start Caddy with `issuer persist` for *.demo.test and demo.test", d.startCaddy); err != nil {
		return err
	}
	if err := d.step("Create the account, ask which record to publish (GET /persist/records)", d.showRecords); err != nil {
		return err
	}
	if err := d.step("Publish the record in DNS, as the domain's operator would, once", d.publish); err != nil {
		return err
	}
	if err := d.step("Wait for Caddy to obtain the wildcard certificate", d.awaitCertificate); err != nil {
		return err
	}
	if err := d.step("Fetch https://hello.demo.test through Caddy", d.fetch); err != nil {
		return err
	}
	d.summary()

	if keep {
		d.printHowToReach()
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
		<-stop
		say("\nStopping.")
	}
	return nil
}

// step runs one numbered step and remembers how long it took.
func (d *demo) step(title string, f func() error) error {
	d.stepNo++
	fmt.Printf("\n%d. %s\n", d.stepNo, title)
	start := time.Now()
	err := f()
	took := time.Since(start)
	d.timings = append(d.timings, timing{title: title, took: took})
	if err != nil {
		return fmt.Errorf("step %d (%s): %w", d.stepNo, title, err)
	}
	fmt.Printf("   done in %s\n", took.Round(time.Millisecond))
	return nil
}

func say(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
}
