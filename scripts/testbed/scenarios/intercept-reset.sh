# shellcheck shell=bash
# Own-network fault, not censorship: an intercepting middlebox on the probe's path (a
# captive portal before its login, a transparent proxy) takes every TCP connection the
# probe opens, to any address but the control's, and tears it down with a reset at its
# first bytes (scripts/testbed/interceptor.py, in the censor's namespace). Every connect
# succeeds, the canary's too; every handshake and fetch is reset, the canary's too.
# Expect: no target blocked or anomaly: a reset like the canary's is the probe's own
# network's (inconclusive, "as the canary's own did"); with all, what the censor does in
# DNS still shows (it is no TCP flow), and its other blocks read inconclusive.
INTERCEPT_PORT=9009
censor iptables -w -t nat -I PREROUTING 1 -i "$LAN_IF" -p tcp ! -d "$CONTROL_IP" \
    -j REDIRECT --to-ports "$INTERCEPT_PORT"
censor ip6tables -w -t nat -I PREROUTING 1 -i "$LAN_IF" -p tcp ! -d "$CONTROL_IP6" \
    -j REDIRECT --to-ports "$INTERCEPT_PORT"
interceptor "$INTERCEPT_PORT"
