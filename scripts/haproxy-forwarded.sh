#!/usr/bin/env bash
# Prints the HAProxy rules, for a frontend of a proxy at the edge, that
# remove what a client says of the host and scheme it reached (Forwarded,
# X-Forwarded-Host, X-Forwarded-Proto): the gateway trusts this proxy, so
# it would believe them (docs/security.md, "The proxy in front").
#
#   scripts/haproxy-forwarded.sh [TRUSTED]
#
# TRUSTED: comma-separated addresses or CIDRs of proxies in front of this
# one (a TLS terminator), whose headers are passed on.
set -euo pipefail
trusted=${1:-}
unless=''
if [ -n "$trusted" ]; then
  unless=" unless { src ${trusted//,/ } }"
fi
for header in Forwarded X-Forwarded-Host X-Forwarded-Proto; do
  printf '  http-request del-header %s%s\n' "$header" "$unless"
done
