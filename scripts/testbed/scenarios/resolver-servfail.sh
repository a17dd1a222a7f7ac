# shellcheck shell=bash
# Own-network fault, not censorship: the ISP resolver answers SERVFAIL to every query,
# at once. It validates DNSSEC from the root's real trust anchor (KSK-2017), and the
# lab's internet signs nothing: dnsmasq finds every answer BOGUS and fails it, as a
# validating resolver does behind an upstream that strips signatures or with a clock
# that has all signatures expired. (A dnsmasq with no upstream answers REFUSED, not
# SERVFAIL, and passes an upstream's REFUSED on as it is.)
# With all: the resolver's own answers still act (dns-hijack's address, dns-nxdomain's
# NXDOMAIN are not validated), dns-silence still drops, the injector still answers
# first (then the SERVFAIL: an injection): the forged answers are still blocked; the
# only targets with no name, Telegram's endpoints, are blackholed: blocked.
# Expect: every target named by a domain (names and URLs) inconclusive, the evidence
# saying the resolver did not answer the canary either; the Telegram endpoints (IP:PORT)
# ok; nothing blocked or anomaly.
isp_dns "dnssec" \
    "trust-anchor=.,20326,8,2,E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D" \
    "cache-size=150" # dnsmasq validates only with a cache; it is restarted with every switch
