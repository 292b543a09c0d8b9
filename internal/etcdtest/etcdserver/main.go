// Command etcdserver is etcd's server, built from its Go module for the
// tests that run etcd members (internal/etcdtest). It is a module of its
// own so that etcd's server and its dependencies stay out of the plugin's
// go.mod, and so out of every Caddy built with the plugin.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
