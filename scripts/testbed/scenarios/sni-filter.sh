# shellcheck shell=bash
# SNI filtering: the censor resets any TLS connection whose ClientHello names signal
# (iptables string match, REJECT with a TCP reset), whatever the address. A handshake
# to the same address with the control SNI (canary.test) goes through.
# Expect: signal.test, www.signal.test, https://signal.test/: blocked tls-reset (each
# compared with the control-SNI handshake to the same address, the URL's fetch too).
censor iptables -w -A FORWARD -i "$LAN_IF" -p tcp --dport 443 \
    -m string --algo bm --string 'signal.test' -j REJECT --reject-with tcp-reset
