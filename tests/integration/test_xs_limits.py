#!/usr/bin/python3
"""Resource limits: --max-connections refuses the connection over the limit
cleanly while the others keep working; a slow consumer that stops reading
while 100k QoS 0 messages are published does not stall other clients, and
its drops are counted in $SYS/broker/messages/dropped."""

import threading

from vouchtest import *


class MaxConnectionsTest(VouchTest):
	BROKER_ARGS = {"extra": ["--max-connections", "5"]}

	def _refused(self, v):
		c = self.track(self.broker.raw(version=v))
		try:
			c.send(enc_connect(self.cid("sixth%d" % v, v), version=v))
		except OSError:
			return
		got = c.expect_closed()
		for p in got:
			self.assertEqual(p.type, CONNACK, got)
			if v == 5:
				self.assertIn(p.rc, (0x97, 0x89), got)
			else:
				self.assertEqual(p.rc, 0x03, got)
		self.assertLessEqual(len(got), 1)

	def test_sixth_refused(self):
		t = self.topic("mc")
		cs = [self.raw("c%d" % i, i, version=4 + i % 2) for i in range(5)]
		self._refused(5)
		self._refused(4)
		for c in cs:
			self.assertTrue(c.is_open(slow(1)))
		cs[0].subscribe(t, qos=1)
		cs[4].publish(t, b"still-fine", qos=1)
		self.assertEqual(cs[0].message().payload, b"still-fine")
		# a slot freed is usable again
		cs[2].disconnect()
		def try_connect():
			c = self.track(self.broker.raw())
			try:
				c.send(enc_connect(self.cid("again", 1)))
				p = c.expect(CONNACK, timeout=slow(1))
				return p.rc == 0 and c
			except (AssertionError, OSError):
				return False
		c = wait_until(try_connect, slow(3), 0.1)
		self.assertTrue(c, "no connection accepted after one left")
		self.assertTrue(c.is_open())


class SlowConsumerTest(VouchTest):
	BROKER_ARGS = {}

	def test_slow_consumer_qos0(self):
		b = self.broker
		t = self.topic("flood")
		sysw = SysWatcher(b, self.cid("sysw", 0))
		slow_c = self.raw("slow", 1, rcvbuf=4096)
		slow_c.subscribe(t, qos=0)
		# from here on slow_c never reads
		pub = self.raw("pub", 2)
		one = enc_publish(t, b"x" * 100, qos=0)
		n = 100000
		chunk = one * 1000
		done = threading.Event()
		err = []
		def flood():
			try:
				pub.sock.settimeout(slow(60))
				for i in range(n // 1000):
					pub.sock.sendall(chunk)
			except Exception as e:
				err.append(e)
			done.set()
		th = threading.Thread(target=flood, daemon=True)
		t0 = time.monotonic()
		th.start()
		# meanwhile, other clients get quick service
		ps = self.raw("probe-s", 3)
		pp = self.raw("probe-p", 0)
		pt = self.topic("probe")
		ps.subscribe(pt, qos=1)
		worst = 0
		i = 0
		while not done.is_set() or i < 5:
			s = time.monotonic()
			pp.publish(pt, b"%d" % i, qos=1)
			m = ps.message(slow(5))
			self.assertEqual(m.payload, b"%d" % i)
			worst = max(worst, time.monotonic() - s)
			i += 1
			time.sleep(0.05)
			if time.monotonic() - t0 > slow(60):
				break
		th.join(slow(60))
		self.assertFalse(err, err)
		self.assertTrue(done.is_set(), "flood did not finish")
		self.assertLess(worst, slow(1.0), "probe round trip %.2fs" % worst)
		if not MOSQ:
			dropped = sysw.wait_value("$SYS/broker/messages/dropped",
						  lambda v: v > 0, slow(5))
			self.assertLessEqual(dropped, n)
		self.assertLess(b.rss_kb(), 1024 * 1024)
		self.check_every_shard_works()


if __name__ == "__main__":
	main()
