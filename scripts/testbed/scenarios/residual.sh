# shellcheck shell=bash
# Residual blocking, as Iran does in 2026 ("same IP refused for about a minute after a
# bad SNI") and the GFW for 90 to 180 s: a ClientHello naming signal (string match to
# port 443, as sni-filter's) is dropped, and its destination address is remembered
# (iptables recent, --rdest): for SECONDS after that trigger, everything the probe sends
# to that address is dropped, whatever the name, the port or the protocol. signal.test
# shares its address with an innocent neighbour, shared.test (shared hosting), which
# goes dark with it. The rules are in mangle PREROUTING, before the filter table: with
# sni-filter (all residual), the trigger is dropped here, never reset. The address
# list lives as long as the rules: every scenario switch empties it.
# The probe must do its control-SNI handshake to an address before any forbidden SNI to
# it: after the trigger, the control handshake times out too, and proves nothing.
# Expect: signal.test, www.signal.test, https://signal.test/: blocked tls-timeout, or
# inconclusive with evidence naming an earlier trigger on the same address (whichever
# was measured after another's trigger); shared.test, https://shared.test/: ok, or
# inconclusive with evidence naming the earlier trigger, never blocked.
SECONDS_BLOCKED=60
# The check first: a trigger to an address already listed does not renew its time.
# The probe's kernel retransmits a dropped ClientHello for a while after the probe gave
# up (an orphaned socket, for about 100 s); those copies must not keep the block on.
censor iptables -w -t mangle -A PREROUTING -i "$LAN_IF" \
    -m recent --name cp-residual --rdest --rcheck --seconds "$SECONDS_BLOCKED" -j DROP
censor iptables -w -t mangle -A PREROUTING -i "$LAN_IF" -p tcp --dport 443 \
    -m string --algo bm --string 'signal.test' \
    -m recent --name cp-residual --rdest --set -j DROP
