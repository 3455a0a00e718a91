#!/usr/bin/python3
"""Write the seed corpus of the codec fuzz harness (tests/fuzz/fuzz_codec.c).

Valid packets of every type for MQTT 3.1.1 and 5.0, some short streams of
several packets (the harness also decodes its input as a connection would),
and a few malformed ones. Built here independently of mqtt/codec.c, from the
OASIS specs. Run from the repository root:

    /usr/bin/python3 tests/fuzz/gen_codec_corpus.py

The generated files are test inputs and are committed; rerunning rewrites the
seed-* files only (inputs found by the fuzzer and kept are named found-*).
"""
import os
import struct
import sys

OUT = "tests/fuzz/corpus/fuzz_codec"


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def s(x):
    if isinstance(x, str):
        x = x.encode()
    return u16(len(x)) + x


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


# v5 properties
def p_byte(i, v): return bytes([i, v])
def p_u16(i, v): return bytes([i]) + u16(v)
def p_u32(i, v): return bytes([i]) + u32(v)
def p_str(i, v): return bytes([i]) + s(v)
def p_var(i, v): return bytes([i]) + varint(v)
def p_user(k, v): return bytes([0x26]) + s(k) + s(v)


def props(*ps):
    body = b"".join(ps)
    return varint(len(body)) + body


def connect(level, flags, client, keepalive=60, cprops=b"", will=None,
            user=None, password=None):
    body = s("MQTT") + bytes([level, flags]) + u16(keepalive)
    if level == 5:
        body += props(cprops) if isinstance(cprops, bytes) else props(*cprops)
    body += s(client)
    if will:
        wprops, topic, msg = will
        if level == 5:
            body += props(*wprops)
        body += s(topic) + s(msg)
    if user is not None:
        body += s(user)
    if password is not None:
        body += s(password)
    return packet(0x10, body)


def publish(v5, topic, payload, qos=0, dup=0, retain=0, pid=1, pprops=()):
    first = 0x30 | (dup << 3) | (qos << 1) | retain
    body = s(topic)
    if qos:
        body += u16(pid)
    if v5:
        body += props(*pprops)
    return packet(first, body + payload)


def ack(kind, pid, v5=False, reason=None, aprops=None):
    first = {4: 0x40, 5: 0x50, 6: 0x62, 7: 0x70}[kind]
    body = u16(pid)
    if v5 and reason is not None:
        body += bytes([reason])
        if aprops is not None:
            body += props(*aprops)
    return packet(first, body)


def subscribe(v5, pid, entries, sprops=()):
    body = u16(pid)
    if v5:
        body += props(*sprops)
    for f, o in entries:
        body += s(f) + bytes([o])
    return packet(0x82, body)


def unsubscribe(v5, pid, filters, uprops=()):
    body = u16(pid)
    if v5:
        body += props(*uprops)
    for f in filters:
        body += s(f)
    return packet(0xA2, body)


def suback(v5, pid, codes, sprops=(), unsub=False):
    body = u16(pid)
    if v5:
        body += props(*sprops)
    body += bytes(codes)
    return packet(0xB0 if unsub else 0x90, body)


def seeds():
    out = {}
    # CONNECT, 3.1.1
    out["v3-connect-min"] = connect(4, 0x02, "dev1")
    out["v3-connect-empty-id"] = connect(4, 0x02, "", keepalive=0)
    out["v3-connect-will-user-pass"] = connect(
        4, 0xEE, "c1", will=((), "status/c1", b"gone"), user="alice",
        password=b"\x00\xffpw")
    out["v3-connect-will-qos2"] = connect(4, 0x16, "c2", will=((), "w", b""))
    out["v3-connect-user"] = connect(4, 0x82, "c3", user="bob")
    # CONNECT, 5.0
    out["v5-connect-min"] = connect(5, 0x02, "dev1")
    out["v5-connect-props"] = connect(5, 0x02, "dev\u00e9", cprops=(
        p_u32(0x11, 3600), p_u16(0x21, 100), p_u32(0x27, 1 << 20),
        p_u16(0x22, 10), p_byte(0x19, 1), p_byte(0x17, 0),
        p_user("region", "eu"), p_user("fw", "1.2.3")))
    out["v5-connect-auth"] = connect(5, 0x02, "c", cprops=(
        p_str(0x15, "SCRAM-SHA-256"), p_str(0x16, b"\x01\x02\x03")))
    out["v5-connect-will-full"] = connect(5, 0xF6, "c", will=(
        (p_u32(0x18, 30), p_byte(0x01, 1), p_u32(0x02, 60),
         p_str(0x03, "text/plain"), p_str(0x08, "reply/c"),
         p_str(0x09, b"\x00corr"), p_user("k", "v")),
        "last/will", b"bye"), user="u", password=b"p")
    out["v5-connect-password-only"] = connect(5, 0x42, "c", password=b"tok")
    # CONNACK
    out["v3-connack-ok"] = packet(0x20, b"\x00\x00")
    out["v3-connack-present"] = packet(0x20, b"\x01\x00")
    out["v3-connack-refused"] = packet(0x20, b"\x00\x05")
    out["v5-connack-min"] = packet(0x20, b"\x00\x00\x00")
    out["v5-connack-props"] = packet(0x20, b"\x00\x00" + props(
        p_u32(0x11, 0), p_u16(0x21, 20), p_byte(0x24, 1), p_byte(0x25, 1),
        p_u32(0x27, 65536), p_str(0x12, "auto-42"), p_u16(0x22, 5),
        p_str(0x1F, "welcome"), p_user("a", "b"), p_byte(0x28, 1),
        p_byte(0x29, 1), p_byte(0x2A, 0), p_u16(0x13, 30),
        p_str(0x1A, "resp/"), p_str(0x1C, "other:1883"),
        p_str(0x15, "m"), p_str(0x16, b"d")))
    out["v5-connack-refused"] = packet(0x20, b"\x00\x87" + props(
        p_str(0x1F, "certificate revoked")))
    # PUBLISH
    out["v3-publish-qos0"] = publish(False, "a/b", b"hello")
    out["v3-publish-qos1-dup-retain"] = publish(False, "x", b"hi", 1, 1, 1, 10)
    out["v3-publish-qos2-empty"] = publish(False, "t/\u00fc", b"", 2, 0, 0, 65535)
    out["v3-publish-big"] = publish(False, "big", bytes(range(256)) * 64)
    out["v5-publish-min"] = publish(True, "t", b"ok")
    out["v5-publish-alias"] = publish(True, "", b"z", pprops=(p_u16(0x23, 1),))
    out["v5-publish-props"] = publish(True, "s/1", b"{}", 1, 0, 1, 7, pprops=(
        p_byte(0x01, 1), p_u32(0x02, 10), p_u16(0x23, 3),
        p_str(0x08, "reply/1"), p_str(0x09, b"\x01"), p_str(0x03, "json"),
        p_user("a", "1"), p_user("a", "2")))
    out["v5-publish-subids"] = publish(True, "t", b"x", pprops=tuple(
        p_var(0x0B, v) for v in (1, 127, 128, 16384, 268435455)))
    out["v5-publish-user-interleaved"] = publish(True, "t", b"x", pprops=(
        p_user("k1", "v1"), p_u32(0x02, 5), p_user("k2", "v2")))
    # Acknowledgements
    for kind, name in ((4, "puback"), (5, "pubrec"), (6, "pubrel"), (7, "pubcomp")):
        out["v3-" + name] = ack(kind, 1)
        out["v5-%s-short" % name] = ack(kind, 2, True)
        rc = 0x10 if kind in (4, 5) else 0x92
        out["v5-%s-reason" % name] = ack(kind, 3, True, rc)
        out["v5-%s-props" % name] = ack(kind, 4, True, 0, (
            p_str(0x1F, "why"), p_user("k", "v")))
    # SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK
    out["v3-subscribe-spec"] = subscribe(False, 10, [("a/b", 1), ("c/d", 2)])
    out["v3-subscribe-wild"] = subscribe(False, 1, [("#", 0), ("+/x/+", 1),
                                                    ("$SYS/#", 0)])
    out["v5-subscribe-options"] = subscribe(True, 5, [
        ("a/+/#", 0x2E), ("$share/g/s/#", 0x2A), ("b", 0x1C)],
        (p_var(0x0B, 42), p_user("k", "v")))
    out["v3-suback"] = suback(False, 10, [0, 1, 2, 0x80])
    out["v5-suback"] = suback(True, 5, [0, 1, 2, 0x80, 0x87, 0x8F, 0x9E, 0xA2],
                              (p_str(0x1F, "partial"),))
    out["v3-unsubscribe"] = unsubscribe(False, 11, ["a/b", "#"])
    out["v5-unsubscribe"] = unsubscribe(True, 12, ["a/b", "$share/g/x"],
                                        (p_user("k", "v"),))
    out["v3-unsuback"] = packet(0xB0, u16(11))
    out["v5-unsuback"] = suback(True, 12, [0, 0x11, 0x8F], unsub=True)
    # PING, DISCONNECT, AUTH
    out["pingreq"] = b"\xc0\x00"
    out["pingresp"] = b"\xd0\x00"
    out["disconnect"] = b"\xe0\x00"
    out["v5-disconnect-will"] = b"\xe0\x01\x04"
    out["v5-disconnect-props"] = packet(0xE0, b"\x8e" + props(
        p_u32(0x11, 0), p_str(0x1F, "taken over"), p_str(0x1C, "srv2"),
        p_user("k", "v")))
    out["v5-auth-empty"] = b"\xf0\x00"
    out["v5-auth-continue"] = packet(0xF0, b"\x18" + props(
        p_str(0x15, "SCRAM-SHA-1"), p_str(0x16, b"\x00\x01"),
        p_str(0x1F, "more")))
    # Streams of packets, as a connection sees them
    out["stream-v3"] = (connect(4, 0x02, "s") + publish(False, "a", b"1", 1) +
                        subscribe(False, 2, [("a/#", 1)]) + b"\xc0\x00\xe0\x00")
    out["stream-v5"] = (connect(5, 0x02, "s") +
                        publish(True, "a", b"1", 2, pid=3) +
                        ack(6, 3, True, 0) + b"\xf0\x00\xe0\x01\x04")
    # Malformed
    out["bad-remaining-5-bytes"] = b"\x30\x80\x80\x80\x80\x01"
    out["bad-remaining-nonminimal"] = b"\xc0\x80\x00"
    out["bad-publish-qos3"] = b"\x36\x05\x00\x01a\x00\x01"
    out["bad-publish-wildcard"] = publish(False, "a/+", b"x")
    out["bad-connect-mqisdp"] = packet(0x10, s("MQIsdp") + b"\x03\x02\x00\x3c" + s("c"))
    out["bad-connect-reserved"] = connect(4, 0x03, "c")
    out["bad-utf8-surrogate"] = connect(4, 0x02, b"\xed\xa0\x80")
    out["bad-subscribe-filter"] = subscribe(False, 1, [("a/#/b", 0)])
    out["bad-v5-dup-prop"] = publish(True, "t", b"", pprops=(
        p_u16(0x23, 1), p_u16(0x23, 2)))
    out["bad-v5-retain-handling-3"] = subscribe(True, 1, [("a", 0x30)])
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.startswith("seed-"):
            os.unlink(os.path.join(OUT, f))
    n = 0
    for name, data in sorted(seeds().items()):
        with open(os.path.join(OUT, "seed-" + name), "wb") as fh:
            fh.write(data)
        n += 1
    print("wrote %d seeds to %s" % (n, OUT))


if __name__ == "__main__":
    sys.exit(main())
