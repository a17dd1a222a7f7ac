# shellcheck shell=bash
# ECH blocking (Russia since 2024-11, net4people/bbs#417): the censor drops every packet
# whose ClientHello carries both the name cloudflare-ech.test and an ECH extension (its
# type 0xfe0d and length, then the outer form with HKDF-SHA256 and AES-128-GCM, as
# rustls's GREASE ECH sends it: one rule, two string matches), so the handshake stalls.
# Either alone passes: a handshake with the name and no ECH, and one with ECH and
# another name (every other target's comparison).
# Expect: cloudflare-ech.test and https://cloudflare-ech.test/: blocked ech-blocked (the
# handshakes with ECH stalled, those without it through, the control's with ECH
# through); every other target ok.
censor iptables -w -A FORWARD -i "$LAN_IF" -p tcp --dport 443 \
    -m string --algo bm --string 'cloudflare-ech.test' \
    -m string --algo bm --hex-string '|fe0d019a0000010001|' -j DROP
