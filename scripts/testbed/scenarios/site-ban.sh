# shellcheck shell=bash
# Own-network fault, not censorship: three sites' firewalls turn the probe away after a
# burst of connections, as a per-client rate limit, a hosting network's flood
# protection or fail2ban does: each lets 2 new connections from the probe to a port
# through, then 1 a minute, and refuses the SYNs beyond with a reset (iptables hashlimit
# in the internet's namespace, by source, destination and port). The control, from its
# own address, is let through. Dropping them instead (-j DROP) reads the same, but each
# unanswered connect costs its timeout: 20 s a run, against 3.
# Expect: no target blocked or anomaly: a connect that was refused (or went unanswered)
# at an address and port that had answered the probe's connects in the run is a server
# that began to turn the probe away, or went down (inconclusive, "had answered the
# probe's connects in the run"); a censor's block of an address holds from the start.
# Alone only: all stops smallsite.test's server.
for name in smallsite.test vps.test video.test; do
    internet iptables -w -A INPUT -p tcp --syn -s "$PROBE_IP" -d "$(addr_of "$name")" \
        -m hashlimit --hashlimit-name "ban-${name%%.*}" --hashlimit-mode srcip,dstip,dstport \
        --hashlimit-above 1/min --hashlimit-burst 2 -j REJECT --reject-with tcp-reset
done
