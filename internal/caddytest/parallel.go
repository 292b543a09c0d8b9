package caddytest

import (
	"flag"
	"strconv"
)

// WaitingTestsParallel lets n parallel tests run at once, in place of
// -parallel's default of GOMAXPROCS, unless the command line sets
// -test.parallel. Call it from TestMain, before m.Run. It suits packages
// whose tests mostly wait on a CA, DNS or a child process: two at a time
// on a two-core machine would leave the CPU idle while one waits out a
// minute.
func WaitingTestsParallel(n int) {
	if !flag.Parsed() {
		flag.Parse()
	}
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", strconv.Itoa(n))
	}
}
