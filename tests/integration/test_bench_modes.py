#!/usr/bin/python3
"""vouch-bench's connect --resume, signup and hold modes against the real
vouchd (mutual TLS, a fleet CA registered with automatic registration,
--signup-rate 5 --signup-burst 1).

- connect --resume (TLS 1.3 and 1.2): one full handshake per certificate,
  every later connection resumes (vouch-bench checks each with
  wolfSSL_session_reused; vouchd's /metrics counts as many resumed
  handshakes).
- signup: 40 never-seen certificates at 15 attempts a second: registered +
  refused over the limit == attempted, nothing else failed, the registry
  holds exactly the registered ones, and no one-second window saw more
  than the limiter allows; at MQTT 3.1.1 the refusals are 0x03.
- hold: 200 plain connections from 2 worker processes bound to 3 source
  addresses, pinged every 0.5 s: all open at the end, all answered the last
  round, spread over the 3 addresses.
- bad values of the new flags: one line on stderr, exit 2.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vouchtest import BUILD, HOST, slow  # noqa: E402
from idtest import Pki, IdBroker, VOUCHCTL  # noqa: E402

BENCH = os.path.join(BUILD, "vouch-bench")
RATE = 5
BURST = 1
OFFERED = 15            # signup attempts a second (vouch-bench --rate)
RESUME_CERTS = 6
SIGNUP_CERTS = 40


def bench(*args, timeout=60):
	"""vouch-bench args: (exit code, stdout, stderr)."""
	p = subprocess.run([BENCH] + [str(a) for a in args],
			   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
			   timeout=slow(timeout))
	return p.returncode, p.stdout.decode(), p.stderr.decode()


def bench_json(tc, *args, timeout=60):
	rc, out, err = bench(*args, "--json", timeout=timeout)
	tc.assertEqual(rc, 0, "vouch-bench %s: rc %d\n%s%s" % (
		" ".join(map(str, args)), rc, out, err))
	lines = out.strip().splitlines()
	tc.assertEqual(len(lines), 1, out)
	return json.loads(lines[0]), err


def move_devices(pki, names, sub):
	"""NAME.crt / NAME.key of names into pki.dir/sub (a --cert-dir)."""
	d = os.path.join(pki.dir, sub)
	os.makedirs(d)
	for n in names:
		for ext in ("crt", "key"):
			shutil.move(pki.path(n, ext), os.path.join(d, "%s.%s" % (n, ext)))
	return d


class BenchModesTest(unittest.TestCase):

	@classmethod
	def setUpClass(cls):
		for exe in (BENCH, VOUCHCTL):
			if not os.access(exe, os.X_OK):
				raise unittest.SkipTest("no %s" % exe)
		p = cls.pki = Pki(prefix="vouch-bench-pki-")
		cls.broker = None
		try:
			p.ca("srvca", "Server CA")
			p.server("srvca")
			p.ca("root", "Fleet Root CA")
			res = p.devices("root", "resume", RESUME_CERTS)
			cls.resume_pems = [p.pem(n) for n in res]
			cls.resume_dir = move_devices(p, res, "resume")
			fresh = p.devices("root", "fresh", SIGNUP_CERTS)
			cls.fresh_ids = {n: p.cert_id(n) for n in fresh}
			cls.signup_dir = move_devices(p, fresh, "signup")
			v3 = p.devices("root", "v3", 10)
			cls.v3_dir = move_devices(p, v3, "v3")
			cls.broker = IdBroker(p, rate=RATE, burst=BURST).start()
			cls.api = cls.broker.api
			cls.root_id = cls.api.register_ca(p, "root")["certificateId"]
			# the resumption certificates are registered beforehand:
			# the signup limiter is not what that test measures
			for pem in cls.resume_pems:
				st, j = cls.api.register_cert(pem, status="ACTIVE")
				assert st in (200, 201), (st, j)
		except BaseException:
			cls.tearDownClass()
			raise

	@classmethod
	def tearDownClass(cls):
		try:
			if cls.broker:
				cls.broker.stop()
		finally:
			cls.pki.cleanup()

	def tearDown(self):
		self.broker.check_stderr()
		self.broker.assert_alive()

	def tls_args(self, cert_dir):
		return ["--port", self.broker.tls_port, "--cafile",
			self.pki.path("srvca"), "--cert-dir", cert_dir]

	# ---------------------------------------------------------- resume

	def resumed_by_broker(self):
		"""vouchd's own count of resumed handshakes (/metrics)."""
		url = "http://%s:%d/metrics" % (HOST, self.broker.admin_port)
		with urllib.request.urlopen(url, timeout=slow(10)) as r:
			for ln in r.read().decode().splitlines():
				if ln.startswith('vouch_tls_handshakes_total{type="resumed"}'):
					return int(float(ln.split()[-1]))
		raise AssertionError("no resumed handshake count in /metrics")

	def resume(self, tls_version):
		conns = RESUME_CERTS * 5
		before = self.resumed_by_broker()
		j, err = bench_json(self, "connect", "--resume", "--tls-version",
				    tls_version, "--connections", conns,
				    "--concurrency", 8, "--version", 5,
				    *self.tls_args(self.resume_dir))
		sys.stderr.write("\n  resume TLS %s: %r\n" % (tls_version,
							     j["sessions"]))
		self.assertEqual(j["succeeded"], conns, j)
		s = j["sessions"]
		self.assertEqual(s["full"] + s["resumed"] + s["not_resumed"], conns)
		# one full handshake per certificate (one thread), and vouchd
		# resumes every session offered after it
		self.assertEqual(s["full"], RESUME_CERTS, s)
		self.assertEqual(s["not_resumed"], 0, s)
		self.assertEqual(s["resumed"], conns - RESUME_CERTS, s)
		self.assertEqual(s["resumed_latency"]["count"], s["resumed"])
		self.assertEqual(s["full_latency"]["count"], RESUME_CERTS)
		# and the broker saw as many resumptions
		self.assertEqual(self.resumed_by_broker() - before, s["resumed"])

	def test_resume_tls13(self):
		self.resume("1.3")

	def test_resume_tls12(self):
		self.resume("1.2")

	def test_no_resume_is_all_full(self):
		# the counterpart: without --resume there is no session report,
		# and with it a plain run refuses
		j, _ = bench_json(self, "connect", "--connections", 4,
				  *self.tls_args(self.resume_dir))
		self.assertEqual(j["succeeded"], 4)
		self.assertNotIn("sessions", j)

	# ---------------------------------------------------------- signup

	def test_signup_respects_the_limit(self):
		j, err = bench_json(self, "signup", "--rate", OFFERED, "--version", 5,
				    "--concurrency", 4,
				    *self.tls_args(self.signup_dir), timeout=90)
		sys.stderr.write("\n  signup: attempted %d registered %d refused "
				 "%d in %.2f s, max %d in 1 s\n" % (
					 j["attempted"], j["registered"],
					 j["refused_over_limit"], j["duration_s"],
					 j["max_registrations_1s"]))
		self.assertEqual(j["attempted"], SIGNUP_CERTS, j)
		self.assertEqual(j["other_failed"], 0, j)
		self.assertEqual(j["registered"] + j["refused_over_limit"],
				 j["attempted"], j)
		self.assertEqual(j["limit_code"], 0x9F)
		self.assertGreater(j["refused_over_limit"], 0, j)
		# the limiter's bound over the run: burst + rate * time
		self.assertLessEqual(j["registered"],
				     BURST + RATE * j["duration_s"] + 1, j)
		# and from below: with a burst of 1, each registration waits for
		# its token (1/RATE s) and then for the next attempt (up to
		# 1/OFFERED s later), so at least one per 1/RATE + 1/OFFERED s
		self.assertGreaterEqual(j["registered"],
					j["duration_s"] / (1.0 / RATE + 1.0 / OFFERED) - 1, j)
		# any one-second window: the bucket allows burst + rate in a
		# closed second (rate in a half-open one); CONNACK times seen by
		# the client carry a few ms of jitter, hence the closed bound
		self.assertGreaterEqual(j["max_registrations_1s"], RATE - 1, j)
		self.assertLessEqual(j["max_registrations_1s"], RATE + BURST, j)
		# the registry agrees
		reg = {c["certificateId"] for c in
		       self.api.certs("ca=" + self.root_id)}
		fresh = set(self.fresh_ids.values())
		self.assertEqual(len(reg & fresh), j["registered"])
		self.assertIn("registered", bench("signup", "--help")[1])

	def test_signup_v311_code(self):
		# MQTT 3.1.1 has no "rate exceeded": vouchd sends 0x03, and the
		# report gives codes as on the wire
		j, _ = bench_json(self, "signup", "--version", 4, "--quiet",
				  *self.tls_args(self.v3_dir))
		self.assertEqual(j["limit_code"], 0x03)
		self.assertEqual(j["attempted"], 10, j)
		self.assertEqual(j["other_failed"], 0, j)
		self.assertGreater(j["refused_over_limit"], 0, j)
		self.assertEqual(j["registered"] + j["refused_over_limit"], 10, j)

	# ------------------------------------------------------------ hold

	def test_hold_procs_source_addrs(self):
		seen = {}
		stop = threading.Event()

		def watch():
			# which source addresses the broker's port sees
			while not stop.is_set():
				p = subprocess.run(
					["ss", "-tnH", "state", "established",
					 "( dport = :%d )" % self.broker.port],
					stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
				n = {}
				for ln in p.stdout.decode().splitlines():
					f = ln.split()
					if len(f) >= 4:
						a = f[2].rsplit(":", 1)[0]
						n[a] = n.get(a, 0) + 1
				if sum(n.values()) > sum(seen.values()):
					seen.clear()
					seen.update(n)
				time.sleep(0.2)

		t = threading.Thread(target=watch, daemon=True)
		t.start()
		try:
			j, err = bench_json(self, "hold", "--port", self.broker.port,
					    "--connections", 200, "--procs", 2,
					    "--source-addrs", "127.0.0.1-127.0.0.3",
					    "--duration", 2, "--ping-interval", 0.5,
					    "--broker-pid", self.broker.proc.pid)
		finally:
			stop.set()
			t.join(5)
		self.assertEqual(j["procs"], 2)
		self.assertEqual(j["succeeded"], 200, j)
		self.assertEqual(j["open_at_end"], 200, j)
		p = j["pings"]
		self.assertGreaterEqual(p["rounds"], 2, p)
		self.assertEqual(p["last_round_pinged"], 200, p)
		self.assertEqual(p["last_round_answered"], 200, p)
		self.assertEqual(p["answered"], p["sent"], p)
		self.assertGreaterEqual(p["sent"], 200 * 2, p)
		m = j["broker_rss"]
		self.assertGreater(m["before_kib"], 0)
		self.assertGreater(m["after_kib"], 0)
		self.assertIn("per_connection_bytes", m)
		if shutil.which("ss"):
			self.assertEqual(set(seen), {"127.0.0.1", "127.0.0.2",
						     "127.0.0.3"}, seen)
			for a, n in seen.items():
				self.assertGreaterEqual(n, 60, seen)
		# progress went to stderr, the report to stdout
		self.assertIn("open", err)

	def test_connect_hold_is_hold(self):
		j, _ = bench_json(self, "connect", "--port", self.broker.port,
				  "--connections", 20, "--hold", 1,
				  "--ping-interval", 0.3, "--quiet")
		self.assertEqual(j["open_at_end"], 20)
		self.assertEqual(j["pings"]["last_round_answered"], 20, j)

	# ------------------------------------------------------- bad flags

	def test_bad_flags(self):
		port = str(self.broker.port)
		for args in (["connect", "--resume", "--port", port],
			     ["hold", "--source-addrs", "127.0.0.9-127.0.0.1"],
			     ["hold", "--source-addrs", "nonsense"],
			     ["hold", "--ping-interval", "0"],
			     ["hold", "--ping-interval", "100", "--keepalive", "60"],
			     ["hold", "--procs", "0"],
			     ["hold", "--procs", "5", "--connections", "2"],
			     ["connect", "--ping-interval", "1"],
			     ["signup", "--port", port],
			     ["signup", "--cert-dir", self.signup_dir,
			      "--connections", str(SIGNUP_CERTS + 1)],
			     ["pubsub", "--procs", "2"],
			     ["hold", "--hold", "3"]):
			rc, out, err = bench(*args, timeout=20)
			self.assertEqual(rc, 2, (args, out, err))
			self.assertEqual(out, "", args)
			self.assertEqual(len(err.strip().splitlines()), 1, (args, err))


if __name__ == "__main__":
	unittest.main(verbosity=2)
