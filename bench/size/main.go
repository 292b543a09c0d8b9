// Command size builds Caddy with its standard modules, with and without
// this plugin, as xcaddy builds it (-trimpath, -ldflags "-w -s"), and
// prints what the plugin adds to the binary. Run it from the module root:
//
//	go run ./bench/size -csv bench/results/size.csv
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// builds are the two binaries compared: Caddy's own main package, and
// cmd/caddy, the same with this plugin.
var builds = []struct{ name, pkg string }{
	{"caddy", "github.com/caddyserver/caddy/v2/cmd/caddy"},
	{"caddy with caddy-persist", "./cmd/caddy"},
}

func main() {
	csvPath := flag.String("csv", "", "also write the sizes to this CSV file (bench/charts reads it)")
	flag.Parse()
	tmp, err := os.MkdirTemp("", "persist-size-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(tmp)
	sizes := make([]int64, len(builds))
	for i, b := range builds {
		out := filepath.Join(tmp, strconv.Itoa(i))
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-w -s", "-o", out, b.pkg)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fail(fmt.Errorf("building %s: %v", b.pkg, err))
		}
		info, err := os.Stat(out)
		if err != nil {
			fail(err)
		}
		sizes[i] = info.Size()
		fmt.Printf("%-26s %6.1f MiB\n", b.name, float64(sizes[i])/(1<<20))
	}
	added := sizes[1] - sizes[0]
	fmt.Printf("the plugin adds %.1f MiB (%.1f%%)\n", float64(added)/(1<<20), 100*float64(added)/float64(sizes[0]))
	if *csvPath == "" {
		return
	}
	f, err := os.Create(*csvPath)
	if err != nil {
		fail(err)
	}
	w := csv.NewWriter(f)
	w.Write([]string{"binary", "bytes"})
	for i, b := range builds {
		w.Write([]string{b.name, strconv.FormatInt(sizes[i], 10)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "size:", err)
	os.Exit(1)
}
