# shellcheck shell=bash
# Own-machine fault, not censorship (a volunteer's device without a battery-backed
# clock, on a network that blocks time servers): the probe's clock reads 60 days ahead
# of the lab's (faketime), past the end of every lab certificate (valid 30 days from
# `up`). Every certificate then reads expired to the probe, its issuer and name still
# the site's; the control's clock is right. Nothing on the network changes.
# Expect: no target the censor leaves alone blocked or anomaly: each is inconclusive
# (its certificate refused for its dates alone) or ok.
probe_clock +60d
