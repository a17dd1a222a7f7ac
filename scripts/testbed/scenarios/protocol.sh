# shellcheck shell=bash
# Protocol filtering (Iran's "protocol whitelister", 2020 on; FOCI '20, net4people/bbs#49):
# on TCP 443 to Telegram's data centres, the censor reads the first data packet of each
# flow from the probe. One that starts like TLS (a handshake record, 0x16 0x03) or an
# HTTP request lets its flow through (CONNMARK); anything else (MTProto's obfuscated
# handshake: random bytes) is dropped, and its destination remembered (iptables recent,
# --rdest): for SECONDS after, everything the probe sends to that address is dropped,
# SYNs included. The real filter keys on the flow; this one on the address, which a
# connect from a fresh port can see. The u32 match reads the payload after the IP and
# TCP headers (it does not match a packet without four bytes of payload: the handshake's
# bare ACKs). Mangle PREROUTING, before the filter table; not in all (blackhole-all drops
# the data centres already).
# Expect: 198.19.1.1:443 to 198.19.1.4:443: blocked protocol-filtered (each connect works,
# the one after the probe's first bytes does not, the control's does); Telegram's names
# and URL ok.
SECONDS_BLOCKED=60
MARK=0x40
payload='0>>22&0x3C@12>>26&0x3C@0'                               # the first four bytes after the headers
tls="$payload>>16=0x1603"                                        # a TLS handshake record
http="$payload=0x47455420,0x504f5354,0x48454144,0x50555420,0x4f505449" # GET, POST, HEAD, PUT, OPTIONS
for dc in "${TELEGRAM_DCS[@]}"; do
    on=(-i "$LAN_IF" -p tcp -d "$dc" --dport 443)
    censor iptables -w -t mangle -A PREROUTING "${on[@]}" \
        -m recent --name cp-protocol --rdest --rcheck --seconds "$SECONDS_BLOCKED" -j DROP
    for allowed in "$tls" "$http"; do
        censor iptables -w -t mangle -A PREROUTING "${on[@]}" -m connmark ! --mark "$MARK/$MARK" \
            -m u32 --u32 "$allowed" -j CONNMARK --set-mark "$MARK/$MARK"
    done
    censor iptables -w -t mangle -A PREROUTING "${on[@]}" -m connmark --mark "$MARK/$MARK" -j ACCEPT
    censor iptables -w -t mangle -A PREROUTING "${on[@]}" -m u32 --u32 "$payload&0=0" \
        -m recent --name cp-protocol --rdest --set -j DROP
done
