# shellcheck shell=bash
# A network that drops all QUIC (an office firewall, some mobile networks, an ISP during
# a shutdown): UDP to port 443 of every address is dropped on the probe's side, the
# canary's included, over IPv4 and IPv6; TCP passes, and the control's QUIC too.
# Expect: no target blocked or anomaly. The sites whose QUIC the lab measures (video,
# stream) get no QUIC answer with any name, as a block of their address would look,
# but the canary's QUIC is dark too: inconclusive, never quic-blocked.
censor iptables -w -A FORWARD -i "$LAN_IF" -p udp --dport 443 -j DROP
censor ip6tables -w -A FORWARD -i "$LAN_IF" -p udp --dport 443 -j DROP
