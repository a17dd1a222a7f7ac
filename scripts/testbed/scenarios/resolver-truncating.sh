# shellcheck shell=bash
# Own-network fault, not censorship: the probe's resolver cuts short its answers for
# some names over UDP, as for an answer too big for a datagram (many records, a long
# CNAME chain): the TC flag set, no record (scripts/testbed/dns-relay.py, in the
# censor's namespace, which the probe's UDP queries to the ISP resolver are sent to).
# Over TCP the ISP resolver answers them whole.
# Expect: every target ok: a stub resolver asks again over TCP, and so does the probe;
# an empty truncated answer is no failure of the name. Alone only: the relay's queries
# to the ISP resolver come from the censor itself, past the rules of all that watch the
# probe's.
relay_resolver --delay 0 0 --upstream "$RESOLVER_IP" \
    --truncate google.test --truncate www.google.test --truncate dual.test \
    --truncate stream.test --truncate www.stream.test --truncate cdn.test
