# shellcheck shell=bash
# Own-network fault, not censorship: a lossy link to the probe (a bad Wi-Fi, a flaky
# line). Every packet arriving from the probe and every packet leaving toward it,
# forwarded or to and from the router itself (DNS to the ISP resolver too), is dropped
# with probability LOSS (iptables statistic): about 28 % of round trips fail at 0.15.
# With all: the loss hits the censor's own packets as much (resets, the injected and
# the real DNS reply, blockpages, the throttled transfer): the probe's tries, and its
# query sent again during its listening window, keep every verdict what it is without
# the loss.
# Expect: every target ok (or inconclusive, a slow transfer it cannot tell from a
# throttle), nothing blocked or anomaly (the probe retries).
LOSS=0.15
# raw PREROUTING: before conntrack and every other rule; mangle POSTROUTING: after all.
censor iptables -w -t raw -A PREROUTING -i "$LAN_IF" \
    -m statistic --mode random --probability "$LOSS" -j DROP
censor iptables -w -t mangle -A POSTROUTING -o "$LAN_IF" \
    -m statistic --mode random --probability "$LOSS" -j DROP
