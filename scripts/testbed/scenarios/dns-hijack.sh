# shellcheck shell=bash
# DNS hijack (Iran): the ISP resolver answers instagram's names with the national
# blockpage address 10.10.34.34, a bogon the probe never connects to.
# Expect: instagram.test, www.instagram.test, https://www.instagram.test/: blocked dns-hijack.
isp_dns "address=/instagram.test/10.10.34.34"
