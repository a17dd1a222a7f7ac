# shellcheck shell=bash
# Not censorship: a site overloaded now and then. smallsite.test's web server answers
# one request in four, anyone's (the control's as much as the probe's), with 503
# Service Unavailable instead of its page, over plain HTTP and HTTPS alike, while the
# flag file $STATE/site-flaky exists.
# Expect: no target blocked or anomaly: a page answered with a server error is fetched
# again, up to three times in all, and its page the next time is ok; a 503 at each of
# the probe's fetches, where the control got the page, is the site's own error
# (inconclusive). Alone only: with all, the down trap stops the same site.
site_flaky
