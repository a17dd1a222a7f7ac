# shellcheck shell=bash
# Own-network fault, not censorship: a path-MTU black hole on the way in (a tunnel or a
# PPPoE link with a smaller MTU whose router drops what does not fit and sends no ICMP).
# Every IPv4 packet of more than 1,280 bytes from the sites (198.19.0.0/16, the canary
# among them) toward the probe is dropped; SYNs, ClientHellos and small answers pass,
# every server's first flight does not: handshakes time out while a bare connect to the
# canary gets through. The control's own path is untouched.
# Expect: no target blocked or anomaly. The canary's handshakes time out too, and the
# same failure at a target is the probe's network's (inconclusive); IPv6 is untouched.
censor iptables -w -t mangle -A POSTROUTING -o "$LAN_IF" -s 198.19.0.0/16 \
    -m length --length 1281:65535 -j DROP
