# shellcheck shell=bash
# HTTP blockpage (Iran): the censor redirects plain HTTP to bbc's address to its own
# server, which answers 403 with Iran's page, an iframe to http://10.10.34.34.
# Expect: http://bbc.test/: blocked http-blockpage; bbc.test (TCP 80 connects, TLS on
# 443 untouched) ok.
censor iptables -w -t nat -A PREROUTING -i "$LAN_IF" -p tcp -d "$(addr_of bbc.test)" --dport 80 \
    -j DNAT --to-destination "$RESOLVER_IP:$BLOCKPAGE_PORT"
