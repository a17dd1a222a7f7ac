# shellcheck shell=bash
# Not censorship: the CDN (cdn.test) serves, on the edge only the probe's country gets
# (198.19.12.2), a bot challenge instead of the site, as Cloudflare does: HTTP 403,
# "server: cloudflare", "cf-mitigated: challenge", a cf-ray, and the "Just a moment..."
# interstitial that loads /cdn-cgi/challenge-platform/. The world's edge (198.19.12.1,
# the control's) keeps serving the site; TCP and TLS are untouched everywhere. The web
# nginx serves the challenge on that edge while the flag file $STATE/cdn-challenge exists.
# Expect: https://cdn.test/: anomaly (not blocked), the evidence naming the CDN's
# challenge page; cdn.test ok.
cdn_challenge
