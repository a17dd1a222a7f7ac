# shellcheck shell=bash
# Every scenario at once (blackhole-all rather than blackhole-partial), the down trap
# included: each acts on its own service, and none may leak into another's verdicts.
# Expect: the union of the scenarios' expectations; the canary and the CDN ok.
include dns-hijack dns-nxdomain dns-silence dns-injection blackhole-all tcp-reset \
    sni-filter tls-mitm http-blockpage throttle quic-block ech-block down
