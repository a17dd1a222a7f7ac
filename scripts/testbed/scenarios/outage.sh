# shellcheck shell=bash
# Own-network fault, not censorship: the probe's link goes down now and then (a modem
# losing its line, a Wi-Fi roaming, a mobile link between cells): for DOWN seconds
# every DOWN + UP, the first cut as the loop starts, so that the probe's run begins in
# it however long the switch takes (a clean run is over in half a second: a cut that
# came later could miss it), every packet from and to the probe is
# dropped, DNS to the router's resolver and the control's traffic too, with no error to
# tell it (the link stays up at the probe's end). A step whose tries all fall in a cut
# fails as a blackhole, a dropped query or a stalled handshake would.
# Expect: no target blocked or anomaly: a step that went unanswered while the canary
# could not be reached right after, or answered only a later try, or while a pulse of
# the link found it down, is the network's (inconclusive); with all, a censored target
# may read inconclusive for the same reason.
FIRST=0
DOWN=5
UP=3
outage "$FIRST" "$DOWN" "$UP"
