# shellcheck shell=bash
# Throttling (Russia, twimg 2021): what pbs.twimg.test sends to the probe goes through a
# token bucket of 2 Mbit/s (tc tbf under an htb class, picked by iptables CLASSIFY);
# everything else runs at full speed.
# Expect: https://pbs.twimg.test/media/large.jpg: blocked throttled; the names ok.
throttle "$(addr_of pbs.twimg.test)" 2mbit
