#!/usr/bin/python3
"""Direct (io_uring registered) descriptors: more connections than the
broker's open-files limit.

- vouchd started with RLIMIT_NOFILE 1024 (prlimit) holds 1500 plain MQTT
  connections spread over its shards (the kernel caps one ring's table at
  RLIMIT_NOFILE entries, so 2 shards hold up to 2048): every one gets CONNACK and answers
  PINGREQ afterwards; about half of them moved from the accepting shard to
  the home shard of their client ID (checked with /metrics: accepted per
  shard differs from connections per shard, and every connection is on a
  direct descriptor); messages route between them. Then 300 connections
  one after the other (connect, subscribe, close) all work: table indexes
  are reused safely.
- The same broker with --io-compat 5.10 (regular descriptors) refuses
  what is beyond its limit cleanly (no CONNACK, or the connection closed),
  keeps the connections it has, and accepts again once they are gone.

Runs the direct half on the fast path only (skipped in the compat phase
of run.sh, where both brokers would use regular descriptors); the compat
half runs in every phase.
"""

import os
import resource
import select

from vouchtest import *

NOFILE = 1024
N_CONNS = 1500


def raise_own_nofile():
	soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
	if soft < hard:
		resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
	return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class LimitedBroker(Broker):
	"""vouchd under a low open-files limit (prlimit execs it: same PID)."""

	def args(self):
		return ["prlimit", "--nofile=%d:%d" % (NOFILE, NOFILE), "--"] + \
			super().args()

	def metrics(self):
		return scrape_metrics(self.admin)

	def fd_count(self):
		return len(os.listdir("/proc/%d/fd" % self.pid()))


def limited(io_compat, shards):
	admin = "%s:%d" % (HOST, free_port())
	b = LimitedBroker(shards=shards, io_compat=io_compat,
			  extra=["--admin-listen", admin,
				 "--max-connections", "100000"],
			  sys_interval=None)
	b.admin = admin
	return b


def open_many(b, ids, version=4):
	"""Connect a socket per client ID and send its CONNECT, without waiting;
	returns the clients (a socket error leaves None)."""
	cs = []
	for cid in ids:
		try:
			c = RawClient(b.port, version, timeout=slow(10))
			c.send(enc_connect(cid, version=version, keepalive=0))
			c.client_id = cid
		except OSError:
			c = None
		cs.append(c)
	return cs


def connacks(cs, timeout):
	"""Which clients got CONNACK 0 within the time (others are closed, or
	silent)."""
	ok = [False] * len(cs)
	deadline = time.monotonic() + timeout
	for i, c in enumerate(cs):
		if c is None:
			continue
		try:
			p = c.expect(CONNACK, timeout=max(0.05, deadline - time.monotonic()))
			ok[i] = p.rc == 0
		except (AssertionError, OSError):
			pass
	return ok


def ping_all(cs, timeout):
	"""PINGREQ on all at once, then count PINGRESPs."""
	live = [c for c in cs if c is not None]
	for c in live:
		c.send(enc_pingreq())
	deadline = time.monotonic() + timeout
	n = 0
	for c in live:
		try:
			c.expect(PINGRESP, timeout=max(0.05, deadline - time.monotonic()))
			n += 1
		except (AssertionError, OSError):
			pass
	return n


def close_all(cs):
	for c in cs:
		if c is not None:
			c.close()


@unittest.skipIf(IO_COMPAT, "direct descriptors need the fast path")
class DirectTest(VouchTest):

	def test_more_connections_than_nofile(self):
		self.assertGreater(raise_own_nofile(), N_CONNS + 100)
		shards = max(2, SHARDS)
		b = limited("", shards)
		with b:
			self.assertIn("direct descriptors (a ring file table", b.stderr())
			ids = ["%s-%d" % (self.tag, i) for i in range(N_CONNS)]
			# in batches: a connection holds an entry on the accepting
			# shard until it has moved, and a flood of CONNECTs not yet
			# read could fill a table of 1024 (those then keep regular
			# descriptors, which the assertions below would count)
			cs, ok = [], []
			for k in range(0, N_CONNS, 250):
				batch = open_many(b, ids[k:k + 250])
				cs += batch
				ok += connacks(batch, slow(30))
			try:
				self.assertEqual(sum(ok), N_CONNS,
						 "CONNACK for %d of %d" % (sum(ok), N_CONNS))
				self.assertLess(b.fd_count(), NOFILE)
				self.assertEqual(ping_all(cs, slow(30)), N_CONNS)
				m = b.metrics()
				homes = [0] * shards
				for cid in ids:
					homes[home_shard(cid, shards)] += 1
				moved = 0
				for s in range(shards):
					lab = '{shard="%d"}' % s
					self.assertEqual(m["vouch_connections" + lab], homes[s], m)
					self.assertEqual(m["vouch_connections_direct" + lab], homes[s])
					moved += abs(m["vouch_connections_accepted_total" + lab] - homes[s])
				# SO_REUSEPORT spreads by the 4-tuple, homes by the ID
				self.assertGreater(moved, 0)
				self._route(cs, shards)
				self.assertEqual(ping_all(cs, slow(30)), N_CONNS)
			finally:
				close_all(cs)
			# gone from the tables when they close
			self.assertTrue(wait_until(
				lambda: sum(v for k, v in b.metrics().items()
					    if k.startswith("vouch_connections_direct{")) == 0,
				slow(10)))
			self._churn(b)
			self.check_every_shard_works(b)

	def _churn(self, b):
		"""Connect, subscribe, close, one after the other: a table index
		freed by one connection is soon another's, and nothing meant for
		the old one may reach the new one."""
		for i in range(300):
			c = RawClient(b.port, 5, timeout=slow(5))
			try:
				c.connect("%s-churn-%d" % (self.tag, i))
				c.subscribe(self.topic("churn"), qos=1)
			finally:
				c.close()

	def _route(self, cs, shards):
		"""A few subscribers and publishers on every pair of shards."""
		t = self.topic("direct")
		by_home = [[] for _ in range(shards)]
		for c in cs:
			by_home[home_shard(c.client_id, shards)].append(c)
		for s in range(shards):
			for k in range(3):
				sub = by_home[s][k]
				sub.subscribe("%s/%d/%d" % (t, s, k), qos=1)
		for s in range(shards):
			for k in range(3):
				pub = by_home[(s + 1) % shards][10 + k]
				pub.publish("%s/%d/%d" % (t, s, k), b"m%d%d" % (s, k), qos=1)
		for s in range(shards):
			for k in range(3):
				msg = by_home[s][k].message()
				self.assertEqual(msg.payload, b"m%d%d" % (s, k))


class CompatLimitTest(VouchTest):

	def test_compat_refuses_beyond_nofile(self):
		raise_own_nofile()
		b = limited("5.10", 2)
		with b:
			self.assertIn("regular descriptors (forced by --io-compat)", b.stderr())
			n = NOFILE + 100
			ids = ["%s-%d" % (self.tag, i) for i in range(n)]
			cs = open_many(b, ids)
			try:
				ok = connacks(cs, slow(10))
				got = sum(ok)
				# the limit holds: some fail, the first ones work
				self.assertLess(got, NOFILE)
				self.assertGreater(got, NOFILE // 2)
				b.assert_alive()
				kept = [c for c, y in zip(cs, ok) if y]
				self.assertEqual(ping_all(kept, slow(10)), got)
			finally:
				close_all(cs)
			# descriptors free again: new connections work
			def fresh():
				try:
					c = b.raw_connect(self.cid("again", 0, 2, b), version=4)
				except (AssertionError, OSError):
					return False
				c.close()
				return True
			self.assertTrue(wait_until(fresh, slow(10), 0.1))
			self.check_every_shard_works(b)
			b.assert_alive()


if __name__ == "__main__":
	main()
