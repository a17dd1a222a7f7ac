# shellcheck shell=bash
# Own-network fault, not censorship: a link that loses 30 % of the packets each way
# (a failing radio link, a saturated uplink), about half of all round trips. Transfers
# come in bursts between stalls of seconds, with any name, and two stalls of a name
# around a fast transfer with another come by chance; connects and handshakes need
# their tries.
# Expect: no target blocked or anomaly: a large transfer that came in bursts is no
# throttle, a stall where the canary's connects right after lost some of their first
# tries no freeze, and what every try lost is the network's (inconclusive).
LOSS=0.3
censor iptables -w -t raw -A PREROUTING -i "$LAN_IF" \
    -m statistic --mode random --probability "$LOSS" -j DROP
censor iptables -w -t mangle -A POSTROUTING -o "$LAN_IF" \
    -m statistic --mode random --probability "$LOSS" -j DROP
