# shellcheck shell=bash
# Own-network fault, not censorship: the probe's router (or a firewall on the way) lets
# at most 10 new TCP connections a second through, in bursts of 20, and drops the SYNs
# beyond, as a busy NAT or a flow-rate limit does. A run's opening burst loses most of
# its connects for seconds; the canary, tried once now and then, gets through.
# Expect: no target blocked or anomaly: the probe's other connects meanwhile needed
# several tries each, and a connect whose every try went unanswered then is the
# network's (inconclusive).
censor iptables -w -I FORWARD 1 -i "$LAN_IF" -p tcp --syn -m conntrack --ctstate NEW \
    -m hashlimit --hashlimit-above 10/second --hashlimit-burst 20 --hashlimit-mode srcip \
    --hashlimit-name cpflows -j DROP
