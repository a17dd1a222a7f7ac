# shellcheck shell=bash
# Throttling by SNI (Russia, Twitter 2021; IMC '21 "Throttling Twitter"): the throttler
# reads the ClientHello. A connection whose ClientHello names pbs.twimg.test is marked
# (iptables string match, CONNMARK), and what it sends back to the probe goes through a
# token bucket of RATE (tc tbf under an htb class, picked by CLASSIFY on the mark).
# Nothing else is slowed: a connection to the same address with another SNI (canary.test)
# runs at full speed.
# Expect: https://pbs.twimg.test/media/large.jpg: blocked throttled, evidence giving the
# rates; the names ok.
RATE=400kbit
throttle pbs.twimg.test "$RATE"
