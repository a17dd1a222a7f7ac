# shellcheck shell=bash
# An honest network: the censor forwards everything and its resolver tells the truth.
# Expect: every target ok (the baseline of every other scenario).
