# shellcheck shell=bash
# Own-network fault, not censorship (a captive portal before its login, a company's or
# a school's filtering resolver): the probe's resolver answers every name, the
# canary's included, with one private address, 10.10.10.10 (dnsmasq address=/#/).
# The control's resolver tells the truth.
# Expect: no target blocked or anomaly: an answer the resolver gave the canary too is
# the probe's own network's (inconclusive, "as it answered the canary"). Alone only:
# with all, the censor's own DNS answers are the same resolver's.
isp_dns "address=/#/10.10.10.10"
