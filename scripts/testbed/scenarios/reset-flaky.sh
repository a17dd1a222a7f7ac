# shellcheck shell=bash
# Own-network fault, not censorship: a middlebox on the probe's path (a flaky NAT or
# firewall) answers 3 % of the probe's TCP packets, any flow's, with a reset instead of
# passing them on. A connect, a handshake or a fetch is now and then refused or torn
# down, and goes through when made again.
# Expect: no target blocked or anomaly: a step turned down at its first try is made
# again, up to three times in all; one turned down at every try, while the probe's
# other steps were turned down now and then and went through when made again, is the
# network's (inconclusive).
censor iptables -w -I FORWARD 1 -i "$LAN_IF" -p tcp -m statistic --mode random \
    --probability 0.03 -j REJECT --reject-with tcp-reset
