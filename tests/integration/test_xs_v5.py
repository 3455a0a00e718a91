#!/usr/bin/python3
"""MQTT 5 features across shards: no-local, subscription identifiers, topic
aliases in both directions, receive maximum both ways, maximum packet size
both ways, message expiry, property pass-through (response topic,
correlation data, user properties, payload format, content type) and
reason strings / request problem information."""

from vouchtest import *


class V5Test(VouchTest):
	BROKER_ARGS = {}

	def test_no_local(self):
		t = self.topic("nl")
		me = self.raw("me", 0)
		me.subscribe(t, qos=1, nl=True)
		other = self.raw("other", 1)
		me.publish(t, b"mine", qos=1)
		other.publish(t, b"theirs", qos=1)
		m = me.message()
		self.assertEqual(m.payload, b"theirs")	# [MQTT-3.8.3-3]
		me.expect_nothing(0.4)
		# without no-local a client gets its own messages
		me2 = self.raw("me2", 2)
		me2.subscribe(t, qos=1)
		me2.publish(t, b"echo", qos=1)
		self.assertEqual(me2.message().payload, b"echo")

	def test_subscription_identifiers(self):
		t = self.topic("sid", "x")
		c = self.raw("sub", 3)
		c.subscribe(self.topic("sid", "#"), qos=0,
			    props={P_SUBSCRIPTION_ID: 1})
		c.subscribe(self.topic("sid", "+"), qos=1,
			    props={P_SUBSCRIPTION_ID: 2})
		c.subscribe(self.topic("sid", "y"), qos=1,
			    props={P_SUBSCRIPTION_ID: 268435455})
		c.subscribe(self.topic("sid", "z"), qos=1)	# no id
		pub = self.raw("pub", 0)
		pub.publish(t, b"both", qos=1)
		m = c.message()
		# one copy, both ids, the higher QoS [MQTT-3.3.4-3..5]
		self.assertEqual(m.payload, b"both")
		self.assertEqual(sorted(m.props.all(P_SUBSCRIPTION_ID)), [1, 2])
		self.assertEqual(m.qos, 1)
		c.expect_nothing(0.3)
		pub.publish(self.topic("sid", "y"), b"y", qos=1)
		m = c.message()
		self.assertEqual(sorted(m.props.all(P_SUBSCRIPTION_ID)),
				 [1, 2, 268435455])
		pub.publish(self.topic("sid", "q", "z"), b"deep", qos=1)
		m = c.message()
		self.assertEqual(m.props.all(P_SUBSCRIPTION_ID), [1])
		# a subscription without an id contributes none
		c2 = self.raw("sub2", 1)
		c2.subscribe(t, qos=1)
		pub.publish(t, b"plain", qos=1)
		self.assertFalse(c2.message().props.has(P_SUBSCRIPTION_ID))
		self.assertEqual(c.message().payload, b"plain")	# c matches too
		# re-subscribing replaces the id
		c.subscribe(self.topic("sid", "+"), qos=1,
			    props={P_SUBSCRIPTION_ID: 7})
		pub.publish(t, b"new", qos=1)
		m = c.message()
		self.assertEqual(sorted(m.props.all(P_SUBSCRIPTION_ID)), [1, 7])

	def test_subscription_identifier_zero_is_protocol_error(self):
		c = self.raw("sub", 2)
		c.send(enc_subscribe(1, [(self.topic("x"), 0)],
				     props={P_SUBSCRIPTION_ID: 0}))
		got = c.expect_closed()
		self.assertEqual([(p.type, p.rc) for p in got],
				 [(DISCONNECT, 0x82)])

	def test_topic_alias_from_client(self):
		t = self.topic("ta")
		sub = self.raw("sub", 1)
		sub.subscribe(self.topic("#"), qos=1)
		pub = self.raw("pub", 2)
		tam = pub.connack.props.get(P_TOPIC_ALIAS_MAXIMUM, 0)
		self.assertGreaterEqual(tam, 2)
		pub.publish(t + "/a", b"1", qos=1, props={P_TOPIC_ALIAS: 1})
		pub.publish("", b"2", qos=1, props={P_TOPIC_ALIAS: 1})
		pub.publish(t + "/b", b"3", qos=1, props={P_TOPIC_ALIAS: tam})
		pub.publish("", b"4", qos=0, props={P_TOPIC_ALIAS: tam})
		# remap alias 1
		pub.publish(t + "/c", b"5", qos=1, props={P_TOPIC_ALIAS: 1})
		pub.publish("", b"6", qos=2, props={P_TOPIC_ALIAS: 1})
		got = [(m.topic, m.payload) for m in sub.messages(6)]
		self.assertEqual(got, [(t + "/a", b"1"), (t + "/a", b"2"),
				       (t + "/b", b"3"), (t + "/b", b"4"),
				       (t + "/c", b"5"), (t + "/c", b"6")])
		# aliases are per connection: not forwarded to subscribers
		for m in sub.poll(0.1):
			self.assertFalse(m.props.has(P_TOPIC_ALIAS))

	def test_topic_alias_errors(self):
		t = self.topic("ta")
		cases = [
			# over the maximum, and 0 [MQTT-3.3.2-8/9]: 0x94
			(t, {P_TOPIC_ALIAS: 65535}, (0x94,)),
			(t, {P_TOPIC_ALIAS: 0}, (0x94, 0x82, 0x81)),
			# empty topic, alias never set: Protocol Error
			("", {P_TOPIC_ALIAS: 3}, (0x82,)),
			# empty topic without an alias [MQTT-3.3.2-*]
			("", None, (0x82,)),
		]
		for topic, props, codes in cases:
			c = self.raw("bad", 3)
			c.send(enc_publish(topic, b"x", qos=1, pid=1, props=props))
			got = c.expect_closed()
			self.assertEqual(len(got), 1, (props, got))
			self.assertEqual(got[0].type, DISCONNECT, (props, got))
			self.assertIn(got[0].rc, codes, (topic, props, got))
		self.check_every_shard_works()

	def test_topic_alias_to_client(self):
		t = self.topic("out")
		sub = self.raw("sub", 0, props={P_TOPIC_ALIAS_MAXIMUM: 5})
		sub.subscribe(t + "/#", qos=1)
		pub = self.raw("pub", 1)
		for i in range(3):
			pub.publish(t + "/a", b"a%d" % i, qos=1)
		pub.publish(t + "/b", b"b0", qos=1)
		pub.publish(t + "/b", b"b1", qos=1)
		got = sub.messages(5)
		aliases = {}
		resolved = []
		for m in got:
			a = m.props.get(P_TOPIC_ALIAS)
			if a is not None:
				self.assertTrue(1 <= a <= 5, m)
			if m.topic:
				if a is not None:
					aliases[a] = m.topic
				resolved.append((m.topic, m.payload))
			else:
				self.assertIn(a, aliases, m)
				resolved.append((aliases[a], m.payload))
		self.assertEqual(resolved, [(t + "/a", b"a0"), (t + "/a", b"a1"),
					    (t + "/a", b"a2"), (t + "/b", b"b0"),
					    (t + "/b", b"b1")])
		# the broker uses the aliases it announced: the second message
		# on a topic comes with an empty topic and the alias
		self.assertEqual(got[1].topic, "", got)
		self.assertEqual(got[1].props.get(P_TOPIC_ALIAS),
				 got[0].props.get(P_TOPIC_ALIAS))
		self.assertEqual(got[4].topic, "", got)
		# paho and raw clients that did not ask get no aliases
		# [MQTT-3.1.2-26]
		plain = self.raw("plain", 2)
		plain.subscribe(t + "/#", qos=0)
		for i in range(3):
			pub.publish(t + "/a", b"p%d" % i, qos=1)
		for m in plain.messages(3):
			self.assertEqual(m.topic, t + "/a")
			self.assertFalse(m.props.has(P_TOPIC_ALIAS))
		p = self.paho("paho", 3)
		p.subscribe(t + "/#", 1)
		for i in range(3):
			pub.publish(t + "/a", b"q%d" % i, qos=1)
		self.assertEqual([(m.topic, m.payload) for m in p.msgs(3)],
				 [(t + "/a", b"q%d" % i) for i in range(3)])

	def test_client_receive_maximum_respected(self):
		t = self.topic("rm")
		sub = self.raw("sub", 1, auto_ack=False,
			       props={P_RECEIVE_MAXIMUM: 2})
		sub.subscribe(t, qos=2)
		pub = self.raw("pub", 3)
		pub.publish_many([(t, b"%d" % i) for i in range(6)], qos=1)
		first = sub.messages(2)
		# [MQTT-3.3.4-9] no more than Receive Maximum unacknowledged
		sub.expect_nothing(0.6)
		sub.send(enc_ack(PUBACK, first[0].pid))
		third = sub.message()
		sub.expect_nothing(0.4)
		sub.send(enc_ack(PUBACK, first[1].pid))
		sub.send(enc_ack(PUBACK, third.pid))
		rest = sub.messages(2)
		sub.expect_nothing(0.3)
		for m in rest:
			sub.send(enc_ack(PUBACK, m.pid))
		rest.append(sub.message())
		sub.send(enc_ack(PUBACK, rest[-1].pid))
		allm = first + [third] + rest
		self.assertEqual([int(m.payload) for m in allm], list(range(6)))
		# QoS 2: a message counts until PUBCOMP
		pub.publish_many([(t, b"%d" % i) for i in range(3)], qos=2)
		a, b = sub.messages(2)
		sub.expect_nothing(0.4)
		sub.send(enc_ack(PUBREC, a.pid))
		rel = sub.expect(PUBREL)
		self.assertEqual(rel.pid, a.pid)
		sub.expect_nothing(0.4)		# still in flight until PUBCOMP
		sub.send(enc_ack(PUBCOMP, a.pid))
		c = sub.message()
		self.assertEqual(int(c.payload), 2)

	def test_client_maximum_packet_size(self):
		t = self.topic("mps")
		small = self.raw("small", 0, props={P_MAXIMUM_PACKET_SIZE: 300})
		small.subscribe(t, qos=1)
		big = self.raw("big", 2)
		big.subscribe(t, qos=1)
		pub = self.raw("pub", 1)
		pub.publish(t, b"x" * 1000, qos=1)
		pub.publish(t, b"fits", qos=1)
		# [MQTT-3.1.2-25] too large for the client: dropped for it
		m = small.message()
		self.assertEqual(m.payload, b"fits")
		small.expect_nothing(0.3)
		self.assertTrue(small.is_open())
		self.assertEqual([m.payload for m in big.messages(2)],
				 [b"x" * 1000, b"fits"])

	def test_message_expiry(self):
		t = self.topic("exp")
		cid = self.cid("off", 3)
		c = self.track(self.broker.raw())
		c.connect(cid, clean=False, props={P_SESSION_EXPIRY: 60})
		c.subscribe(t, qos=1)
		c.disconnect()
		time.sleep(0.3)	# the DISCONNECT lands before the publishes
		pub = self.raw("pub", 0)
		pub.publish(t, b"short", qos=1, props={P_MESSAGE_EXPIRY: 1})
		pub.publish(t, b"long", qos=1, props={P_MESSAGE_EXPIRY: 30})
		pub.publish(t, b"forever", qos=1)
		pub.publish(t + "/r", b"ret-short", qos=1, retain=True,
			    props={P_MESSAGE_EXPIRY: 1})
		live = self.raw("live", 1)
		live.subscribe(t, qos=1)
		pub.publish(t, b"live", qos=1, props={P_MESSAGE_EXPIRY: 30})
		m = live.message()
		self.assertIn(m.props.get(P_MESSAGE_EXPIRY), range(28, 31))
		time.sleep(2.2)
		c = self.track(self.broker.raw())
		p = c.connect(cid, clean=False, props={P_SESSION_EXPIRY: 60})
		self.assertEqual(p.sp, 1)
		got = c.messages(3)
		self.assertEqual([m.payload for m in got],
				 [b"long", b"forever", b"live"])
		e = got[0].props.get(P_MESSAGE_EXPIRY)
		# [MQTT-3.3.2-6] decreased by the time spent waiting
		self.assertIsNotNone(e)
		self.assertLessEqual(e, 29)
		self.assertGreaterEqual(e, 20)
		self.assertFalse(got[1].props.has(P_MESSAGE_EXPIRY))
		c.expect_nothing(0.3)
		# an expired retained message is not delivered either
		r = self.raw("ret", 2)
		r.subscribe(t + "/r", qos=1)
		r.expect_nothing(0.4)

	def test_properties_passed_through(self):
		t = self.topic("props")
		sub5 = self.raw("sub5", 0)
		sub5.subscribe(t, qos=2)
		sub3 = self.raw("sub3", 3, version=4)
		sub3.subscribe(t, qos=2)
		pub = self.raw("pub", 1)
		props = [(P_PAYLOAD_FORMAT, 1), (P_CONTENT_TYPE, "app/json; x=y"),
			 (P_RESPONSE_TOPIC, self.topic("reply", "to")),
			 (P_CORRELATION_DATA, b"\x00\xffcorr\x00"),
			 (P_USER_PROPERTY, ("k", "v1")),
			 (P_USER_PROPERTY, ("k", "v2")),
			 (P_USER_PROPERTY, ("\u00e9", "\u6f22\u5b57")),
			 (P_USER_PROPERTY, ("", ""))]
		for q in range(3):
			pub.publish(t, b'{"q":%d}' % q, qos=q, props=props)
		for m in sub5.messages(3):
			p = m.props
			self.assertEqual(p.get(P_PAYLOAD_FORMAT), 1)
			self.assertEqual(p.get(P_CONTENT_TYPE), "app/json; x=y")
			self.assertEqual(p.get(P_RESPONSE_TOPIC),
					 self.topic("reply", "to"))
			self.assertEqual(p.get(P_CORRELATION_DATA),
					 b"\x00\xffcorr\x00")
			self.assertEqual(p.all(P_USER_PROPERTY),
					 [("k", "v1"), ("k", "v2"),
					  ("\u00e9", "\u6f22\u5b57"), ("", "")])
		got = sorted(m.payload for m in sub3.messages(3))
		self.assertEqual(got, [b'{"q":%d}' % q for q in range(3)])

	def test_paho_properties(self):
		t = self.topic("pp")
		s = self.paho("sub", 2)
		s.subscribe(t, 1)
		p = self.paho("pub", 0)
		pr = paho_props(PacketTypes.PUBLISH, ResponseTopic="r/t",
				CorrelationData=b"cd", ContentType="c/t",
				PayloadFormatIndicator=1,
				UserProperty=[("a", "b"), ("a", "c")])
		p.publish(t, b"hi", qos=1, props=pr)
		m = s.get()
		self.assertEqual(m.properties.ResponseTopic, "r/t")
		self.assertEqual(m.properties.CorrelationData, b"cd")
		self.assertEqual(m.properties.ContentType, "c/t")
		self.assertEqual(m.properties.PayloadFormatIndicator, 1)
		self.assertEqual(m.properties.UserProperty, [("a", "b"),
							     ("a", "c")])

	def test_reason_string_on_error_ack(self):
		c = self.raw("rs", 1)
		c.send(enc_ack(PUBREL, 999))
		comp = c.expect(PUBCOMP)
		# [MQTT-4.3.3-*] unknown packet identifier
		self.assertEqual((comp.pid, comp.rc), (999, 0x92))
		if not MOSQ:
			self.assertTrue(comp.props.get(P_REASON_STRING), comp)
		# with Request Problem Information 0, no reason string or
		# user property on anything but PUBLISH/CONNACK/DISCONNECT
		# [MQTT-3.1.2-29]
		q = self.raw("quiet", 2, props={P_REQUEST_PROBLEM_INFO: 0})
		q.send(enc_ack(PUBREL, 999))
		comp = q.expect(PUBCOMP)
		self.assertEqual((comp.pid, comp.rc), (999, 0x92))
		self.assertFalse(comp.props.has(P_REASON_STRING), comp)
		self.assertFalse(comp.props.has(P_USER_PROPERTY), comp)
		q.send(enc_subscribe(5, [("a/#/b", 0)]))
		p = q.recv()
		if p.type == SUBACK:
			self.assertEqual(p.rcs, [0x8F])
			self.assertFalse(p.props.has(P_REASON_STRING), p)

	def test_invalid_filter_suback(self):
		c = self.raw("inv", 0)
		for f in ("a/#/b", "a/b#", "a+/b", "#/"):
			c.send(enc_subscribe(9, [(f, 0), (self.topic("ok"), 1)]))
			p = c.recv()
			if p.type == SUBACK:
				self.assertEqual(p.rcs, [0x8F, 1], f)
				if not MOSQ:
					self.assertTrue(p.props.get(
						P_REASON_STRING), p)
			else:
				self.assertEqual(p.type, DISCONNECT, p)
				self.assertIn(p.rc, (0x8F, 0x81, 0x82), p)
				c.expect_closed()
				c = self.raw("inv", 0)


class ServerReceiveMaximumTest(VouchTest):
	BROKER_ARGS = {"extra": ["--receive-maximum", "4"]}

	def test_announced_and_enforced(self):
		t = self.topic("rm")
		sub = self.raw("sub", 0)
		sub.subscribe(t, qos=2)
		c = self.raw("flood", 1)
		self.assertEqual(c.connack.props.get(P_RECEIVE_MAXIMUM), 4)
		# 4 unreleased QoS 2 messages are fine
		for pid in range(1, 5):
			c.send(enc_publish(t, b"%d" % pid, qos=2, pid=pid))
		for pid in range(1, 5):
			self.assertEqual(c.expect(PUBREC).rc, 0)
		for pid in range(1, 5):
			c.send(enc_ack(PUBREL, pid))
			self.assertEqual(c.expect(PUBCOMP).pid, pid)
		self.assertEqual(len(sub.messages(4)), 4)
		# the 5th is one too many [MQTT-3.3.4-7]: DISCONNECT 0x93
		for pid in range(10, 15):
			c.send(enc_publish(t, b"%d" % pid, qos=2, pid=pid))
		got = c.expect_closed()
		disc = [p for p in got if p.type == DISCONNECT]
		self.assertEqual([(p.type, p.rc) for p in disc],
				 [(DISCONNECT, 0x93)], got)
		self.check_every_shard_works()

	def test_qos1_flood_within_limit_is_fine(self):
		t = self.topic("rm1")
		c = self.raw("q1", 2)
		c.publish_many([(t, b"x")] * 200, qos=1, window=4)
		self.assertTrue(c.is_open())


class ServerMaxPacketTest(VouchTest):
	BROKER_ARGS = {"extra": ["--max-packet-size", "2048"]}

	def test_announced(self):
		c = self.raw("a", 0)
		self.assertEqual(c.connack.props.get(P_MAXIMUM_PACKET_SIZE), 2048)

	def test_too_large_v5(self):
		t = self.topic("mp")
		sub = self.raw("sub", 1)
		sub.subscribe(t, qos=1)
		c = self.raw("big", 2)
		c.publish(t, b"y" * 1900, qos=1)
		self.assertEqual(sub.message().payload, b"y" * 1900)
		try:
			c.send(enc_publish(t, b"z" * 3000, qos=1, pid=2))
		except OSError:
			pass
		got = c.expect_closed()
		# [MQTT-3.2.2-*] / 4.13: 0x95 Packet too large
		self.assertEqual([(p.type, p.rc) for p in got],
				 [(DISCONNECT, 0x95)])
		sub.expect_nothing(0.3)
		self.check_every_shard_works()

	def test_too_large_v311(self):
		c = self.raw("big3", 3, version=4)
		try:
			c.send(enc_publish(self.topic("x"), b"z" * 3000, qos=0,
					   version=4))
		except OSError:
			pass
		self.assertEqual(c.expect_closed(), [])

	def test_connect_too_large(self):
		for v in (4, 5):
			c = self.track(self.broker.raw(version=v))
			try:
				c.send(enc_connect(self.cid("bigc", v), version=v,
						   will={"topic": "w",
							 "payload": b"w" * 3000}))
			except OSError:
				pass
			got = c.expect_closed()
			self.assertLessEqual(len(got), 1, got)
			for p in got:
				self.assertEqual(p.type, CONNACK, got)
				self.assertEqual(p.rc, 0x95 if v == 5 else p.rc, got)
				self.assertNotEqual(p.rc, 0, got)

	def test_huge_claim(self):
		c = self.raw("claim", 0)
		c.send(b"\x30\xff\xff\xff\x7f")	# 268435455 bytes announced
		got = c.expect_closed()
		self.assertEqual([(p.type, p.rc) for p in got],
				 [(DISCONNECT, 0x95)])


if __name__ == "__main__":
	main()
