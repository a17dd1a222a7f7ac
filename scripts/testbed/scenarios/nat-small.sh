# shellcheck shell=bash
# Own-network fault, not censorship: the probe's router has a small connection-tracking
# (NAT) table, and drops the new flows it has no room for. nf_conntrack_max cannot be
# set inside a network namespace, so iptables connlimit models it: a new flow
# forwarded from the probe's LAN (TCP, UDP, ICMP alike) beyond FLOWS live ones, counted
# for the whole LAN together (--connlimit-mask 0), is dropped. A TCP flow stops counting
# once closed (FIN or RST seen, TIME_WAIT); an unanswered SYN that got through counts
# for as long as conntrack keeps it (nf_conntrack_tcp_timeout_syn_sent, 120 s), a SYN
# dropped on this router (a blackhole, a full table) not at all. DNS to the router's
# own resolver is not forwarded (a home router's DNS forwarder runs on it), so it is
# not counted.
# With all: the limit comes before the censor's rules; a flow they drop or reset on
# this router is never confirmed and takes no room. A QUIC handshake has two tries to
# find room where a TCP connect has six: a blocked one's silence may read inconclusive,
# "while the probe's network was failing new connections".
# FLOWS is far below a real router's table, so that the probe's own burst meets it:
# some 40 to 80 of its SYNs are dropped in a run, and its tries get through.
# Expect: every target ok or inconclusive, nothing blocked or anomaly.
FLOWS=16
censor iptables -w -I FORWARD 1 -i "$LAN_IF" -m conntrack --ctstate NEW \
    -m connlimit --connlimit-above "$FLOWS" --connlimit-mask 0 -j DROP
