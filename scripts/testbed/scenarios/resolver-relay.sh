# shellcheck shell=bash
# Own-network fault, not censorship: the probe's router relays each DNS query to both of
# its upstream resolvers, the ISP's and a public one abroad, and passes on both answers
# (scripts/testbed/dns-relay.py, in the censor's namespace, which the probe's queries to
# the ISP resolver are sent to). Each copy of a query gets two replies with its ID, and
# for the CDN's name they differ: the ISP's resolver gives the probe's country its edge,
# the public one the rest of the world's, as an injector's forged answer and the real
# one would.
# Expect: every target ok: the site's certificate vouches for both answers (the probe
# makes the name's handshake to the addresses its steps did not try), so neither is a
# forgery. Alone only: with all, the public resolver's honest answers would come beside
# the censor's lies, and lift its DNS blocks.
relay_resolver --delay 0 0.05 --upstream "$RESOLVER_IP" --upstream "$AUTH_WORLD"
