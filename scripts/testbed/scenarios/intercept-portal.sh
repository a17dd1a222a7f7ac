# shellcheck shell=bash
# Own-network fault, not censorship: a captive portal (a hotel's, a café's, an
# operator's before the user logs in) takes every HTTPS connection the probe opens, to
# port 443 of any address, the canary's included, and answers it with its own
# certificate: one from a CA every probe trusts, valid for the portal's own name
# (portal.test) alone, then its login page. Plain HTTP, QUIC and the control's traffic
# pass.
# Expect: no target blocked or anomaly: the very certificate the canary's name was
# shown is the probe's own network's (inconclusive, "the very one the canary's name was
# shown"), and a DNS answer whose only handshake met it is untested.
# Alone only: with all, nothing of the censor's on port 443 is left to see.
censor iptables -w -t nat -I PREROUTING 1 -i "$LAN_IF" -p tcp --dport 443 \
    -j DNAT --to-destination "$RESOLVER_IP:$PORTAL_TLS_PORT"
censor ip6tables -w -t nat -I PREROUTING 1 -i "$LAN_IF" -p tcp --dport 443 \
    -j DNAT --to-destination "[$RESOLVER_IP6]:$PORTAL_TLS_PORT"
