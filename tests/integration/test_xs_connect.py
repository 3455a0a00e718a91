#!/usr/bin/python3
"""CONNECT/CONNACK over TCP: accepted connections (3.1.1 and 5.0), every
CONNACK reason code reachable without TLS, the server limits announced in a
v5 CONNACK, CONNECT ordering rules, shard placement of client IDs, and
session takeover when one client ID connects twice."""

from vouchtest import *


class ConnectTest(VouchTest):
	BROKER_ARGS = {}

	def test_v311_connack_bytes(self):
		c = self.track(self.broker.raw(version=4))
		p = c.connect(self.cid("a", 0), version=4)
		# [MQTT-3.2.2-1..3] CONNACK is exactly two bytes: flags, rc
		self.assertEqual(p.raw, b"\x00\x00")
		self.assertTrue(c.is_open())

	def test_v5_connack_and_server_limits(self):
		c = self.track(self.broker.raw())
		p = c.connect(self.cid("a", 1), keepalive=60)
		self.assertEqual(p.rc, 0)
		self.assertEqual(p.sp, 0)
		props = p.props
		# Maximum QoS is not sent: QoS 2 is supported [MQTT-3.2.2-9]
		self.assertFalse(props.has(P_MAXIMUM_QOS), props)
		for pid in (P_RETAIN_AVAILABLE, P_WILDCARD_SUB_AVAILABLE,
			    P_SUB_ID_AVAILABLE, P_SHARED_SUB_AVAILABLE):
			self.assertEqual(props.get(pid, 1), 1, (pid, props))
		# a keep alive under the maximum is not overridden
		self.assertIn(props.get(P_SERVER_KEEP_ALIVE, 60), (60,), props)
		self.assertFalse(props.has(P_ASSIGNED_CLIENT_ID))
		if not MOSQ:
			self.assertEqual(props.get(P_RECEIVE_MAXIMUM), 64, props)
			self.assertEqual(props.get(P_TOPIC_ALIAS_MAXIMUM), 64,
					 props)
			self.assertEqual(props.get(P_MAXIMUM_PACKET_SIZE),
					 1048576, props)
			for pid in (P_RETAIN_AVAILABLE,
				    P_WILDCARD_SUB_AVAILABLE,
				    P_SUB_ID_AVAILABLE,
				    P_SHARED_SUB_AVAILABLE):
				self.assertEqual(props.get(pid), 1, (pid, props))
		# no property appears twice [MQTT-3.2.2-*]
		ids = [k for k, _ in props if k != P_USER_PROPERTY]
		self.assertEqual(len(ids), len(set(ids)), props)

	def test_unsupported_version_mqisdp_v31(self):
		c = self.track(self.broker.raw(version=4))
		c.send(enc_connect(self.cid("a", 2), version=3))
		got = c.expect_closed()
		# [MQTT-3.1.2-2] CONNACK 0x01 then close
		self.assertEqual(len(got), 1, got)
		self.assertEqual(got[0].type, CONNACK)
		self.assertEqual(got[0].rc, 0x01)
		self.assertEqual(len(got[0].raw), 2)

	def test_unsupported_version_mqtt_level3(self):
		c = self.track(self.broker.raw(version=4))
		c.send(enc_connect(self.cid("a", 2), version=3,
				   proto_name="MQTT"))
		got = c.expect_closed()
		self.assertEqual([(p.type, p.rc) for p in got],
				 [(CONNACK, 0x01)])

	@vouch_only
	def test_unsupported_version_level6(self):
		c = self.track(self.broker.raw(version=5))
		c.send(enc_connect(self.cid("a", 3), version=6, proto_name="MQTT"))
		got = c.expect_closed()
		self.assertEqual([(p.type, p.rc) for p in got],
				 [(CONNACK, 0x84)])

	def test_v311_empty_id_persistent_rejected(self):
		c = self.track(self.broker.raw(version=4))
		c.send(enc_connect("", version=4, clean=False))
		got = c.expect_closed()
		# [MQTT-3.1.3-8] identifier rejected, then close
		self.assertEqual([(p.type, p.rc) for p in got],
				 [(CONNACK, 0x02)])

	def test_v311_empty_id_clean_accepted(self):
		c = self.track(self.broker.raw(version=4))
		p = c.connect("", version=4, clean=True)
		self.assertEqual(p.raw, b"\x00\x00")
		t = self.topic("self")
		c.subscribe(t, qos=1)
		c.publish(t, b"me", qos=1)
		self.assertEqual(c.message().payload, b"me")

	def test_v5_assigned_client_identifier(self):
		ids = []
		clients = []
		for i in range(4):
			c = self.track(self.broker.raw())
			p = c.connect("")
			aid = p.props.get(P_ASSIGNED_CLIENT_ID)
			self.assertTrue(aid, "no Assigned Client Identifier: %r" % p)
			ids.append(aid)
			clients.append(c)
		self.assertEqual(len(set(ids)), 4, ids)
		# the assigned IDs are usable: pub/sub between two of them
		t = self.topic("aid")
		clients[0].subscribe(t, qos=1)
		clients[3].publish(t, b"x", qos=1)
		self.assertEqual(clients[0].message().payload, b"x")
		# and reconnecting under an assigned ID works (takes it over)
		c = self.track(self.broker.raw())
		p = c.connect(ids[1])
		self.assertFalse(p.props.has(P_ASSIGNED_CLIENT_ID))
		got = clients[1].expect_closed()
		self.assertEqual([(x.type, x.rc) for x in got],
				 [(DISCONNECT, 0x8E)])

	def _expect_refused(self, c, v5, codes=(0x81,)):
		got = c.expect_closed()
		for p in got:
			self.assertEqual(p.type, CONNACK if p is got[0] else
					 DISCONNECT, got)
		if got:
			self.assertNotEqual(got[0].rc, 0, got)
			if v5:
				self.assertIn(got[0].rc, codes, got)
		self.assertLessEqual(len(got), 1, got)

	def test_malformed_connect_reserved_flag(self):
		for v in (4, 5):
			c = self.track(self.broker.raw(version=v))
			# [MQTT-3.1.2-3] reserved connect flag must be 0
			c.send(enc_connect(self.cid("a", v), version=v,
					   flags_or=0x01))
			self._expect_refused(c, v == 5)

	def test_malformed_connect_will_flags(self):
		for v in (4, 5):
			# will QoS 3 [MQTT-3.1.2-14]
			c = self.track(self.broker.raw(version=v))
			c.send(enc_connect(self.cid("a", v), version=v,
					   will={"topic": "w", "payload": b"x",
						 "qos": 3}))
			self._expect_refused(c, v == 5, (0x81, 0x82))
			# will QoS 1 without the will flag [MQTT-3.1.2-11]
			c = self.track(self.broker.raw(version=v))
			c.send(enc_connect(self.cid("b", v), version=v,
					   flags_or=0x08))
			self._expect_refused(c, v == 5, (0x81, 0x82))
			# will retain without the will flag [MQTT-3.1.2-13]
			c = self.track(self.broker.raw(version=v))
			c.send(enc_connect(self.cid("c", v), version=v,
					   flags_or=0x20))
			self._expect_refused(c, v == 5, (0x81, 0x82))

	def test_malformed_connect_truncated(self):
		for v in (4, 5):
			c = self.track(self.broker.raw(version=v))
			good = enc_connect("abcdef", version=v)
			body = good[2:]
			# the client ID says 6 bytes, only 3 follow
			bad = packet(CONNECT, 0, body[:-3])
			c.send(bad)
			self._expect_refused(c, v == 5)

	def test_malformed_connect_duplicate_property(self):
		c = self.track(self.broker.raw())
		c.send(enc_connect(self.cid("a", 1),
				   props=[(P_SESSION_EXPIRY, 10),
					  (P_SESSION_EXPIRY, 20)]))
		# a property twice is a Protocol Error [MQTT-3.1.2-*]
		self._expect_refused(c, True, (0x81, 0x82))

	def test_connect_receive_maximum_zero(self):
		c = self.track(self.broker.raw())
		c.send(enc_connect(self.cid("a", 1),
				   props={P_RECEIVE_MAXIMUM: 0}))
		self._expect_refused(c, True, (0x81, 0x82))

	def test_bad_authentication_method(self):
		c = self.track(self.broker.raw())
		c.send(enc_connect(self.cid("auth", 1),
				   props={P_AUTH_METHOD: "SCRAM-SHA-1",
					  P_AUTH_DATA: b"x"}))
		got = c.expect_closed()
		# [MQTT-4.12.0-1] unsupported method: 0x8C (or 0x87), close
		self.assertEqual(len(got), 1, got)
		self.assertEqual(got[0].type, CONNACK)
		self.assertIn(got[0].rc, (0x8C, 0x87), got)

	def test_will_topic_with_wildcard(self):
		for v in (4, 5):
			c = self.track(self.broker.raw(version=v))
			c.send(enc_connect(self.cid("wt", v), version=v,
					   will={"topic": "a/+/b", "payload": b"x"}))
			self._expect_refused(c, v == 5, (0x90, 0x81, 0x82))

	def test_v5_empty_id_clean_start_0(self):
		c = self.track(self.broker.raw())
		c.send(enc_connect("", clean=False, props={P_SESSION_EXPIRY: 10}))
		p = c.expect(CONNACK)
		if p.rc == 0:
			self.assertTrue(p.props.get(P_ASSIGNED_CLIENT_ID), p)
			self.assertEqual(p.sp, 0)
		else:
			self.assertEqual(p.rc, 0x85, p)	# Client Identifier not valid
			self.assertEqual(c.expect_closed(), [])

	@vouch_only
	def test_default_server_keep_alive(self):
		for ka, want in ((0, 3600), (4000, 3600), (3600, None)):
			c = self.track(self.broker.raw())
			p = c.connect(self.cid("ka%d" % ka, ka), keepalive=ka)
			self.assertEqual(p.props.get(P_SERVER_KEEP_ALIVE), want,
					 (ka, p))
			c.disconnect()

	def test_connect_not_first(self):
		for first in (enc_pingreq(),
			      enc_subscribe(1, [("a/#", 0)], version=4),
			      enc_publish("a", b"x", version=4)):
			c = self.track(self.broker.raw(version=4))
			c.send(first)
			# [MQTT-3.1.0-1] the first packet must be CONNECT
			got = c.expect_closed()
			self.assertEqual(got, [], got)

	def test_second_connect_v5(self):
		cid = self.cid("a", 2)
		c = self.track(self.broker.raw())
		c.connect(cid)
		c.send(enc_connect(cid))
		got = c.expect_closed()
		# [MQTT-3.1.0-2] a second CONNECT is a Protocol Error
		self.assertEqual([(p.type, p.rc) for p in got],
				 [(DISCONNECT, 0x82)])
		# the client ID is free again
		c2 = self.track(self.broker.raw())
		self.assertEqual(c2.connect(cid).rc, 0)
		self.assertTrue(c2.is_open())

	def test_second_connect_v311(self):
		cid = self.cid("a", 3)
		c = self.track(self.broker.raw(version=4))
		c.connect(cid, version=4)
		c.send(enc_connect(cid, version=4))
		got = c.expect_closed()
		self.assertEqual(got, [])

	def test_connect_with_username_password_anonymous_ok(self):
		# no password file: user name and password are accepted as is
		c = self.track(self.broker.raw())
		p = c.connect(self.cid("a", 0), username="u", password=b"p\x00w")
		self.assertEqual(p.rc, 0)

	def test_paho_connect_both_versions(self):
		for v5 in (False, True):
			p = self.paho("paho%d" % v5, 1, v5=v5)
			self.assertEqual(p.session_present(), 0)
			p.disconnect()

	def test_mosquitto_clients_connect(self):
		t = self.topic("mq")
		sub = MosqSub(self.broker, self.cid("msub", 0), t, 1, v5=False)
		time.sleep(0.5)
		mosq_pub(self.broker, self.cid("mpub", 1), t, "hello", v5=True)
		rc, out, err = sub.result()
		self.assertEqual((rc, out), (0, "hello\n"), err)


class ShardPlacementTest(VouchTest):
	BROKER_ARGS = {"log_level": "info"}

	@vouch_only
	def test_connected_on_home_shard(self):
		n = self.broker.shards
		ids = []
		for s in range(n):
			for v in (4, 5):
				c = self.raw("place%d" % v, s, version=v)
				ids.append((c.client_id, s))
		def logged():
			err = self.broker.stderr()
			return all("client %s connected on shard %d" % (cid, s)
				   in err for cid, s in ids)
		ok = wait_until(logged, slow(3))
		err = self.broker.stderr()
		for cid, s in ids:
			self.assertIn("client %s connected on shard %d" % (cid, s),
				      err)
		self.assertTrue(ok)
		self.assertEqual(home_shard(ids[0][0], n), ids[0][1])


class TakeoverTest(VouchTest):
	BROKER_ARGS = {}

	def _next_skipping_redelivery(self, c, t, i):
		"""The message m<i>. The PUBACK of m<i-1> went out on the old
		connection just before the takeover and may not have been
		processed: then m<i-1> is resent first, with DUP set."""
		m = c.message()
		if i > 0 and m.payload == b"m%d" % (i - 1):
			self.assertTrue(m.dup, m)
			m = c.message()
		self.assertEqual((m.payload, m.topic), (b"m%d" % i, t))
		c.expect_nothing(0.05)

	def test_takeover_v5_session_continues(self):
		cid = self.cid("dev", 1)
		t = self.topic("to")
		pub = self.raw("pub", 2)
		c = self.track(self.broker.raw())
		p = c.connect(cid, clean=False, props={P_SESSION_EXPIRY: 60})
		self.assertEqual(p.sp, 0)
		c.subscribe(t, qos=1)
		# several takeovers, each from a new socket (new source port:
		# SO_REUSEPORT puts them on varying accepting shards)
		for i in range(8):
			n = self.track(self.broker.raw())
			p = n.connect(cid, clean=False,
				      props={P_SESSION_EXPIRY: 60})
			self.assertEqual(p.sp, 1, "takeover %d: %r" % (i, p))
			got = c.expect_closed()
			# [MQTT-3.1.4-3] the old connection gets 0x8E
			self.assertEqual([(x.type, x.rc) for x in got],
					 [(DISCONNECT, 0x8E)], "takeover %d" % i)
			pub.publish(t, b"m%d" % i, qos=1)
			self._next_skipping_redelivery(n, t, i)
			c = n
		self.assertTrue(c.is_open())

	def test_takeover_v311(self):
		cid = self.cid("dev", 3)
		t = self.topic("to")
		pub = self.raw("pub", 0, version=4)
		c = self.track(self.broker.raw(version=4))
		c.connect(cid, version=4, clean=False)
		c.subscribe(t, qos=1)
		for i in range(4):
			n = self.track(self.broker.raw(version=4))
			p = n.connect(cid, version=4, clean=False)
			self.assertEqual(p.raw, b"\x01\x00")
			got = c.expect_closed()
			self.assertEqual(got, [])
			pub.publish(t, b"m%d" % i, qos=1)
			self._next_skipping_redelivery(n, t, i)
			c = n

	def test_takeover_redelivers_inflight(self):
		cid = self.cid("dev", 2)
		t = self.topic("to")
		pub = self.raw("pub", 0)
		c = self.track(self.broker.raw(auto_ack=False))
		c.connect(cid, clean=False, props={P_SESSION_EXPIRY: 60})
		c.subscribe(t, qos=1)
		pub.publish(t, b"unacked", qos=1)
		m = c.message()
		self.assertFalse(m.dup)
		n = self.track(self.broker.raw())
		p = n.connect(cid, clean=False, props={P_SESSION_EXPIRY: 60})
		self.assertEqual(p.sp, 1)
		m2 = n.message()
		# [MQTT-4.4.0-1] resent with the original packet identifier
		self.assertEqual((m2.payload, m2.pid, m2.dup),
				 (b"unacked", m.pid, True))
		n.expect_nothing(0.3)

	def test_takeover_clean_start_drops_session(self):
		cid = self.cid("dev", 0)
		t = self.topic("to")
		pub = self.raw("pub", 3)
		c = self.track(self.broker.raw())
		c.connect(cid, clean=False, props={P_SESSION_EXPIRY: 60})
		c.subscribe(t, qos=1)
		n = self.track(self.broker.raw())
		p = n.connect(cid, clean=True)
		self.assertEqual(p.sp, 0)
		got = c.expect_closed()
		self.assertEqual([(x.type, x.rc) for x in got],
				 [(DISCONNECT, 0x8E)])
		pub.publish(t, b"nobody", qos=1)
		n.expect_nothing(0.5)

	def test_takeover_concurrent_storm(self):
		"""Many sockets race for one client ID: exactly one survives."""
		cid = self.cid("storm", 1)
		cs = []
		for i in range(10):
			c = self.track(self.broker.raw())
			c.send(enc_connect(cid, clean=False,
					   props={P_SESSION_EXPIRY: 30}))
			cs.append(c)
		for c in cs:
			try:
				c.expect(CONNACK)
			except AssertionError:
				pass	# closed by a later CONNECT before its CONNACK
		time.sleep(0.5)
		alive = [c for c in cs if c.is_open(0.5)]
		self.assertEqual(len(alive), 1, "%d connections alive" %
				 len(alive))
		self.check_every_shard_works()


if __name__ == "__main__":
	main()
