# shellcheck shell=bash
# ClientHello fingerprinting (Iran 2022, Go's default ClientHello): the censor resets
# any TLS connection to mirror.test's address whose first packet carries the cipher-suite
# list of the probe's TLS library (rustls, aws-lc-rs provider: its length, then
# TLS1.3 AES-256, AES-128, ChaCha20, the six ECDHE suites and the renegotiation SCSV,
# in that order; src/measure/tls_variants.rs checks the bytes), whatever the name. A
# ClientHello with a browser's order goes through, the probe's split and padded ones do
# not (the list comes before the name, in the first segment).
# Expect: mirror.test: anomaly tls-fingerprint (never blocked: the site answers another
# ClientHello with its name). Not in all: under all lossy each variant's one try can
# be lost, and the verdicts there must not change from run to run.
censor iptables -w -A FORWARD -i "$LAN_IF" -p tcp -d "$(addr_of mirror.test)" --dport 443 \
    -m string --algo bm --hex-string '|0014130213011303c02cc02bcca9c030c02fcca800ff|' \
    -j REJECT --reject-with tcp-reset
