# shellcheck shell=bash
# A stall after N bytes (Russia 2025: TLS connections to foreign hosting and CDN
# networks freeze after about 16-20 KB, with no reset): once a TCP connection from
# vps.test's address (a foreign hosting network) has carried STALL_AT bytes toward the
# probe, every further packet of it is dropped (iptables connbytes, counted on the
# reply direction). The TLS handshake fits under it; the body does not. The freeze is
# by address: the same address with any SNI freezes too.
# Expect: https://vps.test/media/page.jpg: blocked tls-stall, evidence giving the byte
# count; vps.test ok.
STALL_AT=16384
censor iptables -w -A FORWARD -s "$(addr_of vps.test)" -o "$LAN_IF" -p tcp --sport 443 \
    -m connbytes --connbytes "$STALL_AT": --connbytes-dir reply --connbytes-mode bytes -j DROP
