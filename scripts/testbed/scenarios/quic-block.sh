# shellcheck shell=bash
# QUIC blocked by address (Iran since 2022): UDP to port 443 of video.test's address is
# dropped, in both directions; TCP to the same address and port passes, so HTTPS works
# and browsers fall back to it from HTTP/3.
# Expect: video.test and https://video.test/ blocked quic-blocked by address (the
# control's QUIC handshakes there are answered); every other site's QUIC ok.
video=$(addr_of video.test)
censor iptables -w -A FORWARD -i "$LAN_IF" -d "$video" -p udp --dport 443 -j DROP
censor iptables -w -A FORWARD -o "$LAN_IF" -s "$video" -p udp --sport 443 -j DROP
