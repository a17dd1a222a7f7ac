# shellcheck shell=bash
# NXDOMAIN: the ISP resolver says twitter's names do not exist (dnsmasq address=/name/).
# Expect: twitter.test, www.twitter.test, https://twitter.test/: blocked dns-nxdomain.
isp_dns "address=/twitter.test/"
