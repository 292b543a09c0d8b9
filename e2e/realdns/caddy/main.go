// Command caddy is Caddy with its standard modules, the persist issuer
// and an RFC 2136 DNS provider (dns.providers.rfc2136, from caddy-dns, as
// a user would build it in with xcaddy), for the real-DNS tier: `caddy
// persist publish` writes records through it to BIND. It is a module of
// its own, so the provider stays out of the plugin's go.mod.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddy-dns/rfc2136"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/dnspersist/caddy-persist"
)

func main() {
	caddycmd.Main()
}
