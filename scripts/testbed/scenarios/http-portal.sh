# shellcheck shell=bash
# Own-network fault, not censorship: a captive portal before its login (a café's or a
# hotel's Wi-Fi, an operator's page for a line out of credit). Every plain HTTP request
# the probe makes is answered by the portal's login page, 511 Network Authentication
# Required (DNAT of port 80 to the censor's nginx); every connection to port 443 is
# refused and QUIC dropped, the canary's too, over IPv4 and IPv6 (plain HTTP over IPv6
# refused as well). DNS and the control's traffic pass.
# Expect: no target blocked or anomaly: a page unlike the control's, where the canary's
# TLS could not be reached, is the probe's own network's (inconclusive), and so is a
# connect refused as the canary's was. Alone only: with all, the refusals hide the
# censor's blocks.
censor iptables -w -t nat -A PREROUTING -i "$LAN_IF" -p tcp --dport 80 \
    -j DNAT --to-destination "$RESOLVER_IP:$PORTAL_PORT"
for ipt in iptables ip6tables; do
    censor "$ipt" -w -A FORWARD -i "$LAN_IF" -p tcp --dport 443 -j REJECT --reject-with tcp-reset
    censor "$ipt" -w -A FORWARD -i "$LAN_IF" -p udp --dport 443 -j DROP
done
censor ip6tables -w -A FORWARD -i "$LAN_IF" -p tcp --dport 80 -j REJECT --reject-with tcp-reset
