#!/usr/bin/python3
"""Will messages and keep-alive across shards: the will on an abnormal close
(socket closed, keep-alive timeout, protocol error), none on a normal
DISCONNECT, v5 DISCONNECT 0x04, will delay and its cancellation, the will
delay capped by the session end, will properties, will retain and QoS;
keep-alive enforcement and the v5 Server Keep Alive cap."""

from vouchtest import *


def will(topic, payload, qos=1, retain=False, props=None):
	return {"topic": topic, "payload": payload, "qos": qos,
		"retain": retain, "props": props}


class WillTest(VouchTest):
	BROKER_ARGS = {}

	def _watcher(self, shard, t, v=5, qos=1):
		w = self.raw("watch%d" % shard, shard, version=v)
		w.subscribe(t, qos=qos)
		return w

	def test_will_on_socket_close(self):
		for v in (4, 5):
			t = self.topic("w%d" % v)
			w = self._watcher(0, t, v=9 - v)
			c = self.raw("dev%d" % v, 1 + v, version=v,
				     will=will(t, b"died-%d" % v, qos=1))
			c.abort()
			m = w.message()
			self.assertEqual((m.topic, m.payload, m.qos, m.retain),
					 (t, b"died-%d" % v, 1, False))
			w.expect_nothing(0.3)

	def test_will_on_fin_close(self):
		t = self.topic("w")
		w = self._watcher(2, t)
		c = self.raw("dev", 3, will=will(t, b"fin"))
		c.close()
		self.assertEqual(w.message().payload, b"fin")

	def test_no_will_on_disconnect(self):
		t = self.topic("w")
		w = self._watcher(1, t)
		for v in (4, 5):
			c = self.raw("dev%d" % v, v, version=v,
				     will=will(t, b"must-not"))
			if v == 5:
				c.disconnect(0x00)
			else:
				c.disconnect()
		c = self.raw("dev6", 2, will=will(t, b"must-not"))
		c.send(enc_disconnect())	# v5 with no reason code = 0x00
		c.close()
		w.expect_nothing(1.0)

	def test_v5_disconnect_with_will(self):
		t = self.topic("w")
		w = self._watcher(0, t)
		c = self.raw("dev", 1, will=will(t, b"asked-for", qos=0))
		c.disconnect(0x04)
		m = w.message()
		self.assertEqual((m.payload, m.qos), (b"asked-for", 0))

	def test_will_on_protocol_error(self):
		t = self.topic("w")
		w = self._watcher(3, t)
		c = self.raw("dev", 2, will=will(t, b"bad-packet"))
		c.send(b"\x36\x05\x00\x01a\x00\x01")	# PUBLISH QoS 3
		c.expect_closed()
		self.assertEqual(w.message().payload, b"bad-packet")

	def test_will_qos_and_downgrade(self):
		t = self.topic("w")
		w2 = self._watcher(0, t, qos=2)
		w1 = self._watcher(1, t, v=4, qos=1)
		c = self.raw("dev", 2, version=4, will=will(t, b"q2", qos=2))
		c.abort()
		self.assertEqual(w2.message().qos, 2)
		self.assertEqual(w1.message().qos, 1)

	def test_will_retain(self):
		t = self.topic("w")
		c = self.raw("dev", 3, will=will(t, b"last-words", retain=True))
		w = self._watcher(0, t)
		c.abort()
		m = w.message()
		self.assertEqual(m.payload, b"last-words")
		time.sleep(0.1)
		late = self.raw("late", 1, version=4)
		late.subscribe(t, qos=1)
		m = late.message()
		self.assertEqual((m.payload, m.retain), (b"last-words", True))

	def test_will_properties_passed_through(self):
		t = self.topic("w")
		w = self._watcher(1, t)
		props = [(P_PAYLOAD_FORMAT, 1), (P_MESSAGE_EXPIRY, 100),
			 (P_CONTENT_TYPE, "text/plain"),
			 (P_RESPONSE_TOPIC, self.topic("resp")),
			 (P_CORRELATION_DATA, b"\x00\x01corr"),
			 (P_USER_PROPERTY, ("a", "1")),
			 (P_USER_PROPERTY, ("b", "2")),
			 (P_USER_PROPERTY, ("a", "3"))]
		c = self.raw("dev", 2, will=will(t, b"props", props=props))
		c.abort()
		m = w.message()
		p = m.props
		self.assertEqual(p.get(P_PAYLOAD_FORMAT), 1)
		self.assertIn(p.get(P_MESSAGE_EXPIRY), range(95, 101))
		self.assertEqual(p.get(P_CONTENT_TYPE), "text/plain")
		self.assertEqual(p.get(P_RESPONSE_TOPIC), self.topic("resp"))
		self.assertEqual(p.get(P_CORRELATION_DATA), b"\x00\x01corr")
		# [MQTT-3.3.2-18] user properties in order, duplicates kept
		self.assertEqual(p.all(P_USER_PROPERTY),
				 [("a", "1"), ("b", "2"), ("a", "3")])
		self.assertFalse(p.has(P_WILL_DELAY))

	def test_will_delay(self):
		t = self.topic("w")
		w = self._watcher(0, t)
		c = self.raw("dev", 1, clean=False,
			     props={P_SESSION_EXPIRY: 30},
			     will=will(t, b"delayed", props={P_WILL_DELAY: 2}))
		t0 = time.monotonic()
		c.abort()
		m = w.message(slow(5))
		dt = time.monotonic() - t0
		self.assertEqual(m.payload, b"delayed")
		self.assertGreaterEqual(dt, 1.5, "will after %.2fs" % dt)
		self.assertLessEqual(dt, slow(4.5), "will after %.2fs" % dt)

	def test_will_delay_cancelled_by_reconnect(self):
		t = self.topic("w")
		w = self._watcher(2, t)
		kw = dict(clean=False, props={P_SESSION_EXPIRY: 30},
			  will=will(t, b"cancelled", props={P_WILL_DELAY: 2}))
		c = self.raw("dev", 3, **kw)
		c.abort()
		time.sleep(0.5)
		c2 = self.track(self.broker.raw())
		p = c2.connect(c.client_id, clean=False,
			       props={P_SESSION_EXPIRY: 30})
		self.assertEqual(p.sp, 1)
		w.expect_nothing(3.0)
		c2.disconnect()

	def test_will_delay_capped_by_session_expiry(self):
		"""[MQTT-3.1.3-9] the will is sent when the session ends, even
		if the will delay is longer."""
		t = self.topic("w")
		w = self._watcher(1, t)
		c = self.raw("dev", 0, clean=False, props={P_SESSION_EXPIRY: 1},
			     will=will(t, b"session-ended",
				       props={P_WILL_DELAY: 60}))
		t0 = time.monotonic()
		c.abort()
		m = w.message(slow(5))
		dt = time.monotonic() - t0
		self.assertEqual(m.payload, b"session-ended")
		self.assertGreaterEqual(dt, 0.7, "will after %.2fs" % dt)
		self.assertLessEqual(dt, slow(3.5), "will after %.2fs" % dt)

	def test_paho_will(self):
		t = self.topic("w")
		w = self.paho("watch", 0)
		w.subscribe(t, 1)
		for v5 in (False, True):
			p = self.paho("dev%d" % v5, 1 + v5, v5=v5,
				      will={"topic": t, "payload": b"paho-%d" % v5,
					    "qos": 1})
			# kill the socket under paho: abnormal close
			p.stop = True
			p.thread.join(2)
			p.c.socket().close()
			m = w.get()
			self.assertEqual(m.payload, b"paho-%d" % v5)


class KeepAliveTest(VouchTest):
	BROKER_ARGS = {}

	def _idle_close(self, v):
		t = self.topic("ka%d" % v)
		w = self.raw("watch", v, version=5)
		w.subscribe(t, qos=1)
		c = self.track(self.broker.raw(version=v))
		t0 = time.monotonic()
		c.connect(self.cid("idle", v + 1), version=v, keepalive=1,
			  will=will(t, b"timed-out"))
		got = c.expect_closed(slow(5))
		dt = time.monotonic() - t0
		# [MQTT-3.1.2-24] closed after 1.5 x keep alive, not before 1x
		self.assertGreaterEqual(dt, 1.0, "closed after %.2fs" % dt)
		self.assertLessEqual(dt, slow(3.5), "closed after %.2fs" % dt)
		for p in got:
			self.assertEqual((p.type, p.rc), (DISCONNECT, 0x8D), got)
		self.assertEqual(w.message().payload, b"timed-out")

	def test_keepalive_timeout_v311(self):
		self._idle_close(4)

	def test_keepalive_timeout_v5(self):
		self._idle_close(5)

	def test_pings_keep_connection(self):
		c = self.raw("pinger", 1, keepalive=1)
		for i in range(6):
			time.sleep(0.5)
			c.send(enc_pingreq())
			c.expect(PINGRESP, timeout=slow(1))
		self.assertTrue(c.is_open())

	def test_traffic_keeps_connection(self):
		t = self.topic("tr")
		c = self.raw("talker", 2, version=4, keepalive=1)
		for i in range(6):
			time.sleep(0.5)
			c.publish(t, b"x", qos=0)
		self.assertTrue(c.is_open())

	def test_keepalive_zero_never_times_out(self):
		c = self.raw("zero", 3, keepalive=0)
		c.expect_nothing(2.5, (DISCONNECT, PUBLISH))
		self.assertTrue(c.is_open())

	def test_paho_keepalive(self):
		p = self.paho("paho", 0, keepalive=1)
		time.sleep(3)
		self.assertFalse(p.gone.is_set())


class ServerKeepAliveTest(VouchTest):
	BROKER_ARGS = {"extra": ["--max-keepalive", "1"]}

	def test_server_keep_alive_cap_enforced(self):
		c = self.track(self.broker.raw())
		t0 = time.monotonic()
		p = c.connect(self.cid("big", 1), keepalive=100)
		# [MQTT-3.2.2-21] the client must use the Server Keep Alive
		self.assertEqual(p.props.get(P_SERVER_KEEP_ALIVE), 1, p)
		got = c.expect_closed(slow(5))
		dt = time.monotonic() - t0
		self.assertGreaterEqual(dt, 1.0, "closed after %.2fs" % dt)
		self.assertLessEqual(dt, slow(3.5), "closed after %.2fs" % dt)
		for x in got:
			self.assertEqual((x.type, x.rc), (DISCONNECT, 0x8D), got)

	def test_server_keep_alive_for_zero(self):
		c = self.track(self.broker.raw())
		p = c.connect(self.cid("zero", 2), keepalive=0)
		self.assertEqual(p.props.get(P_SERVER_KEEP_ALIVE), 1, p)

	def test_keep_alive_within_limit(self):
		c = self.track(self.broker.raw())
		p = c.connect(self.cid("ok", 3), keepalive=1)
		self.assertIn(p.props.get(P_SERVER_KEEP_ALIVE, 1), (1,), p)


class ServerKeepAliveDefaultTest(VouchTest):
	BROKER_ARGS = {"extra": ["--max-keepalive", "10"]}

	def test_caps(self):
		for ka, want in ((60, 10), (0, 10), (5, None), (10, None)):
			c = self.track(self.broker.raw())
			p = c.connect(self.cid("k%d" % ka, ka), keepalive=ka)
			got = p.props.get(P_SERVER_KEEP_ALIVE)
			if want is None:
				self.assertIn(got, (None, ka), (ka, p))
			else:
				self.assertEqual(got, want, (ka, p))
			c.disconnect()


if __name__ == "__main__":
	main()
