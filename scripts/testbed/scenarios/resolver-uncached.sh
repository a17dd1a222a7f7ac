# shellcheck shell=bash
# Own-network fault, not censorship: the probe's resolver answers most names at once,
# and a few 4 to 6 s late, every query for them (scripts/testbed/dns-relay.py, in the
# censor's namespace, which the probe's queries to the ISP resolver are sent to), as an
# overloaded resolver whose recursion for names it has not cached is slow, against the
# lab's 3 s deadline. Its answers in time are fast, so that the resolver looks healthy
# by them, and its check, a name under the canary's, is answered in time too.
# Expect: no target blocked or anomaly: a lookup that timed out but whose answer came
# afterwards, while the probe asked again, is the resolver's pace (inconclusive, "the
# resolver answered it ... late"). Alone only: the relay's queries to the ISP resolver
# come from the censor itself, past the rules of all that watch the probe's.
relay_resolver --delay 0 0 --upstream "$RESOLVER_IP" --late-by 4 6 \
    --late bbc.test --late smallsite.test --late mirror.test --late video.test \
    --late vps.test
