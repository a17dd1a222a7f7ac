#!/usr/bin/env python3
"""A QUIC-aware censor for the testbed (scenario quic-sni), as the GFW is since 2024.

    quic-censor.py --queue N --log FILE [--pidfile FILE] [--hold SECONDS] NAME...
    quic-censor.py --check    can this namespace bind a queue? (scripts/testbed.sh check)

Reads the UDP packets to port 443 that iptables queues to it (NFQUEUE). A QUIC v1
Initial packet is encrypted with keys that anyone can derive from its own Destination
Connection ID (RFC 9001 section 5.2): the censor derives them, decrypts the client's
Initials, reassembles the CRYPTO stream that carries the TLS ClientHello, and reads its
server_name extension. A flow (its 4-tuple) whose ClientHello names NAME or one of its
subdomains is dropped, that packet and every later one, for --hold seconds. Everything
else is accepted. One line per verdict goes to the log.

Only what the client sends is queued: dropping it is enough to starve the handshake.
While a flow's ClientHello is incomplete (a post-quantum key share makes it span two
Initials, and with its extensions in random order, as rustls and browsers send them,
the name may come in the second), its Initials are held back rather than passed: the
server must not hear of a flow the censor is going to drop, or its ACK of the first
Initial would reach the client. That holding is this censor's own: the GFW is only
known to decide on a flow's first packet, and after a catch it is reported to block
the 3-tuple (client address, server address and port) for a while too, residual
blocking that this one leaves out: only the caught flow's 4-tuple is dropped.
"""

import argparse
import hashlib
import hmac
import os
import select
import struct
import sys
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from netfilterqueue import NetfilterQueue

# RFC 9001 section 5.2: the salt of QUIC version 1's Initial secrets.
INITIAL_SALT = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
QUIC_V1 = 1
# A flow not decided after this many Initial packets (a ClientHello spans two or three
# with post-quantum key shares) is let go: the censor must not track it forever.
MAX_INITIALS = 8
# How long an undecided or passed flow's state is kept.
FLOW_IDLE = 30.0
# How long an undecided flow's Initials are held back at most: then they go on, as if
# the censor had given up on them (a lost second Initial comes again within a second).
HOLD_MAX = 0.5


def hkdf_expand_label(secret, label, length):
    """TLS 1.3's HKDF-Expand-Label with an empty context (RFC 8446 section 7.1)."""
    full = b"tls13 " + label
    info = struct.pack("!HB", length, len(full)) + full + b"\x00"
    # HKDF-Expand with SHA-256: blocks T(i) = HMAC(secret, T(i-1) | info | i).
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


class Keys:
    """The client's Initial keys for one Destination Connection ID."""

    def __init__(self, dcid):
        initial = hmac.new(INITIAL_SALT, dcid, hashlib.sha256).digest()  # HKDF-Extract
        client = hkdf_expand_label(initial, b"client in", 32)
        self.aead = AESGCM(hkdf_expand_label(client, b"quic key", 16))
        self.iv = hkdf_expand_label(client, b"quic iv", 12)
        self.hp = Cipher(algorithms.AES(hkdf_expand_label(client, b"quic hp", 16)), modes.ECB())


def varint(buf, i):
    """A QUIC variable-length integer at buf[i]: (value, next index)."""
    if i >= len(buf):
        raise ValueError("truncated varint")
    size = 1 << (buf[i] >> 6)
    if i + size > len(buf):
        raise ValueError("truncated varint")
    value = buf[i] & 0x3F
    for b in buf[i + 1 : i + size]:
        value = (value << 8) | b
    return value, i + size


def initial_packets(datagram):
    """Each QUIC v1 Initial packet of a UDP payload (packets may be coalesced):
    (DCID, the header up to the packet number, the rest of the packet)."""
    i = 0
    while i < len(datagram):
        first = datagram[i]
        if not first & 0x80:  # a short header ends the datagram
            return
        if len(datagram) < i + 6:
            return
        (version,) = struct.unpack_from("!I", datagram, i + 1)
        if version != QUIC_V1:
            return
        j = i + 5
        dcid_len = datagram[j]
        dcid = datagram[j + 1 : j + 1 + dcid_len]
        j += 1 + dcid_len
        if j >= len(datagram):
            return
        j += 1 + datagram[j]  # the source connection ID
        kind = (first & 0x30) >> 4
        if kind == 0:  # Initial: a token before the length
            token_len, j = varint(datagram, j)
            j += token_len
        length, j = varint(datagram, j)
        if j + length > len(datagram):
            return
        if kind == 0:
            yield bytes(dcid), datagram[i:j], datagram[j : j + length]
        i = j + length


def decrypt(keys, header, body):
    """An Initial packet's payload, header protection removed (RFC 9001 section 5.4),
    or None when these keys do not open it."""
    if len(body) < 20:
        return None
    sample = body[4:20]  # as if the packet number took 4 bytes
    encryptor = keys.hp.encryptor()
    mask = encryptor.update(sample) + encryptor.finalize()
    first = header[0] ^ (mask[0] & 0x0F)
    pn_len = (first & 0x03) + 1
    pn_bytes = bytes(b ^ m for b, m in zip(body[:pn_len], mask[1 : 1 + pn_len]))
    # The truncated number is the whole number this early in a connection.
    pn = int.from_bytes(pn_bytes, "big")
    nonce = bytes(a ^ b for a, b in zip(keys.iv, pn.to_bytes(12, "big")))
    aad = bytes([first]) + bytes(header[1:]) + pn_bytes
    try:
        return keys.aead.decrypt(nonce, bytes(body[pn_len:]), aad)
    except Exception:  # cryptography's InvalidTag: not this flow's keys, or not QUIC
        return None


def crypto_frames(payload):
    """The CRYPTO frames of a decrypted Initial payload: (offset, data) pairs. Stops at
    the first frame type it does not know: the rest cannot be delimited."""
    i = 0
    while i < len(payload):
        kind, i = varint(payload, i)
        if kind in (0x00, 0x01):  # PADDING, PING
            continue
        if kind in (0x02, 0x03):  # ACK: largest, delay, range count, first range
            _, i = varint(payload, i)
            _, i = varint(payload, i)
            ranges, i = varint(payload, i)
            _, i = varint(payload, i)
            for _ in range(2 * ranges + (3 if kind == 0x03 else 0)):
                _, i = varint(payload, i)
        elif kind == 0x06:  # CRYPTO
            offset, i = varint(payload, i)
            length, i = varint(payload, i)
            yield offset, payload[i : i + length]
            i += length
        else:
            return


def server_names(hello):
    """The host names of a ClientHello's server_name extension (RFC 6066), given a
    prefix of the TLS handshake stream: a list (empty: no SNI), or None while the
    prefix ends before the extension does."""
    if not hello:
        return None
    if hello[0] != 1:  # not a ClientHello: no name to read
        return []

    def uint(i, size):
        if i + size > len(hello):
            raise IndexError
        return int.from_bytes(hello[i : i + size], "big")

    try:
        body_end = 4 + uint(1, 3)
        i = 4 + 2 + 32  # legacy_version, random
        i += 1 + uint(i, 1)  # legacy_session_id
        i += 2 + uint(i, 2)  # cipher_suites
        i += 1 + uint(i, 1)  # legacy_compression_methods
        i += 2  # the extensions' length
        while i + 4 <= min(len(hello), body_end):
            ext, size = struct.unpack_from("!HH", hello, i)
            i += 4
            if ext != 0:
                i += size
                continue
            if i + size > len(hello):
                return None
            names, j, end = [], i + 2, i + size
            while j + 3 <= end:
                kind, length = hello[j], uint(j + 1, 2)
                if kind == 0:
                    names.append(bytes(hello[j + 3 : j + 3 + length]).decode("ascii", "replace"))
                j += 3 + length
            return names
        return [] if i >= body_end else None
    except IndexError:
        return None


class Flow:
    def __init__(self, flow_id, keys, now):
        self.id = flow_id
        self.keys = keys  # from the first Initial's DCID: later ones keep them (RFC 9001)
        self.crypto = {}  # offset -> data, as the frames came
        self.initials = 0
        self.verdict = None  # None: undecided; "pass" or "drop"
        self.until = now + FLOW_IDLE
        self.held = []  # (since, packet): the Initials held back while undecided

    def stream(self):
        """The contiguous CRYPTO data from offset 0."""
        data = b""
        for offset in sorted(self.crypto):
            if offset > len(data):
                break
            data += self.crypto[offset][len(data) - offset :]
        return data


class Censor:
    def __init__(self, names, hold, log):
        self.names = [n.lower().rstrip(".") for n in names]
        self.hold = hold
        self.log = log
        self.flows = {}

    def forbidden(self, name):
        name = name.lower().rstrip(".")
        return any(name == n or name.endswith("." + n) for n in self.names)

    def say(self, verdict, flow_id, why):
        src, sport, dst, dport = flow_id
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        print(f"{stamp} {verdict} {src}:{sport} > {dst}:{dport} {why}", file=self.log, flush=True)

    def handle(self, packet):
        try:
            verdict, flow = self.judge(packet.get_payload())
        except Exception as e:  # a packet the parser chokes on passes, as a real DPI's would
            print(f"error: {e!r}", file=self.log, flush=True)
            verdict, flow = True, None
        if verdict is None:
            packet.retain()
            flow.held.append((time.monotonic(), packet))
            return
        # What was held back goes first, the way the decided flow goes.
        packets = [held for _, held in flow.held] if flow is not None else []
        if flow is not None:
            flow.held = []
        for p in packets + [packet]:
            if verdict:
                p.accept()
            else:
                p.drop()

    def release(self):
        """Lets through what was held back too long."""
        now = time.monotonic()
        for flow in self.flows.values():
            while flow.held and flow.held[0][0] + HOLD_MAX < now:
                flow.held.pop(0)[1].accept()
                self.say("accept", flow.id, "held too long, let go undecided")

    def judge(self, ip):
        """(verdict, flow) for the IPv4 packet `ip`: True to accept it, False to drop it,
        None to hold it back until its flow's ClientHello is complete."""
        now = time.monotonic()
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            return True, None
        ihl = (ip[0] & 0x0F) * 4
        sport, dport = struct.unpack_from("!HH", ip, ihl)
        flow_id = (".".join(map(str, ip[12:16])), sport, ".".join(map(str, ip[16:20])), dport)
        udp = ip[ihl + 8 :]
        self.expire(now)
        flow = self.flows.get(flow_id)
        if flow is not None and flow.verdict == "drop":
            self.say("drop", flow_id, "flow caught earlier")
            return False, flow
        if flow is not None and flow.verdict == "pass":
            return True, flow
        for dcid, header, body in initial_packets(udp):
            payload = None
            if flow is not None:
                payload = decrypt(flow.keys, header, body)
            if payload is None:
                keys = Keys(dcid)
                payload = decrypt(keys, header, body)
                if payload is None:
                    continue
                if flow is None:
                    flow = self.flows[flow_id] = Flow(flow_id, keys, now)
            flow.initials += 1
            for offset, data in crypto_frames(payload):
                flow.crypto.setdefault(offset, bytes(data))
        if flow is None:
            # A flow whose first packet is no QUIC v1 Initial the censor can open is let
            # be, later Initials too: the GFW looks at a flow's first packet only.
            self.flows[flow_id] = flow = Flow(flow_id, None, now)
            flow.verdict = "pass"
            return True, flow
        names = server_names(flow.stream())
        if names is None:
            if flow.initials < MAX_INITIALS:
                self.say("hold", flow_id, "ClientHello incomplete, waiting for the rest")
                return None, flow
            names = []
        caught = [n for n in names if self.forbidden(n)]
        if caught:
            flow.verdict, flow.until = "drop", now + self.hold
            self.say("drop", flow_id, f"sni={caught[0]} forbidden: flow dropped for {self.hold:g} s")
            return False, flow
        flow.verdict, flow.until = "pass", now + FLOW_IDLE
        self.say("accept", flow_id, "sni=" + (",".join(names) or "(none)"))
        return True, flow

    def expire(self, now):
        for flow_id in [f for f, flow in self.flows.items() if flow.until < now and not flow.held]:
            del self.flows[flow_id]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--queue", type=int, default=0)
    parser.add_argument("--log", default="/dev/stderr")
    parser.add_argument("--pidfile")
    parser.add_argument("--hold", type=float, default=60.0)
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()
    if args.check:
        # Binding needs nfnetlink_queue in the kernel and the right to use it here.
        queue = NetfilterQueue()
        queue.bind(args.queue, lambda packet: packet.accept())
        queue.unbind()
        return 0
    if not args.names:
        parser.error("no name to forbid")
    with open(args.log, "a", encoding="utf-8") as log:
        censor = Censor(args.names, args.hold, log)
        queue = NetfilterQueue()
        queue.bind(args.queue, censor.handle)
        print(f"listening on queue {args.queue}; forbidden: {' '.join(censor.names)}", file=log, flush=True)
        if args.pidfile:
            # Written once the queue is bound: whoever waits for it may send traffic.
            with open(args.pidfile, "w", encoding="ascii") as f:
                print(os.getpid(), file=f)
        try:
            while True:
                # A timeout, for the held-back packets, rather than the blocking run().
                if select.select([queue.get_fd()], [], [], HOLD_MAX / 5)[0]:
                    queue.run(block=False)
                censor.release()
        finally:
            queue.unbind()


if __name__ == "__main__":
    sys.exit(main())
