#!/usr/bin/env bash
# censorprobe's testbed: a censored network in network namespaces (see docs/testbed.md).
#
#   scripts/testbed.sh up [--bench HOSTS] build the lab (idempotent: clears leftovers first);
#                                         --bench adds synthetic sites for scripts/bench.sh
#   scripts/testbed.sh down               remove every cp- namespace, process and file
#   scripts/testbed.sh status             what is up, and which scenarios are on
#   scripts/testbed.sh scenario NAME...   switch the censor to exactly these scenarios
#   scripts/testbed.sh scenarios          list the scenarios
#   scripts/testbed.sh probe [ARGS]...    run censorprobe in the probe namespace
#   scripts/testbed.sh check              can this machine run the lab? (root, tools, kernel)
#
# Nothing here routes anywhere but the lab: no namespace has a default route, nothing
# is attached to the host's own interfaces, and every address is in 198.18.0.0/15.
set -Eeuo pipefail

SELF=testbed.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
LAB=$HERE/testbed
STATE=${CP_TESTBED_STATE:-/run/cp-testbed}
LOCK=/run/cp-testbed.lock

# --- The address plan (docs/testbed.md draws it) -----------------------------------

NS_PROBE=cp-probe       # the volunteer's machine
NS_CENSOR=cp-censor     # the ISP's router, the censor, and the ISP's resolver
NS_INJECT=cp-inject     # an on-path DNS injector hanging off the censor
NS_NET=cp-net           # "the internet": authoritative DNS and the web servers
NS_CONTROL=cp-control   # the control vantage point, outside the censor
NS_ISOLATED=cp-isolated # a machine with no network at all (only loopback)
NAMESPACES=("$NS_PROBE" "$NS_CENSOR" "$NS_INJECT" "$NS_NET" "$NS_CONTROL" "$NS_ISOLATED")

PROBE_IP=198.18.1.2     # probe LAN 198.18.1.0/24
RESOLVER_IP=198.18.1.1  # the censor on the LAN: gateway, ISP resolver, blockpage, MITM
CENSOR_WAN_IP=198.18.0.1 # censor <-> internet 198.18.0.0/24
NET_WAN_IP=198.18.0.2
NET_CTL_IP=198.18.2.1   # internet <-> control 198.18.2.0/24
CONTROL_IP=198.18.2.2
CONTROL_PORT=8080
CENSOR_INJ_IP=198.18.3.1 # censor <-> injector 198.18.3.0/24
INJECT_IP=198.18.3.2
AUTH_WORLD=198.19.0.53  # authoritative DNS, the view the rest of the world gets
AUTH_LOCAL=198.19.0.54  # authoritative DNS, the view the probe's country gets (CDN)
REFUSER_IP=198.19.0.55  # a dnsmasq with no upstream, which refuses every query (aaaa-broken)
BLOCKPAGE_PORT=8080     # the censor's blockpage server, on RESOLVER_IP
PORTAL_PORT=8081        # a captive portal's login page (scenario http-portal), on RESOLVER_IP
MITM_PORT=8443          # the censor's intercepting TLS server, on RESOLVER_IP
PORTAL_TLS_PORT=9443    # a captive portal's HTTPS, with its own name's certificate (scenario intercept-portal), on RESOLVER_IP
FORGED_IP=198.19.255.1  # what the injector answers: a public-looking host running nothing
LAN_IF=to-probe         # the censor's interface toward the probe
CONTROL_URL=http://$CONTROL_IP:$CONTROL_PORT
# IPv6, on every link, in the documentation prefix 2001:db8::/32 (a bogon the probe and
# the control are told to treat as public): the same plan, /64 per link.
PROBE_IP6=2001:db8:1::2
RESOLVER_IP6=2001:db8:1::1
CENSOR_WAN_IP6=2001:db8::1
NET_WAN_IP6=2001:db8::2
NET_CTL_IP6=2001:db8:2::1
CONTROL_IP6=2001:db8:2::2
LAB_PREFIX6=2001:db8::/32
# While this file exists, the CDN's edge for the probe's country serves its bot
# challenge instead of the site (scenario cdn-challenge).
CDN_CHALLENGE=$STATE/cdn-challenge
# While this file exists, the small site answers one request in four with 503 Service
# Unavailable (scenario site-flaky).
SITE_FLAKY=$STATE/site-flaky
# The offset of the probe's clock from the lab's, for faketime (scenario clock-ahead):
# `probe`, and the suite, run the probe under faketime while the file holds one.
PROBE_CLOCK=$STATE/probe-clock

# Every name of the lab's internet: "name address [address in the probe's country]".
HOSTS=(
    "canary.test 198.19.0.10"
    "telegram.test 198.19.1.10"
    "web.telegram.test 198.19.1.11"
    "instagram.test 198.19.2.10"
    "www.instagram.test 198.19.2.10"
    "twitter.test 198.19.3.10"
    "www.twitter.test 198.19.3.10"
    "youtube.test 198.19.4.10"
    "www.youtube.test 198.19.4.10"
    "facebook.test 198.19.5.10"
    "www.facebook.test 198.19.5.10"
    "whatsapp.test 198.19.6.10"
    "web.whatsapp.test 198.19.6.10"
    "signal.test 198.19.7.10"
    "www.signal.test 198.19.7.10"
    "shared.test 198.19.7.10" # shared hosting: signal's neighbour (scenario residual)
    "google.test 198.19.8.10"
    "www.google.test 198.19.8.10"
    "bbc.test 198.19.9.10"
    "twimg.test 198.19.10.10"
    "pbs.twimg.test 198.19.10.11"
    "smallsite.test 198.19.11.10"
    "vps.test 198.19.13.10" # a site on a foreign hosting network (scenario stall-16k)
    "cloudflare-ech.test 198.19.16.10" # ECH blocked with its name (scenario ech-block)
    "video.test 198.19.14.10" # a site whose QUIC the censor drops (scenario quic-block)
    "dual.test 198.19.18.10" # a dual-stack site (scenarios ipv6-off, ipv6-block)
    "mirror.test 198.19.17.10" # a tool's download mirror (scenario fingerprint)
    "stream.test 198.19.15.10" # a site whose QUIC is filtered by name (scenario quic-sni)
    "www.stream.test 198.19.15.10"
    "cdn.test 198.19.12.1 198.19.12.2"
)
# The names with an IPv6 address too (AAAA), the same in both DNS views. Only these: a
# censor's rules in the other scenarios are IPv4 rules, and a site they act on must not
# slip through over IPv6.
HOSTS6=(
    "canary.test 2001:db8:19::10"
    "dual.test 2001:db8:19:18::10"
)
# Telegram's data centres, measured as endpoints (IP:443), with no name.
TELEGRAM_DCS=(198.19.1.1 198.19.1.2 198.19.1.3 198.19.1.4)
# The site that really goes down (scenario "down"): its own web server.
SMALLSITE_IP=198.19.11.10

REQUIRED_TOOLS=(ip ss iptables ip6tables tc dnsmasq nginx caddy openssl flock setsid prlimit python3 faketime)
# The nginx modules the lab loads: headers-more sets the Server header of the CDN's
# challenge page (scenario cdn-challenge), which nginx alone always writes itself.
REQUIRED_NGINX_MODULES=(ngx_http_headers_more_filter_module)
# What provides all of them on Debian and Ubuntu.
PACKAGES="iproute2 iptables dnsmasq-base nginx libnginx-mod-http-headers-more-filter caddy openssl util-linux faketime python3 python3-pip"
# The Python modules of the QUIC censor (scenario quic-sni, scripts/testbed/quic-censor.py),
# from PyPI: NetfilterQueue builds against libnetfilter_queue's headers.
REQUIRED_PYTHON_MODULES=(netfilterqueue cryptography)
PIP_PACKAGES="NetfilterQueue cryptography"
PIP_BUILD_PACKAGES="libnetfilter-queue-dev python3-dev gcc"

# Bench mode (up --bench HOSTS, for scripts/bench.sh): synthetic sites under bench.test,
# one "ADDRESS NAME" line each, at addresses in BENCH_RANGE, served by an nginx of their
# own with a wildcard certificate for *.bench.test from the lab CA.
BENCH_ZONE=bench.test
BENCH_RANGE=198.19.64.0/18 # 198.19.64.0 - 198.19.127.255
BENCH_HOSTS=$STATE/bench/hosts
bench_mode() { [[ -f $BENCH_HOSTS ]]; }

# --- Helpers ----------------------------------------------------------------------

say() { printf '%s: %s\n' "$SELF" "$*"; }
die() {
    printf '%s: error: %s\n' "$SELF" "$*" >&2
    exit 1
}
# This machine cannot run the lab (not root, a tool or a kernel feature missing): exit
# code 4, which the test suite tells from a failure of the lab itself.
unfit() {
    printf '%s: error: %s\n' "$SELF" "$*" >&2
    exit 4
}
in_ns() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}
censor() { in_ns "$NS_CENSOR" "$@"; }

# The address of a lab name; with "local", its address in the probe's country.
addr_of() {
    local name=$1 view=${2:-world} entry
    for entry in "${HOSTS[@]}"; do
        read -r n a l <<<"$entry"
        if [[ $n == "$name" ]]; then
            if [[ $view == local && -n ${l:-} ]]; then echo "$l"; else echo "$a"; fi
            return 0
        fi
    done
    die "no lab host named $name"
}

# The IPv6 address of a lab name, if it has one.
addr6_of() {
    local name=$1 entry
    for entry in "${HOSTS6[@]}"; do
        read -r n a <<<"$entry"
        [[ $n == "$name" ]] && echo "$a" && return 0
    done
    return 0
}

# Every IPv6 address a web server of the internet listens on.
web_addresses6() {
    local entry
    for entry in "${HOSTS6[@]}"; do
        read -r _ a <<<"$entry"
        echo "$a"
    done
}

# Every address a web server of the internet listens on, but the small site's.
web_addresses() {
    local entry
    {
        for entry in "${HOSTS[@]}"; do
            read -r _ a l <<<"$entry"
            echo "$a"
            [[ -n ${l:-} ]] && echo "$l"
        done
        printf '%s\n' "${TELEGRAM_DCS[@]}"
    } | sort -u -t . -k1,1n -k2,2n -k3,3n -k4,4n | grep -vx "$SMALLSITE_IP"
}

require_root() {
    [[ $(id -u) -eq 0 ]] || unfit "must run as root: it creates network namespaces, links and firewall rules (try: sudo $0 ${COMMAND_LINE[*]})"
}

missing_tools() {
    local tool missing=() module
    for tool in "${REQUIRED_TOOLS[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if command -v nginx >/dev/null 2>&1; then
        for module in "${REQUIRED_NGINX_MODULES[@]}"; do
            [[ -f $(nginx_module "$module") ]] || missing+=("nginx module $module")
        done
    fi
    if command -v python3 >/dev/null 2>&1; then
        for module in "${REQUIRED_PYTHON_MODULES[@]}"; do
            python3 -c "import $module" 2>/dev/null || missing+=("python3 module $module")
        done
    fi
    echo "${missing[*]}"
}

# The file of an nginx dynamic module, in the modules directory nginx was built with.
nginx_module() {
    local dir
    dir=$(nginx -V 2>&1 | grep -o -- '--modules-path=[^ ]*' | cut -d= -f2)
    echo "${dir:-/usr/lib/nginx/modules}/$1.so"
}

require_tools() {
    local missing
    missing=$(missing_tools)
    [[ -z $missing ]] || unfit "missing tools: $missing (Debian/Ubuntu: apt-get install $PACKAGES $PIP_BUILD_PACKAGES; python3 -m pip install $PIP_PACKAGES)"
}

censorprobe_bin() {
    local bin=${CENSORPROBE:-}
    if [[ -z $bin ]]; then
        for bin in "$REPO/target/debug/censorprobe" "$REPO/target/release/censorprobe"; do
            [[ -x $bin ]] && break
        done
    fi
    [[ -x $bin ]] || die "no censorprobe binary: build it (cargo build) or set CENSORPROBE=/path/to/censorprobe"
    echo "$bin"
}

# The kernel features the scenarios need, tried in a throwaway namespace.
check_kernel() {
    local ns=cp-check out
    ip netns del "$ns" 2>/dev/null || true
    if ! out=$(ip netns add "$ns" 2>&1); then
        die "cannot create a network namespace ($out): this machine (or container) does not allow it"
    fi
    local probes=(
        "ip link add to-a type veth peer name to-b"
        "iptables -w -A FORWARD -p tcp -m string --string x --algo bm -j REJECT --reject-with tcp-reset"
        "iptables -w -t mangle -A PREROUTING -p udp -j TEE --gateway 198.18.255.1"
        "iptables -w -t nat -A PREROUTING -p tcp -j DNAT --to-destination 198.18.255.1:80"
        "iptables -w -t mangle -A PREROUTING -p tcp -m string --string x --algo bm -j CONNMARK --set-mark 0x20/0x20"
        "iptables -w -t mangle -A POSTROUTING -m connmark --mark 0x20/0x20 -j CLASSIFY --set-class 1:20"
        "iptables -w -t raw -A PREROUTING -p udp -m string --algo bm --hex-string |00001c0001| -j CT --zone 1"
        "iptables -w -t raw -A PREROUTING -m statistic --mode random --probability 0.15 -j DROP"
        "iptables -w -t mangle -A PREROUTING -p tcp -m recent --name cp-check --rdest --set -j DROP"
        "iptables -w -t mangle -A PREROUTING -m recent --name cp-check --rdest --rcheck --seconds 60 -j DROP"
        "iptables -w -t mangle -A PREROUTING -p tcp -m u32 --u32 0>>22&0x3C@12>>26&0x3C@0>>16=0x1603 -j CONNMARK --set-mark 0x40/0x40"
        "iptables -w -A FORWARD -m conntrack --ctstate NEW -m connlimit --connlimit-above 32 --connlimit-mask 0 -j DROP"
        "iptables -w -A FORWARD -p tcp -m string --string x --algo bm -m string --hex-string |fe0d| --algo bm -j DROP"
        "iptables -w -A FORWARD -p tcp -m connbytes --connbytes 16384: --connbytes-dir reply --connbytes-mode bytes -j DROP"
        "ip6tables -w -A FORWARD -d 2001:db8::1 -j DROP"
        "ip6tables -w -t nat -A PREROUTING -p udp --dport 443 -j REDIRECT --to-ports 8443"
        "iptables -w -A FORWARD -p udp --dport 443 -j NFQUEUE --queue-num 0 --queue-bypass"
        "python3 $LAB/quic-censor.py --check"
        "tc qdisc add dev to-a root handle 1: htb default 10"
        "tc class add dev to-a parent 1: classid 1:20 htb rate 1gbit"
        "tc qdisc add dev to-a parent 1:20 handle 20: tbf rate 1mbit burst 32kb latency 1s"
    )
    local p failed=""
    for p in "${probes[@]}"; do
        # shellcheck disable=SC2086 # each probe is a command line, split on purpose
        if ! out=$(in_ns "$ns" $p 2>&1); then
            failed="$p: $out"
            break
        fi
    done
    ip netns del "$ns"
    [[ -z $failed ]] || unfit "the kernel or iptables lacks a feature the scenarios need: $failed"
}

check() {
    require_root
    require_tools
    take_lock # cp-check must not meet another command's check, nor an up's teardown
    check_kernel
}

# --- Tear down --------------------------------------------------------------------

lab_namespaces() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^cp-' || true
}

# Ends every process of the lab: those in its namespaces (all started by this script).
kill_lab_processes() {
    local ns pids=()
    for ns in $(lab_namespaces); do
        mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$ns" 2>/dev/null || true)
    done
    ((${#pids[@]})) || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait_until 3 stopped "${pids[@]}" || kill -KILL "${pids[@]}" 2>/dev/null || true
}

teardown() {
    kill_lab_processes
    local ns
    for ns in $(lab_namespaces); do
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf /etc/netns/cp-*
    rmdir /etc/netns 2>/dev/null || true # only if nothing else uses it
    # The lab's links are made inside its namespaces and die with them; none is ever
    # in the host's namespace. Should one named cp-* be there all the same, it goes.
    local link
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^cp-' || true); do
        ip link del "$link" 2>/dev/null || true
    done
    if [[ -d $STATE ]]; then
        # Only ever remove a directory this script made.
        if [[ -f $STATE/.cp-testbed ]]; then
            rm -rf "$STATE"
        else
            say "warning: $STATE is not the testbed's directory; left in place"
        fi
    fi
}

down() {
    require_root
    take_lock
    teardown
    say "down: no cp- namespace, process or state left"
}

# Serialises the commands that change the lab. Everything the lab starts closes fd 9,
# so that no server holds the lock after the command that started it.
take_lock() {
    [[ -n ${LOCKED:-} ]] && return 0
    exec 9>"$LOCK"
    flock -w 120 9 || die "another testbed.sh holds $LOCK"
    LOCKED=1
}

# --- Building ---------------------------------------------------------------------

# A veth link between two namespaces, made directly inside them.
link() {
    local ns1=$1 if1=$2 ip1=$3 ns2=$4 if2=$5 ip2=$6
    ip link add "$if1" netns "$ns1" type veth peer name "$if2" netns "$ns2"
    ip -n "$ns1" addr add "$ip1" dev "$if1"
    ip -n "$ns2" addr add "$ip2" dev "$if2"
    ip -n "$ns1" link set "$if1" up
    ip -n "$ns2" link set "$if2" up
}

build_network() {
    local ns
    for ns in "${NAMESPACES[@]}"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        in_ns "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    done
    link "$NS_PROBE" to-censor "$PROBE_IP/24" "$NS_CENSOR" "$LAN_IF" "$RESOLVER_IP/24"
    link "$NS_CENSOR" to-net "$CENSOR_WAN_IP/24" "$NS_NET" to-censor "$NET_WAN_IP/24"
    link "$NS_NET" to-control "$NET_CTL_IP/24" "$NS_CONTROL" to-net "$CONTROL_IP/24"
    link "$NS_CENSOR" to-inject "$CENSOR_INJ_IP/24" "$NS_INJECT" to-censor "$INJECT_IP/24"

    # IPv6 on the same links (no duplicate address detection: usable at once).
    ip -n "$NS_PROBE" addr add "$PROBE_IP6/64" dev to-censor nodad
    ip -n "$NS_CENSOR" addr add "$RESOLVER_IP6/64" dev "$LAN_IF" nodad
    ip -n "$NS_CENSOR" addr add "$CENSOR_WAN_IP6/64" dev to-net nodad
    ip -n "$NS_NET" addr add "$NET_WAN_IP6/64" dev to-censor nodad
    ip -n "$NS_NET" addr add "$NET_CTL_IP6/64" dev to-control nodad
    ip -n "$NS_CONTROL" addr add "$CONTROL_IP6/64" dev to-net nodad

    # Routes: only the lab's range, never a default route.
    ip -n "$NS_PROBE" route add 198.18.0.0/15 via "$RESOLVER_IP"
    ip -n "$NS_CENSOR" route add 198.18.0.0/15 via "$NET_WAN_IP"
    ip -n "$NS_NET" route add "${PROBE_IP%.*}.0/24" via "$CENSOR_WAN_IP"
    ip -n "$NS_CONTROL" route add 198.18.0.0/15 via "$NET_CTL_IP"
    ip -n "$NS_INJECT" route add "${PROBE_IP%.*}.0/24" via "$CENSOR_INJ_IP"
    ip -n "$NS_PROBE" -6 route add "$LAB_PREFIX6" via "$RESOLVER_IP6"
    ip -n "$NS_CENSOR" -6 route add "$LAB_PREFIX6" via "$NET_WAN_IP6"
    ip -n "$NS_NET" -6 route add "${PROBE_IP6%::*}::/64" via "$CENSOR_WAN_IP6"
    ip -n "$NS_CONTROL" -6 route add "$LAB_PREFIX6" via "$NET_CTL_IP6"
    in_ns "$NS_CENSOR" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    in_ns "$NS_NET" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    # The injector answers as the ISP resolver: the censor must accept packets from
    # its own address arriving on that link, and forward them to the probe.
    ip -n "$NS_INJECT" addr add "$RESOLVER_IP/32" dev lo
    in_ns "$NS_CENSOR" sysctl -qw net.ipv4.conf.to-inject.accept_local=1

    # The internet's hosts live on its loopback.
    local a
    ip -n "$NS_NET" addr add "$AUTH_WORLD/32" dev lo
    ip -n "$NS_NET" addr add "$AUTH_LOCAL/32" dev lo
    ip -n "$NS_NET" addr add "$REFUSER_IP/32" dev lo
    ip -n "$NS_NET" addr add "$SMALLSITE_IP/32" dev lo
    ip -n "$NS_NET" addr add "$FORGED_IP/32" dev lo
    for a in $(web_addresses); do
        ip -n "$NS_NET" addr add "$a/32" dev lo
    done
    for a in $(web_addresses6); do
        ip -n "$NS_NET" addr add "$a/128" dev lo nodad
    done
    if bench_mode; then
        bench_addresses | sed 's|.*|addr add &/32 dev lo|' | ip -n "$NS_NET" -batch -
    fi

    # The probe's system resolver is the ISP's; the isolated host's has no route.
    mkdir -p "/etc/netns/$NS_PROBE" "/etc/netns/$NS_ISOLATED"
    echo "nameserver $RESOLVER_IP" >"/etc/netns/$NS_PROBE/resolv.conf"
    echo "nameserver 198.18.255.53" >"/etc/netns/$NS_ISOLATED/resolv.conf"
}

PKI_LOG=$STATE/log/pki.log

# issue CA_PREFIX OUT_PREFIX NAME... : a server certificate for the names.
issue() {
    local ca=$1 out=$2
    shift 2
    local san
    san=$(printf 'DNS:%s,' "$@")
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$out.key" -out "$out.csr" -subj "/CN=$1" 2>>"$PKI_LOG" || pki_failed
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" "subjectAltName=${san%,}" >"$out.ext"
    openssl x509 -req -in "$out.csr" -CA "$ca.pem" -CAkey "$ca.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days 30 -sha256 -extfile "$out.ext" \
        -out "$out.pem" 2>>"$PKI_LOG" || pki_failed
}

new_ca() {
    local out=$1 name=$2
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$out.key" -out "$out.pem" -days 30 -subj "$name" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>>"$PKI_LOG" || pki_failed
}

pki_failed() { die "openssl failed: $(tail -n 5 "$PKI_LOG")"; }

make_pki() {
    local d=$STATE/pki names=() entry
    mkdir -p "$d"
    chmod 700 "$d"
    for entry in "${HOSTS[@]}"; do
        read -r n _ <<<"$entry"
        names+=("$n")
    done
    new_ca "$d/ca" "/O=censorprobe testbed/CN=censorprobe testbed CA"
    issue "$d/ca" "$d/sites" "${names[@]}"
    # The censor's own CA, which no probe trusts: the interception certificates.
    new_ca "$d/rogue-ca" "/O=Ministry of Lab Security/CN=Lab Interception CA"
    issue "$d/rogue-ca" "$d/mitm" google.test www.google.test
    # A captive portal's own certificate, from the CA every probe trusts, valid for the
    # portal's name alone.
    issue "$d/ca" "$d/portal" portal.test
    if bench_mode; then
        issue "$d/ca" "$d/bench" "*.$BENCH_ZONE" "$BENCH_ZONE"
    fi
    cp "$d/ca.pem" "$STATE/ca.pem"
    chmod 644 "$STATE/ca.pem"
}

# --- Servers ----------------------------------------------------------------------

# nginx_conf NAME BODY [WORKERS CONNECTIONS [MODULE...]]: a whole nginx configuration
# with its own pid, logs and temp (one worker of 1024 connections unless told), loading
# the dynamic modules named.
nginx_conf() {
    local name=$1 body=$2 dir=$STATE/nginx/$1 workers=${3:-1} connections=${4:-1024}
    shift $(($# < 4 ? $# : 4))
    local files="" # descriptors: two per proxied connection, plus the listening sockets
    ((connections <= 1024)) || files="worker_rlimit_nofile $((connections * 2 + 4096));"
    local modules="" module
    for module in "$@"; do
        modules+="load_module $(nginx_module "$module");"$'\n'
    done
    mkdir -p "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
# Generated by scripts/testbed.sh; lives in $STATE and goes with "down".
${modules}worker_processes $workers;
$files
pid $STATE/run/nginx-$name.pid;
error_log $STATE/log/nginx-$name.log warn;
events { worker_connections $connections; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    sendfile on;
$body
}
EOF
}

start_nginx() {
    local ns=$1 name=$2 dir=$STATE/nginx/$2
    local log=$STATE/log/nginx-$name.log
    in_ns "$ns" nginx -p "$dir" -c "$dir/nginx.conf" -e "$log" </dev/null >>"$log.start" 2>&1 9>&- ||
        die "nginx $name did not start: $(tail -n 5 "$log" "$log.start")"
}

# wait_until SECONDS COMMAND...: runs COMMAND every 20 ms until it succeeds; fails if
# it has not within SECONDS.
wait_until() {
    local end=$((${EPOCHREALTIME/./} + $1 * 1000000))
    shift
    until "$@"; do
        ((${EPOCHREALTIME/./} < end)) || return 1
        sleep 0.02
    done
}

# Whether process $1 runs: a daemon's zombie, which only its reaper (PID 1, the
# machine's init, a container's runtime) clears, and which some clear only every second
# or two, has stopped.
running() {
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Za-z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $state && $state != [ZX] ]]
}

# Whether none of the processes given runs.
stopped() {
    local pid
    for pid in "$@"; do
        running "$pid" && return 1
    done
    return 0
}

stop_pidfile() {
    local file=$1 pid
    [[ -f $file ]] || return 0
    pid=$(cat "$file")
    if [[ $pid =~ ^[0-9]+$ ]] && running "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_until 5 stopped "$pid"; then
            # Gone only once it has exited: until then it holds its ports, and a server
            # started again at once on them fails (the control, after a slow drain).
            kill -KILL "$pid" 2>/dev/null || true
            wait_until 5 stopped "$pid" || true
        fi
    fi
    rm -f "$file"
}

# The page every site serves: its own name as title ($host is nginx's).
# shellcheck disable=SC2016
SITE_PAGE='default_type text/html; return 200 "<!doctype html><html><head><title>$host: a site of the censorprobe testbed</title></head><body><h1>$host</h1><p>This page is served by the testbed internet (scripts/testbed.sh).</p></body></html>\n";'

# The CDN's bot challenge (scenario cdn-challenge), as Cloudflare serves it: 403, its
# headers (headers-more: nginx would write its own Server), and the "Just a moment..."
# interstitial, whose script loads /cdn-cgi/challenge-platform/. $cf_ray is a ray id
# made of the request's id, as Cloudflare's are 16 hex digits and a colo.
# shellcheck disable=SC2016
CDN_CHALLENGE_PAGE='more_set_headers "Server: cloudflare" "cf-mitigated: challenge" "cf-ray: $cf_ray-LAB" "Content-Type: text/html; charset=UTF-8" "Cache-Control: private, max-age=0, no-store, no-cache, must-revalidate, post-check=0, pre-check=0" "Expires: Thu, 01 Jan 1970 00:00:01 GMT" "Cross-Origin-Opener-Policy: same-origin" "Referrer-Policy: same-origin" "X-Frame-Options: SAMEORIGIN" "X-Content-Type-Options: nosniff";
            return 403 "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title><meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\"><meta http-equiv=\"X-UA-Compatible\" content=\"IE=Edge\"><meta name=\"robots\" content=\"noindex,nofollow\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta http-equiv=\"refresh\" content=\"390\"></head><body class=\"no-js\"><div class=\"main-wrapper\" role=\"main\"><div class=\"main-content\"><h1 class=\"zone-name-title h1\">$host</h1><h2 class=\"h2\" id=\"challenge-running\">Verifying you are human. This may take a few seconds.</h2><noscript><div id=\"challenge-error-title\"><div class=\"h2\"><span id=\"challenge-error-text\">Enable JavaScript and cookies to continue</span></div></div></noscript></div></div><script>(function(){window._cf_chl_opt={cvId: \"3\",cZone: \"$host\",cType: \"managed\",cRay: \"$cf_ray\",cUPMDTk: \"\\/?__cf_chl_tk=$request_id\"};var cpo = document.createElement(\"script\");cpo.src = \"/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=$cf_ray\";document.getElementsByTagName(\"head\")[0].appendChild(cpo);}());</script><div class=\"footer\" role=\"contentinfo\"><div class=\"footer-inner\"><div class=\"text-center\" id=\"footer-text\">Ray ID: <code>$cf_ray</code></div><div class=\"text-center\">Performance &amp; security by Cloudflare</div></div></div></body></html>\n";'

write_web_servers() {
    local listens="" a
    # The CDN's edge for the probe's country has a server of its own, which serves the
    # challenge instead of the site while the flag file is there (cdn-challenge).
    local edge
    edge=$(addr_of cdn.test local)
    for a in $(web_addresses | grep -vx "$edge"); do
        listens+="        listen $a:80; listen $a:443 ssl;"$'\n'
    done
    for a in $(web_addresses6); do
        listens+="        listen [$a]:80; listen [$a]:443 ssl;"$'\n'
    done
    local tls="ssl_protocols TLSv1.2 TLSv1.3; ssl_certificate $STATE/pki/sites.pem; ssl_certificate_key $STATE/pki/sites.key;"
    mkdir -p "$STATE/www/media"
    # A large file (1 MiB, more than the 512 KiB the probe reads) for the throttling and
    # stall tests.
    head -c 1048576 /dev/urandom >"$STATE/www/media/large.jpg"
    # One of 48 KiB for the stall test: past a freeze at 16 KiB, and under the 64 KiB
    # from which a slow transfer is looked at for a throttle (so that loss alone leaves
    # it ok, as any small page).
    head -c 49152 /dev/urandom >"$STATE/www/media/page.jpg"
    chmod -R a+rX "$STATE/www"
    nginx_conf web "    server {
$listens        $tls
        location / { $SITE_PAGE }
        location /media/ { root $STATE/www; default_type image/jpeg; }
    }
    map \$request_id \$cf_ray { \"~^(?<ray>[0-9a-f]{16})\" \$ray; }
    server {
        listen $edge:80; listen $edge:443 ssl;
        $tls
        location / {
            if (-f $CDN_CHALLENGE) {
            $CDN_CHALLENGE_PAGE
            }
            $SITE_PAGE
        }
    }" 1 1024 ngx_http_headers_more_filter_module
    nginx_conf smallsite "    split_clients \$request_id \$overloaded { 25% 503; * 200; }
    server {
        listen $SMALLSITE_IP:80; listen $SMALLSITE_IP:443 ssl;
        $tls
        location / {
            set \$answer 200;
            if (-f $SITE_FLAKY) { set \$answer \$overloaded; }
            if (\$answer = 503) { return 503 '<!doctype html><html><head><title>503 Service Unavailable</title></head><body><h1>Service Unavailable</h1></body></html>\n'; }
            $SITE_PAGE
        }
    }"
    # The censor's servers: Iran's blockpage (OONI fingerprint: an iframe to
    # 10.10.34.34, served with 403), TLS interception with the rogue CA, and a captive
    # portal's login page (511 Network Authentication Required, RFC 6585), over plain
    # HTTP and over HTTPS with the portal's own certificate.
    nginx_conf censor "    server {
        listen $RESOLVER_IP:$PORTAL_PORT;
        location / {
            default_type text/html;
            return 511 '<!doctype html><html><head><title>CafeNet: log in to use the internet</title></head><body><form action=\"/login\" method=\"post\">Voucher <input name=\"voucher\"> <button>Connect</button></form></body></html>\n';
        }
    }
    server {
        listen $RESOLVER_IP:$BLOCKPAGE_PORT;
        location / {
            default_type text/html;
            return 403 '<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1256\"><title>M1-6
</title></head><body><iframe src=\"http://10.10.34.34?type=Invalid Site&policy=MainPolicy \" style=\"width: 100%; height: 100%\" scrolling=\"no\" marginwidth=\"0\" marginheight=\"0\" frameborder=\"0\" vspace=\"0\" hspace=\"0\"></iframe></body></html>\n';
        }
    }
    server {
        listen $RESOLVER_IP:$MITM_PORT ssl; listen [$RESOLVER_IP6]:$MITM_PORT ssl;
        ssl_certificate $STATE/pki/mitm.pem; ssl_certificate_key $STATE/pki/mitm.key;
        location / { $SITE_PAGE }
    }
    server {
        listen $RESOLVER_IP:$PORTAL_TLS_PORT ssl; listen [$RESOLVER_IP6]:$PORTAL_TLS_PORT ssl;
        ssl_certificate $STATE/pki/portal.pem; ssl_certificate_key $STATE/pki/portal.key;
        location / {
            default_type text/html;
            return 511 '<!doctype html><html><head><title>CafeNet: log in to use the internet</title></head><body><form action=\"/login\" method=\"post\">Voucher <input name=\"voucher\"> <button>Connect</button></form></body></html>\n';
        }
    }"
    bench_mode && write_bench_server
    write_http3_server
    return 0
}

# HTTP/3: Caddy serves the sites over QUIC (nginx 1.22 cannot). It listens on
# HTTP3_PORT (TCP, unused, and UDP), and UDP 443 to every web address is redirected to
# it, so that QUIC goes to the same address and port as TCP+TLS does.
HTTP3_PORT=8443
write_http3_server() {
    mkdir -p "$STATE/caddy"
    cat >"$STATE/caddy/Caddyfile" <<EOF
# Generated by scripts/testbed.sh; lives in $STATE and goes with "down".
{
    admin off
    auto_https off
    servers {
        protocols h1 h2 h3
    }
}
https://:$HTTP3_PORT {
    tls $STATE/pki/sites.pem $STATE/pki/sites.key
    root * $STATE/www
    file_server
}
EOF
}

start_http3_server() {
    local log=$STATE/log/caddy.log
    in_ns "$NS_NET" env HOME="$STATE/caddy" XDG_DATA_HOME="$STATE/caddy" XDG_CONFIG_HOME="$STATE/caddy" \
        setsid caddy run --config "$STATE/caddy/Caddyfile" --adapter caddyfile \
        --pidfile "$STATE/run/caddy.pid" </dev/null >>"$log" 2>&1 9>&- &
    wait_until 5 udp_listening "$NS_NET" "$HTTP3_PORT" || die "caddy did not start: $(tail -n 5 "$log")"
}

# Whether a UDP port is bound inside a namespace.
udp_listening() {
    in_ns "$1" ss -Hlun "sport = :$2" | grep -q .
}

# UDP 443 to every web address, to the HTTP/3 server (part of the honest internet,
# made again after each scenario's rules are flushed).
redirect_http3() {
    local a
    for a in $(web_addresses); do
        internet iptables -w -t nat -A PREROUTING -d "$a" -p udp --dport 443 \
            -j REDIRECT --to-ports "$HTTP3_PORT"
    done
    for a in $(web_addresses6); do
        internet ip6tables -w -t nat -A PREROUTING -d "$a" -p udp --dport 443 \
            -j REDIRECT --to-ports "$HTTP3_PORT"
    done
}

# Bench mode: every bench address on 80 and 443, one wildcard certificate. As many
# workers as cores and room for thousands of connections: the sites of a benchmark
# stand for many servers of the internet, and must not be what it measures.
write_bench_server() {
    local listens
    listens=$(bench_addresses | awk '{printf "        listen %s:80; listen %s:443 ssl;\n", $1, $1}')
    nginx_conf bench "    server {
$listens
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate $STATE/pki/bench.pem; ssl_certificate_key $STATE/pki/bench.key;
        location / { $SITE_PAGE }
    }" auto 16384
}

# The distinct addresses of the bench hosts.
bench_addresses() { awk '{print $1}' "$BENCH_HOSTS" | sort -u; }

# Checks a bench hosts file ("ADDRESS NAME" lines, addresses in BENCH_RANGE, names
# under BENCH_ZONE) and takes it into the lab's state.
take_bench_hosts() {
    local file=$1 bad
    [[ -f $file && -r $file ]] || die "--bench $file: no such file"
    bad=$(awk -v zone=".$BENCH_ZONE" '
        NF == 0 || /^#/ { next }
        {
            n = split($1, o, ".")
            ok = NF == 2 && n == 4 && o[1] == 198 && o[2] == 19 && o[3] ~ /^[0-9]+$/ &&
                o[3] >= 64 && o[3] <= 127 && o[4] ~ /^[0-9]+$/ && o[4] >= 1 && o[4] <= 254 &&
                $2 ~ /^[a-z0-9-]+(\.[a-z0-9-]+)*$/ && substr($2, length($2) - length(zone) + 1) == zone
            if (!ok) { print FILENAME ":" NR ": " $0; exit }
        }' "$file")
    [[ -z $bad ]] || die "--bench: want \"ADDRESS NAME\" lines, addresses in $BENCH_RANGE (.1-.254), names under $BENCH_ZONE: $bad"
    mkdir -p "$(dirname "$BENCH_HOSTS")"
    grep -Ev '^(#|[[:space:]]*$)' "$file" >"$BENCH_HOSTS"
    [[ -s $BENCH_HOSTS ]] || die "--bench $file: no hosts"
}

# dnsmasq_conf NAME LISTEN LINES...: a dnsmasq that reads nothing of the host's.
dnsmasq_conf() {
    local name=$1 listen=$2
    shift 2
    mkdir -p "$STATE/dns"
    {
        echo "# Generated by scripts/testbed.sh."
        echo "listen-address=$listen"
        echo "bind-interfaces"
        echo "no-resolv"
        echo "no-hosts"
        echo "no-poll"
        # Logging every query costs the lab's resolvers more than answering, at the
        # rates of a benchmark: bench mode logs only errors.
        bench_mode || echo "log-queries"
        echo "user=root"
        echo "pid-file=$STATE/run/dnsmasq-$name.pid"
        echo "log-facility=$STATE/log/dnsmasq-$name.log"
        printf '%s\n' "$@"
    } >"$STATE/dns/$name.conf"
}

start_dnsmasq() {
    local ns=$1 name=$2
    in_ns "$ns" dnsmasq --conf-file="$STATE/dns/$name.conf" </dev/null >>"$STATE/log/dnsmasq-$name.log" 2>&1 9>&- ||
        die "dnsmasq $name did not start: $(tail -n 5 "$STATE/log/dnsmasq-$name.log")"
}

# The authoritative zone of the lab's internet, in one view.
zone() {
    local view=$1 entry a6
    echo "local=/test/"
    for entry in "${HOSTS[@]}"; do
        read -r n _ <<<"$entry"
        a6=$(addr6_of "$n")
        echo "host-record=$n,$(addr_of "$n" "$view")${a6:+,$a6}"
    done
}

write_dns() {
    mapfile -t world < <(zone world)
    mapfile -t local_view < <(zone local)
    if bench_mode; then
        world+=("addn-hosts=$BENCH_HOSTS")
        local_view+=("addn-hosts=$BENCH_HOSTS")
    fi
    dnsmasq_conf auth-world "$AUTH_WORLD" "${world[@]}"
    dnsmasq_conf auth-local "$AUTH_LOCAL" "${local_view[@]}"
    # The injector knows one lie, for facebook's names; it only ever sees the queries
    # the censor copies to it (scenario dns-injection).
    dnsmasq_conf injector "$RESOLVER_IP" "address=/facebook.test/$FORGED_IP"
    # The refuser has no upstream and no zone: dnsmasq answers every query REFUSED. It
    # only ever sees the queries a scenario redirects to it (aaaa-broken).
    dnsmasq_conf refuser "$REFUSER_IP"
    write_isp_dns
}

# The ISP resolver: asks the in-country view, never caches (so that a scenario switch
# takes effect at once), plus the lines scenarios add.
write_isp_dns() {
    local extra=()
    [[ -f $STATE/isp-scenario.conf ]] && mapfile -t extra <"$STATE/isp-scenario.conf"
    # dnsmasq forwards at most 150 queries at once by default and drops the rest; an
    # ISP's resolver takes a probe's burst (the probe keeps up to 4 x --concurrency
    # queries in flight).
    bench_mode && extra+=("dns-forward-max=4096")
    # No cache, unless a scenario asks for one (dnsmasq validates DNSSEC only with a
    # cache; dnsmasq refuses a repeated cache-size).
    local cache=cache-size=0 line lines=()
    for line in "${extra[@]}"; do
        if [[ $line == cache-size=* ]]; then cache=$line; else lines+=("$line"); fi
    done
    dnsmasq_conf isp "$RESOLVER_IP" "server=$AUTH_LOCAL" "$cache" "${lines[@]}"
}

# start_control [FILES]: the control server; with FILES, its limit of open files (both
# soft and hard: scenario control-starved), which $STATE/run/control.nofile records.
start_control() {
    local files=${1:-} bin limit=()
    bin=$(censorprobe_bin)
    rm -f "$STATE/run/control.nofile"
    if [[ -n $files ]]; then
        limit=(prlimit "--nofile=$files:$files")
        echo "$files" >"$STATE/run/control.nofile"
    fi
    # Its own session, its output to a file: it outlives this script.
    in_ns "$NS_CONTROL" setsid "${limit[@]}" "$bin" control serve --listen "$CONTROL_IP:$CONTROL_PORT" \
        --resolver "udp://$AUTH_WORLD:53" --treat-as-public 198.18.0.0/15 --treat-as-public "$LAB_PREFIX6" \
        --ca-file "$STATE/ca.pem" --timeout 3 --max-in-flight 128 \
        </dev/null >"$STATE/log/control.log" 2>&1 9>&- &
    wait_until 10 grep -qs '^listening on' "$STATE/log/control.log" ||
        die "the control server did not start: $(tail -n 5 "$STATE/log/control.log")"
    # The one running there: the control stopped before it may linger as a zombie
    # until its reaper clears it, with a lower pid, and would be stopped in its place.
    local pid
    for pid in $(ip netns pids "$NS_CONTROL"); do
        running "$pid" && echo "$pid"
    done | tail -n 1 >"$STATE/run/control.pid"
}

# Waits until a TCP port answers from inside a namespace.
wait_tcp() {
    local ns=$1 address=$2 port=$3
    wait_until 5 in_ns "$ns" timeout 1 bash -c "exec 3<>/dev/tcp/$address/$port" 2>/dev/null ||
        die "$address:$port does not answer from $ns"
}

# On any failure of up: leave nothing half-built behind.
up_failed() {
    local rc=$?
    trap - EXIT
    if ((rc != 0)); then
        say "up failed; tearing the half-built lab down"
        teardown
    fi
    exit "$rc"
}

up() {
    local bench=""
    while (($#)); do
        case $1 in
        --bench)
            (($# >= 2)) || die "usage: $SELF up [--bench HOSTS]"
            bench=$2
            shift 2
            ;;
        *) die "usage: $SELF up [--bench HOSTS]" ;;
        esac
    done
    require_root
    take_lock
    check
    local bin
    bin=$(censorprobe_bin)
    if [[ -n $bench ]]; then
        # Read before teardown, which removes the state directory it may lie in.
        [[ -f $bench ]] || die "--bench $bench: no such file"
        bench=$(cat "$bench")
    fi
    teardown
    trap up_failed EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$STATE/run" "$STATE/log"
    touch "$STATE/.cp-testbed"
    chmod 755 "$STATE"
    if [[ -n $bench ]]; then
        printf '%s\n' "$bench" >"$STATE/bench-hosts.given"
        take_bench_hosts "$STATE/bench-hosts.given"
    fi
    build_network
    make_pki
    write_web_servers
    write_dns
    start_nginx "$NS_NET" web
    start_nginx "$NS_NET" smallsite
    start_nginx "$NS_CENSOR" censor
    bench_mode && start_nginx "$NS_NET" bench
    start_http3_server
    start_dnsmasq "$NS_NET" auth-world
    start_dnsmasq "$NS_NET" auth-local
    start_dnsmasq "$NS_INJECT" injector
    start_dnsmasq "$NS_NET" refuser
    start_dnsmasq "$NS_CENSOR" isp
    start_control
    apply_scenarios none
    # The paths the probe needs, tried from the probe.
    wait_tcp "$NS_PROBE" "$(addr_of canary.test)" 443
    wait_tcp "$NS_PROBE" "$CONTROL_IP" "$CONTROL_PORT"
    if bench_mode; then
        wait_tcp "$NS_PROBE" "$(head -n 1 "$BENCH_HOSTS" | awk '{print $1}')" 443
    fi
    trap - EXIT INT TERM
    say "up: probe $PROBE_IP in $NS_PROBE, resolver $RESOLVER_IP, control $CONTROL_URL ($bin)"
    say "lab CA: $STATE/ca.pem; targets: $LAB/targets.toml; scenario: none"
    bench_mode && say "bench: $(wc -l <"$BENCH_HOSTS") names under $BENCH_ZONE on $(bench_addresses | wc -l) addresses"
    say "try: $0 scenario dns-hijack && $0 probe"
}

# --- Scenarios --------------------------------------------------------------------
#
# A scenario is scripts/testbed/scenarios/NAME.sh, with its entry in the scenario
# catalog, src/lab/scenarios.toml (what it does, what the probe must say of each target;
# a unit test keeps the two in step). Its file is sourced with these helpers at hand:
#   censor CMD...         run CMD in the censor's namespace (iptables, tc)
#   internet CMD...       run CMD in the internet's namespace (iptables), in front of
#                         its servers: for faults the control sees too
#   isp_dns LINE          add a dnsmasq line to the ISP resolver's configuration
#   throttle SNI RATE     shape what comes back to the probe on TLS connections whose
#                         ClientHello names SNI to RATE (tc tbf)
#   slow_link DOWN UP     make the probe's link carry DOWN kbit/s toward it and UP from it
#   stop_server NAME      stop one of the internet's web servers (smallsite)
#   starve_control FILES  restart the control server with at most FILES open files
#   cdn_challenge         make the CDN's edge for the probe's country serve its challenge
#   site_flaky            make the small site answer one request in four with 503
#   probe_clock OFFSET    run the probe with its clock OFFSET off the lab's (faketime's
#                         -f form: +60d), as a device without a battery-backed clock is
#   quic_censor QUEUE NAME...  start the QUIC censor on NFQUEUE QUEUE: it drops the QUIC
#                         flows whose Initial names NAME or a subdomain (the scenario
#                         adds the rule that queues packets to it)
#   relay_resolver ARG... answer every UDP query the probe sends the ISP resolver with
#                         each --upstream resolver's answer, --delay LOW HIGH seconds
#                         late, cut short for each --truncate NAME, --late-by LOW HIGH
#                         seconds late for each --late NAME (the arguments of
#                         scripts/testbed/dns-relay.py), until the next scenario switch
#   outage FIRST DOWN UP  cut the probe's link off for DOWN seconds every DOWN + UP,
#                         the first cut FIRST seconds on, until the next scenario switch
#   include NAME...       apply other scenarios too
#   addr_of NAME          the address of a lab name
# and the address plan's variables ($LAN_IF, $RESOLVER_IP, $TELEGRAM_DCS, ...).
# Whatever they do, apply_scenarios undoes before the next scenarios.

internet() { in_ns "$NS_NET" "$@"; }

isp_dns() { printf '%s\n' "$@" >>"$STATE/isp-scenario.conf"; }

# The LAN link's shaping toward the probe (htb): class 1:10 for every packet, 1:20 for
# the throttled connections; each at the link's rate, 10 Gbit/s unless slow_link.
lan_htb() {
    censor tc qdisc show dev "$LAN_IF" | grep -q 'htb 1:' && return
    censor tc qdisc add dev "$LAN_IF" root handle 1: htb default 10 r2q 100000
    censor tc class add dev "$LAN_IF" parent 1: classid 1:10 htb rate 10gbit
    censor tc class add dev "$LAN_IF" parent 1: classid 1:20 htb rate 10gbit
}

# The connection mark of the throttled connections, and their tc class on the LAN link.
THROTTLE_MARK=0x20
throttle() {
    local sni=$1 rate=$2
    lan_htb
    if ! censor tc qdisc show dev "$LAN_IF" | grep -q 'tbf 20:'; then
        censor tc qdisc add dev "$LAN_IF" parent 1:20 handle 20: tbf rate "$rate" burst 32kb latency 1s
        # Every packet to the probe of a marked connection, forwarded or the censor's own.
        censor iptables -w -t mangle -A POSTROUTING -o "$LAN_IF" \
            -m connmark --mark "$THROTTLE_MARK/$THROTTLE_MARK" -j CLASSIFY --set-class 1:20
    fi
    # The ClientHello marks its connection; the mark stays with the connection's
    # conntrack entry, so the server's replies carry it.
    censor iptables -w -t mangle -A PREROUTING -i "$LAN_IF" -p tcp --dport 443 \
        -m string --algo bm --string "$sni" -j CONNMARK --set-mark "$THROTTLE_MARK/$THROTTLE_MARK"
}

# slow_link DOWN UP: the probe's link carries DOWN kbit/s toward it and UP kbit/s from
# it, each behind a queue of a second at that rate (a congested link's buffers).
slow_link() {
    local down=$1 up=$2 class
    lan_htb
    for class in 1:10 1:20; do
        censor tc class change dev "$LAN_IF" parent 1: classid "$class" htb rate "${down}kbit" ceil "${down}kbit" quantum 1514
    done
    censor tc qdisc add dev "$LAN_IF" parent 1:10 handle 10: bfifo limit $((down * 1000 / 8))
    in_ns "$NS_PROBE" tc qdisc replace dev to-censor root tbf rate "${up}kbit" burst 16kb latency 1s
}

starve_control() {
    stop_pidfile "$STATE/run/control.pid"
    start_control "$1"
}

cdn_challenge() { : >"$CDN_CHALLENGE"; }

site_flaky() { : >"$SITE_FLAKY"; }

probe_clock() { printf '%s\n' "$1" >"$PROBE_CLOCK"; }

# The QUIC censor (scripts/testbed/quic-censor.py): a process of its own in the censor's
# namespace, which reads what iptables queues to it, until the next scenario switch.
# Its log has one line per verdict. The pid file is written once the queue is bound:
# until then a rule with --queue-bypass lets packets through uncensored.
QUIC_CENSOR_PID=$STATE/run/quic-censor.pid
quic_censor() {
    local queue=$1 log=$STATE/log/quic-censor.log
    shift
    rm -f "$QUIC_CENSOR_PID"
    in_ns "$NS_CENSOR" setsid python3 "$LAB/quic-censor.py" --queue "$queue" --log "$log" \
        --pidfile "$QUIC_CENSOR_PID" "$@" </dev/null >>"$log.out" 2>&1 9>&- &
    wait_until 10 test -s "$QUIC_CENSOR_PID" && return 0
    die "the QUIC censor did not start: $(tail -n 5 "$log.out")"
}

# The intercepting middlebox (scripts/testbed/interceptor.py): a process of its own in the
# censor's namespace, which resets what iptables redirects to it, until the next
# scenario switch. The pid file is written once its port is bound.
INTERCEPTOR_PID=$STATE/run/interceptor.pid
interceptor() {
    local port=$1 log=$STATE/log/interceptor.log
    rm -f "$INTERCEPTOR_PID"
    in_ns "$NS_CENSOR" setsid python3 "$LAB/interceptor.py" --port "$port" \
        --pidfile "$INTERCEPTOR_PID" </dev/null >>"$log" 2>&1 9>&- &
    wait_until 10 test -s "$INTERCEPTOR_PID" && return 0
    die "the interceptor did not start: $(tail -n 5 "$log")"
}

# The relaying resolver (scripts/testbed/dns-relay.py, which its arguments are given
# to): a process of its own in the censor's namespace, on an address of its own there
# (RELAY_RESOLVER_IP, on lo, outside the probe's LAN), which asks each upstream every
# UDP query it is sent and passes on each answer, late, or cut short, until the next
# scenario switch, which stops it and takes its address away. The probe's UDP queries to the ISP resolver are sent to it
# by DNAT, port 53 kept, so that the censor's rules on that port still see them. The pid
# file is written once its port is bound.
RELAY_RESOLVER_PID=$STATE/run/dns-relay.pid
RELAY_RESOLVER_IP=198.18.4.53
relay_resolver() {
    local log=$STATE/log/dns-relay.log
    rm -f "$RELAY_RESOLVER_PID"
    censor ip addr replace "$RELAY_RESOLVER_IP/32" dev lo
    in_ns "$NS_CENSOR" setsid python3 "$LAB/dns-relay.py" --listen "$RELAY_RESOLVER_IP" \
        "$@" --pidfile "$RELAY_RESOLVER_PID" </dev/null >>"$log" 2>&1 9>&- &
    wait_until 10 test -s "$RELAY_RESOLVER_PID" ||
        die "the relaying resolver did not start: $(tail -n 5 "$log")"
    censor iptables -w -t nat -A PREROUTING -i "$LAN_IF" -p udp -d "$RESOLVER_IP" --dport 53 \
        -j DNAT --to-destination "$RELAY_RESOLVER_IP"
}

# The link's outages: a loop of its own in the censor's namespace, which drops every
# packet from and to the probe (DNS to the router's resolver included) for DOWN
# seconds, lets them pass for UP, and so on, until the next scenario switch, which
# stops it before it flushes the tables (a cut left in place goes with them).
OUTAGE_PID=$STATE/run/outage.pid
outage() {
    local first=$1 down=$2 up=$3
    rm -f "$OUTAGE_PID"
    # shellcheck disable=SC2016 # expanded by the loop's own shell
    in_ns "$NS_CENSOR" env LAN_IF="$LAN_IF" PIDFILE="$OUTAGE_PID" FIRST="$first" UP="$up" DOWN="$down" \
        setsid bash -c '
        cut() {
            iptables -w -t raw "$1" PREROUTING -i "$LAN_IF" -j DROP
            iptables -w -t mangle "$1" POSTROUTING -o "$LAN_IF" -j DROP
            ip6tables -w -t raw "$1" PREROUTING -i "$LAN_IF" -j DROP
            ip6tables -w -t mangle "$1" POSTROUTING -o "$LAN_IF" -j DROP
        }
        # Stopped between two commands, never in the middle of a cut: an iptables
        # left running would add its DROP after the next scenario flushed the tables.
        # Each sleep is waited for, so that the signal is taken at once.
        trap "exit 0" TERM
        pause() { sleep "$1" & wait $!; }
        echo $$ >"$PIDFILE"
        pause "$FIRST"
        while :; do
            cut -I
            pause "$DOWN"
            cut -D
            pause "$UP"
        done' </dev/null >>"$STATE/log/outage.log" 2>&1 9>&- &
    wait_until 10 test -s "$OUTAGE_PID" && return 0
    die "the outage loop did not start: $(tail -n 5 "$STATE/log/outage.log")"
}

stop_server() {
    local name=$1
    stop_pidfile "$STATE/run/nginx-$name.pid"
}

scenario_file() { echo "$LAB/scenarios/$1.sh"; }

scenario_names() {
    local f
    for f in "$LAB"/scenarios/*.sh; do
        basename "$f" .sh
    done
}

declare -A APPLIED=()
include() {
    local name file
    for name in "$@"; do
        [[ -n ${APPLIED[$name]:-} ]] && continue
        file=$(scenario_file "$name")
        [[ -f $file ]] || die "no scenario named $name (see: $SELF scenarios)"
        APPLIED[$name]=1
        # shellcheck disable=SC1090 # scenarios are chosen at run time
        source "$file"
    done
}

# Back to an honest network, then the named scenarios.
apply_scenarios() {
    local name
    for name in "$@"; do
        [[ -f $(scenario_file "$name") ]] || die "no scenario named $name; scenarios: $(scenario_names | tr '\n' ' ')"
    done
    # The outage loop first: a cut it made after the flush would stay.
    stop_pidfile "$OUTAGE_PID"
    local table
    for table in filter nat mangle raw; do
        censor iptables -w -t "$table" -F
        internet iptables -w -t "$table" -F
        censor ip6tables -w -t "$table" -F
        internet ip6tables -w -t "$table" -F
    done
    censor tc qdisc del dev "$LAN_IF" root 2>/dev/null || true
    in_ns "$NS_PROBE" tc qdisc del dev to-censor root 2>/dev/null || true
    : >"$STATE/isp-scenario.conf"
    # The internet and the control as they are without a scenario: the small site up,
    # the sites' HTTP/3, the CDN's edge and the small site serving their pages, the
    # control with the open files it asks for; no QUIC censor, no interceptor, no relaying
    # resolver.
    [[ -f $STATE/run/nginx-smallsite.pid ]] || start_nginx "$NS_NET" smallsite
    redirect_http3
    stop_pidfile "$QUIC_CENSOR_PID"
    stop_pidfile "$INTERCEPTOR_PID"
    stop_pidfile "$RELAY_RESOLVER_PID"
    censor ip addr del "$RELAY_RESOLVER_IP/32" dev lo 2>/dev/null || true
    rm -f "$CDN_CHALLENGE" "$SITE_FLAKY" "$PROBE_CLOCK"
    if [[ -f $STATE/run/control.nofile ]]; then
        stop_pidfile "$STATE/run/control.pid"
        start_control
    fi
    APPLIED=()
    include "$@"
    write_isp_dns
    stop_pidfile "$STATE/run/dnsmasq-isp.pid"
    start_dnsmasq "$NS_CENSOR" isp
    printf '%s\n' "$@" >"$STATE/scenarios"
}

scenario() {
    require_root
    (($#)) || die "usage: $SELF scenario NAME... (see: $SELF scenarios)"
    [[ -f $STATE/.cp-testbed ]] || die "the lab is not up: run $SELF up first"
    take_lock
    apply_scenarios "$@"
    say "scenario: $*"
}

scenarios() {
    local name
    for name in $(scenario_names); do
        # The scenario's leading comment says what it does and what to expect.
        echo "$name"
        sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}/    /p}' "$(scenario_file "$name")"
    done
}

# --- Status, and running the probe ------------------------------------------------

status() {
    local ns missing=0 present=0
    for ns in "${NAMESPACES[@]}"; do
        if ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$ns"; then
            present=$((present + 1))
            local procs
            # shellcheck disable=SC2016 # $0 is for the inner sh
            procs=$(ip netns pids "$ns" 2>/dev/null | xargs -r -n1 sh -c 'cat /proc/$0/comm 2>/dev/null' | sort | uniq -c | awk '{printf "%s%s", sep, $2 "×" $1; sep=", "}')
            printf '%-12s up    %s\n' "$ns" "${procs:-no process}"
        else
            missing=$((missing + 1))
            printf '%-12s down\n' "$ns"
        fi
    done
    if ((present == 0)); then
        echo "the lab is down"
        return 3
    fi
    [[ -f $STATE/scenarios ]] && echo "scenarios: $(tr '\n' ' ' <"$STATE/scenarios")"
    echo "control: $CONTROL_URL   lab CA: $STATE/ca.pem   state: $STATE"
    [[ -f $STATE/run/control.nofile ]] && echo "control: at most $(cat "$STATE/run/control.nofile") open files (control-starved)"
    bench_mode && echo "bench: $(wc -l <"$BENCH_HOSTS") names under $BENCH_ZONE on $(bench_addresses | wc -l) addresses ($BENCH_HOSTS)"
    local default
    default=$(for ns in "${NAMESPACES[@]}"; do ip -n "$ns" route show default 2>/dev/null; done)
    [[ -z $default ]] || echo "warning: a default route exists in the lab: $default"
    ((missing == 0)) || return 1
}

probe() {
    require_root
    [[ -f $STATE/.cp-testbed ]] || die "the lab is not up: run $SELF up first"
    local bin clock=()
    bin=$(censorprobe_bin)
    [[ -s $PROBE_CLOCK ]] && clock=(faketime -f "$(cat "$PROBE_CLOCK")")
    exec ip netns exec "$NS_PROBE" "${clock[@]}" "$bin" run --targets "$LAB/targets.toml" \
        --control "$CONTROL_URL" --ca-file "$STATE/ca.pem" "$@"
}

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

main() {
    COMMAND_LINE=("$@")
    local command=${1:-}
    (($#)) && shift
    case $command in
    up) up "$@" ;;
    down) down "$@" ;;
    status) status ;;
    scenario) scenario "$@" ;;
    scenarios) scenarios ;;
    probe) probe "$@" ;;
    check) check && say "check: this machine can run the lab" ;;
    *) usage ;;
    esac
}

main "$@"
