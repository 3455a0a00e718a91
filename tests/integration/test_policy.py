#!/usr/bin/python3
"""Authorization policies end to end, with real clients over mutual TLS
(paho-mqtt and exact-byte clients):

- each variable (${clientid}, ${cn}, ${serial}, ${ou}, ${certid}) for
  publish, deny winning over allow, a wildcard client ID not widening;
- v5 reason codes (PUBACK/PUBREC 0x87, SUBACK 0x80) and the v3.1.1
  behaviour (acknowledged, not delivered; SUBACK 0x80);
- receive: topics a subscriber may not receive are not delivered;
- admin-only topics ($SYS/certificates/#, $SYS/presence/#) for a plain
  client of role device, and for a certificate whose policy grants admin;
- live changes (attach, update, detach) taking effect without reconnecting;
- the API's rules (400, 404, 409), vouchctl policy, the file surviving a
  restart, a damaged file refusing the start-up, --deny-subscribe-code.
"""

import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idtest import (Pki, IdBroker, TlsPaho, tls_attempt, tls_context,  # noqa: E402
		    vouchctl, VOUCHCTL)
from vouchtest import (HOST, RawClient, PUBLISH, PUBACK, PUBREC,  # noqa: E402
		       PUBCOMP, SUBACK, enc_publish, enc_ack, enc_subscribe,
		       slow, wait_until, VOUCHD)

DEVICE_POLICY = {
	"name": "device",
	"statements": [
		{"effect": "allow", "actions": ["publish", "subscribe", "receive"],
		 "topics": ["devices/${clientid}/#"]},
		{"effect": "deny", "actions": ["publish", "subscribe", "receive"],
		 "topics": ["devices/${clientid}/secret/#"]},
		{"effect": "allow", "actions": ["publish"],
		 "topics": ["cn/${cn}/#", "ou/${ou}/#", "serial/${serial}/#",
			    "id/${certid}/#"]},
		{"effect": "allow", "actions": ["subscribe"], "topics": ["fleet/#"]},
		{"effect": "allow", "actions": ["receive"],
		 "topics": ["fleet/news/#"]},
	],
}
OPS_POLICY = {
	"name": "ops", "admin": True,
	"statements": [{"effect": "allow", "actions": ["subscribe", "receive"],
			"topics": ["$SYS/#", "#"]}],
}
OPEN_POLICY = {
	"name": "open",
	"statements": [{"effect": "allow",
			"actions": ["publish", "subscribe", "receive"],
			"topics": ["#"]}],
}


class Watcher:
	"""A plain-TCP v5 client (no certificate: no policy, role device)
	subscribed to a filter, collecting topics."""

	def __init__(self, port, filt="#", cid="watcher"):
		self.c = RawClient(port, version=5)
		self.c.connect(cid)
		self.c.subscribe(filt, qos=1)

	def topics(self, until_topic, timeout=None):
		"""Topics received up to and including until_topic."""
		out = []
		end = time.monotonic() + (timeout or slow(5))
		while time.monotonic() < end:
			p = self.c.expect(PUBLISH, timeout=max(0.05, end - time.monotonic()))
			out.append(p.topic)
			if p.topic == until_topic:
				return out
		raise AssertionError("no %s (got %r)" % (until_topic, out))

	def close(self):
		self.c.close()


class PolicyTest(unittest.TestCase):

	@classmethod
	def setUpClass(cls):
		if not os.access(VOUCHCTL, os.X_OK):
			raise unittest.SkipTest("no vouchctl at %s" % VOUCHCTL)
		p = cls.pki = Pki(prefix="vouch-policy-")
		p.ca("srvca", "Server CA")
		p.server("srvca")
		p.ca("root", "Fleet Root CA")
		p.device("root", "dA", cn="dev-A", extra=["--ou", "line-7"])
		p.device("root", "dB", cn="dev-B")
		p.device("root", "dC", cn="dev-C")
		p.device("root", "dV3", cn="dev-V3")
		p.device("root", "ops", cn="ops")
		p.device("root", "wild", cn="#")
		cls.data = os.path.join(p.dir, "data")
		# plain clients here are of role device (IdBroker's default is admin)
		cls.broker = IdBroker(p, data_dir=cls.data,
				      extra=["--plain-role", "device"]).start()
		try:
			cls.api = cls.broker.api
			cls.root_id = cls.api.register_ca(p, "root")["certificateId"]
			for doc in (DEVICE_POLICY, OPS_POLICY, OPEN_POLICY):
				cls.api.ok("POST", "/api/v1/policies", doc, want=(201,))
			cls.api.ok("POST", "/api/v1/policies/device/attach",
				   {"caCertificateId": cls.root_id})
		except BaseException:
			cls.broker.stop()
			p.cleanup()
			raise

	@classmethod
	def tearDownClass(cls):
		try:
			cls.broker.stop()
		finally:
			cls.pki.cleanup()

	def setUp(self):
		self.closers = []

	def tearDown(self):
		for c in self.closers:
			try:
				c.close()
			except Exception:
				pass
		self.broker.check_stderr()
		self.broker.assert_alive()

	def watcher(self, filt="#", cid=None):
		w = Watcher(self.broker.port, filt, cid or "w-%s" % self.id()[-20:])
		self.closers.append(w)
		return w

	def paho(self, name, cid, v5=True):
		d = TlsPaho(self.broker.tls_port, self.pki, name, cid, v5)
		self.closers.append(d)
		self.assertEqual(d.connect(), 0)
		return d

	def raw(self, name, cid, version=5):
		o = tls_attempt(self.broker.tls_port, tls_context(self.pki, name),
				cid, version, keep=True)
		self.assertEqual((o.kind, o.rc), ("connack", 0), o)
		self.closers.append(o.client)
		return o.client

	def cert_id(self, name):
		return self.pki.cert_id(name)

	# ------------------------------------------------------------ tests

	def test_variables_publish(self):
		"""Each variable of the CA's default policy, deny winning."""
		w = self.watcher()
		a = self.paho("dA", "pA")
		rec = self.api.cert(self.cert_id("dA"))
		serial, cid = rec["serialNumber"], self.cert_id("dA")
		allowed = ["devices/pA/t", "cn/dev-A/t", "ou/line-7/t",
			   "serial/%s/t" % serial, "id/%s/t" % cid]
		denied = ["devices/pB/t", "devices/pA/secret/k", "cn/dev-B/t",
			  "ou/line-8/t", "serial/00/t", "id/%s/t" % ("0" * 64),
			  "other"]
		for t in denied + allowed:
			a.publish(t, b"x", qos=1)
		a.publish("devices/pA/end", b"x", qos=1)
		got = w.topics("devices/pA/end")
		self.assertEqual(sorted(got), sorted(allowed + ["devices/pA/end"]))

	def test_wildcard_values_are_literal(self):
		"""A CN and a client ID of "#" widen nothing: the statements
		using them match nothing (never devices/#/#)."""
		w = self.watcher()
		c = self.raw("wild", "#")
		for t in ["cn/a", "cn/a/b", "devices/a/t", "devices/x", "ou/a/t"]:
			self.assertEqual(c.publish(t, b"x", qos=1).rc, 0x87, t)
		p = c.subscribe([("devices/#", 0), ("cn/#", 0)], expect_rcs=False)
		self.assertEqual(p.rcs, [0x80, 0x80])
		w.c.expect_nothing(slow(0.3))

	def ensure_registered(self, name):
		"""Connect once so the certificate is registered; its ID."""
		o = tls_attempt(self.broker.tls_port, tls_context(self.pki, name),
				"reg-" + name, 5)
		self.assertEqual(o.rc, 0)
		return self.cert_id(name)

	def test_v5_codes(self):
		b = self.raw("dB", "pB")
		w = self.watcher("other/#")
		self.assertEqual(b.publish("other/x", b"1", qos=1).rc, 0x87)
		self.assertEqual(b.publish("other/x", b"2", qos=2).rc, 0x87)
		b.publish("other/x", b"0", qos=0)
		self.assertEqual(b.publish("devices/pB/x", b"ok", qos=1).rc, 0)
		p = b.subscribe([("devices/pA/#", 1), ("devices/pB/#", 1),
				 ("devices/pB/secret/x", 1), ("fleet/#", 0),
				 ("$SYS/certificates/#", 0)], expect_rcs=False)
		self.assertEqual(p.rcs, [0x80, 1, 0x80, 0, 0x80])
		w.c.expect_nothing(slow(0.3))
		self.assertTrue(b.is_open())

	def test_v311(self):
		"""v3.1.1 has no negative ack: QoS 1/2 acknowledged, QoS 2 flow
		completed, nothing delivered; a refused subscription is 0x80."""
		w = self.watcher("other/#")
		c = self.raw("dV3", "pV3", version=4)
		a = c.publish("other/x", b"1", qos=1)
		self.assertEqual(a.type, PUBACK)
		c.publish("other/x", b"2", qos=2)      # PUBREC, PUBREL, PUBCOMP
		c.publish("other/x", b"0", qos=0)
		p = c.subscribe([("devices/pA/#", 1), ("devices/pV3/#", 1)],
				expect_rcs=False)
		self.assertEqual(p.rcs, [0x80, 1])
		w.c.expect_nothing(slow(0.3))
		self.assertTrue(c.is_open())

	def test_receive(self):
		"""fleet/# may be subscribed, only fleet/news/# is received; a
		denied topic inside an allowed subscription is not delivered."""
		a = self.paho("dA", "pA-recv")
		a.subscribe("fleet/#", qos=1)
		a.subscribe("devices/pA-recv/#", qos=1)
		pub = RawClient(self.broker.port, version=5)
		self.closers.append(pub)
		pub.connect("pub-recv")
		for t in ["fleet/other/b", "fleet/news/a", "devices/pA-recv/secret/k",
			  "devices/pA-recv/ok"]:
			pub.publish(t, b"x", qos=1)
		got = [a.get().topic, a.get().topic]
		self.assertEqual(sorted(got), ["devices/pA-recv/ok", "fleet/news/a"])
		self.assertRaises(AssertionError, a.get, slow(0.3))

	def test_admin_only(self):
		"""A plain client (role device) cannot subscribe to the admin-only
		topics and does not receive them through $SYS/#; a certificate
		with the ops policy (admin) does."""
		plain = RawClient(self.broker.port, version=5)
		self.closers.append(plain)
		plain.connect("plain-admin-test")
		p = plain.subscribe([("$SYS/certificates/#", 0),
				     ("$SYS/presence/#", 0), ("$SYS/#", 0)],
				    expect_rcs=False)
		self.assertEqual(p.rcs, [0x80, 0x80, 0])
		self.api.ok("POST", "/api/v1/policies/ops/attach",
			    {"certificateId": self.ensure_registered("ops")})
		ops = self.paho("ops", "ops-1")
		ops.subscribe("$SYS/certificates/#")
		# a registration event: dC connects for the first time
		self.ensure_registered("dC")
		m = ops.get(slow(5))
		self.assertTrue(m.topic.startswith("$SYS/certificates/registered/"))
		got = [x.topic for x in plain.poll(slow(1.5)) if x.type == PUBLISH]
		self.assertTrue(any(t.startswith("$SYS/broker/") for t in got), got)
		self.assertFalse([t for t in got if t.startswith("$SYS/certificates")])

	def test_live_changes(self):
		"""attach, update, detach while connected: no reconnect."""
		w = self.watcher("other/#")
		b = self.raw("dB", "pB-live")
		b.subscribe("devices/pB-live/#", qos=1)
		self.assertEqual(b.publish("other/1", b"x", qos=1).rc, 0x87)
		bid = self.cert_id("dB")
		# attach a certificate policy: replaces the CA's
		j = self.api.ok("POST", "/api/v1/policies/open/attach",
				{"certificateId": bid})
		self.assertEqual(j["replaced"], None)
		st, eff = self.api.call("GET", "/api/v1/certificates/%s/policy" % bid)
		self.assertEqual((st, eff["effectivePolicy"], eff["caPolicy"]),
				 (200, "open", "device"))
		self.assertTrue(wait_until(
			lambda: b.publish("other/2", b"x", qos=1).rc == 0, slow(3)))
		self.assertEqual(w.c.expect(PUBLISH).topic, "other/2")
		# update it: publish only, nothing to subscribe -> the
		# subscription is dropped
		upd = {"statements": [{"effect": "allow", "actions": ["publish"],
				       "topics": ["devices/${clientid}/#"]}]}
		self.api.ok("PUT", "/api/v1/policies/open", upd)
		self.assertTrue(wait_until(
			lambda: b.publish("other/3", b"x", qos=1).rc == 0x87, slow(3)))
		pub = RawClient(self.broker.port, version=5)
		self.closers.append(pub)
		pub.connect("pub-live")
		pub.publish("devices/pB-live/in", b"x", qos=1)
		b.expect_nothing(slow(0.3))
		# detach: back to the CA's policy; the dropped subscription is
		# not restored, a new one is allowed again
		self.api.ok("POST", "/api/v1/policies/open/detach",
			    {"certificateId": bid})
		self.assertTrue(wait_until(
			lambda: b.publish("devices/pB-live/x", b"x", qos=1).rc == 0,
			slow(3)))
		b.subscribe("devices/pB-live/#", qos=1)
		pub.publish("devices/pB-live/in2", b"x", qos=1)
		self.assertEqual(b.expect(PUBLISH).topic, "devices/pB-live/in2")
		self.assertTrue(b.is_open())

	def test_api_rules(self):
		api = self.api
		st, j = api.call("DELETE", "/api/v1/policies/device")
		self.assertEqual((st, j["error"]), (409, "conflict"))
		st, j = api.call("POST", "/api/v1/policies", DEVICE_POLICY)
		self.assertEqual(st, 409)
		bad = [({"name": "x"}, "statements"),
		       ({"name": "x y", "statements": []}, "name"),
		       ({"name": "x", "statements": [{"effect": "allow",
			"actions": ["publish"], "topics": ["a/#/b"]}]}, "'#'"),
		       ({"name": "x", "statements": [{"effect": "allow",
			"actions": ["publish"], "topics": ["a/${user}"]}]}, "${user}"),
		       ({"name": "x", "statements": [], "colour": 1}, "colour")]
		for body, word in bad:
			st, j = api.call("POST", "/api/v1/policies", body)
			self.assertEqual((st, j["error"]), (400, "bad_policy"), body)
			self.assertIn(word, j["message"])
		self.assertEqual(api.call("GET", "/api/v1/policies/x")[0], 404)
		self.assertEqual(api.call("POST", "/api/v1/policies/device/attach",
					  {"certificateId": "ab" * 32})[0], 404)
		self.assertEqual(api.call("POST", "/api/v1/policies/device/attach",
					  {"certificateId": "zz"})[0], 400)
		self.assertEqual(api.call("POST", "/api/v1/policies/open/detach",
					  {"caCertificateId": self.root_id})[0], 404)
		names = [p["name"] for p in api.ok("GET", "/api/v1/policies")["policies"]]
		self.assertEqual(names, sorted(names))
		self.assertTrue({"device", "ops", "open"} <= set(names))
		j = api.ok("GET", "/api/v1/policies/device")
		self.assertIn({"caCertificateId": self.root_id}, j["attachments"])
		self.assertEqual(api.ok("GET", "/api/v1/cas/%s/policy" % self.root_id)
				 ["policy"], "device")

	def test_vouchctl(self):
		env = dict(os.environ, VOUCH_URL="http://%s:%d" % (
			HOST, self.broker.admin_port))
		doc = os.path.join(self.pki.dir, "ctl.json")
		with open(doc, "w") as f:
			json.dump({"statements": [{"effect": "allow", "actions":
				   ["publish"], "topics": ["ctl/${clientid}"]}]}, f)

		def ctl(*a, rc=0):
			p = subprocess.run([VOUCHCTL, "--json", "policy"] + list(a),
					   env=env, capture_output=True,
					   timeout=slow(30))
			self.assertEqual(p.returncode, rc, (a, p.stdout, p.stderr))
			return json.loads(p.stdout) if rc == 0 and p.stdout.strip() \
				else p.stderr.decode()
		self.assertEqual(ctl("create", "ctlpol", doc)["name"], "ctlpol")
		self.assertIn("exists", ctl("create", "ctlpol", doc, rc=1))
		self.assertIn("ctlpol", [p["name"] for p in ctl("list")["policies"]])
		self.assertEqual(ctl("show", "ctlpol")["statements"][0]["topics"],
				 ["ctl/${clientid}"])
		cid = self.ensure_registered("dC")
		ctl("attach", "ctlpol", "--cert", cid)
		self.assertIn("attached", ctl("delete", "ctlpol", rc=1))
		ctl("detach", "ctlpol", "--cert", cid)
		self.assertTrue(ctl("delete", "ctlpol")["deleted"])
		self.assertIn("--cert or --ca", ctl("attach", "ops", rc=2))


class PolicyRestartTest(unittest.TestCase):
	"""The file outlives the broker; a damaged one refuses the start-up;
	--deny-subscribe-code 0x87."""

	def test_restart_and_damage(self):
		p = Pki(prefix="vouch-policy-r-")
		try:
			p.ca("srvca", "Server CA")
			p.server("srvca")
			p.ca("root", "Root")
			p.device("root", "d1")
			data = os.path.join(p.dir, "data")
			with IdBroker(p, data_dir=data) as b:
				root = b.api.register_ca(p, "root")["certificateId"]
				b.api.ok("POST", "/api/v1/policies", DEVICE_POLICY,
					 want=(201,))
				b.api.ok("POST", "/api/v1/policies/device/attach",
					 {"caCertificateId": root})
			with IdBroker(p, data_dir=data,
				      extra=["--deny-subscribe-code", "0x87"]) as b:
				j = b.api.ok("GET", "/api/v1/policies/device")
				self.assertEqual(j["attachments"],
						 [{"caCertificateId": root}])
				o = tls_attempt(b.tls_port, tls_context(p, "d1"), "c1",
						5, keep=True)
				self.assertEqual(o.rc, 0)
				try:
					s = o.client.subscribe([("x/#", 0), ("devices/c1/a", 0)],
							       expect_rcs=False)
					self.assertEqual(s.rcs, [0x87, 0])
				finally:
					o.client.close()
			with open(os.path.join(data, "policies.json"), "w") as f:
				f.write('{"version": 1, "policies": [')
			r = subprocess.run([VOUCHD, "--listen", "%s:0" % HOST,
					    "--admin-listen", "off", "--data-dir", data],
					   capture_output=True, timeout=slow(20))
			self.assertNotEqual(r.returncode, 0)
			self.assertIn(b"policies.json", r.stderr)
		finally:
			p.cleanup()


if __name__ == "__main__":
	unittest.main()
