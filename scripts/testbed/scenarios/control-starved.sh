# shellcheck shell=bash
# Fault of the control, not censorship: the control server is restarted with a limit of
# FILES open files, too few for a run: it still accepts the probe's requests, but some
# of its measurements fail with "Too many open files" (EMFILE) for want of a socket.
# Every other scenario restarts it without the limit.
# With all: a censored target whose control measurement failed is inconclusive rather
# than blocked.
# Expect: every target ok or inconclusive (the control says it could not measure), none
# down or blocked.
FILES=64
starve_control "$FILES"
