# shellcheck shell=bash
# Own-network fault, not censorship (a bug report: "on a network whose resolvers answer
# AAAA queries with REFUSED, reachable targets came out down for everyone"): A queries
# are answered as usual, AAAA queries REFUSED for every name, on both sides. The
# internet sends every AAAA query to the authoritative views (the ISP resolver's, which
# passes REFUSED on to the probe, and the control's) to the refuser, a dnsmasq with no
# upstream (198.19.0.55); conntrack makes its answer come from the address asked.
# AAAA queries get a conntrack zone of their own (raw table), so that one asked from
# the same socket as an A query (glibc does) is still a new flow to redirect. UDP only:
# a refusal is never truncated, so no TCP follows. The lab's names have no AAAA at all:
# without this scenario, AAAA is NOERROR with no answer.
# Expect: every target ok.
aaaa='|00 00 1c 00 01|' # the end of an AAAA question: the name's root label, type 28, class IN
for auth in "$AUTH_WORLD" "$AUTH_LOCAL"; do
    internet iptables -w -t raw -A PREROUTING -p udp -d "$auth" --dport 53 \
        -m string --algo bm --hex-string "$aaaa" -j CT --zone 1
    internet iptables -w -t nat -A PREROUTING -p udp -d "$auth" --dport 53 \
        -m string --algo bm --hex-string "$aaaa" -j DNAT --to-destination "$REFUSER_IP"
done
# The refuser's answers belong to the redirected queries' zone.
internet iptables -w -t raw -A OUTPUT -p udp -s "$REFUSER_IP" --sport 53 -j CT --zone 1
