# shellcheck shell=bash
# Own-network fault, not censorship: the ISP resolver (198.18.1.1, the probe's system
# resolver) is dead. No censor: every DNS query to it, UDP and TCP, is dropped, so
# every lookup times out, the canary's too.
# With all: the on-path injector still answers facebook's names (it is not the
# resolver): a forged answer, still blocked; dns-silence has nothing left to drop; the
# only targets with no name, Telegram's endpoints, are blackholed: blocked, since the
# control's answers show the probe has a network.
# Expect: every target named by a domain (names and URLs) inconclusive, the evidence
# saying the resolver did not answer the canary either; the Telegram endpoints (IP:PORT)
# ok; nothing blocked or anomaly.
for proto in udp tcp; do
    censor iptables -w -A INPUT -i "$LAN_IF" -p "$proto" -d "$RESOLVER_IP" --dport 53 -j DROP
done
