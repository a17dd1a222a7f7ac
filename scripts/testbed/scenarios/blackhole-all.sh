# shellcheck shell=bash
# IP blackholing of all of Telegram: every data centre and every address of its names.
# Expect: the four DC endpoints, telegram.test, web.telegram.test and
# https://web.telegram.test/: blocked tcp-blackhole.
for address in "${TELEGRAM_DCS[@]}" "$(addr_of telegram.test)" "$(addr_of web.telegram.test)"; do
    censor iptables -w -A FORWARD -i "$LAN_IF" -d "$address" -j DROP
done
