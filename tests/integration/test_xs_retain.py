#!/usr/bin/python3
"""Retained messages across shards: set, replace, delete with an empty
payload, the RETAIN flag on delivery (3.1.1 and 5.0 retain-as-published),
retain handling 0/1/2, wildcards, QoS of retained deliveries, $-topics,
shared subscriptions (no retained messages) and consistency when retained
messages on one topic are changed from different shards."""

from vouchtest import *


class RetainTest(VouchTest):
	BROKER_ARGS = {}

	def test_set_and_deliver(self):
		t = self.topic("r")
		for pv in (4, 5):
			pub = self.raw("pub%d" % pv, pv)
			pub.publish(t + "/%d" % pv, b"kept-%d" % pv, qos=1,
				    retain=True)
		for sv in (4, 5):
			for s in range(self.broker.shards):
				c = self.raw("sub%d" % sv, s, version=sv)
				c.subscribe(t + "/+", qos=1)
				got = sorted((m.topic, m.payload, m.retain, m.qos)
					     for m in c.messages(2))
				self.assertEqual(got, [
					(t + "/4", b"kept-4", True, 1),
					(t + "/5", b"kept-5", True, 1)])
				c.expect_nothing(0.1)
				c.disconnect()

	def test_replace(self):
		t = self.topic("r")
		pub = self.raw("pub", 0)
		pub.publish(t, b"first", qos=1, retain=True)
		pub2 = self.raw("pub2", 1, version=4)
		pub2.publish(t, b"second", qos=1, retain=True)
		c = self.raw("sub", 2)
		c.subscribe(t, qos=1)
		m = c.message()
		self.assertEqual((m.payload, m.retain), (b"second", True))
		c.expect_nothing(0.3)

	def test_empty_payload_deletes(self):
		t = self.topic("r")
		pub = self.raw("pub", 3)
		pub.publish(t, b"soon-gone", qos=1, retain=True)
		live = self.raw("live", 1)
		live.subscribe(t, qos=1)
		self.assertEqual(live.message().payload, b"soon-gone")
		pub.publish(t, b"", qos=1, retain=True)
		# [MQTT-3.3.1-10] the empty retained message is forwarded ...
		m = live.message()
		self.assertEqual(m.payload, b"")
		# ... and [MQTT-3.3.1-11] nothing is retained any more
		c = self.raw("sub", 2)
		c.subscribe(t, qos=1)
		c.expect_nothing(0.5)
		# and the empty message itself was not stored
		c2 = self.raw("sub2", 0, version=4)
		c2.subscribe(self.topic("#"), qos=1)
		c2.expect_nothing(0.3)

	def test_live_flag_v311(self):
		"""[MQTT-3.3.1-9] 3.1.1: RETAIN is 0 on established
		subscriptions."""
		t = self.topic("r")
		c = self.raw("sub", 0, version=4)
		c.subscribe(t, qos=1)
		pub = self.raw("pub", 1)
		pub.publish(t, b"x", qos=1, retain=True)
		m = c.message()
		self.assertEqual((m.payload, m.retain), (b"x", False))
		c2 = self.raw("sub2", 2, version=4)
		c2.subscribe(t, qos=1)
		m = c2.message()
		self.assertEqual((m.payload, m.retain), (b"x", True))

	def test_retain_as_published(self):
		t = self.topic("r")
		rap0 = self.raw("rap0", 0)
		rap0.subscribe(t, qos=1, rap=False)
		rap1 = self.raw("rap1", 1)
		rap1.subscribe(t, qos=1, rap=True)
		pub = self.raw("pub", 2)
		pub.publish(t, b"ret", qos=1, retain=True)
		pub.publish(t + "x", b"not", qos=1, retain=False)
		pub.publish(t, b"plain", qos=1, retain=False)
		# [MQTT-3.3.1-12] RAP 0: RETAIN 0; [MQTT-3.3.1-13] RAP 1: as sent
		self.assertEqual([(m.payload, m.retain) for m in rap0.messages(2)],
				 [(b"ret", False), (b"plain", False)])
		self.assertEqual([(m.payload, m.retain) for m in rap1.messages(2)],
				 [(b"ret", True), (b"plain", False)])

	def test_retain_handling(self):
		t = self.topic("rh")
		pub = self.raw("pub", 3)
		pub.publish(t, b"stored", qos=1, retain=True)
		# 0: sent at every subscribe [MQTT-3.3.1-9]
		c = self.raw("rh0", 0)
		c.subscribe(t, qos=1, rh=0)
		self.assertEqual(c.message().payload, b"stored")
		c.subscribe(t, qos=1, rh=0)
		self.assertEqual(c.message().payload, b"stored")
		# 1: only if the subscription did not exist [MQTT-3.3.1-10]
		c = self.raw("rh1", 1)
		c.subscribe(t, qos=1, rh=1)
		self.assertEqual(c.message().payload, b"stored")
		c.subscribe(t, qos=1, rh=1)
		c.expect_nothing(0.4)
		# 2: never [MQTT-3.3.1-11]
		c = self.raw("rh2", 2)
		c.subscribe(t, qos=1, rh=2)
		c.expect_nothing(0.4)
		pub.publish(t, b"live", qos=1, retain=True)
		self.assertEqual(c.message().payload, b"live")

	def test_wildcards(self):
		p = self.topic("w")
		pub = self.raw("pub", 0)
		for tp in ("a", "b/c", "b/d", "b/c/e"):
			pub.publish(p + "/" + tp, tp.encode(), qos=1, retain=True)
		cases = {"#": 4, "+": 1, "b/+": 2, "+/c": 1, "b/#": 3,
			 "+/+/e": 1, "x/#": 0}
		for i, (f, n) in enumerate(sorted(cases.items())):
			c = self.raw("sub%d" % i, i + 1, version=4 + i % 2)
			c.subscribe(p + "/" + f, qos=1)
			got = c.messages(n) if n else []
			self.assertTrue(all(m.retain for m in got), got)
			c.expect_nothing(0.15)
			c.disconnect()

	def test_retained_qos(self):
		t = self.topic("rq")
		pub = self.raw("pub", 1)
		pub.publish(t, b"q2", qos=2, retain=True)
		for sq in range(3):
			c = self.raw("sub%d" % sq, sq + 2)
			c.subscribe(t, qos=sq)
			m = c.message()
			self.assertEqual((m.qos, m.payload, m.retain),
					 (sq, b"q2", True))
			c.disconnect()
		pub.publish(t, b"q0", qos=0, retain=True)
		time.sleep(0.2)
		c = self.raw("sub9", 0)
		c.subscribe(t, qos=2)
		m = c.message()
		self.assertEqual((m.qos, m.payload), (0, b"q0"))

	def test_dollar_sys_retained_not_matched_by_hash(self):
		time.sleep(slow(1.2))	# $SYS has been published
		c = self.raw("hash", 1)
		c.subscribe("#", qos=0)
		for m in c.poll(0.5):
			if m.type == PUBLISH:
				self.assertFalse(m.topic.startswith("$"), m)
		s = self.raw("sys", 2)
		s.subscribe("$SYS/broker/#", qos=0)
		m = s.message(slow(3))
		self.assertTrue(m.topic.startswith("$SYS/broker/"), m)
		self.assertTrue(m.retain, "first $SYS message must come from the "
				"retained store: %r" % m)

	def test_no_retained_for_shared_subscription(self):
		t = self.topic("sh")
		pub = self.raw("pub", 0)
		pub.publish(t, b"kept", qos=1, retain=True)
		c = self.raw("shared", 1)
		c.subscribe("$share/g/" + t, qos=1)
		c.expect_nothing(0.6)
		pub.publish(t, b"live", qos=1)
		self.assertEqual(c.message().payload, b"live")

	def test_cross_shard_updates_consistent(self):
		t = self.topic("cx")
		n = self.broker.shards
		pubs = [self.raw("pub%d" % s, s) for s in range(n)]
		for rnd in range(5):
			for s in range(n):
				pubs[s].publish(t, b"v%d-%d" % (rnd, s), qos=1,
						retain=True)
		want = b"v4-%d" % (n - 1)
		for s in range(n):
			c = self.raw("sub%d" % s, s)
			c.subscribe(t, qos=1)
			self.assertEqual(c.message().payload, want)
			c.expect_nothing(0.1)
			c.disconnect()
		pubs[1 % n].publish(t, b"", qos=1, retain=True)
		for s in range(n):
			c = self.raw("del%d" % s, s)
			c.subscribe(t, qos=1)
			c.expect_nothing(0.2)
			c.disconnect()

	def test_paho_and_mosquitto_retained(self):
		t = self.topic("cli")
		mosq_pub(self.broker, self.cid("mp", 0), t, "from-mosquitto", qos=1,
			 retain=True)
		p = self.paho("paho", 1)
		p.subscribe(t, 1)
		m = p.get()
		self.assertEqual((m.payload, m.retain), (b"from-mosquitto", 1))
		p.publish(t, b"from-paho", qos=1, retain=True)
		s = MosqSub(self.broker, self.cid("ms", 2), t, 1, qos=1, v5=False,
			    fmt="%r %p")
		rc, out, err = s.result()
		self.assertEqual((rc, out), (0, "1 from-paho\n"), err)


if __name__ == "__main__":
	main()
