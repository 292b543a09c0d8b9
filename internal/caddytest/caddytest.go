// Package caddytest runs programs for the end-to-end tests: it builds the
// Caddy binary of this module once, runs its commands to completion, and
// runs long-lived processes (`caddy run`, DNS daemons) whose output a test
// reads while they run and sees when it fails.
package caddytest

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dnspersist/caddy-persist/internal/acmetest"
)

// RunWithCaddy is a TestMain body for tests of a Caddy binary: unless
// -short, it builds pkg of the module rooted at root and starts the test
// DNS server, gives ready the binary and the DNS address, and runs m with
// four parallel tests at a time (WaitingTestsParallel).
func RunWithCaddy(m *testing.M, root, pkg string, ready func(bin, dnsAddr string)) int {
	if !ShortMode() {
		bin, err := BuildPackage(root, pkg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		_, addr, err := acmetest.DNS()
		if err != nil {
			fmt.Fprintln(os.Stderr, "starting the test DNS server:", err)
			return 1
		}
		ready(bin, addr)
	}
	WaitingTestsParallel(4)
	return m.Run()
}

// ShortMode reports -short before flag parsing has happened, as in
// TestMain, where a test binary decides whether to build Caddy.
func ShortMode() bool {
	for _, arg := range os.Args[1:] {
		if arg == "-test.short" || arg == "-test.short=true" {
			return true
		}
	}
	return false
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// Run runs cmd to completion, within two minutes, and fails the test only
// if it cannot be run: a non-zero exit is the result's Code.
func Run(t testing.TB, cmd *exec.Cmd) Result {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatalf("running %v: %v", cmd.Args, err)
	}
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("running %v: %v", cmd.Args, err)
	}
	return Result{Stdout: out.String(), Stderr: errOut.String(), Code: code}
}

// Process is a long-lived child of the test.
type Process struct {
	name string
	cmd  *exec.Cmd
	// Logs is what the process wrote to stdout and stderr.
	Logs *Buffer
	done chan struct{}
}

// Start starts cmd and stops it when the test ends, logging its output
// under name if the test failed.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{name: name, cmd: cmd, Logs: &Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Logs, p.Logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, p.Logs.String())
		}
	})
	return p
}

// StartCaddy runs `caddy run` as cmd and waits until its admin endpoint
// at admin answers.
func StartCaddy(t testing.TB, cmd *exec.Cmd, admin string) *Process {
	t.Helper()
	p := Start(t, "caddy", cmd)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + admin + "/config/")
		if err == nil {
			resp.Body.Close()
			return p
		}
		if why := p.Exited(); why != "" {
			t.Fatal(why)
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy's admin endpoint did not come up:\n%s", p.Logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Exited says why the process is no longer running, or "" if it is.
func (p *Process) Exited() string {
	select {
	case <-p.done:
		return fmt.Sprintf("%s exited early (%v):\n%s", p.name, p.cmd.ProcessState, p.Logs.String())
	default:
		return ""
	}
}

// Kill ends the process at once, as a crash or an OOM kill would.
func (p *Process) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop asks the process to end, and kills it if it has not within ten
// seconds.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// WaitLog waits until a line of the log past offset holds every one of
// substrs, and returns that line. It fails the test at timeout, or as
// soon as the process exits without that line.
func (p *Process) WaitLog(t testing.TB, offset int, timeout time.Duration, substrs ...string) string {
	t.Helper()
	_, line := WaitAnyLog(t, []*Process{p}, []int{offset}, timeout, substrs...)
	return line
}

// WaitAnyLog is WaitLog for whichever of procs logs the line first, each
// past its own offset: it returns that process's index and the line, and
// fails the test at timeout or as soon as one of procs exits without the
// line. It wakes at each write to a log, not on a clock.
func WaitAnyLog(t testing.TB, procs []*Process, offsets []int, timeout time.Duration, substrs ...string) (int, string) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)}}
	for _, p := range procs {
		cases = append(cases,
			reflect.SelectCase{Dir: reflect.SelectRecv},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(p.done)})
	}
	for {
		// take each log's next-write signal before reading it, so that
		// a write after the reading wakes the wait
		for i, p := range procs {
			cases[1+2*i].Chan = reflect.ValueOf(p.Logs.Grew())
		}
		for i, p := range procs {
			if line := FindLine(p.Logs.String()[offsets[i]:], substrs...); line != "" {
				return i, line
			}
		}
		chosen, _, _ := reflect.Select(cases)
		switch {
		case chosen == 0:
			t.Fatalf("%s did not log a line with %q within %s", names(procs), substrs, timeout)
		case chosen%2 == 0:
			// exited: its output is complete; one last look
			p := procs[(chosen-1)/2]
			if line := FindLine(p.Logs.String()[offsets[(chosen-1)/2]:], substrs...); line != "" {
				return (chosen - 1) / 2, line
			}
			t.Fatalf("waiting for a line with %q: %s", substrs, p.Exited())
		}
	}
}

// names names procs in messages.
func names(procs []*Process) string {
	var out []string
	for _, p := range procs {
		out = append(out, p.name)
	}
	return strings.Join(out, " or ")
}

// FindLine returns the first line of text holding every one of substrs,
// or "".
func FindLine(text string, substrs ...string) string {
	for _, line := range strings.Split(text, "\n") {
		if containsAll(line, substrs) {
			return line
		}
	}
	return ""
}

func containsAll(s string, substrs []string) bool {
	for _, sub := range substrs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// Buffer is a bytes.Buffer safe for a writer and readers, which readers
// can wait on.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// grew is closed by the next write, for readers waiting for it
	grew chan struct{}
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.grew != nil {
		close(b.grew)
		b.grew = nil
	}
	return b.buf.Write(p)
}

// Grew returns a channel that the next write closes. Taken before a
// reading, it wakes whoever waits for what the reading did not hold.
func (b *Buffer) Grew() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.grew == nil {
		b.grew = make(chan struct{})
	}
	return b.grew
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Len is how much has been written so far: an offset for WaitLog.
func (b *Buffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}
