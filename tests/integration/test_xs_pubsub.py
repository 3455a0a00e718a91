#!/usr/bin/python3
"""Publish/subscribe across shards: QoS 0/1/2 both directions with 3.1.1 and
5.0 clients (raw, paho, mosquitto_pub/sub), QoS downgrade, the exact QoS 2
flow and its duplicate suppression, ordering, large payloads, fan-out,
wildcards, the $-topic rule, unsubscribe and subscription replacement."""

from vouchtest import *


def topic_matches(filt, topic):
	"""Reference matcher per [MQTT-4.7]."""
	if topic.startswith("$") and filt[:1] in ("+", "#"):
		return False
	f = filt.split("/")
	t = topic.split("/")
	for i, part in enumerate(f):
		if part == "#":
			return True
		if i >= len(t):
			return False
		if part != "+" and part != t[i]:
			return False
	return len(f) == len(t)


class PubSubTest(VouchTest):
	BROKER_ARGS = {}

	def test_qos_matrix_raw(self):
		"""Every (publisher version, QoS) x (subscriber version, QoS);
		delivered QoS = min(pub, sub) [MQTT-3.8.4-8]."""
		base = self.topic("m")
		subs = {}
		n = self.broker.shards
		for sv in (4, 5):
			for sq in range(3):
				c = self.raw("s%d%d" % (sv, sq), 1 + sq + sv, version=sv)
				c.subscribe(base + "/s%d%d/#" % (sv, sq), qos=sq)
				subs[(sv, sq)] = c
		pubs = {pv: self.raw("p%d" % pv, pv, version=pv) for pv in (4, 5)}
		for (sv, sq), c in subs.items():
			for pv in (4, 5):
				for pq in range(3):
					pubs[pv].publish(
						base + "/s%d%d/p%d%d" % (sv, sq, pv, pq),
						b"pl-%d%d%d%d" % (sv, sq, pv, pq),
						qos=pq)
		for (sv, sq), c in subs.items():
			got = c.messages(6)
			seen = set()
			for m in got:
				pv, pq = int(m.topic[-2]), int(m.topic[-1])
				self.assertEqual(m.payload, b"pl-%d%d%d%d" % (
					sv, sq, pv, pq))
				self.assertEqual(m.qos, min(sq, pq), m)
				self.assertFalse(m.dup, m)
				self.assertFalse(m.retain, m)
				if m.qos == 0:
					self.assertIsNone(m.pid)
				seen.add((pv, pq))
			self.assertEqual(len(seen), 6)
			c.expect_nothing(0.2)

	def test_qos2_exact_flow_and_dedup(self):
		t = self.topic("q2")
		sub = self.raw("sub", 0, auto_ack=False)
		sub.subscribe(t, qos=2)
		pub = self.raw("pub", 1)
		pub.send(enc_publish(t, b"once", qos=2, pid=7))
		rec = pub.expect(PUBREC)
		self.assertEqual((rec.pid, rec.rc), (7, 0))
		# a resend of the same packet before PUBREL must not be
		# delivered again [MQTT-4.3.3-*]
		pub.send(enc_publish(t, b"once", qos=2, pid=7, dup=True))
		rec = pub.expect(PUBREC)
		self.assertEqual((rec.pid, rec.rc), (7, 0))
		pub.send(enc_ack(PUBREL, 7))
		comp = pub.expect(PUBCOMP)
		self.assertEqual((comp.pid, comp.rc), (7, 0))
		m = sub.message()
		self.assertEqual((m.payload, m.qos, m.dup), (b"once", 2, False))
		sub.send(enc_ack(PUBREC, m.pid))
		rel = sub.expect(PUBREL)
		self.assertEqual(rel.pid, m.pid)
		self.assertEqual(rel.flags, 2)	# [MQTT-3.6.1-1]
		sub.send(enc_ack(PUBCOMP, m.pid))
		sub.expect_nothing(0.5, (PUBLISH, PUBREL))
		# the packet identifier is free again: reuse it
		pub.send(enc_publish(t, b"twice", qos=2, pid=7))
		self.assertEqual(pub.expect(PUBREC).pid, 7)
		pub.send(enc_ack(PUBREL, 7))
		self.assertEqual(pub.expect(PUBCOMP).pid, 7)
		m = sub.message()
		self.assertEqual(m.payload, b"twice")

	def test_qos2_v311_exact_acks(self):
		t = self.topic("q2")
		sub = self.raw("sub", 2, version=4, auto_ack=False)
		sub.subscribe(t, qos=2)
		pub = self.raw("pub", 3, version=4)
		pub.send(enc_publish(t, b"x", qos=2, pid=300, version=4))
		rec = pub.expect(PUBREC)
		self.assertEqual(rec.raw, b"\x01\x2c")
		pub.send(enc_ack(PUBREL, 300, version=4))
		comp = pub.expect(PUBCOMP)
		self.assertEqual(comp.raw, b"\x01\x2c")
		m = sub.message()
		self.assertEqual((m.qos, m.payload), (2, b"x"))
		sub.send(enc_ack(PUBREC, m.pid, version=4))
		rel = sub.expect(PUBREL)
		self.assertEqual((rel.flags, rel.raw), (2, struct.pack(">H", m.pid)))
		sub.send(enc_ack(PUBCOMP, m.pid, version=4))

	def test_qos1_puback(self):
		t = self.topic("q1")
		sub = self.raw("sub", 0)
		sub.subscribe(t, qos=1)
		pub = self.raw("pub", 1)
		a = pub.publish(t, b"x", qos=1)
		self.assertEqual(a.rc, 0)
		# no subscribers: success, maybe 0x10 No matching subscribers
		a = pub.publish(self.topic("nobody"), b"x", qos=1)
		self.assertIn(a.rc, (0x00, 0x10))
		v3 = self.raw("pub3", 2, version=4)
		a = v3.publish(t, b"y", qos=1)
		self.assertEqual(len(a.raw), 2)	# v3 PUBACK: pid only
		self.assertEqual([m.payload for m in sub.messages(2)], [b"x", b"y"])

	def test_order_preserved_qos1_pipelined(self):
		"""[MQTT-4.6.0-6] an ordered topic keeps the publisher's order."""
		t = self.topic("ord")
		subs = [self.raw("sub%d" % s, s) for s in range(2)]
		for c in subs:
			c.subscribe(t, qos=1)
		pub = self.raw("pub", 2)
		n = 1000
		pub.publish_many([(t, b"%d" % i) for i in range(n)], qos=1,
				 window=32)
		for c in subs:
			got = [int(m.payload) for m in c.messages(n, slow(20))]
			self.assertEqual(got, list(range(n)))

	def test_order_preserved_qos2(self):
		t = self.topic("ord2")
		sub = self.raw("sub", 3)
		sub.subscribe(t, qos=2)
		pub = self.raw("pub", 0)
		pub.publish_many([(t, b"%d" % i) for i in range(200)], qos=2,
				 window=10)
		got = [int(m.payload) for m in sub.messages(200, slow(20))]
		self.assertEqual(got, list(range(200)))

	def test_large_payload(self):
		t = self.topic("big")
		sub = self.raw("sub", 1)
		sub.subscribe(t, qos=1)
		sub3 = self.raw("sub3", 2, version=4)
		sub3.subscribe(t, qos=0)
		pub = self.raw("pub", 3)
		payload = bytes(random.getrandbits(8) for _ in range(1000)) * 256
		pub.publish(t, payload, qos=1)
		self.assertEqual(sub.message(slow(10)).payload, payload)
		self.assertEqual(sub3.message(slow(10)).payload, payload)

	def test_empty_payload_and_binary(self):
		t = self.topic("bin")
		sub = self.raw("sub", 0)
		sub.subscribe(t, qos=1)
		pub = self.raw("pub", 1)
		pub.publish(t, b"", qos=1)
		pub.publish(t, bytes(range(256)), qos=1)
		got = sub.messages(2)
		self.assertEqual([m.payload for m in got], [b"", bytes(range(256))])

	def test_fanout_qos0_all_shards(self):
		t = self.topic("fan")
		n = self.broker.shards
		subs = []
		for i in range(2 * n):
			c = self.raw("sub%d" % i, i, version=4 + i % 2)
			c.subscribe(t + "/#", qos=0)
			subs.append(c)
		pub = self.raw("pub", 0)
		pub.publish_many([(t + "/x", b"%d" % i) for i in range(100)],
				 qos=0)
		for c in subs:
			got = [int(m.payload) for m in c.messages(100)]
			self.assertEqual(got, list(range(100)))

	def test_paho_qos_both_versions(self):
		t = self.topic("paho")
		subs = []
		for v5 in (False, True):
			for q in range(3):
				s = self.paho("s%d%d" % (v5, q), q + v5, v5=v5)
				s.subscribe(t + "/#", q)
				subs.append((s, q))
		for v5 in (False, True):
			p = self.paho("p%d" % v5, 3 - v5, v5=v5)
			for q in range(3):
				p.publish(t + "/%d/%d" % (v5, q),
					  b"paho-%d-%d" % (v5, q), qos=q)
			p.disconnect()
		for s, sq in subs:
			got = s.msgs(6)
			keyed = sorted((m.topic, m.payload, m.qos) for m in got)
			want = sorted((t + "/%d/%d" % (v5, q),
				       b"paho-%d-%d" % (v5, q), min(q, sq))
				      for v5 in (0, 1) for q in range(3))
			self.assertEqual(keyed, want)
			s.none(0.2)

	def test_mosquitto_clients(self):
		t = self.topic("mq")
		subs = [MosqSub(self.broker, self.cid("ms%d" % v, v), t + "/#", 3,
				qos=2, v5=bool(v), fmt="%t %q %p")
			for v in (0, 1)]
		time.sleep(slow(0.6))
		for q in range(3):
			mosq_pub(self.broker, self.cid("mp%d" % q, q + 2),
				 t + "/q%d" % q, "hello %d" % q, qos=q,
				 v5=bool(q % 2))
		for s in subs:
			rc, out, err = s.result()
			self.assertEqual(rc, 0, err)
			lines = sorted(out.splitlines())
			self.assertEqual(lines, ["%s/q%d %d hello %d" % (t, q, q, q)
						 for q in range(3)])

	def test_wildcards(self):
		p = self.topic("w")
		filters = [p + "/+/c", p + "/#", p + "/a/#", p + "/+", p + "/a/+/d",
			   p + "/+/+/+", p + "/a", p + "/+/#", p + "/b/c",
			   "+/%s/w/a" % self.tag, p + "/+/+"]
		topics = [p, p + "/", p + "/a", p + "/a/c", p + "/b/c",
			  p + "/a/x/d", p + "/a/c/d", p + "/b/c/d/e", p + "//c"]
		subs = []
		for i, f in enumerate(filters):
			c = self.raw("sub%d" % i, i, version=4 + i % 2)
			c.subscribe(f, qos=1)
			subs.append((c, f))
		pub = self.raw("pub", 1)
		for tp in topics:
			pub.publish(tp, tp.encode(), qos=1)
		for c, f in subs:
			want = sorted(tp for tp in topics if topic_matches(f, tp))
			self.assertTrue(want, f)
			got = sorted(m.topic for m in c.messages(len(want)))
			self.assertEqual(got, want, f)
			c.expect_nothing(0.1)

	def test_dollar_topics_not_matched_by_leading_wildcards(self):
		"""[MQTT-4.7.2-1] # and +/... do not match $-topics."""
		hash_sub = self.raw("hash", 0)
		hash_sub.subscribe("#", qos=0)
		plus_sub = self.raw("plus", 1)
		plus_sub.subscribe("+/broker/#", qos=0)
		sys_sub = self.raw("sys", 2)
		sys_sub.subscribe("$SYS/#", qos=0)
		self.assertTrue(sys_sub.message(slow(3)).topic.startswith("$SYS/"))
		for c in (hash_sub, plus_sub):
			for m in c.poll(slow(1.5)):
				if m.type == PUBLISH:
					self.assertFalse(m.topic.startswith("$"), m)

	def test_unsubscribe(self):
		t = self.topic("uns")
		for v in (4, 5):
			sub = self.raw("sub%d" % v, v)
			sub.subscribe(t, qos=1)
			pub = self.raw("pub%d" % v, v + 1)
			pub.publish(t, b"1", qos=1)
			self.assertEqual(sub.message().payload, b"1")
			a = sub.unsubscribe([t, self.topic("never")])
			if v == 5:
				# [MQTT-3.11.3-*] 0x00 success, 0x11 no such sub
				self.assertEqual(a.rcs, [0x00, 0x11])
			pub.publish(t, b"2", qos=1)
			sub.expect_nothing(0.4)
			pub.disconnect()
			sub.disconnect()

	def test_subscribe_replaces(self):
		"""[MQTT-3.8.4-3] a second SUBSCRIBE to the same filter replaces
		the first: one copy, at the new QoS."""
		t = self.topic("rep")
		sub = self.raw("sub", 0)
		sub.subscribe(t, qos=2)
		sub.subscribe(t, qos=1)
		pub = self.raw("pub", 2)
		pub.publish(t, b"x", qos=2)
		m = sub.message()
		self.assertEqual((m.qos, m.payload), (1, b"x"))
		sub.expect_nothing(0.4)

	def test_subscribe_many_filters_one_packet(self):
		base = self.topic("multi")
		sub = self.raw("sub", 1)
		filters = [(base + "/%d" % i, sub_opts(i % 3)) for i in range(20)]
		a = sub.subscribe(filters)
		self.assertEqual(a.rcs, [i % 3 for i in range(20)])
		pub = self.raw("pub", 0)
		for i in range(20):
			pub.publish(base + "/%d" % i, b"%d" % i, qos=2)
		got = sub.messages(20)
		self.assertEqual(sorted((int(m.payload), m.qos) for m in got),
				 [(i, i % 3) for i in range(20)])

	def test_overlapping_subscriptions_v311(self):
		"""A v3.1.1 client with two matching subscriptions gets the
		message at the higher QoS (at most once per subscription)."""
		t = self.topic("ov", "x")
		sub = self.raw("sub", 2, version=4)
		sub.subscribe(self.topic("ov", "#"), qos=0)
		sub.subscribe(t, qos=1)
		pub = self.raw("pub", 1)
		pub.publish(t, b"o", qos=1)
		got = sub.messages(1)
		rest = [p for p in sub.poll(0.5) if p.type == PUBLISH]
		allm = got + rest
		self.assertLessEqual(len(allm), 2)
		self.assertEqual(max(m.qos for m in allm), 1)
		self.assertTrue(all(m.payload == b"o" for m in allm))


if __name__ == "__main__":
	main()
