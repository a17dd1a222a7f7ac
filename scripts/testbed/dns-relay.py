#!/usr/bin/env python3
"""A relaying resolver for the testbed: one that asks other resolvers and passes on
every answer, late or not (scenarios resolver-slow, resolver-relay, resolver-truncating
and resolver-uncached).

    dns-relay.py --listen ADDR --upstream ADDR [--upstream ADDR ...] --delay LOW HIGH
                 [--truncate NAME ...] [--late NAME ... --late-by LOW HIGH] --pidfile FILE

Takes every UDP query that iptables sends to ADDR port 53, asks each resolver at an
UPSTREAM address, port 53, the same, and sends each one's answer back after a delay
drawn at random between LOW and HIGH seconds, each copy of a query on its own. With one
upstream and a delay of seconds, it is an overloaded or far-away resolver; with two and
none, a home router that asks both of its upstream resolvers and passes on both answers.
The answers for each --truncate NAME are cut short as a resolver cuts an answer too big
for a datagram: the TC flag set, the question kept, every record left out (a stub asks
again over TCP, which goes to the upstream itself). The answers for each --late NAME
are sent after a delay drawn between the LOW and HIGH of --late-by instead, as by a
resolver whose recursion for those names is slow. The pid file is written once the
port is bound.
"""

import argparse
import os
import random
import socket
import threading
import time

# How long to wait for an upstream resolver's answer.
UPSTREAM_SECONDS = 5


def question_end(message: bytes) -> int:
    """Where the (one) question of a DNS message ends: its name's labels, then type and
    class."""
    at = 12
    while at < len(message) and message[at] != 0:
        at += 1 + message[at]
    return at + 1 + 4


def question_name(message: bytes) -> str:
    """The name the (one) question asks about, in lower case, without the final dot."""
    labels, at = [], 12
    while at < len(message) and message[at] != 0:
        labels.append(message[at + 1 : at + 1 + message[at]].decode("ascii", "replace"))
        at += 1 + message[at]
    return ".".join(labels).lower()


def truncated(answer: bytes) -> bytes:
    """`answer` with the TC flag set and nothing but its header and question."""
    flags = int.from_bytes(answer[2:4], "big") | 0x0200
    counts = answer[4:6] + bytes(6)
    return answer[:2] + flags.to_bytes(2, "big") + counts + answer[12 : question_end(answer)]


def relay(
    server: socket.socket,
    query: bytes,
    client,
    upstream: str,
    delay: tuple,
    truncate: bool,
) -> None:
    """Asks `upstream`, then answers `client` after the delay, cut short if `truncate`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as asking:
        asking.settimeout(UPSTREAM_SECONDS)
        try:
            asking.sendto(query, (upstream, 53))
            answer, _ = asking.recvfrom(65535)
        except OSError:
            return
    time.sleep(random.uniform(*delay))
    server.sendto(truncated(answer) if truncate else answer, client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--upstream", required=True, action="append")
    parser.add_argument("--delay", type=float, nargs=2, required=True, metavar=("LOW", "HIGH"))
    parser.add_argument("--truncate", action="append", default=[], metavar="NAME")
    parser.add_argument("--late", action="append", default=[], metavar="NAME")
    parser.add_argument("--late-by", type=float, nargs=2, default=(0, 0), metavar=("LOW", "HIGH"))
    parser.add_argument("--pidfile", required=True)
    args = parser.parse_args()
    cut = {name.lower().rstrip(".") for name in args.truncate}
    late = {name.lower().rstrip(".") for name in args.late}
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((args.listen, 53))
    with open(args.pidfile, "w", encoding="ascii") as pidfile:
        pidfile.write(f"{os.getpid()}\n")
    while True:
        query, client = server.recvfrom(65535)
        name = question_name(query)
        delay = args.late_by if name in late else args.delay
        for upstream in args.upstream:
            threading.Thread(
                target=relay,
                args=(server, query, client, upstream, delay, name in cut),
                daemon=True,
            ).start()


if __name__ == "__main__":
    main()
