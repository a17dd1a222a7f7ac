# shellcheck shell=bash
# IP blackholing of some of Telegram's data centres: packets to DC1 and DC2 are dropped.
# Expect: 198.19.1.1:443 and 198.19.1.2:443 blocked tcp-blackhole; DC3, DC4, telegram's
# names and its URL ok.
for dc in "${TELEGRAM_DCS[@]:0:2}"; do
    censor iptables -w -A FORWARD -i "$LAN_IF" -d "$dc" -j DROP
done
