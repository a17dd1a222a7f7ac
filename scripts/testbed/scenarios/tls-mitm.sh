# shellcheck shell=bash
# TLS interception (Kazakhstan 2019): the censor redirects HTTPS to google's address to
# its own server, which presents a certificate for google's names issued by the
# censor's rogue CA (which no probe trusts).
# Expect: google.test, www.google.test, https://www.google.test/: blocked tls-mitm.
censor iptables -w -t nat -A PREROUTING -i "$LAN_IF" -p tcp -d "$(addr_of google.test)" --dport 443 \
    -j DNAT --to-destination "$RESOLVER_IP:$MITM_PORT"
