#!/usr/bin/python3
"""Malformed and hostile input on raw sockets: bad remaining lengths,
reserved flag bits, QoS 3, bad topics (wildcards, invalid UTF-8, U+0000,
surrogates), empty SUBSCRIBE/UNSUBSCRIBE, bad subscription options, bad
properties, packet identifier 0, packets a client may not send, garbage, a
client that never sends CONNECT, a huge remaining length then silence, and
slowly dribbled packets. After each, clients on every shard still work."""

import threading

from vouchtest import *


class HostileTest(VouchTest):
	BROKER_ARGS = {"extra": ["--connect-timeout", "2"]}

	def tearDown(self):
		super().tearDown()

	def _closed_with(self, c, codes, v5=True):
		"""The server closes; a v5 DISCONNECT before it has rc in codes."""
		got = c.expect_closed()
		for p in got:
			self.assertEqual(p.type, DISCONNECT, got)
			if v5:
				self.assertIn(p.rc, codes, got)
		if not v5:
			self.assertEqual(got, [])
		self.assertLessEqual(len(got), 1, got)
		return got

	def _after(self, c, data, codes, versions=(4, 5), strict=False):
		"""Connected clients of each version send data: closed."""
		for v in versions:
			c = self.raw("h%d" % v, v, version=v)
			c.send(data(v) if callable(data) else data)
			got = self._closed_with(c, codes, v == 5)
			if strict and v == 5:
				self.assertEqual(len(got), 1,
						 "no DISCONNECT before close")

	def test_bad_remaining_length_before_connect(self):
		c = self.track(self.broker.raw())
		c.send(b"\x10\xff\xff\xff\xff\x7f")
		self.assertEqual(c.expect_closed(), [])
		self.check_every_shard_works()

	def test_bad_remaining_length_after_connect(self):
		self._after(None, b"\x30\xff\xff\xff\xff\x01", (0x81,), strict=True)
		self.check_every_shard_works()

	def test_reserved_flag_bits(self):
		def bad(v):
			o = b"\x00" if v == 5 else b""
			return [
				packet(SUBSCRIBE, 0, u16(1) + o + mqstr("a") +
				       b"\x00"),
				packet(UNSUBSCRIBE, 0, u16(1) + o + mqstr("a")),
				packet(PUBREL, 0, u16(1)),
				packet(PUBACK, 2, u16(1)),
				b"\xc1\x00",	# PINGREQ with flags
				b"\xe2\x00",	# DISCONNECT with flags
			]
		for v in (4, 5):
			for data in bad(v):
				# [MQTT-2.1.3-1] invalid flags: Malformed Packet
				c = self.raw("rf%d" % v, v, version=v)
				c.send(data)
				self._closed_with(c, (0x81,), v == 5)
		self.check_every_shard_works()

	def test_publish_qos3(self):
		t = self.topic("q3")
		w = self.raw("w", 0)
		w.subscribe(t, qos=1)
		for v in (4, 5):
			c = self.raw("q3%d" % v, v, version=v)
			body = mqstr(t) + u16(1) + (b"\x00" if v == 5 else b"") + b"x"
			c.send(packet(PUBLISH, 6, body))	# [MQTT-3.3.1-4]
			self._closed_with(c, (0x81,), v == 5)
		w.expect_nothing(0.3)
		self.check_every_shard_works()

	def _bad_topic(self, topic_bytes, codes):
		w = self.raw("w", 3)
		w.subscribe(self.topic("#"), qos=1)
		w.subscribe("#", qos=1)
		for v in (4, 5):
			for q in (0, 1):
				c = self.raw("bt%d%d" % (v, q), v + q, version=v)
				body = u16(len(topic_bytes)) + topic_bytes
				if q:
					body += u16(1)
				if v == 5:
					body += b"\x00"
				c.send(packet(PUBLISH, q << 1, body + b"payload"))
				self._closed_with(c, codes, v == 5)
		for p in w.poll(0.4):
			if p.type == PUBLISH:
				self.assertNotEqual(p.payload, b"payload", p)
		self.check_every_shard_works()

	def test_wildcard_in_topic_name(self):
		# [MQTT-3.3.2-2]
		for t in (b"a/+/b", b"a/#", b"+", b"#"):
			self._bad_topic(t, (0x81, 0x82, 0x90))

	def test_invalid_utf8_topic(self):
		# [MQTT-1.5.4-1] ill-formed UTF-8 is a Malformed Packet
		for t in (b"a/\xff\xfe", b"a/\xc3", b"\xc0\xaf", b"\xed\xa0\x80"):
			self._bad_topic(t, (0x81,))

	def test_nul_in_topic(self):
		self._bad_topic(b"a/\x00b", (0x81,))	# [MQTT-1.5.4-2]

	def test_bad_utf8_in_filter_and_client_id(self):
		for v in (4, 5):
			c = self.raw("bf%d" % v, v, version=v)
			o = b"\x00" if v == 5 else b""
			c.send(packet(SUBSCRIBE, 2, u16(1) + o + mqbin(b"a/\xff") +
				      b"\x00"))
			self._closed_with(c, (0x81,), v == 5)
			c = self.track(self.broker.raw(version=v))
			c.send(enc_connect("x", version=v).replace(
				mqstr("x"), mqbin(b"\xff")))
			got = c.expect_closed()
			for p in got:
				self.assertEqual(p.type, CONNACK)
				self.assertNotEqual(p.rc, 0)
		self.check_every_shard_works()

	def test_subscribe_without_filters(self):
		for v in (4, 5):
			c = self.raw("nf%d" % v, v, version=v)
			body = u16(1) + (b"\x00" if v == 5 else b"")
			c.send(packet(SUBSCRIBE, 2, body))	# [MQTT-3.8.3-2]
			self._closed_with(c, (0x82, 0x81), v == 5)
			c = self.raw("nu%d" % v, v + 1, version=v)
			c.send(packet(UNSUBSCRIBE, 2, body))	# [MQTT-3.10.3-2]
			self._closed_with(c, (0x82, 0x81), v == 5)
		self.check_every_shard_works()

	def test_subscription_options_invalid(self):
		v5cases = [(0xC1, (0x81,)),	# reserved bits [MQTT-3.8.3-5]
			   (0x03, (0x82, 0x81)),	# QoS 3
			   (0x30, (0x82, 0x81))]	# retain handling 3
		for opts, codes in v5cases:
			c = self.raw("so5", 2)
			c.send(enc_subscribe(1, [(self.topic("x"), opts)]))
			got = c.expect_closed()
			self.assertEqual([p.type for p in got], [DISCONNECT], got)
			self.assertIn(got[0].rc, codes, got)
		# 3.1.1 [MQTT-3-8.3-4]: reserved bits (2-7) or QoS 3: close
		for opts in (0xC1, 0x03, 0x04):
			c = self.raw("so4", 3, version=4)
			c.send(enc_subscribe(1, [(self.topic("x"), opts)],
					     version=4))
			self.assertEqual(c.expect_closed(), [])
		self.check_every_shard_works()

	def test_bad_properties(self):
		t = self.topic("bp")
		cases = [
			# unknown property identifier
			(b"\x02\x7f\x00", (0x81,)),
			# Session Expiry is not a PUBLISH property
			(b"\x05\x11\x00\x00\x00\x05", (0x81, 0x82)),
			# property length longer than the packet
			(b"\x40\x01\x01", (0x81,)),
			# payload format indicator twice
			(b"\x04\x01\x00\x01\x00", (0x81, 0x82)),
		]
		for props, codes in cases:
			c = self.raw("bp", 1)
			c.send(packet(PUBLISH, 2, mqstr(t) + u16(1) + props + b"x"))
			got = self._closed_with(c, codes)
			self.assertEqual(len(got), 1, (props, got))
		self.check_every_shard_works()

	def test_packet_identifier_zero(self):
		t = self.topic("p0")
		for v in (4, 5):
			c = self.raw("p0%d" % v, v, version=v)
			c.send(enc_publish(t, b"x", qos=1, pid=0, version=v))
			self._closed_with(c, (0x81, 0x82), v == 5)
			c = self.raw("s0%d" % v, v + 1, version=v)
			c.send(enc_subscribe(0, [(t, 0)], version=v))
			self._closed_with(c, (0x81, 0x82), v == 5)
		self.check_every_shard_works()

	def test_server_only_packets_from_client(self):
		for data in (b"\x20\x02\x00\x00",	# CONNACK
			     b"\x90\x03\x00\x01\x00",	# SUBACK
			     b"\xd0\x00",		# PINGRESP
			     b"\x00\x00",		# reserved type 0
			     b"\xf0\x00"):		# AUTH (no auth method)
			for v in (4, 5):
				c = self.raw("so%d" % v, v, version=v)
				c.send(data)
				self._closed_with(c, (0x81, 0x82), v == 5)
		self.check_every_shard_works()

	def test_garbage(self):
		rnd = random.Random(1234)
		cs = []
		for i in range(40):
			c = self.track(self.broker.raw())
			data = bytes(rnd.getrandbits(8) for _ in range(
				rnd.randint(1, 200)))
			try:
				c.send(data)
			except OSError:
				pass
			cs.append(c)
		for c in cs:
			got = c.expect_closed(slow(6))
			for p in got:
				self.assertNotEqual((p.type, p.rc), (CONNACK, 0), p)
		self.check_every_shard_works()

	def test_garbage_after_connect(self):
		rnd = random.Random(99)
		for i in range(12):
			c = self.raw("ga", i, version=4 + i % 2)
			data = bytes([rnd.choice([0x00, 0x20, 0x90, 0xb0, 0xd0,
						  0xf0, 0x31, 0x36])]) + \
				bytes(rnd.getrandbits(8) for _ in range(50))
			c.send(data)
			# the connection may survive if the bytes parse; the
			# broker must not
			c.poll(0.1)
		self.check_every_shard_works()

	def test_never_sends_connect(self):
		c = self.track(self.broker.raw())
		t0 = time.monotonic()
		got = c.expect_closed(slow(6))
		dt = time.monotonic() - t0
		self.assertEqual(got, [])
		self.assertGreaterEqual(dt, 1.5, "closed after %.2fs" % dt)
		self.assertLessEqual(dt, slow(4.5), "closed after %.2fs" % dt)

	def test_huge_claim_then_silence(self):
		rss0 = self.broker.rss_kb()
		cs = []
		for i in range(20):
			c = self.track(self.broker.raw())
			c.send(b"\x10\xff\xff\xff\x7f\x00\x04MQTT")
			cs.append(c)
		t0 = time.monotonic()
		for c in cs:
			c.expect_closed(slow(6))
		self.assertLessEqual(time.monotonic() - t0, slow(4.5))
		rss1 = self.broker.rss_kb()
		self.assertLess(rss1 - rss0, 64 * 1024, (rss0, rss1))
		self.check_every_shard_works()

	def _dribble(self, sock, data, gap):
		def run():
			for i in range(len(data)):
				try:
					sock.send(data[i:i + 1])
				except OSError:
					return
				time.sleep(gap)
		th = threading.Thread(target=run, daemon=True)
		th.start()
		return th

	def test_slowloris_completes(self):
		cid = self.cid("slow", 1)
		t = self.topic("sl")
		w = self.raw("w", 2)
		w.subscribe(t, qos=1)
		c = self.track(self.broker.raw(version=4))
		data = enc_connect(cid, version=4, keepalive=30)
		th = self._dribble(c.sock, data, 1.2 / len(data))
		th.join(slow(5))
		p = c.expect(CONNACK, timeout=slow(3))
		self.assertEqual(p.rc, 0)
		pub = enc_publish(t, b"dribbled", qos=1, pid=5, version=4)
		th = self._dribble(c.sock, pub, 0.05)
		th.join(slow(5))
		self.assertEqual(c.expect(PUBACK).pid, 5)
		self.assertEqual(w.message().payload, b"dribbled")

	def test_slowloris_too_slow(self):
		c = self.track(self.broker.raw(version=4))
		data = enc_connect(self.cid("slower", 0), version=4)
		t0 = time.monotonic()
		self._dribble(c.sock, data, 0.25)
		got = c.expect_closed(slow(6))
		dt = time.monotonic() - t0
		self.assertEqual(got, [])
		self.assertLess(dt, len(data) * 0.25)
		self.assertLessEqual(dt, slow(4.5))

	def test_pipelined_pings(self):
		c = self.raw("pings", 3)
		c.send(enc_pingreq() * 2000)
		n = 0
		end = time.monotonic() + slow(5)
		while n < 2000 and time.monotonic() < end:
			c.expect(PINGRESP)
			n += 1
		self.assertEqual(n, 2000)

	def test_oversized_default_limit(self):
		c = self.raw("big", 2)
		data = enc_publish(self.topic("big"), b"x" * (1048576 + 100),
				   qos=0)
		try:
			c.send(data)
		except OSError:
			pass
		self._closed_with(c, (0x95,))
		self.check_every_shard_works()


if __name__ == "__main__":
	main()
