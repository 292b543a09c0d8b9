#!/bin/sh
# Tenant onboarding for the platform in on-demand-platform.Caddyfile, from a
# control panel's point of view, with curl against Caddy's admin API.
set -eu
admin=${ADMIN:-http://localhost:2019}
domain=${1:?usage: onboarding.sh customer.example}

# 0. Once, at setup: the ACME account exists (`caddy persist account
#    register`, or POST /persist/account/register from the Caddy host);
#    reading the records never creates it.

# 1. What must the customer publish? One record covers the domain and its
#    wildcard; ask for both names so it carries policy=wildcard.
curl -fsS "$admin/persist/records?domain=$domain&domain=*.$domain"
# => [{"domain":"customer.example","record_name":"_validation-persist.customer.example",
#      "value":"letsencrypt.org; accounturi=https://...; policy=wildcard",
#      "zone_line":"_validation-persist.customer.example. IN TXT \"...\"", ...}]
#    Show record_name and value to the customer.

# 2. Pending or active? Poll until the record is published.
status=$(curl -fsS "$admin/persist/check?domain=$domain&domain=*.$domain" |
	sed -n 's/.*"status":"\([a-z-]*\)".*/\1/p')
case "$status" in
ok) echo "$domain: active: certificates are issued at the first handshake" ;;
missing) echo "$domain: pending: the record is not published yet" ;;
*) echo "$domain: $status: see the reason in /persist/check" ;;
esac

# 3. Nothing else: the first visit to https://$domain (or any subdomain) gets
#    a certificate. Caddy's permission module honours a new record within
#    negative_ttl (30s), and stops issuing within cache_ttl (5m) of its removal.
