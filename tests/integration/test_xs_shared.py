#!/usr/bin/python3
"""Shared subscriptions ($share/group/filter) with members on every shard:
balanced distribution, exactly-once delivery within a group, independent
groups, non-shared subscribers still get everything, 3.1.1 members, a member
leaving, unsubscribe, and the protocol errors of shared subscriptions."""

from vouchtest import *


class SharedTest(VouchTest):
	BROKER_ARGS = {}

	def _collect(self, clients, total, timeout):
		"""Reads PUBLISHes from all clients until total arrived."""
		got = {id(c): [] for c in clients}
		end = time.monotonic() + timeout
		n = 0
		while n < total and time.monotonic() < end:
			for c in clients:
				for p in c.poll(0.02):
					if p.type == PUBLISH:
						got[id(c)].append(p)
						n += 1
		for c in clients:
			for p in c.poll(0.3):
				if p.type == PUBLISH:
					got[id(c)].append(p)
		return [got[id(c)] for c in clients]

	def test_distribution_four_shards(self):
		t = self.topic("sh")
		members = []
		for s in range(4):
			c = self.raw("m%d" % s, s, version=4 + s % 2)
			c.subscribe("$share/g/" + t + "/#", qos=1)
			members.append(c)
		plain = self.raw("plain", 1)
		plain.subscribe(t + "/#", qos=1)
		pub = self.raw("pub", 2)
		n = 400
		pub.publish_many([(t + "/x", b"%d" % i) for i in range(n)], qos=1)
		per = self._collect(members, n, slow(15))
		counts = [len(x) for x in per]
		allp = [int(m.payload) for x in per for m in x]
		# each message to exactly one member of the group
		self.assertEqual(sorted(allp), list(range(n)), counts)
		for c in counts:
			self.assertGreaterEqual(c, 65, counts)
			self.assertLessEqual(c, 135, counts)
		for x in per:
			pl = [int(m.payload) for m in x]
			self.assertEqual(pl, sorted(pl))
			self.assertTrue(all(m.qos == 1 and m.topic == t + "/x"
					    for m in x))
		got = [int(m.payload) for m in plain.messages(n, slow(10))]
		self.assertEqual(got, list(range(n)))

	def test_two_groups_qos0(self):
		t = self.topic("sh")
		g1 = [self.raw("a%d" % s, s) for s in range(2)]
		g2 = [self.raw("b%d" % s, s + 2, version=4) for s in range(2)]
		for c in g1:
			c.subscribe("$share/one/" + t, qos=0)
		for c in g2:
			c.subscribe("$share/two/" + t, qos=0)
		pub = self.raw("pub", 3, version=4)
		n = 200
		pub.publish_many([(t, b"%d" % i) for i in range(n)], qos=0)
		for grp in (g1, g2):
			per = self._collect(grp, n, slow(10))
			allp = sorted(int(m.payload) for x in per for m in x)
			self.assertEqual(allp, list(range(n)))

	def test_member_leaves(self):
		t = self.topic("sh")
		a = self.raw("a", 0)
		b = self.raw("b", 1)
		for c in (a, b):
			c.subscribe("$share/g/" + t, qos=1)
		pub = self.raw("pub", 2)
		pub.publish_many([(t, b"%d" % i) for i in range(20)], qos=1)
		per = self._collect([a, b], 20, slow(5))
		self.assertEqual(sum(len(x) for x in per), 20)
		b.disconnect()
		time.sleep(0.2)
		pub.publish_many([(t, b"%d" % i) for i in range(100)], qos=1)
		got = [int(m.payload) for m in a.messages(100)]
		self.assertEqual(got, list(range(100)))

	def test_unsubscribe_shared(self):
		t = self.topic("sh")
		a = self.raw("a", 3)
		a.subscribe("$share/g/" + t, qos=1)
		u = a.unsubscribe("$share/g/" + t)
		self.assertEqual(u.rcs, [0])
		pub = self.raw("pub", 0)
		pub.publish(t, b"x", qos=1)
		a.expect_nothing(0.4)

	def test_paho_v311_member(self):
		t = self.topic("sh")
		ms = [self.paho("p%d" % s, s, v5=bool(s % 2)) for s in range(2)]
		for m in ms:
			m.subscribe("$share/pg/" + t, 1)
		pub = self.raw("pub", 3)
		pub.publish_many([(t, b"%d" % i) for i in range(40)], qos=1)
		got = []
		end = time.monotonic() + slow(5)
		while len(got) < 40 and time.monotonic() < end:
			for m in ms:
				got += [int(x.payload) for x in m.drain(0.05)]
		self.assertEqual(sorted(got), list(range(40)))

	def test_no_local_on_shared_is_protocol_error(self):
		c = self.raw("nl", 1)
		c.send(enc_subscribe(1, [("$share/g/" + self.topic("x"),
					  sub_opts(1, nl=True))]))
		got = c.expect_closed()
		# [MQTT-3.8.3-4]
		self.assertEqual([(p.type, p.rc) for p in got],
				 [(DISCONNECT, 0x82)])
		self.check_every_shard_works()

	def test_invalid_share_names(self):
		for f in ("$share/g", "$share//x", "$share/a+b/x", "$share/a#/x",
			  "$share/g/"):
			c = self.raw("bad", 2)
			c.send(enc_subscribe(3, [(f, 1)]))
			p = c.recv()
			if p.type == SUBACK:
				# [MQTT-4.8.2-2] Topic Filter invalid
				self.assertEqual(p.rcs, [0x8F], (f, p))
			else:
				self.assertEqual(p.type, DISCONNECT, (f, p))
				self.assertIn(p.rc, (0x8F, 0x81, 0x82), (f, p))
				c.expect_closed()
			c.close()
		self.check_every_shard_works()


if __name__ == "__main__":
	main()
