# shellcheck shell=bash
# Own-network fault, not censorship: a slow, congested link to the probe (a mobile
# network at its busiest, a rural line): 1 Mbit/s toward the probe, 512 kbit/s from it,
# each behind a queue of about a second (tc htb and tbf). The probe's own traffic fills
# it: DNS answers, handshakes and pages wait in the queue, and a large file cannot come
# within the deadline, with any name.
# Expect: no target blocked or anomaly; the large file inconclusive (as slow with the
# control SNI: a slow path); with all, the censor's verdicts, but that a blackhole, a
# dropped lookup or QUIC may read inconclusive where the canary's connects made at once
# went unanswered at their first try too (the queue outlasts a first try's wait).
slow_link 1000 512
