# shellcheck shell=bash
# DNS injection (China): the censor copies every query naming facebook (iptables TEE)
# to an on-path injector, which answers at once as the ISP resolver with a forged,
# public-looking address (198.19.255.1, a host that runs nothing); the real answer,
# which the resolver has to fetch from the authoritative server, follows. Two replies
# to one query, the forged one first.
# Expect: facebook.test, www.facebook.test, https://www.facebook.test/: blocked dns-injection.
censor iptables -w -t mangle -A PREROUTING -i "$LAN_IF" -p udp -d "$RESOLVER_IP" --dport 53 \
    -m string --algo bm --hex-string '|08|facebook|04|test|00|' -j TEE --gateway "$INJECT_IP"
