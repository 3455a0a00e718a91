#!/usr/bin/python3
"""Cross-shard concurrency: many clients on every shard publishing and
receiving at once (exact per-subscriber counts against a reference
matcher), subscribe/unsubscribe and connect/disconnect churn while traffic
flows, and a few hundred concurrent connections. Meant to give the
sanitizer builds (TSan in particular) real cross-shard traffic."""

import threading

from vouchtest import *
from test_xs_pubsub import topic_matches


class StressTest(VouchTest):
	BROKER_ARGS = {}

	def _threads(self, fns, timeout):
		errs = []
		def wrap(fn):
			try:
				fn()
			except BaseException as e:	# noqa
				errs.append(e)
		ths = [threading.Thread(target=wrap, args=(f,), daemon=True)
		       for f in fns]
		for t in ths:
			t.start()
		for t in ths:
			t.join(timeout)
		self.assertFalse([t for t in ths if t.is_alive()], "stuck")
		if errs:
			raise errs[0]

	def test_all_to_all(self):
		n = self.broker.shards
		base = self.topic("a2a")
		nclients = 4 * n if n > 1 else 8
		filters = [base + "/#", base + "/+/x", base + "/%d/+",
			   base + "/+/y", "$share/g/" + base + "/#"]
		clients = []
		subs = {}
		for i in range(nclients):
			c = self.raw("c%d" % i, i, version=4 + i % 2)
			f = filters[i % len(filters)].replace("%d", str(i % 3))
			c.subscribe(f, qos=1 + i % 2)
			subs[i] = f
			clients.append(c)
		per = 100
		plan = {}
		for i in range(nclients):
			plan[i] = [(base + "/%d/%s" % (k % 3, "xy"[k % 2]),
				    b"%d:%d" % (i, k)) for k in range(per)]
		left = [nclients]
		lock = threading.Lock()
		def pub(i):
			def run():
				c = clients[i]
				c.publish_many(plan[i], qos=1 + (i + 1) % 2,
					       window=8, timeout=slow(40))
				with lock:
					left[0] -= 1
				# keep reading until every publisher is done, so
				# that no queue limit is reached
				while left[0] > 0:
					more = c.poll(0.05)
					c.pending.extend(more)
			return run
		self._threads([pub(i) for i in range(nclients)], slow(60))
		alltopics = [t for i in plan for t, _ in plan[i]]
		shared = [i for i in subs if subs[i].startswith("$share")]
		shared_total = 0
		for i, c in enumerate(clients):
			f = subs[i]
			if i in shared:
				continue
			want = sum(1 for t in alltopics if topic_matches(f, t))
			got = c.messages(want, slow(20))
			c.expect_nothing(0.1)
			# per publisher and topic, order is kept [MQTT-4.6.0-5]
			last = {}
			for m in got:
				src, k = map(int, m.payload.split(b":"))
				key = (src, m.topic)
				self.assertGreater(k, last.get(key, -1), m)
				last[key] = k
		for i in shared:
			shared_total += len([p for p in clients[i].poll(0.5)
					     if p.type == PUBLISH])
		if shared:
			# the group gets every message exactly once
			deadline = time.monotonic() + slow(5)
			while shared_total < len(alltopics) and \
					time.monotonic() < deadline:
				for i in shared:
					shared_total += len([
						p for p in clients[i].poll(0.1)
						if p.type == PUBLISH])
			self.assertEqual(shared_total, len(alltopics))

	def test_subscription_churn_during_traffic(self):
		n = self.broker.shards
		t = self.topic("churn")
		stable = [self.raw("stable%d" % s, s) for s in range(n)]
		for c in stable:
			c.subscribe(t + "/#", qos=1)
		churners = [self.raw("ch%d" % s, s + 1) for s in range(n)]
		pub = self.raw("pub", 0)
		stop = threading.Event()
		def churn(c):
			def run():
				k = 0
				while not stop.is_set():
					f = t + ("/#" if k % 2 else "/+")
					c.subscribe(f, qos=k % 3)
					c.unsubscribe(f)
					c.poll(0.001)
					k += 1
			return run
		def connect_churn():
			k = 0
			while not stop.is_set():
				c = RawClient(self.broker.port, 4 + k % 2)
				c.connect(self.cid("cc%d" % (k % 7), k))
				c.subscribe(t + "/x", qos=1)
				if k % 3:
					c.disconnect()
				else:
					c.abort()
				k += 1
		total = 2000
		got = {id(c): [] for c in stable}
		def reader(c):
			def run():
				end = time.monotonic() + slow(40)
				last = time.monotonic()
				while len(got[id(c)]) < total and \
						time.monotonic() < end:
					for p in c.poll(0.05):
						if p.type == PUBLISH:
							got[id(c)].append(
								int(p.payload))
							last = time.monotonic()
					# publishing over and nothing for a while
					if stop.is_set() and \
					   time.monotonic() - last > slow(3):
						break
			return run
		def publish():
			try:
				pub.publish_many([(t + "/x", b"%d" % i)
						  for i in range(total)], qos=1,
						 window=16, timeout=slow(40))
			finally:
				stop.set()
		self._threads([publish, connect_churn] +
			      [churn(c) for c in churners] +
			      [reader(c) for c in stable], slow(60))
		for c in stable:
			g = got[id(c)]
			self.assertEqual(len(g), total,
					 "a stable subscriber got %d of %d "
					 "messages" % (len(g), total))
			self.assertEqual(g, list(range(total)))
		self.check_every_shard_works()

	def test_subscriber_leaving_does_not_stall_others(self):
		"""Subscribers of a topic come and go (DISCONNECT, FIN, RST)
		while messages on it flow: the other subscribers, on the same
		shard and on others, still get every message."""
		n = self.broker.shards
		t = self.topic("leave")
		stable = [self.raw("st%d" % s, s) for s in range(n)]
		for c in stable:
			c.subscribe(t, qos=1)
		pub = self.raw("pub", 1)
		total = 600
		for k in range(30):
			c = self.track(self.broker.raw(version=4 + k % 2))
			c.connect(self.cid("go%d" % k, k), version=4 + k % 2)
			c.subscribe(t, qos=k % 2)
			pub.publish_many([(t, b"%d" % (k * 20 + i))
					  for i in range(20)], qos=1, window=8)
			(c.disconnect, c.close, c.abort)[k % 3]()
		for c in stable:
			got = [int(m.payload) for m in c.messages(total, slow(10))]
			self.assertEqual(got, list(range(total)))

	def test_many_connections(self):
		n = 300
		cs = []
		for i in range(n):
			c = self.track(self.broker.raw(version=4 + i % 2))
			c.send(enc_connect(self.cid("many%d" % i, i),
					   version=4 + i % 2))
			cs.append(c)
		for c in cs:
			self.assertEqual(c.expect(CONNACK).rc, 0)
		t = self.topic("many")
		for c in cs[::10]:
			c.subscribe(t, qos=0)
		p = self.raw("pub", 1)
		p.publish(t, b"hello-all", qos=1)
		for c in cs[::10]:
			self.assertEqual(c.message().payload, b"hello-all")
		for c in cs:
			c.abort()
		self.check_every_shard_works()


if __name__ == "__main__":
	main()
