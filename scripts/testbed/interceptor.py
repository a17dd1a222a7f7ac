#!/usr/bin/env python3
"""An intercepting middlebox for the testbed (scenario intercept-reset): what a captive
portal or a transparent proxy in front of the probe does to every flow.

    interceptor.py --port N --pidfile FILE

Accepts every TCP connection that iptables redirects to PORT (any address, IPv4 and
IPv6), so that the probe's connect succeeds whatever the address, waits for the first
bytes the probe sends (a ClientHello, a request), and tears the connection down with a
reset. The pid file is written once the port is bound.
"""

import argparse
import os
import socket
import struct
import threading

# How long a connection may stay silent before it is torn down anyway.
IDLE_SECONDS = 10


def tear_down(connection: socket.socket) -> None:
    """Reads the first bytes, then closes with a reset (no lingering: SO_LINGER 0)."""
    connection.settimeout(IDLE_SECONDS)
    try:
        connection.recv(1)
    except OSError:
        pass
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pidfile", required=True)
    args = parser.parse_args()
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("::", args.port))
    listener.listen(4096)
    with open(args.pidfile, "w", encoding="ascii") as pidfile:
        pidfile.write(f"{os.getpid()}\n")
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=tear_down, args=(connection,), daemon=True).start()


if __name__ == "__main__":
    main()
