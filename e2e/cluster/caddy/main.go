// Command caddy is Caddy with its standard modules, the persist issuer
// and the test-only etcd storage (caddy.storage.etcd_test), for the
// cluster tier.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/dnspersist/caddy-persist"
	_ "github.com/dnspersist/caddy-persist/internal/etcdstorage"
)

func main() {
	caddycmd.Main()
}
