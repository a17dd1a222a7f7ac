# shellcheck shell=bash
# IPv6 switched off (Iran during shutdowns): every IPv6 packet the censor would forward
# is dropped, the canary's and the control's included; IPv4 passes.
# Expect: every target ok. From the probe this is a network without IPv6: the canary is
# not reached over IPv6 either, so no target's IPv6 address is evidence, and dual.test
# is ok over IPv4.
censor ip6tables -w -A FORWARD -j DROP
