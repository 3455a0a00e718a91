#!/usr/bin/python3
"""Flow control between shards (--max-shard-backlog), against the real
vouchd with 2 shards, publishers on shard 0 and subscribers on shard 1.

- QoS 1, one publisher pipelining 20,000 messages to one subscriber that
  acknowledges as it reads: the subscriber's shard is the slower, the
  publisher's shard holds back (vouch_flow_paused_total rises) and its
  backlog never grows past the bound, and still every message PUBACKed
  to the publisher reaches the subscriber, once, in order.
- PUBACKs wait for the subscriber's shard (mqtt/puback.c) and still come
  in the order of the PUBLISHes, whatever each message's destinations;
  a 3.1.1 publisher (no Receive Maximum of its own) pauses at
  --receive-maximum unacknowledged messages.
- QoS 0 fan-out to 120 subscribers that never read: the publisher is held
  back by TCP rather than the broker's heap (the backlog stays bounded),
  a client of the same shard is answered meanwhile, and once the flood is
  through, a new subscriber gets the publisher's next message.
"""

from vouchtest import *

BACKLOG = 256           # --max-shard-backlog of these brokers


def flow_broker(extra=()):
	admin = "%s:%d" % (HOST, free_port())
	# sys_interval: shard 0's $SYS ticks are retained messages for every
	# shard, not held back by a client's pause (about 20 a tick); slow
	# ticks keep them out of the peak the tests bound
	b = Broker(shards=2, sys_interval=300, extra=["--admin-listen", admin,
				    "--max-shard-backlog", str(BACKLOG)] +
		   list(extra))
	b.admin = admin
	return b


def shard_metric(m, name, shard):
	return m.get('%s{shard="%d"}' % (name, shard), 0)


def flow_client(b, version, prefix, shard, sub=None, qos=1):
	"""A raw client homed on `shard` of the 2, subscribed to sub."""
	c = RawClient(b.port, version, timeout=slow(30))
	c.connect(cid_on_shard(prefix, shard, 2))
	if sub:
		c.subscribe(sub, qos=qos)
	return c


class Pipeline:
	"""pub sends blob in one thread while another collects the packet
	ids of its n PUBACKs, in the order they come."""

	def __init__(self, pub, blob, n):
		self.acks = []

		def collect():
			while len(self.acks) < n:
				self.acks.append(pub.expect(PUBACK).pid)
		self.threads = [threading.Thread(target=pub.send, args=(blob,), daemon=True),
				threading.Thread(target=collect, daemon=True)]
		for t in self.threads:
			t.start()

	def join(self):
		for t in self.threads:
			t.join(slow(30))
		return self.acks


class BacklogWatch:
	"""Samples shard 0's backlog gauge while a flood runs."""

	def __init__(self, admin):
		self.admin = admin
		self.peak = 0
		self.samples = 0
		self.stop = threading.Event()
		self.t = threading.Thread(target=self.run, daemon=True)
		self.t.start()

	def run(self):
		while not self.stop.is_set():
			try:
				m = scrape_metrics(self.admin)
			except OSError:
				continue
			self.samples += 1
			self.peak = max(self.peak, shard_metric(
				m, "vouch_xshard_backlog", 0))
			self.stop.wait(0.01)

	def done(self):
		self.stop.set()
		self.t.join(slow(10))
		return self.peak


@unittest.skipIf(MOSQ, "vouchd's flow control between shards")
class FlowTest(unittest.TestCase):

	def test_qos1_nothing_lost_while_held_back(self):
		N = 20000
		with flow_broker(["--max-queued-messages", str(N)]) as b:
			sub = flow_client(b, 5, "flow-sub", 1, "flow/q1")
			pub = flow_client(b, 4, "flow-pub", 0)
			watch = BacklogWatch(b.admin)
			pids = [i % 65535 + 1 for i in range(N)]
			flow = Pipeline(pub, b"".join(
				enc_publish("flow/q1", b"%08d" % i, 1, pid=pids[i], version=4)
				for i in range(N)), N)
			got = [int(sub.expect(PUBLISH).payload) for _ in range(N)]
			acks = flow.join()
			peak = watch.done()
			m = scrape_metrics(b.admin)
			sys.stderr.write("\n  qos1: %d delivered, backlog peak %d "
					 "(%d samples), %d pauses\n" % (
						 len(got), peak, watch.samples,
						 shard_metric(m, "vouch_flow_paused_total", 0)))
			self.assertEqual(acks, pids)
			self.assertEqual(got, list(range(N)))
			sub.expect_nothing(0.3)
			self.assertGreater(shard_metric(
				m, "vouch_flow_paused_total", 0), 0)
			# at most one message per paused PUBLISH beyond the bound
			self.assertLessEqual(peak, BACKLOG + 8)
			self.assertEqual(shard_metric(m, "vouch_xshard_backlog", 0), 0)

	def test_qos1_acknowledged_in_order_after_other_shards(self):
		N = 3000
		WINDOW = 4
		with flow_broker(["--receive-maximum", str(WINDOW),
				  "--max-queued-messages", str(N)]) as b:
			remote = flow_client(b, 4, "ack-remote", 1, "ack/remote")
			local = flow_client(b, 4, "ack-local", 0, "ack/local")
			pub = flow_client(b, 4, "ack-pub", 0)
			# other shard, this shard, nobody, a 3.1.1 publish to
			# $SYS (acknowledged, not delivered)
			topics = ["ack/remote", "ack/local", "ack/nobody",
				  "ack/remote", "$SYS/not-yours"]
			flow = Pipeline(pub, b"".join(
				enc_publish(topics[i % 5], b"%08d" % i, 1, pid=i + 1, version=4)
				for i in range(N)), N)
			want_remote = [i for i in range(N) if topics[i % 5] == "ack/remote"]
			want_local = [i for i in range(N) if topics[i % 5] == "ack/local"]
			got_remote = [int(remote.expect(PUBLISH).payload)
				      for _ in want_remote]
			got_local = [int(local.expect(PUBLISH).payload)
				     for _ in want_local]
			acks = flow.join()
			m = scrape_metrics(b.admin)
			sys.stderr.write("\n  acks: %d in order of %d, %d pauses\n" % (
				sum(1 for i, p in enumerate(acks) if p == i + 1), N,
				shard_metric(m, "vouch_flow_paused_total", 0)))
			self.assertEqual(acks, list(range(1, N + 1)))
			self.assertEqual(got_remote, want_remote)
			self.assertEqual(got_local, want_local)
			# the window, not the backlog, held the publisher back
			self.assertGreater(shard_metric(
				m, "vouch_flow_paused_total", 0), 0)
			self.assertEqual(shard_metric(m, "vouch_xshard_backlog", 0), 0)
			remote.expect_nothing(0.2)
			pub.send(enc_pingreq())
			pub.expect(PINGRESP)

	def test_qos2_pubrecs_in_order_across_shards(self):
		"""MQTT 5 publisher inside its window of 4: PUBRECs wait for
		the other shard and keep the order; QoS 2 exactly once."""
		ROUNDS, WINDOW = 100, 4
		with flow_broker(["--receive-maximum", str(WINDOW)]) as b:
			remote = flow_client(b, 5, "q2-remote", 1, "q2/remote", qos=2)
			local = flow_client(b, 5, "q2-local", 0, "q2/local", qos=2)
			pub = RawClient(b.port, 5, timeout=slow(30))
			ca = pub.connect(cid_on_shard("q2-pub", 0, 2))
			self.assertEqual(ca.props.get(P_RECEIVE_MAXIMUM), WINDOW)
			topics = ["q2/remote", "q2/local", "q2/remote", "q2/nobody"]
			got_remote, got_local = [], []
			for r in range(ROUNDS):
				pids = [r * WINDOW + i + 1 for i in range(WINDOW)]
				pub.send(b"".join(enc_publish(topics[i], b"%06d" % p, 2,
							      pid=p, version=5)
						  for i, p in enumerate(pids)))
				self.assertEqual([pub.expect(PUBREC).pid for _ in pids], pids)
				pub.send(b"".join(enc_ack(PUBREL, p, version=5) for p in pids))
				self.assertEqual([pub.expect(PUBCOMP).pid for _ in pids], pids)
				got_remote += [int(remote.expect(PUBLISH).payload) for _ in range(2)]
				got_local.append(int(local.expect(PUBLISH).payload))
			want = lambda t: [r * WINDOW + i + 1 for r in range(ROUNDS)
					  for i in range(WINDOW) if topics[i] == t]
			self.assertEqual(got_remote, want("q2/remote"))
			self.assertEqual(got_local, want("q2/local"))
			remote.expect_nothing(0.2)
			local.expect_nothing(0.1)

	def test_qos0_flood_held_back_not_buffered(self):
		N = 100000
		with flow_broker(["--max-queued-messages", "50"]) as b:
			deaf = []
			for i in range(120):
				c = RawClient(b.port, 4, rcvbuf=4096)
				c.connect(cid_on_shard("flow-deaf%d" % i, 1, 2))
				c.subscribe("flow/q0", qos=0)
				deaf.append(c)
			pub = RawClient(b.port, 4, timeout=slow(60))
			pub.connect(cid_on_shard("flow-fan", 0, 2))
			other = RawClient(b.port, 4)
			other.connect(cid_on_shard("flow-other", 0, 2))
			watch = BacklogWatch(b.admin)
			blob = b"".join(enc_publish("flow/q0", b"%08d" % i, 0,
						    version=4)
					for i in range(N))
			# floods until shard 1 has fallen behind at least once
			# (a loaded machine may let it keep up with one)
			pings = rounds = 0
			for rounds in range(1, 6):
				sender = threading.Thread(target=pub.send,
							  args=(blob,), daemon=True)
				sender.start()
				# shard 0 still answers its other clients
				while sender.is_alive():
					other.send(enc_pingreq())
					other.expect(PINGRESP, timeout=slow(5))
					pings += 1
					time.sleep(0.02)
				sender.join(slow(60))
				self.assertFalse(sender.is_alive(),
						 "the flood never got in")
				m = scrape_metrics(b.admin)
				if shard_metric(m, "vouch_flow_paused_total", 0):
					break
			peak = watch.done()
			sys.stderr.write("\n  qos0 fan-out: %d x %d messages, backlog "
					 "peak %d (%d samples), %d pauses, %d pings "
					 "answered during the flood\n" % (
						 rounds, N, peak, watch.samples,
						 shard_metric(m, "vouch_flow_paused_total", 0),
						 pings))
			self.assertGreater(shard_metric(
				m, "vouch_flow_paused_total", 0), 0)
			self.assertLessEqual(peak, BACKLOG + 8)
			# through: the publisher is read again and its next
			# message reaches a new subscriber on the slow shard
			late = RawClient(b.port, 5, timeout=slow(30))
			late.connect(cid_on_shard("flow-late", 1, 2))
			late.subscribe("flow/after", qos=1)
			a = pub.publish("flow/after", b"done", qos=1)
			self.assertEqual(a.type, PUBACK)
			p = late.expect(PUBLISH, timeout=slow(30))
			self.assertEqual((p.topic, p.payload), ("flow/after", b"done"))
			other.send(enc_pingreq())
			other.expect(PINGRESP)
			for c in deaf:
				c.abort()


if __name__ == "__main__":
	unittest.main(verbosity=2)
