# shellcheck shell=bash
# Trap: a site that is really down. smallsite.test's web server is stopped, for the
# control as much as for the probe (its name still resolves). Not censorship.
# Expect: smallsite.test, https://smallsite.test/: down.
stop_server smallsite
