#!/usr/bin/python3
"""vouchtest: the framework of vouch's integration tests.

The tests start the real broker (`$VOUCH_BUILD/vouchd`) on a free port of
127.0.0.1, talk to it with real clients (paho-mqtt 1.6.1, mosquitto_pub and
mosquitto_sub) and with a raw socket client that encodes and decodes MQTT
3.1.1 and 5.0 packets byte by byte (for exact reason codes and for malformed
input). Every broker is stopped with SIGTERM at the end of its test and must
exit 0 within a few seconds with no sanitizer report on its stderr.

Environment:
  VOUCH_BUILD      build directory holding vouchd (default build/release)
  VOUCH_SHARDS     --shards for every broker (default 4)
  VOUCH_IO_COMPAT  if set, passed as --io-compat (e.g. 5.10)
  VOUCH_SLOW       multiplier for upper time bounds (sanitizer builds)
  VOUCH_BROKER     "mosquitto" runs the suite against a local mosquitto, to
                   check the tests themselves (development aid only; the
                   vouch-specific tests are skipped then)
"""

import os
import queue
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import xxhash

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("VOUCH_BUILD", "build/release")
if not os.path.isabs(BUILD):
	BUILD = os.path.join(ROOT, BUILD)
VOUCHD = os.path.join(BUILD, "vouchd")
SHARDS = int(os.environ.get("VOUCH_SHARDS", "4"))
IO_COMPAT = os.environ.get("VOUCH_IO_COMPAT", "")
SLOW = float(os.environ.get("VOUCH_SLOW", "1"))
MOSQ = os.environ.get("VOUCH_BROKER", "") == "mosquitto"
HOST = "127.0.0.1"

SANITIZER_MARKS = ("AddressSanitizer", "runtime error:", "ThreadSanitizer",
		   "LeakSanitizer")


def slow(t):
	"""An upper time bound, stretched for sanitizer builds."""
	return t * SLOW


# ---------------------------------------------------------------- helpers

def free_port():
	s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
	s.bind((HOST, 0))
	port = s.getsockname()[1]
	s.close()
	return port


def home_shard(client_id, nshards=None):
	n = nshards or SHARDS
	if isinstance(client_id, str):
		client_id = client_id.encode()
	return xxhash.xxh3_64_intdigest(client_id) % n


def cid_on_shard(prefix, shard, nshards=None):
	"""A client ID starting with prefix whose home shard is shard % nshards."""
	n = nshards or SHARDS
	want = shard % n
	for i in range(100000):
		cid = "%s-%d" % (prefix, i)
		if home_shard(cid, n) == want:
			return cid
	raise RuntimeError("no client id for shard %d" % shard)


def scrape_metrics(admin):
	"""GET /metrics from vouchd's admin listener (HOST:PORT): a dict of
	'name{labels}' -> value."""
	url = "http://%s/metrics" % admin
	with urllib.request.urlopen(url, timeout=slow(5)) as r:
		text = r.read().decode()
	out = {}
	for line in text.splitlines():
		if line.startswith("#") or not line.strip():
			continue
		name, val = line.rsplit(" ", 1)
		out[name] = float(val)
	return out


def uniq(prefix="t"):
	return "%s%06x" % (prefix, random.getrandbits(24))


def wait_until(pred, timeout, step=0.02):
	end = time.monotonic() + timeout
	while True:
		v = pred()
		if v:
			return v
		if time.monotonic() > end:
			return v
		time.sleep(step)


# ------------------------------------------------------------ raw codec

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, \
	SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = \
	range(1, 16)
TYPE_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK",
	      5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE",
	      9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ",
	      13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# property identifiers
P_PAYLOAD_FORMAT = 0x01
P_MESSAGE_EXPIRY = 0x02
P_CONTENT_TYPE = 0x03
P_RESPONSE_TOPIC = 0x08
P_CORRELATION_DATA = 0x09
P_SUBSCRIPTION_ID = 0x0B
P_SESSION_EXPIRY = 0x11
P_ASSIGNED_CLIENT_ID = 0x12
P_SERVER_KEEP_ALIVE = 0x13
P_AUTH_METHOD = 0x15
P_AUTH_DATA = 0x16
P_REQUEST_PROBLEM_INFO = 0x17
P_WILL_DELAY = 0x18
P_REQUEST_RESPONSE_INFO = 0x19
P_RESPONSE_INFO = 0x1A
P_SERVER_REFERENCE = 0x1C
P_REASON_STRING = 0x1F
P_RECEIVE_MAXIMUM = 0x21
P_TOPIC_ALIAS_MAXIMUM = 0x22
P_TOPIC_ALIAS = 0x23
P_MAXIMUM_QOS = 0x24
P_RETAIN_AVAILABLE = 0x25
P_USER_PROPERTY = 0x26
P_MAXIMUM_PACKET_SIZE = 0x27
P_WILDCARD_SUB_AVAILABLE = 0x28
P_SUB_ID_AVAILABLE = 0x29
P_SHARED_SUB_AVAILABLE = 0x2A

PROP_TYPES = {
	0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin",
	0x0B: "varint", 0x11: "u32", 0x12: "str", 0x13: "u16", 0x15: "str",
	0x16: "bin", 0x17: "byte", 0x18: "u32", 0x19: "byte", 0x1A: "str",
	0x1C: "str", 0x1F: "str", 0x21: "u16", 0x22: "u16", 0x23: "u16",
	0x24: "byte", 0x25: "byte", 0x26: "pair", 0x27: "u32", 0x28: "byte",
	0x29: "byte", 0x2A: "byte",
}


class Malformed(Exception):
	pass


def varint(n):
	out = bytearray()
	while True:
		b = n % 128
		n //= 128
		if n:
			out.append(b | 0x80)
		else:
			out.append(b)
			return bytes(out)


def u16(n):
	return struct.pack(">H", n)


def u32(n):
	return struct.pack(">I", n)


def mqstr(s):
	if isinstance(s, str):
		s = s.encode()
	return u16(len(s)) + s


def mqbin(b):
	if isinstance(b, str):
		b = b.encode()
	return u16(len(b)) + b


def encode_props(props):
	"""props: None, a dict {id: value} or a list of (id, value) pairs
	(a pair value for user properties is a (key, value) tuple)."""
	if props is None:
		props = []
	if isinstance(props, dict):
		props = list(props.items())
	body = bytearray()
	for pid, val in props:
		t = PROP_TYPES[pid]
		body += varint(pid)
		if t == "byte":
			body += bytes([val])
		elif t == "u16":
			body += u16(val)
		elif t == "u32":
			body += u32(val)
		elif t == "varint":
			body += varint(val)
		elif t == "str":
			body += mqstr(val)
		elif t == "bin":
			body += mqbin(val)
		elif t == "pair":
			body += mqstr(val[0]) + mqstr(val[1])
	return varint(len(body)) + bytes(body)


class Props(list):
	"""Decoded properties: a list of (id, value), in wire order."""

	def get(self, pid, default=None):
		for k, v in self:
			if k == pid:
				return v
		return default

	def all(self, pid):
		return [v for k, v in self if k == pid]

	def has(self, pid):
		return any(k == pid for k, _ in self)


class Reader:
	def __init__(self, data):
		self.d = bytes(data)
		self.i = 0

	def left(self):
		return len(self.d) - self.i

	def take(self, n):
		if self.i + n > len(self.d):
			raise Malformed("short packet")
		b = self.d[self.i:self.i + n]
		self.i += n
		return b

	def byte(self):
		return self.take(1)[0]

	def u16(self):
		return struct.unpack(">H", self.take(2))[0]

	def u32(self):
		return struct.unpack(">I", self.take(4))[0]

	def varint(self):
		mult, val = 1, 0
		for _ in range(4):
			b = self.byte()
			val += (b & 0x7F) * mult
			if not b & 0x80:
				return val
			mult *= 128
		raise Malformed("varint too long")

	def bin(self):
		return self.take(self.u16())

	def str(self):
		return self.bin().decode("utf-8")

	def props(self):
		n = self.varint()
		sub = Reader(self.take(n))
		out = Props()
		while sub.left():
			pid = sub.varint()
			t = PROP_TYPES.get(pid)
			if t is None:
				raise Malformed("unknown property 0x%x" % pid)
			if t == "byte":
				v = sub.byte()
			elif t == "u16":
				v = sub.u16()
			elif t == "u32":
				v = sub.u32()
			elif t == "varint":
				v = sub.varint()
			elif t == "str":
				v = sub.str()
			elif t == "bin":
				v = sub.bin()
			else:
				v = (sub.str(), sub.str())
			out.append((pid, v))
		return out


def packet(ptype, flags, body):
	return bytes([(ptype << 4) | flags]) + varint(len(body)) + bytes(body)


def enc_connect(client_id, version=5, clean=True, keepalive=60, props=None,
		will=None, username=None, password=None, proto_name=None,
		flags_or=0):
	"""A CONNECT. will: dict(topic, payload, qos, retain, props)."""
	if proto_name is None:
		proto_name = "MQIsdp" if version == 3 else "MQTT"
	flags = 0
	if clean:
		flags |= 0x02
	if will is not None:
		flags |= 0x04 | (will.get("qos", 0) << 3)
		if will.get("retain"):
			flags |= 0x20
	if password is not None:
		flags |= 0x40
	if username is not None:
		flags |= 0x80
	flags |= flags_or
	body = mqstr(proto_name) + bytes([version, flags]) + u16(keepalive)
	if version >= 5:
		body += encode_props(props)
	body += mqstr(client_id)
	if will is not None:
		if version >= 5:
			body += encode_props(will.get("props"))
		body += mqstr(will["topic"]) + mqbin(will.get("payload", b""))
	if username is not None:
		body += mqstr(username)
	if password is not None:
		body += mqbin(password)
	return packet(CONNECT, 0, body)


def enc_publish(topic, payload=b"", qos=0, retain=False, dup=False, pid=None,
		props=None, version=5):
	if isinstance(payload, str):
		payload = payload.encode()
	flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
	body = mqstr(topic)
	if qos > 0:
		body += u16(pid)
	if version == 5:
		body += encode_props(props)
	body += payload
	return packet(PUBLISH, flags, body)


def enc_ack(ptype, pid, rc=None, props=None, version=5):
	"""PUBACK/PUBREC/PUBREL/PUBCOMP."""
	flags = 2 if ptype == PUBREL else 0
	body = u16(pid)
	if version == 5 and (rc not in (None, 0) or props):
		body += bytes([rc or 0])
		if props:
			body += encode_props(props)
	return packet(ptype, flags, body)


def sub_opts(qos=0, nl=False, rap=False, rh=0):
	return qos | (4 if nl else 0) | (8 if rap else 0) | (rh << 4)


def enc_subscribe(pid, filters, props=None, version=5):
	"""filters: list of (filter, options byte)."""
	body = u16(pid)
	if version == 5:
		body += encode_props(props)
	for f, o in filters:
		body += mqstr(f) + bytes([o])
	return packet(SUBSCRIBE, 2, body)


def enc_unsubscribe(pid, filters, props=None, version=5):
	body = u16(pid)
	if version == 5:
		body += encode_props(props)
	for f in filters:
		body += mqstr(f)
	return packet(UNSUBSCRIBE, 2, body)


def enc_pingreq():
	return b"\xc0\x00"


def enc_disconnect(rc=None, props=None, version=5):
	body = b""
	if version == 5 and (rc is not None or props):
		body = bytes([rc or 0])
		if props:
			body += encode_props(props)
	return packet(DISCONNECT, 0, body)


class Packet:
	def __init__(self, ptype, flags, body, version):
		self.type = ptype
		self.flags = flags
		self.raw = body
		self.props = Props()
		self.rc = 0
		r = Reader(body)
		v5 = version == 5
		if ptype == CONNACK:
			self.sp = r.byte() & 1
			self.rc = r.byte()
			if r.left():
				self.props = r.props()
		elif ptype == PUBLISH:
			self.qos = (flags >> 1) & 3
			self.dup = bool(flags & 8)
			self.retain = bool(flags & 1)
			self.topic = r.str()
			self.pid = r.u16() if self.qos else None
			if v5:
				self.props = r.props()
			self.payload = r.take(r.left())
		elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
			self.pid = r.u16()
			if r.left():
				self.rc = r.byte()
			if r.left():
				self.props = r.props()
		elif ptype in (SUBACK, UNSUBACK):
			self.pid = r.u16()
			if v5:
				self.props = r.props()
			self.rcs = list(r.take(r.left()))
		elif ptype in (DISCONNECT, AUTH):
			if r.left():
				self.rc = r.byte()
			if r.left():
				self.props = r.props()

	def __repr__(self):
		s = "<%s" % TYPE_NAMES.get(self.type, self.type)
		if self.type == PUBLISH:
			s += " %r q%d%s%s pid=%s %r" % (
				self.topic, self.qos, " dup" if self.dup else "",
				" ret" if self.retain else "", self.pid,
				self.payload[:40])
		elif hasattr(self, "pid"):
			s += " pid=%s" % self.pid
		if self.type in (CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP,
				 DISCONNECT):
			s += " rc=0x%02x" % self.rc
		if hasattr(self, "rcs"):
			s += " rcs=%s" % ["0x%02x" % x for x in self.rcs]
		if self.props:
			s += " props=%r" % list(self.props)
		return s + ">"


class Closed(Exception):
	pass


class RawClient:
	"""A blocking MQTT client on a raw socket, for exact-byte tests.

	Received packets are queued; expect() returns the first one of the
	wanted type and keeps the others. With auto_ack (default) incoming
	QoS 1/2 PUBLISH and PUBREL are acknowledged at once."""

	def __init__(self, port, version=5, auto_ack=True, timeout=None,
		     rcvbuf=None):
		self.version = version
		self.auto_ack = auto_ack
		self.timeout = timeout or slow(5)
		self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
		if rcvbuf:
			self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
					     rcvbuf)
		self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
		self.sock.settimeout(self.timeout)
		self.sock.connect((HOST, port))
		self.buf = bytearray()
		self.pending = []
		self.closed = False
		self.next_pid = 1
		self.connack = None

	# -- bytes
	def send(self, data):
		self.sock.sendall(data)

	def close(self):
		try:
			self.sock.close()
		except OSError:
			pass
		self.closed = True

	def abort(self):
		"""Close with a TCP reset (no DISCONNECT, no FIN)."""
		try:
			self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
					     struct.pack("ii", 1, 0))
		except OSError:
			pass
		self.close()

	def pid(self):
		p = self.next_pid
		self.next_pid = self.next_pid % 65535 + 1
		return p

	def _fill(self, deadline):
		if self.closed:
			raise Closed()
		left = deadline - time.monotonic()
		if left <= 0:
			raise socket.timeout()
		self.sock.settimeout(left)
		try:
			data = self.sock.recv(65536)
		except ConnectionResetError:
			data = b""
		if not data:
			self.closed = True
			raise Closed()
		self.buf += data

	def _parse_one(self):
		"""One packet from buf or None if incomplete."""
		if len(self.buf) < 2:
			return None
		mult, val, i = 1, 0, 1
		while True:
			if i >= len(self.buf):
				return None
			b = self.buf[i]
			val += (b & 0x7F) * mult
			i += 1
			if not b & 0x80:
				break
			mult *= 128
			if i > 4:
				raise Malformed("bad remaining length from server")
		if len(self.buf) < i + val:
			return None
		h = self.buf[0]
		body = bytes(self.buf[i:i + val])
		del self.buf[:i + val]
		p = Packet(h >> 4, h & 15, body, self.version)
		if self.auto_ack:
			if p.type == PUBLISH and p.qos == 1:
				self.send(enc_ack(PUBACK, p.pid, version=self.version))
			elif p.type == PUBLISH and p.qos == 2:
				self.send(enc_ack(PUBREC, p.pid, version=self.version))
			elif p.type == PUBREL:
				self.send(enc_ack(PUBCOMP, p.pid, version=self.version))
		return p

	def _read_packet(self, deadline):
		while True:
			p = self._parse_one()
			if p is not None:
				return p
			self._fill(deadline)

	def recv(self, timeout=None):
		"""The next packet; raises AssertionError on timeout, Closed."""
		if self.pending:
			return self.pending.pop(0)
		deadline = time.monotonic() + (self.timeout if timeout is None
					       else timeout)
		try:
			return self._read_packet(deadline)
		except socket.timeout:
			raise AssertionError("no packet within %.1fs" % (
				timeout if timeout is not None else self.timeout))

	def expect(self, ptype, timeout=None, pred=None):
		"""The first packet of type ptype (and pred), others are kept."""
		for i, p in enumerate(self.pending):
			if p.type == ptype and (pred is None or pred(p)):
				return self.pending.pop(i)
		t = self.timeout if timeout is None else timeout
		deadline = time.monotonic() + t
		while True:
			try:
				p = self._read_packet(deadline)
			except socket.timeout:
				raise AssertionError(
					"no %s within %.1fs (got %r)" % (
						TYPE_NAMES[ptype], t,
						self.pending))
			except Closed:
				raise AssertionError(
					"connection closed while waiting for "
					"%s (got %r)" % (TYPE_NAMES[ptype],
							 self.pending))
			if p.type == ptype and (pred is None or pred(p)):
				return p
			self.pending.append(p)

	def poll(self, duration):
		"""Every packet that arrives within duration (stops at close)."""
		deadline = time.monotonic() + duration
		out = list(self.pending)
		self.pending = []
		while True:
			try:
				out.append(self._read_packet(deadline))
			except (socket.timeout, Closed):
				return out

	def expect_nothing(self, duration, ptypes=(PUBLISH,)):
		got = [p for p in self.poll(duration) if p.type in ptypes]
		assert not got, "unexpected packets: %r" % got

	def expect_closed(self, timeout=None):
		"""Waits for the server to close; returns the packets it sent."""
		t = slow(5) if timeout is None else timeout
		deadline = time.monotonic() + t
		out = list(self.pending)
		self.pending = []
		while True:
			try:
				out.append(self._read_packet(deadline))
			except Closed:
				return out
			except Malformed:
				return out
			except socket.timeout:
				raise AssertionError(
					"connection not closed within %.1fs "
					"(got %r)" % (t, out))
			except OSError:
				return out

	def is_open(self, timeout=0.2):
		"""True if the peer has not closed (a PINGREQ is answered)."""
		try:
			self.send(enc_pingreq())
			self.expect(PINGRESP, timeout=timeout)
			return True
		except (AssertionError, OSError, Closed):
			return False

	# -- MQTT
	def connect(self, client_id, expect_rc=0, **kw):
		kw.setdefault("version", self.version)
		self.send(enc_connect(client_id, **kw))
		p = self.expect(CONNACK)
		self.connack = p
		if expect_rc is not None:
			assert p.rc == expect_rc, "CONNACK rc 0x%02x, want 0x%02x" % (
				p.rc, expect_rc)
		return p

	def subscribe(self, filt, qos=0, nl=False, rap=False, rh=0, props=None,
		      expect_rcs=None):
		"""filt: a filter string or a list of (filter, options)."""
		if isinstance(filt, str):
			filters = [(filt, sub_opts(qos, nl, rap, rh))]
		else:
			filters = filt
		pid = self.pid()
		self.send(enc_subscribe(pid, filters, props, self.version))
		p = self.expect(SUBACK, pred=lambda p: p.pid == pid)
		if expect_rcs is None:
			expect_rcs = [o & 3 for _, o in filters]
		if expect_rcs is not False:
			assert p.rcs == expect_rcs, "SUBACK %r, want %r" % (
				p.rcs, expect_rcs)
		return p

	def unsubscribe(self, filters):
		if isinstance(filters, str):
			filters = [filters]
		pid = self.pid()
		self.send(enc_unsubscribe(pid, filters, None, self.version))
		return self.expect(UNSUBACK, pred=lambda p: p.pid == pid)

	def publish(self, topic, payload=b"", qos=0, retain=False, props=None,
		    expect_rc=None):
		"""Publishes and completes the QoS flow; returns the last ack."""
		pid = self.pid() if qos else None
		self.send(enc_publish(topic, payload, qos, retain, False, pid,
				      props, self.version))
		if qos == 0:
			return None
		if qos == 1:
			a = self.expect(PUBACK, pred=lambda p: p.pid == pid)
		else:
			a = self.expect(PUBREC, pred=lambda p: p.pid == pid)
			if a.rc < 0x80:
				self.send(enc_ack(PUBREL, pid,
						  version=self.version))
				c = self.expect(PUBCOMP,
						pred=lambda p: p.pid == pid)
				assert c.rc == 0, "PUBCOMP rc 0x%02x" % c.rc
		if expect_rc is not None:
			assert a.rc == expect_rc, "ack rc 0x%02x want 0x%02x" % (
				a.rc, expect_rc)
		return a

	def messages(self, n, timeout=None):
		"""n PUBLISH packets (fails on timeout)."""
		t = self.timeout if timeout is None else timeout
		deadline = time.monotonic() + t
		out = []
		while len(out) < n:
			left = deadline - time.monotonic()
			try:
				if left <= 0:
					raise AssertionError()
				out.append(self.expect(PUBLISH, timeout=left))
			except AssertionError:
				shown = out if len(out) <= 6 else \
					out[:3] + ["..."] + out[-3:]
				raise AssertionError(
					"got %d of %d messages within %.1fs: %r" % (
						len(out), n, t, shown))
		return out

	def publish_many(self, items, qos=1, window=16, props=None,
			 timeout=None):
		"""Publishes (topic, payload) items pipelined, at most window
		unacknowledged; returns when every flow is complete."""
		deadline = time.monotonic() + (timeout or slow(30))
		inflight = set()
		stash = []
		it = iter(items)
		done = False
		try:
			while True:
				batch = bytearray()
				while not done and (qos == 0 or
						    len(inflight) < window):
					try:
						t, pl = next(it)
					except StopIteration:
						done = True
						break
					pid = None
					if qos:
						pid = self.pid()
						inflight.add(pid)
					batch += enc_publish(t, pl, qos, False,
							     False, pid, props,
							     self.version)
					if len(batch) > 65536:
						break
				if batch:
					self.send(bytes(batch))
				if done and not inflight:
					return
				if qos == 0:
					continue
				try:
					p = self._read_packet(deadline)
				except socket.timeout:
					raise AssertionError(
						"publish_many: %d unacked" %
						len(inflight))
				if p.type == PUBACK and p.pid in inflight:
					inflight.discard(p.pid)
				elif p.type == PUBREC and p.pid in inflight:
					assert p.rc < 0x80, p
					self.send(enc_ack(PUBREL, p.pid,
							  version=self.version))
				elif p.type == PUBCOMP and p.pid in inflight:
					inflight.discard(p.pid)
				else:
					stash.append(p)
		finally:
			self.pending.extend(stash)

	def message(self, timeout=None):
		return self.messages(1, timeout)[0]

	def disconnect(self, rc=None, props=None):
		try:
			self.send(enc_disconnect(rc, props, self.version))
		except OSError:
			pass
		self.close()


# ---------------------------------------------------------------- broker

class BrokerError(AssertionError):
	pass


class Broker:
	"""Starts vouchd on a free port; a context manager.

	stop() sends SIGTERM and checks exit 0 within `stop_timeout` seconds and
	a clean stderr; the process is always killed by PID in the end."""

	def __init__(self, shards=None, extra=None, sys_interval=1,
		     log_level=None, stop_timeout=None, check_exit=True,
		     io_compat=None):
		self.shards = shards or SHARDS
		self.extra = list(extra or [])
		self.sys_interval = sys_interval
		self.log_level = log_level
		self.stop_timeout = stop_timeout or slow(5)
		self.check_exit = check_exit
		self.io_compat = IO_COMPAT if io_compat is None else io_compat
		self.proc = None
		self.port = None
		self.dir = None
		self.stderr_path = None
		self.exit_status = None

	def args(self):
		a = [VOUCHD, "--listen", "%s:%d" % (HOST, self.port),
		     "--shards", str(self.shards), "--data-dir",
		     os.path.join(self.dir, "data")]
		if self.io_compat:
			a += ["--io-compat", self.io_compat]
		if self.sys_interval is not None:
			a += ["--sys-interval", str(self.sys_interval)]
		if self.log_level:
			a += ["--log-level", self.log_level]
		if "--admin-listen" not in self.extra:
			# never the default 127.0.0.1:8081: tests run in parallel
			a += ["--admin-listen", "off"]
		return a + self.extra

	def _mosquitto_args(self):
		conf = os.path.join(self.dir, "mosquitto.conf")
		opt = {}
		it = iter(self.extra)
		for k in it:
			opt[k.lstrip("-")] = next(it)
		with open(conf, "w") as f:
			f.write("listener %d %s\nallow_anonymous true\n"
				"log_dest stderr\nlog_type all\n" % (
					self.port, HOST))
			if self.sys_interval:
				f.write("sys_interval %d\n" % self.sys_interval)
			mp = {"max-connections": "max_connections",
			      "max-packet-size": "max_packet_size",
			      "max-keepalive": "max_keepalive",
			      "max-queued-messages": "max_queued_messages",
			      "receive-maximum": "max_inflight_messages"}
			for k, v in opt.items():
				if k in mp:
					f.write("%s %s\n" % (mp[k], v))
		return ["mosquitto", "-c", conf]

	def start(self):
		if not MOSQ and not os.access(VOUCHD, os.X_OK):
			raise unittest.SkipTest("no vouchd at %s" % VOUCHD)
		self.dir = tempfile.mkdtemp(prefix="vouchtest-")
		os.makedirs(os.path.join(self.dir, "data"))
		self.stderr_path = os.path.join(self.dir, "stderr.log")
		for attempt in range(8):
			self.port = free_port()
			args = self._mosquitto_args() if MOSQ else self.args()
			self.errf = open(self.stderr_path, "ab")
			self.errf.write(("### %s\n" % " ".join(args)).encode())
			self.errf.flush()
			self.proc = subprocess.Popen(
				args, stdin=subprocess.DEVNULL,
				stdout=subprocess.DEVNULL, stderr=self.errf,
				cwd=self.dir)
			if self._wait_ready():
				return self
			out = self.stderr()
			self._kill()
			if "in use" in out.lower() and attempt < 7:
				continue
			raise BrokerError("broker did not get ready:\n" +
					  out[-3000:])
		raise BrokerError("no free port")

	def _wait_ready(self):
		deadline = time.monotonic() + slow(15)
		while time.monotonic() < deadline:
			if self.proc.poll() is not None:
				return False
			if MOSQ:
				try:
					socket.create_connection(
						(HOST, self.port), 0.2).close()
					return True
				except OSError:
					pass
			elif "vouchd ready" in self.stderr():
				return True
			time.sleep(0.02)
		return False

	def stderr(self):
		try:
			with open(self.stderr_path, "rb") as f:
				return f.read().decode("utf-8", "replace")
		except OSError:
			return ""

	def alive(self):
		return self.proc is not None and self.proc.poll() is None

	def pid(self):
		return self.proc.pid

	def rss_kb(self):
		with open("/proc/%d/status" % self.proc.pid) as f:
			for line in f:
				if line.startswith("VmRSS:"):
					return int(line.split()[1])
		return 0

	def check_stderr(self):
		out = self.stderr()
		for m in SANITIZER_MARKS:
			if m in out:
				i = out.index(m)
				raise BrokerError("sanitizer report in broker "
						  "stderr:\n" +
						  out[max(0, i - 500):i + 6000])

	def assert_alive(self):
		if not self.alive():
			raise BrokerError("broker died (status %s):\n%s" % (
				self.proc.returncode, self.stderr()[-4000:]))

	def _kill(self):
		if self.proc is None:
			return
		if self.proc.poll() is None:
			try:
				os.kill(self.proc.pid, signal.SIGKILL)
			except ProcessLookupError:
				pass
			try:
				self.proc.wait(5)
			except subprocess.TimeoutExpired:
				pass
		try:
			self.errf.close()
		except Exception:
			pass

	def stop(self, sig=signal.SIGTERM):
		"""SIGTERM, wait; returns the exit status (checks it is 0)."""
		if self.proc is None:
			return None
		try:
			died_before = self.proc.poll() is not None
			if not died_before:
				os.kill(self.proc.pid, sig)
				try:
					self.proc.wait(self.stop_timeout)
				except subprocess.TimeoutExpired:
					self._kill()
					raise BrokerError(
						"broker did not exit within %.1fs "
						"of SIGTERM:\n%s" % (
							self.stop_timeout,
							self.stderr()[-3000:]))
			self.exit_status = self.proc.returncode
			self.check_stderr()
			if died_before:
				raise BrokerError("broker died during the test "
						  "(status %s):\n%s" % (
							  self.exit_status,
							  self.stderr()[-4000:]))
			if self.check_exit and not MOSQ and self.exit_status != 0:
				raise BrokerError("broker exit status %s:\n%s" % (
					self.exit_status, self.stderr()[-3000:]))
			return self.exit_status
		finally:
			self._kill()
			if os.environ.get("VOUCH_KEEP_LOGS"):
				sys.stderr.write("broker dir kept: %s\n" % self.dir)
			else:
				shutil.rmtree(self.dir, ignore_errors=True)

	def __enter__(self):
		return self.start()

	def __exit__(self, *exc):
		if exc[0] is None:
			self.stop()
		else:
			try:
				self.stop()
			except BrokerError as e:
				sys.stderr.write("%s\n" % e)
		return False

	# -- clients
	def raw(self, version=5, **kw):
		return RawClient(self.port, version, **kw)

	def raw_connect(self, client_id, version=5, auto_ack=True, rcvbuf=None,
			**kw):
		c = RawClient(self.port, version, auto_ack=auto_ack,
			      rcvbuf=rcvbuf)
		c.connect(client_id, **kw)
		return c

	def paho(self, client_id, v5=True, **kw):
		return Paho(self, client_id, v5, **kw)


# ---------------------------------------------------------------- paho

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.subscribeoptions import SubscribeOptions  # noqa: E402


def paho_props(ptype, **kw):
	"""Properties(PacketTypes.X) filled from keyword arguments."""
	p = Properties(ptype)
	for k, v in kw.items():
		setattr(p, k, v)
	return p


class Paho:
	"""A paho-mqtt 1.6.1 client driven by its own network thread, with
	blocking waits. No automatic reconnect."""

	def __init__(self, broker, client_id, v5=True, clean=True,
		     keepalive=30, will=None, connect_props=None):
		self.broker = broker
		self.v5 = v5
		self.client_id = client_id
		self.clean = clean
		self.keepalive = keepalive
		self.connect_props = connect_props
		proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
		if v5:
			self.c = mqtt.Client(client_id, protocol=proto)
		else:
			self.c = mqtt.Client(client_id, clean_session=clean,
					     protocol=proto)
		if will:
			self.c.will_set(will["topic"], will.get("payload"),
					will.get("qos", 0), will.get("retain",
								     False),
					will.get("props"))
		self.q = queue.Queue()
		self.connected = threading.Event()
		self.gone = threading.Event()
		self.connack = None
		self.disconnect_rc = None
		self.subacks = {}
		self.sub_ev = threading.Condition()
		self.c.on_connect = self._on_connect
		self.c.on_message = self._on_message
		self.c.on_subscribe = self._on_subscribe
		self.c.on_disconnect = self._on_disconnect
		self.stop = False
		self.thread = None

	def _on_connect(self, c, ud, flags, rc, props=None):
		self.connack = (rc, flags, props)
		self.connected.set()

	def _on_message(self, c, ud, msg):
		self.q.put(msg)

	def _on_subscribe(self, c, ud, mid, granted, props=None):
		with self.sub_ev:
			self.subacks[mid] = granted
			self.sub_ev.notify_all()

	def _on_disconnect(self, c, ud, rc, props=None):
		self.disconnect_rc = rc
		self.gone.set()

	def _loop(self):
		while not self.stop:
			rc = self.c.loop(0.05)
			if rc != mqtt.MQTT_ERR_SUCCESS:
				self.gone.set()
				break

	def connect(self, expect_rc=0, timeout=None):
		kw = {}
		if self.v5:
			kw["clean_start"] = self.clean
			if self.connect_props is not None:
				kw["properties"] = self.connect_props
		self.c.connect(HOST, self.broker.port, self.keepalive, **kw)
		self.thread = threading.Thread(target=self._loop, daemon=True)
		self.thread.start()
		if not self.connected.wait(timeout or slow(5)):
			raise AssertionError("paho %s: no CONNACK" % self.client_id)
		rc = self.connack[0]
		rcv = rc.value if hasattr(rc, "value") else rc
		if expect_rc is not None:
			assert rcv == expect_rc, "paho CONNACK %r" % (rc,)
		return self

	def session_present(self):
		return self.connack[1].get("session present", 0)

	def subscribe(self, topic, qos=0, timeout=None, **opts):
		if self.v5:
			o = SubscribeOptions(qos=qos, **opts)
			rc, mid = self.c.subscribe(topic, options=o)
		else:
			rc, mid = self.c.subscribe(topic, qos)
		assert rc == mqtt.MQTT_ERR_SUCCESS, "subscribe rc %d" % rc
		end = time.monotonic() + (timeout or slow(5))
		with self.sub_ev:
			while mid not in self.subacks:
				left = end - time.monotonic()
				if left <= 0:
					raise AssertionError("no SUBACK for %s" % topic)
				self.sub_ev.wait(left)
			g = self.subacks[mid]
		codes = [x.value if hasattr(x, "value") else x for x in g]
		assert codes == [qos], "SUBACK %r for %s qos %d" % (codes, topic,
								   qos)
		return codes

	def publish(self, topic, payload=b"", qos=0, retain=False, props=None,
		    timeout=None):
		info = self.c.publish(topic, payload, qos, retain, props)
		assert info.rc == mqtt.MQTT_ERR_SUCCESS, "publish rc %d" % info.rc
		if qos:
			info.wait_for_publish(timeout or slow(5))
			assert info.is_published(), "publish of %s not acked" % topic
		return info

	def get(self, timeout=None):
		try:
			return self.q.get(timeout=slow(5) if timeout is None
					  else timeout)
		except queue.Empty:
			raise AssertionError("paho %s: no message" % self.client_id)

	def msgs(self, n, timeout=None):
		end = time.monotonic() + (slow(5) if timeout is None else timeout)
		out = []
		while len(out) < n:
			left = end - time.monotonic()
			try:
				out.append(self.q.get(timeout=max(left, 0.001)))
			except queue.Empty:
				raise AssertionError(
					"paho %s: got %d of %d messages" % (
						self.client_id, len(out), n))
		return out

	def drain(self, duration):
		end = time.monotonic() + duration
		out = []
		while True:
			left = end - time.monotonic()
			if left <= 0:
				return out
			try:
				out.append(self.q.get(timeout=left))
			except queue.Empty:
				return out

	def none(self, duration):
		got = self.drain(duration)
		assert not got, "paho %s: unexpected messages %r" % (
			self.client_id, [(m.topic, m.payload) for m in got])

	def disconnect(self):
		try:
			self.c.disconnect()
		except Exception:
			pass
		self.gone.wait(slow(2))
		self.close()

	def close(self):
		self.stop = True
		if self.thread:
			self.thread.join(2)
		try:
			s = self.c.socket()
			if s:
				s.close()
		except Exception:
			pass


# --------------------------------------------------------- mosquitto CLI

def mosq_pub(broker, client_id, topic, message, qos=0, v5=True, retain=False,
	     extra=None, timeout=None):
	args = ["mosquitto_pub", "-h", HOST, "-p", str(broker.port), "-i",
		client_id, "-t", topic, "-m", message, "-q", str(qos), "-V",
		"mqttv5" if v5 else "mqttv311"]
	if retain:
		args.append("-r")
	args += extra or []
	r = subprocess.run(args, capture_output=True, timeout=timeout or slow(10))
	assert r.returncode == 0, "mosquitto_pub failed %d: %s" % (
		r.returncode, r.stderr.decode())
	return r


class MosqSub:
	"""mosquitto_sub in the background; result() waits for it."""

	def __init__(self, broker, client_id, topic, count, qos=0, v5=True,
		     fmt=None, extra=None, wait=None):
		args = ["mosquitto_sub", "-h", HOST, "-p", str(broker.port), "-i",
			client_id, "-t", topic, "-q", str(qos), "-C", str(count),
			"-W", str(int(wait or slow(10))), "-V",
			"mqttv5" if v5 else "mqttv311"]
		if fmt:
			args += ["-F", fmt]
		args += extra or []
		self.p = subprocess.Popen(args, stdout=subprocess.PIPE,
					  stderr=subprocess.PIPE)

	def result(self, timeout=None):
		try:
			out, err = self.p.communicate(timeout=timeout or slow(15))
		except subprocess.TimeoutExpired:
			self.p.kill()
			out, err = self.p.communicate()
			raise AssertionError("mosquitto_sub timed out")
		return self.p.returncode, out.decode(), err.decode()

	def kill(self):
		if self.p.poll() is None:
			self.p.kill()
			self.p.communicate()


# ------------------------------------------------------------- test base

class SysWatcher:
	"""A raw v5 client subscribed to $SYS/broker/#, keeping last values."""

	def __init__(self, broker, client_id):
		self.c = broker.raw_connect(client_id)
		self.c.subscribe("$SYS/broker/#")
		self.values = {}
		self.retained = {}

	def pump(self, duration):
		for p in self.c.poll(duration):
			if p.type == PUBLISH:
				self.values[p.topic] = p.payload
				self.retained.setdefault(p.topic, p.retain)
		return self.values

	def value(self, topic, timeout=None):
		end = time.monotonic() + (timeout or slow(3))
		while topic not in self.values and time.monotonic() < end:
			self.pump(0.1)
		assert topic in self.values, "no %s (have %s)" % (
			topic, sorted(self.values))
		return int(self.values[topic])

	def wait_value(self, topic, pred, timeout=None):
		"""Waits until int(value) satisfies pred; returns it."""
		end = time.monotonic() + (timeout or slow(4))
		last = None
		while time.monotonic() < end:
			self.pump(0.1)
			if topic in self.values:
				last = int(self.values[topic])
				if pred(last):
					return last
		raise AssertionError("%s: last value %r" % (topic, last))

	def close(self):
		self.c.disconnect()


class VouchTest(unittest.TestCase):
	"""Base class. A class-wide broker (setUpClass) with BROKER_ARGS, plus
	per-test helpers that make unique client IDs and topics."""

	BROKER_ARGS = None	# dict of Broker kwargs, None = no class broker
	broker = None

	@classmethod
	def setUpClass(cls):
		if cls.BROKER_ARGS is not None:
			cls.broker = Broker(**cls.BROKER_ARGS).start()

	@classmethod
	def tearDownClass(cls):
		if cls.broker is not None:
			b, cls.broker = cls.broker, None
			b.stop()

	def setUp(self):
		self.tag = uniq(self._testMethodName[5:13].replace("_", ""))
		self._cleanup_clients = []
		if self.broker is not None:
			self.broker.assert_alive()

	def tearDown(self):
		for c in self._cleanup_clients:
			try:
				c.close()
			except Exception:
				pass
		if self.broker is not None:
			self.broker.check_stderr()
			self.broker.assert_alive()

	def track(self, c):
		self._cleanup_clients.append(c)
		return c

	def cid(self, name, shard, nshards=None, broker=None):
		b = broker or self.broker
		n = nshards or (b.shards if b else SHARDS)
		return cid_on_shard("%s-%s" % (self.tag, name), shard, n)

	def topic(self, *parts):
		return "/".join(("vt", self.tag) + parts)

	def raw(self, name, shard, version=5, broker=None, auto_ack=True,
		rcvbuf=None, **kw):
		"""A connected raw client on the given shard."""
		b = broker or self.broker
		cid = self.cid(name, shard, b.shards, b)
		c = RawClient(b.port, version, auto_ack=auto_ack, rcvbuf=rcvbuf)
		self.track(c)
		c.connect(cid, **kw)
		c.client_id = cid
		return c

	def paho(self, name, shard, v5=True, broker=None, connect=True, **kw):
		b = broker or self.broker
		cid = self.cid(name, shard, b.shards, b)
		p = Paho(b, cid, v5, **kw)
		self.track(p)
		if connect:
			p.connect()
		return p

	def check_every_shard_works(self, broker=None, version=5):
		"""Pub/sub across every pair of neighbouring shards still works."""
		b = broker or self.broker
		b.assert_alive()
		n = b.shards
		subs = []
		t = self.topic("alive", uniq())
		for s in range(n):
			c = self.raw("alive-sub", s, version=version, broker=b)
			c.subscribe(t + "/" + str(s), qos=1)
			subs.append(c)
		for s in range(n):
			p = self.raw("alive-pub", (s + 1) % n, version=version,
				     broker=b)
			p.publish(t + "/" + str(s), b"ping%d" % s, qos=1)
			m = subs[s].message()
			self.assertEqual(m.payload, b"ping%d" % s)
			p.disconnect()
		for c in subs:
			c.disconnect()


def vouch_only(fn):
	"""Marks a test that checks vouch-specific behaviour (skipped when the
	suite is pointed at mosquitto for self-checking)."""
	return unittest.skipIf(MOSQ, "vouch-specific")(fn)


def main():
	unittest.main(verbosity=2)
