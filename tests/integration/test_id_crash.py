#!/usr/bin/python3
"""Crash safety of the certificate registry, against the real vouchd.

The broker is killed with SIGKILL at a random moment, a dozen times, while
fresh devices sign up over mutual TLS and an administrator registers
certificates by hand and activates / deactivates them through the API;
each time it restarts on the same data directory. Every acknowledged change
(CONNACK 0 for a signup, HTTP 2xx for an admin call) must be there after
the restart; a change in flight at the kill may or may not be; the
registry file always opens ("vouchd ready") and a last clean stop exits 0.
"""

import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vouchtest import slow  # noqa: E402
from idtest import (Pki, IdBroker, tls_attempt, tls_context,  # noqa: E402
		    VOUCHCTL)

ROUNDS = 12
SIGNUP_THREADS = 2
POOL = 1500


class Ledger:
	"""What the clients were told, and what may be in flight."""

	def __init__(self):
		self.lock = threading.Lock()
		self.acked = set()      # certificate IDs acknowledged as registered
		self.maybe = set()      # registered maybe (in flight at a kill)
		self.status = {}        # ID -> last acknowledged status
		self.inflight = {}      # ID -> status asked, not acknowledged
		self.changes = 0        # acknowledged admin changes
		self.signups = 0        # acknowledged signups


class IdCrashTest(unittest.TestCase):

	@classmethod
	def setUpClass(cls):
		if not os.access(VOUCHCTL, os.X_OK):
			raise unittest.SkipTest("no vouchctl at %s" % VOUCHCTL)
		p = cls.pki = Pki()
		p.ca("srvca", "Server CA")
		p.server("srvca")
		p.ca("root", "Fleet Root CA")
		cls.names = p.devices("root", "c", POOL)
		cls.data = tempfile.mkdtemp(prefix="vouch-id-crash-")

	@classmethod
	def tearDownClass(cls):
		cls.pki.cleanup()
		shutil.rmtree(cls.data, ignore_errors=True)

	def verify(self, b, led, root_id, rnd):
		"""The registry after a restart holds every acknowledged change;
		then the ledger learns the actual state."""
		api = b.api
		cas = api.ok("GET", "/api/v1/cas")
		self.assertEqual([c["certificateId"] for c in cas["cas"]],
				 [root_id], "round %d" % rnd)
		recs = {c["certificateId"]: c for c in api.certs()}
		m = re.search(r"registry: (\d+) CA\(s\), (\d+) device", b.stderr())
		self.assertTrue(m, "no registry line")
		self.assertEqual((int(m.group(1)), int(m.group(2))),
				 (1 if rnd else 0, len(recs)), "round %d" % rnd)
		with led.lock:
			lost = led.acked - set(recs)
			self.assertEqual(lost, set(), "round %d: %d acknowledged "
					 "registrations lost" % (rnd, len(lost)))
			extra = set(recs) - led.acked - led.maybe
			self.assertEqual(extra, set(), "round %d: records nobody "
					 "asked for" % rnd)
			for cid, st in led.status.items():
				allowed = {st}
				if cid in led.inflight:
					allowed.add(led.inflight[cid])
				self.assertIn(recs[cid]["status"], allowed,
					      "round %d: %s (acknowledged %s)" % (
						      rnd, cid[:12], st))
			# what is there now is known
			for cid in led.maybe & set(recs):
				led.acked.add(cid)
			led.maybe -= led.acked
			for cid in led.acked:
				led.status[cid] = recs[cid]["status"]
			led.inflight.clear()
		return len(recs)

	def test_kill_during_signups_and_admin_changes(self):
		p = self.pki
		led = Ledger()
		pool = list(self.names)
		pool_lock = threading.Lock()
		rng = random.Random(os.getpid())
		root_id = None
		t_begin = time.monotonic()
		kills = 0
		for rnd in range(ROUNDS + 1):
			b = IdBroker(p, data_dir=self.data, rate=1000, burst=1000)
			b.start()
			try:
				if root_id is None:
					root_id = b.api.register_ca(p, "root")[
						"certificateId"]
				n = self.verify(b, led, root_id, rnd)
				if rnd == ROUNDS:
					# a clean stop: exit 0, no sanitizer report
					final, b = b, None
					final.stop()
					break
				stop = threading.Event()

				def signup():
					while not stop.is_set():
						with pool_lock:
							if not pool:
								return
							name = pool.pop()
						cid = p.cert_id(name)
						with led.lock:
							led.maybe.add(cid)
						try:
							o = tls_attempt(
								b.tls_port,
								tls_context(p, name), "", 5,
								timeout=slow(5))
						except Exception:  # noqa: BLE001
							return
						if o.kind == "connack" and o.rc == 0:
							with led.lock:
								led.acked.add(cid)
								led.maybe.discard(cid)
								led.status[cid] = "ACTIVE"
								led.signups += 1
						elif o.kind == "connack":
							raise AssertionError(
								"signup refused: %r" % o)

				def admin():
					while not stop.is_set():
						with led.lock:
							known = sorted(led.status)
						if known and rng.random() < 0.97:
							cid = rng.choice(known)
							with led.lock:
								cur = led.status[cid]
								want = "INACTIVE" if cur == \
									"ACTIVE" else "ACTIVE"
								led.inflight[cid] = want
							try:
								st, j = b.api.cert_action(
									cid, "activate" if want ==
									"ACTIVE" else "deactivate")
							except Exception:  # noqa: BLE001
								return
							if st != 200:
								raise AssertionError(
									"admin %s: %d %r" % (
										want, st, j))
							with led.lock:
								led.status[cid] = want
								led.inflight.pop(cid, None)
								led.changes += 1
						else:
							with pool_lock:
								if not pool:
									continue
								name = pool.pop()
							cid = p.cert_id(name)
							with led.lock:
								led.maybe.add(cid)
							try:
								st, j = b.api.register_cert(
									p.pem(name))
							except Exception:  # noqa: BLE001
								return
							if st != 201:
								raise AssertionError(
									"register: %d %r" % (st, j))
							with led.lock:
								led.acked.add(cid)
								led.maybe.discard(cid)
								led.status[cid] = j["status"]
								led.changes += 1

				errors = []

				def guard(fn):
					try:
						fn()
					except BaseException as e:  # noqa: BLE001
						errors.append(e)

				ths = [threading.Thread(target=guard, args=(signup,),
							daemon=True)
				       for _ in range(SIGNUP_THREADS)]
				ths.append(threading.Thread(target=guard, args=(admin,),
							    daemon=True))
				for t in ths:
					t.start()
				time.sleep(rng.uniform(0.05, 1.2))
			finally:
				alive = b.crash() if b is not None else True
			kills += 1
			self.assertTrue(alive, "round %d: the broker died by itself"
					% rnd)
			stop.set()
			for t in ths:
				t.join(slow(15))
			self.assertFalse(any(t.is_alive() for t in ths))
			if errors:
				raise errors[0]
		secs = time.monotonic() - t_begin
		sys.stderr.write("\n  %d kills in %.1f s: %d signups and %d admin "
				 "changes acknowledged, %d records at the end, "
				 "%d fresh certificates left\n" % (
					 kills, secs, led.signups, led.changes, n,
					 len(pool)))
		self.assertGreaterEqual(kills, 10)
		self.assertTrue(pool, "the pool ran dry: late rounds had no "
				"signups")
		self.assertGreater(led.signups, 50)
		self.assertGreater(led.changes, 20)


if __name__ == "__main__":
	unittest.main(verbosity=2)
