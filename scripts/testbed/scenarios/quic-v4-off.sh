# shellcheck shell=bash
# Own-network fault, not censorship: a firewall drops QUIC over IPv4 only (UDP to port
# 443 forwarded from the probe; its IPv6 rules, never written, let it through), as an
# iptables-only setup, or an IPv4 tunnel too small for QUIC's 1,200-byte first
# packets, does. The canary's QUIC answers over IPv6 and not over IPv4.
# Expect: no target blocked or anomaly: the IPv4 QUIC sites are inconclusive (QUIC is
# not seen to work over IPv4), never quic-blocked.
censor iptables -w -A FORWARD -i "$LAN_IF" -p udp --dport 443 -j DROP
