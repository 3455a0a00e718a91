#!/usr/bin/python3
"""The signup limiter under a flood of fresh device certificates over
mutual TLS, against the real vouchd (--signup-rate 5 --signup-burst 5).

Sixty never-seen certificates connect as fast as a dozen threads can for
about three seconds (a refused one is tried again later in the flood):
the registry holds exactly the certificates that got CONNACK 0, never more
than `rate` in any one second; every other attempt got 0x9F (MQTT 5.0) or
0x03 (3.1.1) and wrote nothing; a refused device gets in a second later.
"""

import os
import queue
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vouchtest import slow  # noqa: E402
from idtest import (Pki, IdBroker, tls_attempt, tls_context,  # noqa: E402
		    VOUCHCTL, RC5_RATE_EXCEEDED, RC3_UNAVAILABLE)

RATE = 5
BURST = 5
CERTS = 60
THREADS = 12
FLOOD_SECS = 3.0


class IdSignupTest(unittest.TestCase):

	@classmethod
	def setUpClass(cls):
		if not os.access(VOUCHCTL, os.X_OK):
			raise unittest.SkipTest("no vouchctl at %s" % VOUCHCTL)
		p = cls.pki = Pki()
		p.ca("srvca", "Server CA")
		p.server("srvca")
		p.ca("root", "Fleet Root CA")
		cls.names = p.devices("root", "flood", CERTS)

	@classmethod
	def tearDownClass(cls):
		cls.pki.cleanup()

	def test_limiter_is_exact_under_a_flood(self):
		p = self.pki
		with IdBroker(p, rate=RATE, burst=BURST) as b:
			api = b.api
			root_id = api.register_ca(p, "root")["certificateId"]
			# the bucket is full long before the flood (it started
			# full and nothing took from it)
			ctxs = {n: tls_context(p, n) for n in self.names}
			work = queue.Queue()
			for i, n in enumerate(self.names):
				work.put((n, 5 if i % 2 == 0 else 4))
			lock = threading.Lock()
			granted = {}            # name -> (version, start, CONNACK time)
			refused = []            # (name, version, outcome)
			odd = []                # anything else
			attempts = [0]
			t_start = time.monotonic()
			stop_at = t_start + FLOOD_SECS
			last_ack = [t_start]

			def worker():
				while time.monotonic() < stop_at:
					try:
						n, v = work.get_nowait()
					except queue.Empty:
						return
					t0 = time.monotonic()
					o = tls_attempt(b.tls_port, ctxs[n], "", v,
							timeout=slow(10))
					t = time.monotonic()
					with lock:
						attempts[0] += 1
						if o.kind == "connack":
							last_ack[0] = max(last_ack[0], t)
						if o.kind == "connack" and o.rc == 0:
							granted[n] = (v, t0, t)
							continue
						if o.kind == "connack" and o.rc == (
								RC5_RATE_EXCEEDED if v == 5
								else RC3_UNAVAILABLE):
							refused.append((n, v, o))
						else:
							odd.append((n, v, o))
							continue
					work.put((n, v))        # try again later

			ths = [threading.Thread(target=worker, daemon=True)
			       for _ in range(THREADS)]
			for t in ths:
				t.start()
			for t in ths:
				t.join(slow(30))
			self.assertFalse(any(t.is_alive() for t in ths))
			elapsed = last_ack[0] - t_start
			ok = len(granted)
			sys.stderr.write(
				"\n  flood: %d attempts in %.2f s, %d registered, "
				"%d refused over the limit (bound %d)\n" % (
					attempts[0], elapsed, ok, len(refused),
					RATE * (int(elapsed) + 1)))
			self.assertEqual(odd, [], "outcomes other than 0 and "
					 "0x9F / 0x03")
			self.assertGreater(len(refused), 0)
			self.assertTrue(any(v == 5 for _, v, _ in refused))
			self.assertTrue(any(v == 4 for _, v, _ in refused))
			# never more than RATE in any one second. The broker
			# decided each signup somewhere between the start of
			# its attempt and its CONNACK (which also waits for the
			# registry's fsync), so the signups whose whole attempt
			# lies inside one second were certainly decided in it:
			# at most RATE of them, for every such second.
			spans = sorted((t0, t) for _, t0, t in granted.values())
			for a, _ in spans:
				inside = [s for s in spans
					  if s[0] >= a and s[1] < a + 1.0]
				self.assertLessEqual(len(inside), RATE,
						     (a, inside))
			self.assertLessEqual(ok, RATE * (int(elapsed) + 1))
			# and the limiter is not stingy either: the flood took
			# what was there (one second of slack)
			self.assertGreaterEqual(ok, RATE * int(elapsed - 1))
			# the registry holds exactly the granted certificates
			reg = {c["certificateId"]: c for c in
			       api.certs("ca=" + root_id)}
			want = {p.cert_id(n) for n in granted}
			self.assertEqual(set(reg), want)
			for c in reg.values():
				self.assertEqual((c["status"], c["registeredBy"]),
						 ("ACTIVE", "AUTO"))
			# the refused ones wrote nothing
			losers = [n for n in self.names if n not in granted]
			self.assertEqual(len(losers), CERTS - ok)
			for n in losers[:5]:
				self.assertIsNone(api.cert(p.cert_id(n)))
			# a second later a refused device gets in (v5 and v3.1.1)
			time.sleep(1.1)
			for n, v in ((losers[0], 5), (losers[1], 4)):
				o = tls_attempt(b.tls_port, ctxs[n], "", v)
				self.assertEqual((o.kind, o.rc), ("connack", 0),
						 (n, v, o))
				self.assertEqual(api.cert(p.cert_id(n))["status"],
						 "ACTIVE")
			# returning devices do not need the limiter
			time.sleep(0.05)
			for n in list(granted)[:8]:
				o = tls_attempt(b.tls_port, ctxs[n], "", 5)
				self.assertEqual(o.rc, 0, (n, o))


if __name__ == "__main__":
	unittest.main(verbosity=2)
