#!/usr/bin/python3
"""$SYS statistics: every documented topic present, decimal, retained;
per-shard connection counts add up to the connected clients; counters move
when clients connect, publish and receive. $SYS/presence events of clients
without a certificate go to whoever listens, on any shard, including the
end of a connection that began before anyone listened."""

import json

from vouchtest import *

TOPICS = ["clients/connected", "messages/received", "messages/sent",
	  "messages/dropped", "bytes/received", "bytes/sent", "uptime"]


class SysTest(VouchTest):
	BROKER_ARGS = None	# each test has its own broker: exact counts

	@vouch_only
	def test_topics_present_decimal_retained(self):
		with Broker(sys_interval=1) as b:
			w = SysWatcher(b, cid_on_shard("sysw", 1, b.shards))
			names = ["$SYS/broker/" + t for t in TOPICS]
			for s in range(b.shards):
				names += ["$SYS/broker/shard/%d/connections" % s,
					  "$SYS/broker/shard/%d/messages" % s]
			end = time.monotonic() + slow(4)
			while time.monotonic() < end and not all(
					n in w.values for n in names):
				w.pump(0.2)
			for n in names:
				self.assertIn(n, w.values, sorted(w.values))
				self.assertRegex(w.values[n].decode(), r"^\d+$", n)
			# no shard beyond the configured count
			for k in w.values:
				m = re.match(r"\$SYS/broker/shard/(\d+)/", k)
				if m:
					self.assertLess(int(m.group(1)), b.shards, k)
			# a late subscriber gets them from the retained store
			time.sleep(0.3)
			c = b.raw_connect(cid_on_shard("late", 2, b.shards))
			c.subscribe("$SYS/broker/uptime")
			m = c.message(slow(2))
			self.assertTrue(m.retain, m)
			c.disconnect()
			w.close()

	def test_clients_connected_tracks_connections(self):
		with Broker(sys_interval=1) as b:
			w = SysWatcher(b, cid_on_shard("sysw", 0, b.shards))
			topic = "$SYS/broker/clients/connected"
			w.wait_value(topic, lambda v: v == 1)
			cs = []
			for s in range(1, 4):
				cs.append(b.raw_connect(cid_on_shard("c", s, b.shards),
							version=4 + s % 2))
			w.wait_value(topic, lambda v: v == 4)
			if not MOSQ:
				def shard_sum():
					tot = 0
					for s in range(b.shards):
						k = ("$SYS/broker/shard/%d/"
						     "connections" % s)
						if k not in w.values:
							return None
						tot += int(w.values[k])
					return tot
				end = time.monotonic() + slow(4)
				while shard_sum() != 4 and time.monotonic() < end:
					w.pump(0.2)
				self.assertEqual(shard_sum(), 4)
			for c in cs:
				c.disconnect()
			cs[0].close()
			w.wait_value(topic, lambda v: v == 1)
			w.close()

	@vouch_only
	def test_plain_presence_when_listened(self):
		# vouchd skips a plain client's presence message when no
		# subscription anywhere matches its topic: what a listener gets
		# must not change by that
		with Broker(extra=["--plain-role", "admin"]) as b:
			n = b.shards
			early = b.raw_connect(cid_on_shard("pres-early", 1, n))
			w = b.raw_connect(cid_on_shard("pres-w", 0, n))
			w.subscribe([("$SYS/presence/disconnected/" +
				      cid_on_shard("pres-early", 1, n), 0),
				     ("$SYS/presence/connected/" +
				      cid_on_shard("pres-late", 1, n), 0)])
			time.sleep(0.3)     # the summary reaches every shard
			early.disconnect()
			m = w.message(slow(5))
			self.assertEqual(m.topic, "$SYS/presence/disconnected/" +
					 cid_on_shard("pres-early", 1, n))
			self.assertEqual(json.loads(m.payload)["reason"],
					 "client disconnect")
			other = b.raw_connect(cid_on_shard("pres-other", 1, n))
			late = b.raw_connect(cid_on_shard("pres-late", 1, n))
			m = w.message(slow(5))
			self.assertEqual(m.topic, "$SYS/presence/connected/" +
					 cid_on_shard("pres-late", 1, n))
			self.assertIsNone(json.loads(m.payload)["certificateId"])
			other.disconnect()
			late.disconnect()
			w.expect_nothing(0.5)
			w.disconnect()

	def test_message_and_byte_counters(self):
		with Broker(sys_interval=1) as b:
			w = SysWatcher(b, cid_on_shard("sysw", 3, b.shards))
			rec = "$SYS/broker/messages/received"
			sent = "$SYS/broker/messages/sent"
			brec = "$SYS/broker/bytes/received"
			bsent = "$SYS/broker/bytes/sent"
			up = "$SYS/broker/uptime"
			if MOSQ:
				up = "$SYS/broker/uptime"
			r0 = w.value(rec)
			s0 = w.value(sent)
			br0 = w.value(brec)
			bs0 = w.value(bsent)
			sub = b.raw_connect(cid_on_shard("sub", 1, b.shards))
			sub.subscribe("ctr/#", qos=1)
			pub = b.raw_connect(cid_on_shard("pub", 2, b.shards))
			payload = b"p" * 1000
			for i in range(20):
				pub.publish("ctr/x", payload, qos=1)
			sub.messages(20)
			w.wait_value(rec, lambda v: v >= r0 + 20)
			w.wait_value(sent, lambda v: v >= s0 + 20)
			w.wait_value(brec, lambda v: v >= br0 + 20 * 1000)
			w.wait_value(bsent, lambda v: v >= bs0 + 20 * 1000)
			if not MOSQ:
				w.value("$SYS/broker/messages/dropped")
				u0 = w.value(up)
				w.wait_value(up, lambda v: v >= u0 + 1)
				# per-shard message counters add up to something
				tot = sum(w.value("$SYS/broker/shard/%d/messages" %
						  s) for s in range(b.shards))
				self.assertGreaterEqual(tot, 20)
			sub.disconnect()
			pub.disconnect()
			w.close()


if __name__ == "__main__":
	main()
