#!/usr/bin/python3
"""The admin HTTP/JSON API and `vouchctl ca|cert`, against the real vouchd.

- HTTP surface (urllib): health, bearer tokens, 404/405/400/413, JSON
  errors, content type.
- CA registration with proof of possession through vouchctl: right code and
  key; wrong code, wrong key (same name, other key), a non-CA; duplicates.
- The device-certificate lifecycle through vouchctl: manual registration,
  queries, the state rules, client-ID binding, history, exit codes.
- Just-in-time registration over mutual TLS: a device of a registered CA
  connects and is registered, the $SYS event is published, deactivation
  closes the live connection at once, PENDING_ACTIVATION waits for an
  administrator, and the signup limiter refuses what is over the rate.
- A restart keeps the registration code and the registry.
"""

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vouchtest import (BUILD, HOST, Broker, free_port, slow, mqtt,  # noqa: E402
		       wait_until)

VOUCHCTL = os.path.join(BUILD, "vouchctl")
TOKEN = "it-token-%d" % os.getpid()


def run(*args, env=None, check=None):
	"""vouchctl with args; returns (rc, stdout, stderr)."""
	p = subprocess.run([VOUCHCTL] + list(args), stdout=subprocess.PIPE,
			   stderr=subprocess.PIPE, timeout=slow(60), env=env)
	out, err = p.stdout.decode(), p.stderr.decode()
	if check is not None and p.returncode != check:
		raise AssertionError("vouchctl %s: rc %d, want %d\n%s%s" % (
			" ".join(args), p.returncode, check, out, err))
	return p.returncode, out, err


class Pki:
	"""Certificates made with `vouchctl pki` in a temporary directory."""

	def __init__(self):
		self.dir = tempfile.mkdtemp(prefix="vouch-admin-pki-")
		self.n = 0

	def path(self, name, ext="crt"):
		return os.path.join(self.dir, "%s.%s" % (name, ext))

	def ca(self, name, cn):
		run("pki", "ca", "--out", self.dir, "--name", name, "--cn", cn,
		    check=0)
		return name

	def device(self, ca, name, cn=None, ou=None):
		a = ["pki", "device", "--ca-cert", self.path(ca), "--ca-key",
		     self.path(ca, "key"), "--out", self.dir, "--name", name,
		     "--cn", cn or name]
		if ou:
			a += ["--ou", ou]
		run(*a, check=0)
		return name

	def server(self):
		run("pki", "server", "--ca-cert", self.path("root"), "--ca-key",
		    self.path("root", "key"), "--out", self.dir, "--name",
		    "server", "--cn", "localhost", "--ip", HOST, check=0)

	def verification(self, ca, code, name):
		run("pki", "verification", "--ca-cert", self.path(ca),
		    "--ca-key", self.path(ca, "key"), "--code", code, "--out",
		    self.dir, "--name", name, "--force", check=0)
		return name

	def cert_id(self, name):
		_, out, _ = run("--json", "pki", "show", self.path(name), check=0)
		v = json.loads(out)
		if isinstance(v, list):
			v = v[0]
		return v["id"]

	def cleanup(self):
		shutil.rmtree(self.dir, ignore_errors=True)


class AdminBroker:
	"""vouchd with the admin API (and a TLS listener) on free ports."""

	def __init__(self, pki, data_dir=None, rate=None, burst=None, tls=True):
		self.pki = pki
		self.admin_port = free_port()
		self.tls_port = free_port() if tls else None
		self.tokfile = os.path.join(pki.dir, "tokens")
		with open(self.tokfile, "w") as f:
			f.write("# test tokens\nci:%s\n" % TOKEN)
		# --plain-role admin: the plain-TCP watcher of $SYS/certificates/#
		extra = ["--admin-listen", "%s:%d" % (HOST, self.admin_port),
			 "--admin-token-file", self.tokfile, "--plain-role", "admin"]
		if tls:
			extra += ["--tls-listen", "%s:%d" % (HOST, self.tls_port),
				  "--cert", pki.path("server"),
				  "--key", pki.path("server", "key")]
		if data_dir:
			extra += ["--data-dir", data_dir]
		if rate:
			extra += ["--signup-rate", str(rate)]
		if burst:
			extra += ["--signup-burst", str(burst)]
		self.broker = Broker(extra=extra)
		self.url = "http://%s:%d" % (HOST, self.admin_port)

	def __enter__(self):
		self.broker.start()
		return self

	def __exit__(self, *exc):
		return self.broker.__exit__(*exc)

	def env(self, token=True):
		e = dict(os.environ)
		e["VOUCH_URL"] = self.url
		if token:
			e["VOUCH_TOKEN_FILE"] = self.tokfile
		else:
			e.pop("VOUCH_TOKEN_FILE", None)
		return e

	def ctl(self, *args, check=None, token=True):
		return run(*args, env=self.env(token), check=check)

	def ctl_json(self, *args):
		_, out, _ = run("--json", *args, env=self.env(), check=0)
		return json.loads(out)

	def http(self, method, path, body=None, token=TOKEN, headers=None):
		"""(status, parsed JSON, content type)."""
		req = urllib.request.Request(self.url + path, method=method,
					     data=body)
		if token:
			req.add_header("Authorization", "Bearer " + token)
		if body is not None:
			req.add_header("Content-Type", "application/json")
		for k, v in (headers or {}).items():
			req.add_header(k, v)
		try:
			with urllib.request.urlopen(req, timeout=slow(20)) as r:
				return (r.status, json.loads(r.read()),
					r.headers.get("Content-Type"))
		except urllib.error.HTTPError as e:
			return (e.code, json.loads(e.read()),
				e.headers.get("Content-Type"))

	def register_ca(self, ca, auto="on", auto_status=None):
		code = self.ctl("ca", "code", check=0)[1].strip()
		ver = self.pki.verification(ca, code, ca + "-ver")
		a = ["ca", "register", "--ca-cert", self.pki.path(ca),
		     "--verification-cert", self.pki.path(ver), "--auto", auto]
		if auto_status:
			a += ["--auto-status", auto_status]
		_, out, _ = run("--json", *a, env=self.env(), check=0)
		return json.loads(out)["certificateId"]


class TlsDevice:
	"""A paho client that connects over mutual TLS with a device
	certificate, and records CONNACK and disconnection."""

	def __init__(self, ab, name, client_id="", v5=True):
		self.connected = threading.Event()
		self.gone = threading.Event()
		self.rc = None
		self.c = mqtt.Client(client_id, protocol=mqtt.MQTTv5 if v5 else
				     mqtt.MQTTv311)
		self.c.tls_set(ca_certs=ab.pki.path("root"),
			       certfile=ab.pki.path(name),
			       keyfile=ab.pki.path(name, "key"),
			       cert_reqs=ssl.CERT_REQUIRED)
		self.c.on_connect = self._on_connect
		self.c.on_disconnect = self._on_disconnect
		self.port = ab.tls_port
		self.stop = False
		self.thread = None

	def _on_connect(self, c, ud, flags, rc, props=None):
		self.rc = rc.value if hasattr(rc, "value") else rc
		self.connected.set()

	def _on_disconnect(self, c, ud, rc, props=None):
		self.gone.set()

	def _loop(self):
		# paho's loop_start() reconnects by itself: drive it by hand so
		# that a refused device stays refused
		while not self.stop:
			if self.c.loop(0.05) != mqtt.MQTT_ERR_SUCCESS:
				self.gone.set()
				break

	def connect(self, timeout=None):
		"""CONNACK reason code, or None when the connection went away
		without one."""
		try:
			self.c.connect(HOST, self.port, 30)
		except (OSError, ssl.SSLError):
			return None
		self.thread = threading.Thread(target=self._loop, daemon=True)
		self.thread.start()
		end = time.monotonic() + (timeout or slow(10))
		while time.monotonic() < end:
			if self.connected.is_set():
				return self.rc
			if self.gone.is_set():
				return None
			time.sleep(0.01)
		raise AssertionError("no CONNACK and no close")

	def close(self):
		try:
			self.c.disconnect()
			if self.thread:
				self.thread.join(slow(2))
		finally:
			self.stop = True
			if self.thread:
				self.thread.join(slow(2))


class Events:
	"""A plain subscriber to $SYS/certificates/#."""

	def __init__(self, broker):
		self.msgs = []
		self.lock = threading.Lock()
		self.sub = broker.paho("events-%d" % os.getpid())
		self.sub.connect()
		self.sub.c.on_message = self._on
		self.sub.subscribe("$SYS/certificates/#")

	def _on(self, c, ud, m):
		with self.lock:
			self.msgs.append((m.topic, json.loads(m.payload)))

	def find(self, topic_prefix, cert_id, timeout):
		def look():
			with self.lock:
				for t, j in self.msgs:
					if t.startswith(topic_prefix) and \
					   j.get("certificateId") == cert_id:
						return (t, j)
			return None
		return wait_until(look, timeout)

	def close(self):
		self.sub.close()


class AdminApiTest(unittest.TestCase):

	@classmethod
	def setUpClass(cls):
		if not os.access(VOUCHCTL, os.X_OK):
			raise unittest.SkipTest("no vouchctl at %s" % VOUCHCTL)
		cls.pki = Pki()
		cls.pki.ca("root", "Fleet Root CA")
		cls.pki.server()

	@classmethod
	def tearDownClass(cls):
		cls.pki.cleanup()

	# ------------------------------------------------------------ HTTP

	def test_http_surface(self):
		with AdminBroker(self.pki, tls=False) as ab:
			st, j, ct = ab.http("GET", "/healthz", token=None)
			self.assertEqual((st, j, ct), (200, {"status": "ok"},
						       "application/json"))
			for tok in (None, "wrong", TOKEN + "x"):
				st, j, ct = ab.http("GET", "/api/v1/cas", token=tok)
				self.assertEqual(st, 401)
				self.assertEqual(ct, "application/json")
				self.assertEqual(j["error"], "unauthorized")
			st, j, _ = ab.http("GET", "/api/v1/nowhere")
			self.assertEqual(st, 404)
			self.assertIn("message", j)
			st, j, _ = ab.http("DELETE", "/api/v1/cas")
			self.assertEqual(st, 405)
			st, j, _ = ab.http("POST", "/api/v1/cas", b"{\"caCert")
			self.assertEqual((st, j["error"]), (400, "bad_json"))
			st, j, _ = ab.http("POST", "/api/v1/certificates",
					   b"{\"certificate\": 1}")
			self.assertEqual((st, j["error"]), (400, "bad_field"))
			st, j, _ = ab.http("GET", "/api/v1/certificates?limit=5000")
			self.assertEqual(st, 400)
			st, j, _ = ab.http("GET", "/api/v1/certificates/" + "ab" * 32)
			self.assertEqual(st, 404)
			big = b"{" + b" " * (400 * 1024) + b"}"
			st, j, _ = ab.http("POST", "/api/v1/certificates", big)
			self.assertEqual((st, j["error"]), (413, "too_large"))
			# still serving
			st, j, _ = ab.http("GET", "/api/v1/certificates")
			self.assertEqual((st, j["total"], j["certificates"]),
					 (200, 0, []))
			st, j, _ = ab.http("GET", "/api/v1/registration-code")
			self.assertEqual(st, 200)
			self.assertRegex(j["registrationCode"], "^[0-9a-f]{32}$")

	# ------------------------------------------------ CA registration

	def test_ca_proof_of_possession(self):
		p = self.pki
		with AdminBroker(p, tls=False) as ab:
			rc, out, err = ab.ctl("ca", "code", token=False)
			self.assertEqual(rc, 1)
			self.assertIn("token", err)
			code = ab.ctl("ca", "code", check=0)[1].strip()
			self.assertRegex(code, "^[0-9a-f]{32}$")
			p.ca("popca", "PoP CA")
			# an impostor: same name, another key
			p.ca("impostor", "PoP CA")
			good = p.verification("popca", code, "pop-good")
			wrong_code = p.verification("popca", "f" * 32, "pop-badcode")
			wrong_key = p.verification("impostor", code, "pop-badkey")
			p.device("popca", "pop-dev")

			def reg(ca, ver):
				return ab.ctl("ca", "register", "--ca-cert",
					      p.path(ca), "--verification-cert",
					      p.path(ver), "--auto", "on")

			rc, _, err = reg("popca", wrong_code)
			self.assertEqual(rc, 1)
			self.assertIn("registration code", err)
			rc, _, err = reg("popca", wrong_key)
			self.assertEqual(rc, 1)
			self.assertIn("not signed by the CA's key", err)
			rc, _, err = reg("pop-dev", good)
			self.assertEqual(rc, 1)
			self.assertIn("not a CA", err)
			self.assertEqual(ab.ctl_json("ca", "list")["total"], 0)
			rc, out, _ = reg("popca", good)
			self.assertEqual(rc, 0, out)
			self.assertIn("autoRegistration:", out)
			ca_id = p.cert_id("popca")
			lst = ab.ctl_json("ca", "list")
			self.assertEqual(lst["total"], 1)
			self.assertEqual(lst["cas"][0]["certificateId"], ca_id)
			self.assertEqual(lst["cas"][0]["createdBy"], "admin:ci")
			rc, _, err = reg("popca", good)
			self.assertEqual(rc, 1)
			self.assertIn("HTTP 409", err)
			# a rotated code invalidates the old verification cert
			new = ab.ctl("ca", "code", "--rotate", check=0)[1].strip()
			self.assertNotEqual(new, code)
			p.ca("popca2", "PoP CA 2")
			old = p.verification("popca2", code, "pop2-old")
			rc, _, err = reg("popca2", old)
			self.assertEqual(rc, 1)
			# CA lifecycle
			rc, _, err = ab.ctl("ca", "delete", ca_id)
			self.assertEqual(rc, 1)
			self.assertIn("deactivate it first", err)
			j = ab.ctl_json("ca", "auto", ca_id, "off")
			self.assertFalse(j["autoRegistration"])
			j = ab.ctl_json("ca", "auto", ca_id, "on", "--status",
					"pending")
			self.assertEqual(j["autoStatus"], "PENDING_ACTIVATION")
			j = ab.ctl_json("ca", "deactivate", ca_id)
			self.assertEqual(j["status"], "INACTIVE")
			ab.ctl("ca", "delete", ca_id, check=0)
			self.assertEqual(ab.ctl_json("ca", "list")["total"], 0)
			rc, _, err = ab.ctl("ca", "get", ca_id)
			self.assertEqual(rc, 1)
			# usage errors exit 2
			self.assertEqual(ab.ctl("ca", "get")[0], 2)
			self.assertEqual(ab.ctl("ca", "get", "xyz")[0], 2)
			self.assertEqual(ab.ctl("ca", "auto", ca_id, "maybe")[0], 2)
			self.assertEqual(ab.ctl("ca", "register", "--ca-cert",
						p.path("popca"))[0], 2)

	# ------------------------------------------------------ lifecycle

	def test_certificate_lifecycle(self):
		p = self.pki
		with AdminBroker(p, tls=False) as ab:
			ab.register_ca("root")
			p.device("root", "life-1", ou="line-a")
			p.device("root", "life-2", ou="line-b")
			p.ca("stranger", "Stranger CA")
			p.device("stranger", "stray")
			rc, _, err = ab.ctl("cert", "register", p.path("stray"))
			self.assertEqual(rc, 1)
			self.assertIn("not a registered CA", err)
			j = ab.ctl_json("cert", "register", p.path("life-1"),
					"--client-id", "truck-1")
			d1 = j["certificateId"]
			self.assertEqual(d1, p.cert_id("life-1"))
			self.assertEqual((j["status"], j["clientId"],
					  j["registeredBy"], j["organizationalUnit"]),
					 ("ACTIVE", "truck-1", "MANUAL", "line-a"))
			self.assertIn("BEGIN CERTIFICATE", j["certificatePem"])
			j = ab.ctl_json("cert", "register", p.path("life-2"),
					"--status", "pending")
			d2 = j["certificateId"]
			self.assertEqual(j["status"], "PENDING_ACTIVATION")
			rc, _, err = ab.ctl("cert", "register", p.path("life-2"))
			self.assertEqual(rc, 1)
			self.assertIn("registered already", err)
			# queries
			self.assertEqual(ab.ctl_json("cert", "list")["total"], 2)
			j = ab.ctl_json("cert", "list", "--status", "pending")
			self.assertEqual([c["certificateId"] for c in
					  j["certificates"]], [d2])
			j = ab.ctl_json("cert", "list", "--ou", "line-a")
			self.assertEqual(j["total"], 1)
			j = ab.ctl_json("cert", "list", "--limit", "1")
			self.assertEqual((j["total"], len(j["certificates"])), (2, 1))
			j = ab.ctl_json("cert", "list", "--expiring-within", "400")
			self.assertEqual(j["total"], 2)
			j = ab.ctl_json("cert", "list", "--expired")
			self.assertEqual(j["total"], 0)
			# indexed filters (docs/queries.md)
			j = ab.ctl_json("cert", "list", "--ou-prefix", "line-")
			self.assertEqual(j["total"], 2)
			j = ab.ctl_json("cert", "list", "--id", d1, "--ou", "line-a")
			self.assertEqual([c["certificateId"] for c in j["certificates"]], [d1])
			j = ab.ctl_json("cert", "list", "--not-after-from", "2000-01-01T00:00:00Z")
			self.assertEqual(j["total"], 2)
			self.assertEqual(ab.ctl("cert", "list", "--not-after-to", "soon")[0], 2)
			for bad in ("bogus=1", "notAfterFrom=yesterday", "cn=a&cnPrefix=b",
				    "caSerial=xyz", "certificateId=12"):
				st, j, _ = ab.http("GET", "/api/v1/certificates?" + bad)
				self.assertEqual((st, j["error"]), (400, "bad_query"), bad)
			rc, out, _ = ab.ctl("cert", "list", check=0)
			self.assertIn("CERTIFICATE ID", out)
			self.assertIn(d1, out)
			# state rules
			rc, _, err = ab.ctl("cert", "delete", d1)
			self.assertEqual(rc, 1)
			self.assertIn("deactivate it first", err)
			self.assertEqual(ab.ctl_json("cert", "deactivate", d1)
					 ["status"], "INACTIVE")
			self.assertEqual(ab.ctl_json("cert", "bind", d1, "truck-2")
					 ["clientId"], "truck-2")
			self.assertEqual(ab.ctl_json("cert", "revoke", d1)
					 ["status"], "REVOKED")
			rc, _, err = ab.ctl("cert", "activate", d1)
			self.assertEqual(rc, 1)
			self.assertIn("final", err)
			ab.ctl("cert", "delete", d1, check=0)
			rc, _, _ = ab.ctl("cert", "get", d1)
			self.assertEqual(rc, 1)
			h = ab.ctl_json("cert", "history", d1)["events"]
			self.assertEqual([e["event"] for e in h],
					 ["REGISTERED", "STATUS", "CLIENT_ID",
					  "STATUS", "DELETED"])
			self.assertTrue(all(e["actor"] == "admin:ci" for e in h))
			rc, out, _ = ab.ctl("cert", "history", d1, check=0)
			self.assertIn("REVOKED", out)
			self.assertEqual(ab.ctl_json("cert", "activate", d2)
					 ["status"], "ACTIVE")

	# ------------------------------------------------- just in time

	def test_jitr_over_mutual_tls(self):
		p = self.pki
		with AdminBroker(p) as ab:
			ev = Events(ab.broker)
			try:
				self._jitr(ab, ev)
			finally:
				ev.close()

	def _jitr(self, ab, ev):
		p = self.pki
		ca_id = ab.register_ca("root")
		p.device("root", "jit-1")
		d1 = p.cert_id("jit-1")
		dev = TlsDevice(ab, "jit-1")
		self.assertEqual(dev.connect(), 0)
		hit = ev.find("$SYS/certificates/registered/" + ca_id, d1, slow(5))
		self.assertTrue(hit, "no registration event")
		self.assertEqual(hit[1]["status"], "ACTIVE")
		self.assertEqual(hit[1]["commonName"], "jit-1")
		j = ab.ctl_json("cert", "get", d1)
		self.assertEqual((j["registeredBy"], j["createdBy"]),
				 ("AUTO", "auto"))
		# deactivation closes the live connection at once
		t0 = time.monotonic()
		ab.ctl("cert", "deactivate", d1, check=0)
		self.assertTrue(dev.gone.wait(slow(2)), "connection not closed")
		self.assertLess(time.monotonic() - t0, slow(2))
		dev.close()
		dev = TlsDevice(ab, "jit-1")
		self.assertNotEqual(dev.connect(), 0)
		dev.close()
		ab.ctl("cert", "activate", d1, check=0)
		dev = TlsDevice(ab, "jit-1")
		self.assertEqual(dev.connect(), 0)
		# a CA deactivated closes its devices too
		ab.ctl("ca", "deactivate", ca_id, check=0)
		self.assertTrue(dev.gone.wait(slow(2)), "CA deactivation")
		dev.close()
		ab.ctl("ca", "activate", ca_id, check=0)
		# PENDING_ACTIVATION: registered, refused until activated
		ab.ctl("ca", "auto", ca_id, "on", "--status", "pending", check=0)
		p.device("root", "jit-2")
		d2 = p.cert_id("jit-2")
		dev = TlsDevice(ab, "jit-2")
		self.assertNotEqual(dev.connect(), 0)
		dev.close()
		self.assertEqual(ab.ctl_json("cert", "get", d2)["status"],
				 "PENDING_ACTIVATION")
		ab.ctl("cert", "activate", d2, check=0)
		dev = TlsDevice(ab, "jit-2")
		self.assertEqual(dev.connect(), 0)
		dev.close()
		# refused automatic registration writes nothing
		ab.ctl("ca", "auto", ca_id, "off", check=0)
		p.device("root", "jit-3")
		dev = TlsDevice(ab, "jit-3")
		self.assertNotEqual(dev.connect(), 0)
		dev.close()
		self.assertEqual(ab.ctl("cert", "get", p.cert_id("jit-3"))[0], 1)

	def test_signup_limit(self):
		p = self.pki
		names = ["lim-%d" % i for i in range(8)]
		for n in names:
			p.device("root", n)
		with AdminBroker(p, rate=1, burst=2) as ab:
			ab.register_ca("root")
			devs = [TlsDevice(ab, n) for n in names]
			res = [None] * len(devs)

			def go(i):
				res[i] = devs[i].connect()
			ths = [threading.Thread(target=go, args=(i,))
			       for i in range(len(devs))]
			t0 = time.monotonic()
			for t in ths:
				t.start()
			for t in ths:
				t.join(slow(30))
			secs = time.monotonic() - t0
			for d in devs:
				d.close()
			ok = res.count(0)
			# at most rate (1) in any one second, whatever the burst
			self.assertGreaterEqual(ok, 1)
			self.assertLessEqual(ok, 1 + int(secs * 1))
			# refused with "connection rate exceeded" (MQTT 5: 0x9F)
			self.assertIn(0x9F, res, res)
			j = ab.ctl_json("cert", "list")
			self.assertEqual(j["total"], ok)
			# a refused device gets in later
			late = [n for n, r in zip(names, res) if r != 0][0]
			time.sleep(1.2)
			dev = TlsDevice(ab, late)
			self.assertEqual(dev.connect(), 0)
			dev.close()

	# --------------------------------------------------------- restart

	def test_restart_keeps_code_and_registry(self):
		p = self.pki
		data = tempfile.mkdtemp(prefix="vouch-admin-data-")
		try:
			with AdminBroker(p, data_dir=data, tls=False) as ab:
				code = ab.ctl("ca", "code", check=0)[1].strip()
				ab.register_ca("root")
				p.device("root", "keep-1")
				ab.ctl("cert", "register", p.path("keep-1"), check=0)
			with AdminBroker(p, data_dir=data, tls=False) as ab:
				self.assertEqual(ab.ctl("ca", "code", check=0)[1].strip(),
						 code)
				self.assertEqual(ab.ctl_json("cert", "list")["total"], 1)
				self.assertEqual(ab.ctl_json("ca", "list")["total"], 1)
		finally:
			shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
	unittest.main(verbosity=2)
