# shellcheck shell=bash
# IPv6-only blocking: packets to dual.test's IPv6 address are dropped, its IPv4 address
# passes, and so does the rest of IPv6 (the canary's).
# Expect: dual.test blocked tcp-blackhole on its IPv6 address (the probe reached the
# canary over IPv6, the control connected there); its URL ok, fetched over IPv4.
censor ip6tables -w -A FORWARD -i "$LAN_IF" -d "$(addr6_of dual.test)" -j DROP
