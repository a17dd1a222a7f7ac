# shellcheck shell=bash
# Own-network fault, not censorship: the ISP resolver (198.18.1.1) answers a client 5
# UDP queries a second, in bursts of 10, and drops the rest, as a resolver's rate limit
# per client (or a home router's cap on the queries it forwards at once) does. A run's
# opening lookups lose most of their copies; the canary's come through in time.
# Expect: no target blocked or anomaly: a lookup that timed out did so while the
# resolver left many copies of the others unanswered (inconclusive). With all, loss of
# the real answer turns facebook's injection into a lie of the resolver's to see
# (dns-hijack): run alone.
censor iptables -w -I INPUT 1 -i "$LAN_IF" -p udp -d "$RESOLVER_IP" --dport 53 \
    -m hashlimit --hashlimit-above 5/second --hashlimit-burst 10 --hashlimit-mode srcip \
    --hashlimit-name cpresolver -j DROP
