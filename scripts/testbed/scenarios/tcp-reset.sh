# shellcheck shell=bash
# TCP reset: the censor answers every SYN to whatsapp's address with a RST (iptables
# REJECT --reject-with tcp-reset). A RST in answer to a SYN is what a closed port looks
# like, so the kernel reports it as a refused connection: the probe says tcp-refused,
# and the control, which connects, makes it blocking.
# Expect: whatsapp.test, web.whatsapp.test, https://web.whatsapp.test/: blocked tcp-refused.
censor iptables -w -A FORWARD -i "$LAN_IF" -p tcp --syn -d "$(addr_of whatsapp.test)" \
    -j REJECT --reject-with tcp-reset
