#!/usr/bin/python3
"""The command line: --help lists every flag, a bad flag or value exits 2
with exactly one line on stderr, --config files (good, bad key, bad value,
missing), and a clean exit 0 on SIGTERM/SIGINT with clients connected,
including clients in the middle of QoS 2 flows and with wills."""

import signal

from vouchtest import *

FLAGS = ["listen", "shards", "data-dir", "io-compat", "log-level",
	 "max-connections", "max-packet-size", "receive-maximum",
	 "max-queued-messages", "max-shard-backlog", "max-keepalive", "connect-timeout",
	 "sys-interval", "config", "help", "topic-alias-maximum",
	 "tls-listen", "cert", "key", "require-certificate",
	 "allow-clientid-mismatch", "signup-rate", "signup-burst",
	 "admin-listen", "admin-token-file", "expiry-warning-days"]


def run_vouchd(args, timeout=None):
	d = tempfile.mkdtemp(prefix="vouchtest-flags-")
	try:
		p = subprocess.run([VOUCHD] + args, capture_output=True,
				   timeout=timeout or slow(10), cwd=d)
		return p.returncode, p.stdout.decode(), p.stderr.decode()
	finally:
		shutil.rmtree(d, ignore_errors=True)


@unittest.skipIf(MOSQ, "vouchd command line")
class FlagsTest(unittest.TestCase):
	def setUp(self):
		if not os.access(VOUCHD, os.X_OK):
			raise unittest.SkipTest("no vouchd")
		self.dir = tempfile.mkdtemp(prefix="vouchtest-flags-")

	def tearDown(self):
		shutil.rmtree(self.dir, ignore_errors=True)

	def base(self):
		return ["--listen", "127.0.0.1:%d" % free_port(), "--data-dir",
			os.path.join(self.dir, "data"), "--shards", "1",
			"--admin-listen", "off"]

	def test_help(self):
		rc, out, err = run_vouchd(["--help"])
		self.assertEqual(rc, 0, err)
		text = out + err
		for f in FLAGS:
			self.assertIn("--" + f, text)

	def _bad(self, args):
		try:
			rc, out, err = run_vouchd(args, slow(5))
		except subprocess.TimeoutExpired:
			self.fail("vouchd %s did not exit" % args)
		self.assertEqual(rc, 2, (args, err))
		lines = err.splitlines()
		self.assertEqual(len(lines), 1, (args, err))
		self.assertTrue(lines[0].strip(), args)
		return lines[0]

	def test_bad_flags(self):
		b = self.base()
		cases = [
			["--shards", "0"], ["--shards", "abc"], ["--shards", "-1"],
			["--shards", "4x"], ["--bogus"], ["--bogus", "1"],
			["--max-connections", "many"], ["--max-packet-size", "-5"],
			["--receive-maximum", "0"], ["--receive-maximum", "65536"],
			["--log-level", "loud"], ["--sys-interval", "x"],
			["--connect-timeout", ""], ["--io-compat", "2.6"],
			["--max-keepalive", "70000"], ["--max-queued-messages", "q"],
			["--max-shard-backlog", "63"], ["--max-shard-backlog", "16777217"],
		]
		cases += [["--admin-listen", "nope"], ["--signup-rate", "x"]]
		for extra in cases:
			self._bad(b + extra)
		# the value missing at the end of the command line
		self._bad(b + ["--shards"])
		for bad in ("nope", "127.0.0.1:99999", "256.1.1.1:1883"):
			self._bad(["--listen", bad, "--data-dir",
				   os.path.join(self.dir, "d"), "--admin-listen",
				   "off"])

	def _config(self, text):
		path = os.path.join(self.dir, "vouchd.conf")
		with open(path, "w") as f:
			f.write(text)
		return path

	def test_config_file(self):
		port = free_port()
		path = self._config(
			"# vouchd test configuration\n"
			"\n"
			"listen = 127.0.0.1:%d\n"
			"shards = 2\n"
			"   max-packet-size = 4096   \n"
			"receive-maximum=9\n"
			"sys-interval = 1\n"
			"admin-listen = off\n"
			"data-dir = %s\n" % (port, os.path.join(self.dir, "cd")))
		errp = os.path.join(self.dir, "err")
		with open(errp, "wb") as ef:
			p = subprocess.Popen([VOUCHD, "--config", path],
					     stderr=ef, stdout=subprocess.DEVNULL)
		try:
			ok = wait_until(lambda: "vouchd ready" in open(errp).read()
					or p.poll() is not None, slow(10))
			self.assertIsNone(p.poll(), open(errp).read())
			c = RawClient(port)
			k = c.connect("cfg")
			self.assertEqual(k.props.get(P_MAXIMUM_PACKET_SIZE), 4096)
			self.assertEqual(k.props.get(P_RECEIVE_MAXIMUM), 9)
			c.disconnect()
			p.send_signal(signal.SIGTERM)
			self.assertEqual(p.wait(slow(5)), 0)
		finally:
			if p.poll() is None:
				p.kill()
				p.wait()
		err = open(errp).read()
		for m in SANITIZER_MARKS:
			self.assertNotIn(m, err)

	def test_config_bad(self):
		b = self.base()
		for text in ("bogus-key = 1\n", "shards = zero\n",
			     "listen 127.0.0.1:1\n", "shards =\n",
			     "max-packet-size = 12 13\n"):
			line = self._bad(b + ["--config", self._config(text)])
		self._bad(b + ["--config", os.path.join(self.dir, "missing")])


class ShutdownTest(VouchTest):
	BROKER_ARGS = None

	def _busy_broker(self, b):
		cs = []
		t = "sd/" + uniq()
		for s in range(8):
			c = b.raw_connect(cid_on_shard("sd%d" % s, s, b.shards),
					  version=4 + s % 2, auto_ack=False,
					  will={"topic": t + "/will",
						"payload": b"w", "qos": 1},
					  clean=s % 2 == 0,
					  props={P_SESSION_EXPIRY: 60}
					  if s % 2 and s % 4 == 1 else None)
			c.subscribe(t + "/#", qos=2)
			cs.append(c)
		# QoS 2 flows left half done in both directions
		cs[0].send(enc_publish(t + "/a", b"x", qos=2, pid=9, version=4))
		cs[1].publish(t + "/b", b"y", qos=1)
		for c in cs:
			c.poll(0.05)
		return cs

	def _shutdown(self, sig):
		b = Broker(stop_timeout=slow(5))
		b.start()
		try:
			cs = self._busy_broker(b)
			t0 = time.monotonic()
			st = b.stop(sig)
			dt = time.monotonic() - t0
			self.assertEqual(st, 0)
			self.assertLess(dt, slow(5))
			for c in cs:
				c.expect_closed(slow(2))
		finally:
			b._kill()

	def test_sigterm_with_clients(self):
		self._shutdown(signal.SIGTERM)

	def test_sigint_with_clients(self):
		self._shutdown(signal.SIGINT)

	def test_sigterm_idle(self):
		b = Broker().start()
		time.sleep(0.2)
		self.assertEqual(b.stop(), 0 if not MOSQ else b.exit_status)


if __name__ == "__main__":
	main()
