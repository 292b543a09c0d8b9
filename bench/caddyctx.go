package main

import (
	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// quietCaddyConfig is an empty Caddy config whose default log keeps
// Caddy's default level, INFO, but writes nowhere: log lines are still
// built, as in a real Caddy, without flooding the benchmark's output. The
// admin endpoint is off so the benchmark never touches port 2019.
const quietCaddyConfig = `{
	"admin": {"disabled": true, "config": {"persist": false}},
	"logging": {"logs": {"default": {"level": "INFO", "writer": {"output": "discard"}}}}
}`

// startQuietCaddy loads quietCaddyConfig. Without a loaded config a
// module's logger is a development logger at DEBUG level on stderr, which
// no Caddy user runs with.
func startQuietCaddy() error {
	return caddy.Load([]byte(quietCaddyConfig), true)
}

// caddyContext returns a context to provision a module in, with the
// running config's logging, as Caddy gives its modules.
func caddyContext() (caddy.Context, func()) {
	ctx, cancel := caddy.NewContext(caddy.ActiveContext())
	return ctx, func() { cancel() }
}

// caddyLogger is Caddy's default logger, given to certmagic as Caddy does.
func caddyLogger() *zap.Logger {
	return caddy.Log()
}
