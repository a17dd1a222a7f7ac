# shellcheck shell=bash
# QUIC filtering by name, as the GFW does since 2024: the keys of a QUIC Initial packet
# derive from its own Destination Connection ID (RFC 9001), so the censor decrypts the
# client's Initials, reads the SNI of the ClientHello in them, and drops the flow (its
# 4-tuple, for 60 s) when it names stream.test or a subdomain. A userspace censor
# (scripts/testbed/quic-censor.py, NFQUEUE on UDP 443 to stream.test's address, its log
# $STATE/log/quic-censor.log); TCP+TLS and QUIC with any other name, the control name
# to the same address among them, pass. --queue-bypass: with the censor process gone,
# everything passes. Not in all: a censor of a new kind, not yet run with the faults.
# Expect: stream.test, www.stream.test, https://stream.test/: blocked quic-blocked, by
# name (the QUIC handshake with canary.test to the same address was answered).
QUEUE=0
censor iptables -w -A FORWARD -i "$LAN_IF" -p udp -d "$(addr_of stream.test)" --dport 443 \
    -j NFQUEUE --queue-num "$QUEUE" --queue-bypass
quic_censor "$QUEUE" stream.test
