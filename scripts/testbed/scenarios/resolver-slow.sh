# shellcheck shell=bash
# Own-network fault, not censorship: the probe's resolver is slow (overloaded, or far
# away over a congested link): it answers every UDP query, each copy of it 1.5 to 4.5 s
# late, drawn at random (scripts/testbed/dns-relay.py, in the censor's namespace, which
# the probe's queries to the ISP resolver are sent to), against the lab's 3 s deadline.
# Many lookups, the canary's too, get their answer in time only at a later copy or try,
# and some at none.
# Expect: no target blocked or anomaly: a lookup none of whose copies was answered in
# time, while a quarter of the resolver's answers of late took half the deadline or more, is
# the resolver's (inconclusive, "while the resolver was slow"), and so is one whose
# check through the same resolver went unanswered too. Alone only: with all, the
# injector's forged answer comes seconds before the real one, past the listening
# window, and reads as the resolver's own lie.
relay_resolver --delay 1.5 4.5 --upstream "$RESOLVER_IP"
