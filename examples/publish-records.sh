#!/bin/sh
# Publishing the record, as a script: print what to publish, publish it with
# your DNS tooling, then gate the deploy on the check.
set -eu
config=${1:-wildcard.Caddyfile}

# 1. The records, as zone file lines (registers the ACME account if needed,
#    and says so on stderr; never places an order).
caddy persist records --config "$config"

# The same as JSON, e.g. for DNS automation:
caddy persist records --config "$config" --format json

# A name that is not in the config yet:
caddy persist records --config "$config" --domain shop.example.com

# 2. Publish them (by hand, or e.g. with your DNS provider's CLI).

# 3. Gate the deploy: exits 0 only when every record is ok.
caddy persist check --config "$config" && caddy run --config "$config"
