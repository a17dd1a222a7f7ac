# shellcheck shell=bash
# Own-network fault, not censorship: a middlebox on the probe's path (a company's
# TLS-inspecting proxy, an antivirus's HTTPS scanning) takes every HTTPS connection the
# probe opens, to port 443 of any address, the canary's included, and answers it with
# a certificate from its own CA (the censor's intercepting server, whose certificate
# is the rogue CA's). Plain HTTP, QUIC and the control's traffic pass.
# Expect: no target blocked or anomaly: a certificate from the issuer the canary's was
# from is the probe's own network's (inconclusive, "as the canary's was").
# Alone only: with all, nothing of the censor's on port 443 is left to see.
censor iptables -w -t nat -I PREROUTING 1 -i "$LAN_IF" -p tcp --dport 443 \
    -j DNAT --to-destination "$RESOLVER_IP:$MITM_PORT"
censor ip6tables -w -t nat -I PREROUTING 1 -i "$LAN_IF" -p tcp --dport 443 \
    -j DNAT --to-destination "[$RESOLVER_IP6]:$MITM_PORT"
