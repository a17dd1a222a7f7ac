# shellcheck shell=bash
# Resolver silence: the censor drops every DNS query that names youtube (iptables string
# match on the query's wire-format name), so the lookup times out.
# Expect: youtube.test, www.youtube.test, https://www.youtube.test/: blocked dns-failure.
censor iptables -w -A INPUT -i "$LAN_IF" -p udp --dport 53 \
    -m string --algo bm --hex-string '|07|youtube|04|test|00|' -j DROP
censor iptables -w -A INPUT -i "$LAN_IF" -p tcp --dport 53 \
    -m string --algo bm --hex-string '|07|youtube|04|test|00|' -j DROP
