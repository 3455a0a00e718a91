#!/usr/bin/python3
"""Sessions: clean session / clean start, the session present flag, session
expiry (v5), offline queueing of QoS 1/2 (not QoS 0), redelivery of
unacknowledged QoS 1/2 messages with DUP and of PUBREL on reconnect, inbound
QoS 2 state across a reconnect, and --max-queued-messages."""

from vouchtest import *

P60 = {P_SESSION_EXPIRY: 60}


class SessionTest(VouchTest):
	BROKER_ARGS = {}

	def _connect(self, cid, v, clean, props=None, **kw):
		c = self.track(self.broker.raw(version=v, **kw))
		if v == 5 and props is None and not clean:
			props = P60
		p = c.connect(cid, version=v, clean=clean, props=props)
		return c, p

	def test_v311_session_present(self):
		cid = self.cid("s", 1)
		c, p = self._connect(cid, 4, False)
		self.assertEqual(p.raw, b"\x00\x00")
		c.disconnect()
		c, p = self._connect(cid, 4, False)
		self.assertEqual(p.raw, b"\x01\x00")	# [MQTT-3.2.2-2]
		c.disconnect()
		c, p = self._connect(cid, 4, True)
		self.assertEqual(p.raw, b"\x00\x00")	# [MQTT-3.2.2-1]
		c.disconnect()
		time.sleep(0.3)	# a CONNECT overtaking the DISCONNECT is a takeover
		# the clean session discarded the state [MQTT-3.1.2-6]
		c, p = self._connect(cid, 4, False)
		self.assertEqual(p.raw, b"\x00\x00")
		c.disconnect()

	def test_v5_session_present(self):
		cid = self.cid("s", 2)
		c, p = self._connect(cid, 5, False)
		self.assertEqual(p.sp, 0)
		c.disconnect()
		c, p = self._connect(cid, 5, False)
		self.assertEqual(p.sp, 1)
		c.disconnect()
		c, p = self._connect(cid, 5, True, props=P60)
		self.assertEqual(p.sp, 0)
		c.disconnect()
		c, p = self._connect(cid, 5, False)
		self.assertEqual(p.sp, 1)	# the clean start session persisted
		c.disconnect()

	def _offline_queue(self, v):
		cid = self.cid("s%d" % v, v)
		t = self.topic("q")
		c, _ = self._connect(cid, v, False)
		c.subscribe(t + "/#", qos=2)
		c.disconnect()
		time.sleep(0.3)	# the DISCONNECT lands before the publishes
		pub = self.raw("pub", v + 1)
		for q in (0, 1, 2, 0, 2, 1):
			pub.publish(t + "/%d" % q, b"offline-q%d" % q, qos=q)
		time.sleep(0.2)
		c, p = self._connect(cid, v, False)
		self.assertEqual(p.sp, 1)
		got = c.messages(4)
		# QoS 0 is not queued for an offline session; order kept
		self.assertEqual([(m.payload, m.qos) for m in got],
				 [(b"offline-q1", 1), (b"offline-q2", 2),
				  (b"offline-q2", 2), (b"offline-q1", 1)])
		c.expect_nothing(0.5)
		# the subscription survived without a new SUBSCRIBE
		pub.publish(t + "/live", b"live", qos=1)
		self.assertEqual(c.message().payload, b"live")

	def test_v311_offline_queue(self):
		self._offline_queue(4)

	def test_v5_offline_queue(self):
		self._offline_queue(5)

	def test_offline_queue_downgrade(self):
		cid = self.cid("dg", 3)
		t = self.topic("dg")
		c, _ = self._connect(cid, 5, False)
		c.subscribe(t, qos=1)
		c.disconnect()
		time.sleep(0.3)	# the DISCONNECT lands before the publishes
		pub = self.raw("pub", 0)
		pub.publish(t, b"two", qos=2)
		c, p = self._connect(cid, 5, False)
		m = c.message()
		self.assertEqual((m.payload, m.qos), (b"two", 1))

	def test_v5_expiry_zero_ends_at_disconnect(self):
		cid = self.cid("e0", 1)
		t = self.topic("e0")
		c, p = self._connect(cid, 5, False, props={})
		c.subscribe(t, qos=1)
		c.disconnect()
		pub = self.raw("pub", 2)
		pub.publish(t, b"lost", qos=1)
		time.sleep(0.3)	# a CONNECT overtaking the DISCONNECT is a takeover
		c, p = self._connect(cid, 5, False, props={})
		self.assertEqual(p.sp, 0)	# [MQTT-3.1.2-*]
		c.expect_nothing(0.5)
		pub.publish(t, b"lost2", qos=1)
		c.expect_nothing(0.3)

	def test_v5_session_expiry_2s(self):
		cid = self.cid("e2", 3)
		t = self.topic("e2")
		props = {P_SESSION_EXPIRY: 2}
		c, p = self._connect(cid, 5, False, props=props)
		c.subscribe(t, qos=1)
		c.abort()
		pub = self.raw("pub", 1)
		time.sleep(0.1)
		pub.publish(t, b"kept", qos=1)
		time.sleep(1.0)
		c, p = self._connect(cid, 5, False, props=props)
		self.assertEqual(p.sp, 1)
		self.assertEqual(c.message().payload, b"kept")
		c.disconnect()
		pub.publish(t, b"expired", qos=1)
		time.sleep(3.0)
		c, p = self._connect(cid, 5, False, props=props)
		self.assertEqual(p.sp, 0)
		c.expect_nothing(0.5)

	def test_v5_disconnect_sets_expiry_zero(self):
		cid = self.cid("de", 0)
		c, p = self._connect(cid, 5, False)
		c.disconnect(0, {P_SESSION_EXPIRY: 0})
		time.sleep(0.2)
		c, p = self._connect(cid, 5, False)
		self.assertEqual(p.sp, 0)

	def test_v5_disconnect_expiry_from_zero_is_protocol_error(self):
		"""[MQTT-3.14.2-2]: a non-zero Session Expiry in DISCONNECT after
		a zero one in CONNECT: DISCONNECT 0x82 and the will is sent."""
		cid = self.cid("dz", 1)
		wt = self.topic("will")
		w = self.raw("w", 3)
		w.subscribe(wt, qos=1)
		c = self.track(self.broker.raw())
		c.connect(cid, clean=True, will={"topic": wt, "payload": b"gone",
						 "qos": 1})
		c.send(enc_disconnect(0, {P_SESSION_EXPIRY: 30}))
		got = c.expect_closed()
		self.assertEqual([(x.type, x.rc) for x in got],
				 [(DISCONNECT, 0x82)])
		self.assertEqual(w.message().payload, b"gone")

	def _redeliver_qos1(self, v):
		cid = self.cid("rd%d" % v, v)
		t = self.topic("rd")
		c, _ = self._connect(cid, v, False, auto_ack=False)
		c.subscribe(t, qos=1)
		pub = self.raw("pub", v + 2)
		pub.publish(t, b"a", qos=1)
		pub.publish(t, b"b", qos=1)
		m1, m2 = c.messages(2)
		self.assertEqual((m1.dup, m2.dup), (False, False))
		c.send(enc_ack(PUBACK, m2.pid, version=v))
		time.sleep(0.1)
		c.close()
		c, p = self._connect(cid, v, False, auto_ack=False)
		self.assertEqual(p.sp, 1)
		r = c.message()
		# [MQTT-4.4.0-1] original packet id, DUP=1 [MQTT-3.3.1-1]
		self.assertEqual((r.payload, r.pid, r.dup, r.qos),
				 (b"a", m1.pid, True, 1))
		c.expect_nothing(0.5)
		c.send(enc_ack(PUBACK, r.pid, version=v))
		# the PUBACK and the next CONNECT travel on different sockets:
		# give the broker a moment, or a DUP resend is legitimate
		time.sleep(0.2)
		c.close()
		c, p = self._connect(cid, v, False)
		c.expect_nothing(0.5)

	def test_v311_redeliver_qos1(self):
		self._redeliver_qos1(4)

	def test_v5_redeliver_qos1(self):
		self._redeliver_qos1(5)

	def _redeliver_qos2(self, v):
		cid = self.cid("r2%d" % v, v)
		t = self.topic("r2")
		c, _ = self._connect(cid, v, False, auto_ack=False)
		c.subscribe(t, qos=2)
		pub = self.raw("pub", v + 1)
		pub.publish(t, b"nothing-acked", qos=2)
		pub.publish(t, b"pubrec-sent", qos=2)
		m1, m2 = c.messages(2)
		c.send(enc_ack(PUBREC, m2.pid, version=v))
		rel = c.expect(PUBREL)
		self.assertEqual(rel.pid, m2.pid)
		c.close()
		c, p = self._connect(cid, v, False, auto_ack=False)
		self.assertEqual(p.sp, 1)
		a = c.recv()
		b = c.recv()
		byt = {x.type: x for x in (a, b)}
		self.assertEqual(sorted(byt), [PUBLISH, PUBREL], (a, b))
		r = byt[PUBLISH]
		self.assertEqual((r.payload, r.pid, r.dup, r.qos),
				 (b"nothing-acked", m1.pid, True, 2))
		self.assertEqual(byt[PUBREL].pid, m2.pid)	# PUBREL resent
		c.send(enc_ack(PUBCOMP, m2.pid, version=v))
		c.send(enc_ack(PUBREC, m1.pid, version=v))
		self.assertEqual(c.expect(PUBREL).pid, m1.pid)
		c.send(enc_ack(PUBCOMP, m1.pid, version=v))
		# nothing more: "pubrec-sent" must not come back as PUBLISH
		c.expect_nothing(0.5, (PUBLISH, PUBREL))
		c.close()
		c, p = self._connect(cid, v, False)
		c.expect_nothing(0.4, (PUBLISH, PUBREL))

	def test_v311_redeliver_qos2_and_pubrel(self):
		self._redeliver_qos2(4)

	def test_v5_redeliver_qos2_and_pubrel(self):
		self._redeliver_qos2(5)

	def _inbound_qos2_reconnect(self, v):
		cid = self.cid("in%d" % v, v + 1)
		t = self.topic("in")
		sub = self.raw("sub", v)
		sub.subscribe(t, qos=2)
		c, _ = self._connect(cid, v, False)
		c.send(enc_publish(t, b"exactly-once", qos=2, pid=42, version=v))
		self.assertEqual(c.expect(PUBREC).pid, 42)
		c.close()
		c, p = self._connect(cid, v, False)
		self.assertEqual(p.sp, 1)
		# the client may resend the PUBLISH with DUP: still once
		c.send(enc_publish(t, b"exactly-once", qos=2, pid=42, dup=True,
				   version=v))
		self.assertEqual(c.expect(PUBREC).pid, 42)
		c.send(enc_ack(PUBREL, 42, version=v))
		comp = c.expect(PUBCOMP)
		self.assertEqual((comp.pid, comp.rc), (42, 0))
		self.assertEqual(sub.message().payload, b"exactly-once")
		sub.expect_nothing(0.5)

	def test_v311_inbound_qos2_across_reconnect(self):
		self._inbound_qos2_reconnect(4)

	def test_v5_inbound_qos2_across_reconnect(self):
		self._inbound_qos2_reconnect(5)

	def test_clean_start_discards_queue(self):
		cid = self.cid("cs", 2)
		t = self.topic("cs")
		c, _ = self._connect(cid, 5, False)
		c.subscribe(t, qos=1)
		c.disconnect()
		time.sleep(0.3)	# the DISCONNECT lands before the publishes
		pub = self.raw("pub", 0)
		pub.publish(t, b"queued", qos=1)
		c, p = self._connect(cid, 5, True)
		self.assertEqual(p.sp, 0)
		c.expect_nothing(0.5)

	def test_paho_persistent_session(self):
		t = self.topic("paho")
		for v5 in (False, True):
			props = None
			if v5:
				props = paho_props(PacketTypes.CONNECT,
						   SessionExpiryInterval=60)
			s = self.paho("ps%d" % v5, 1 + v5, v5=v5, clean=False,
				      connect_props=props)
			s.subscribe(t, 1)
			s.disconnect()
			pub = self.paho("pp%d" % v5, 3, v5=not v5)
			pub.publish(t, b"while-away-%d" % v5, qos=1)
			pub.disconnect()
			s = self.paho("ps%d" % v5, 1 + v5, v5=v5, clean=False,
				      connect_props=props)
			self.assertEqual(s.session_present(), 1)
			self.assertEqual(s.get().payload, b"while-away-%d" % v5)
			s.disconnect()


class MaxQueuedTest(VouchTest):
	BROKER_ARGS = {"extra": ["--max-queued-messages", "10"]}

	def _max_queued(self, v):
		cid = self.cid("mq%d" % v, v)
		t = self.topic("mq")
		c = self.track(self.broker.raw(version=v))
		c.connect(cid, version=v, clean=False,
			  props=P60 if v == 5 else None)
		c.subscribe(t, qos=1)
		c.disconnect()
		time.sleep(0.3)	# the DISCONNECT lands before the publishes
		pub = self.raw("pub", v + 1)
		pub.publish_many([(t, b"%d" % i) for i in range(25)], qos=1)
		# QoS 0 is not queued and does not take a slot either
		pub.publish(t, b"q0", qos=0)
		time.sleep(0.3)
		c = self.track(self.broker.raw(version=v))
		p = c.connect(cid, version=v, clean=False,
			      props=P60 if v == 5 else None)
		self.assertEqual(p.sp, 1)
		got = [m.payload for m in c.poll(slow(1.5)) if m.type == PUBLISH]
		self.assertEqual(len(got), 10, got)
		self.assertEqual(len(set(got)), 10, got)
		self.assertNotIn(b"q0", got)
		for x in got:
			self.assertIn(int(x), range(25))

	def test_v311_max_queued(self):
		self._max_queued(4)

	def test_v5_max_queued(self):
		self._max_queued(5)


if __name__ == "__main__":
	main()
