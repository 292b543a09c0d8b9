// Command caddy is Caddy with its standard modules plus the persist issuer,
// for local builds and for the end-to-end tests.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/dnspersist/caddy-persist"
)

func main() {
	caddycmd.Main()
}
