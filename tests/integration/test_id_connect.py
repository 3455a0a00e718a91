#!/usr/bin/python3
"""Device identity at CONNECT over mutual TLS, against the real vouchd.

- A good device connects and publishes; subscribers on other shards (paho,
  mosquitto_sub, raw) receive it, with Python ssl, paho and mosquitto_pub
  as devices.
- Refusals in the handshake (unknown CA, expired, not yet valid, a CA
  certificate as client, a serverAuth-only certificate, no certificate) with the alert named, for TLS 1.2
  and 1.3, and nothing registered; refusals at CONNACK (INACTIVE,
  PENDING_ACTIVATION, REVOKED, CA INACTIVE, CA without automatic
  registration) with exact reason codes for MQTT 5.0 and 3.1.1.
- Automatic registration writes the right record and publishes the
  registered event once, also when eight first connections of one
  certificate arrive together; RSA and EC devices and CAs.
- Client-ID binding: the bound ID is assigned to an empty client ID, another
  ID is refused (0x85 / 0x02) unless --allow-clientid-mismatch; an unbound
  certificate's empty client ID becomes its CN.
- A device behind an intermediate CA presents the chain and is registered
  under the root.
"""

import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vouchtest import (P_ASSIGNED_CLIENT_ID, PUBLISH, cid_on_shard,  # noqa: E402
		       slow, wait_until, enc_connect, CONNACK)
from idtest import (ClientsCase, Pki, IdBroker, TlsPaho, TlsRaw, tls_attempt,  # noqa: E402
		    tls_context, mosq_tls_args, mosq_pub_tls, VOUCHCTL,
		    RC5_NOT_AUTHORIZED, RC3_NOT_AUTHORIZED, RC5_BAD_CLIENT_ID,
		    RC3_BAD_CLIENT_ID)

TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3


class IdConnectTest(ClientsCase):
	TAG = "id"

	@classmethod
	def setUpClass(cls):
		if not os.access(VOUCHCTL, os.X_OK):
			raise unittest.SkipTest("no vouchctl at %s" % VOUCHCTL)
		p = cls.pki = Pki()
		p.ca("srvca", "Server CA")
		p.server("srvca")
		p.ca("root", "Fleet Root CA")
		cls.broker = IdBroker(p).start()
		try:
			cls.api = cls.broker.api
			cls.root_id = cls.api.register_ca(p, "root")[
				"certificateId"]
		except BaseException:
			# tearDownClass does not run when setUpClass fails
			cls.broker.stop()
			p.cleanup()
			raise
		cls.n = cls.broker.shards

	@classmethod
	def tearDownClass(cls):
		try:
			if cls.broker:
				cls.broker.stop()
		finally:
			cls.pki.cleanup()


	def cid(self, name, shard):
		return cid_on_shard("%s-%s" % (self.tag, name), shard, self.n)

	def dev(self, name, ca="root", **kw):
		"""A fresh device certificate (vouchctl) named TAG-name."""
		return self.pki.device(ca, "%s-%s" % (self.tag, name), **kw)

	def tls(self, name, client_id, version=5, **kw):
		"""A connected TlsRaw (CONNACK 0 checked)."""
		o = tls_attempt(self.broker.tls_port, tls_context(self.pki, name),
				client_id, version, keep=True, **kw)
		self.assertEqual((o.kind, o.rc), ("connack", 0), o)
		self.closers.append(o.client)
		return o.client

	def admin_watcher(self, name, filt):
		"""A device subscribed to an admin-only $SYS filter: its
		certificate gets a policy with the admin role (docs/policies.md),
		applied live to its connection."""
		dev = self.dev(name)
		c = self.tls(dev, self.cid(name, 0))
		st, _ = self.api.call("POST", "/api/v1/policies", {
			"name": "watcher", "admin": True, "statements": [{
				"effect": "allow", "actions": ["subscribe", "receive"],
				"topics": ["$SYS/#"]}]})
		self.assertIn(st, (201, 409))
		self.api.ok("POST", "/api/v1/policies/watcher/attach",
			    {"certificateId": self.pki.cert_id(dev)})
		ok = wait_until(lambda: c.subscribe(filt, expect_rcs=False).rcs == [0],
				slow(3))
		self.assertTrue(ok, "no admin role for the watcher")
		return c

	def attempt(self, name, client_id="", version=5, **kw):
		return tls_attempt(self.broker.tls_port,
				   tls_context(self.pki, name, **kw), client_id,
				   version)

	def paho(self, name, client_id, v5=True, chain=False):
		d = TlsPaho(self.broker.tls_port, self.pki, name, client_id, v5,
			    chain=chain)
		self.closers.append(d)
		return d

	# ------------------------------------------------------------ 1

	def test_good_device_publishes_across_shards(self):
		"""Python ssl, paho and mosquitto_pub devices publish; a paho
		subscriber and mosquitto_sub on other shards receive."""
		n = self.n
		sub_name, pub_name, mp_name = (self.dev("sub"), self.dev("pub"),
					       self.dev("mpub"))
		topic = "id/%s/telemetry" % self.tag
		sub = self.paho(sub_name, self.cid("sub", 0))
		self.assertEqual(sub.connect(), 0)
		sub.subscribe(topic + "/#", qos=1)
		# Python ssl + raw MQTT 5.0, QoS 1, on shard 1
		pub = self.tls(pub_name, self.cid("pub", 1 % n))
		a = pub.publish(topic + "/raw", b"t=21.5", qos=1)
		self.assertEqual(a.rc, 0)
		m = sub.get()
		self.assertEqual((m.topic, m.payload), (topic + "/raw",
							b"t=21.5"))
		# mosquitto_pub over mutual TLS, MQTT 3.1.1, on shard 2
		rc, out = mosq_pub_tls(self.broker, self.pki, mp_name,
				       topic + "/mosq", "t=22.0",
				       client_id=self.cid("mpub", 2 % n),
				       v5=False)
		self.assertEqual(rc, 0, out)
		m = sub.get()
		self.assertEqual((m.topic, m.payload), (topic + "/mosq",
							b"t=22.0"))
		# mosquitto_sub over mutual TLS on shard 3 gets a message that
		# a raw device on shard 0 publishes
		ms_name = self.dev("msub")
		args = ["mosquitto_sub"] + mosq_tls_args(
			self.broker, self.pki, ms_name) + [
			"-i", self.cid("msub", 3 % n), "-t", topic + "/live",
			"-q", "1", "-C", "1", "-W", str(int(slow(10))),
			"-V", "mqttv5", "-F", "%t %p"]
		ms = subprocess.Popen(args, stdout=subprocess.PIPE,
				      stderr=subprocess.PIPE)
		try:
			p0 = self.tls(self.dev("pub0"), self.cid("pub0", 0))
			end = time.monotonic() + slow(10)
			while ms.poll() is None and time.monotonic() < end:
				p0.publish(topic + "/live", b"hello", qos=1)
				time.sleep(0.1)
			out, err = ms.communicate(timeout=slow(5))
		finally:
			if ms.poll() is None:
				ms.kill()
				ms.communicate()
		self.assertEqual(ms.returncode, 0, err)
		self.assertEqual(out.decode().strip(), topic + "/live hello")
		# every device was registered automatically, ACTIVE
		for nm in (sub_name, pub_name, mp_name, ms_name):
			r = self.api.cert(self.pki.cert_id(nm))
			self.assertIsNotNone(r, nm)
			self.assertEqual((r["status"], r["registeredBy"]),
					 ("ACTIVE", "AUTO"))

	# ------------------------------------------------------------ 2

	def test_handshake_refusals(self):
		"""Unknown CA, expired, not yet valid, CA as client, a server
		certificate as client, no certificate: the handshake fails with the alert, for TLS 1.2
		and 1.3, for Python ssl, paho and mosquitto_pub; nothing is
		registered."""
		p = self.pki
		stranger = p.ca("%s-stranger" % self.tag, "Stranger CA")
		cases = [
			(p.device(stranger, "%s-stray" % self.tag), "unknown ca"),
			(self.dev("old", extra=["--expired"]),
			 "certificate expired"),
			(self.dev("future", extra=["--not-before-days", "2"]),
			 "certificate expired"),
			("root", "bad certificate"),
			# serverAuth only: not a client certificate
			(p.server("root", "%s-srvlike" % self.tag),
			 "bad certificate"),
		]
		for name, alert in cases:
			for v in (TLS12, TLS13):
				o = self.attempt(name, max_v=v)
				self.assertEqual(o.kind, "alert", (name, v, o))
				self.assertIn(alert, o.err, (name, v))
			d = self.paho(name, "")
			self.assertIsNone(d.connect(), name)
			rc, out = mosq_pub_tls(self.broker, p, name, "x/y", "z")
			self.assertNotEqual(rc, 0, (name, out))
			if name != "root":
				self.assertIsNone(self.api.cert(p.cert_id(name)),
						  name)
		for v, alert in ((TLS12, "handshake failure"),
				 (TLS13, "certificate required")):
			o = tls_attempt(self.broker.tls_port,
					tls_context(p, None, max_v=v), "")
			self.assertEqual(o.kind, "alert", (v, o))
			self.assertIn(alert, o.err, v)
		self.assertEqual(self.api.certs("cn=%s" % self.tag), [])

	def test_status_refusals(self):
		"""INACTIVE and REVOKED certificates get CONNACK 0x87 (v5) /
		0x05 (3.1.1); a v5 refusal carries a reason string and the
		connection is closed."""
		api = self.api
		inact = self.dev("inact")
		st, j = api.register_cert(self.pki.pem(inact), status="INACTIVE")
		self.assertEqual((st, j["status"]), (201, "INACTIVE"))
		rev = self.dev("rev")
		st, j = api.register_cert(self.pki.pem(rev))
		self.assertEqual((st, j["status"]), (201, "ACTIVE"))
		self.tls(rev, self.cid("rev", 0)).disconnect()
		st, j = api.cert_action(self.pki.cert_id(rev), "revoke")
		self.assertEqual((st, j["status"]), (200, "REVOKED"))
		for name in (inact, rev):
			for s in range(self.n):
				o = self.attempt(name, self.cid(name, s), 5)
				self.assertEqual((o.kind, o.rc),
						 ("connack", RC5_NOT_AUTHORIZED),
						 (name, s, o))
			o = self.attempt(name, "", 4)
			self.assertEqual((o.kind, o.rc),
					 ("connack", RC3_NOT_AUTHORIZED), (name, o))
			# the connection is closed after the CONNACK
			c = TlsRaw(self.broker.tls_port, tls_context(self.pki, name))
			self.closers.append(c)
			c.send(enc_connect(self.cid(name, 1), version=5))
			ack = c.expect(CONNACK)
			self.assertEqual(ack.rc, RC5_NOT_AUTHORIZED)
			c.expect_closed(slow(2))
			# paho v5 and v3.1.1
			d = self.paho(name, "")
			self.assertEqual(d.connect(), RC5_NOT_AUTHORIZED, name)
			d = self.paho(name, "", v5=False)
			self.assertEqual(d.connect(), RC3_NOT_AUTHORIZED, name)
			rc, out = mosq_pub_tls(self.broker, self.pki, name, "a/b",
					       "c")
			self.assertNotEqual(rc, 0, out)
		self.assertEqual(api.cert(self.pki.cert_id(inact))["status"],
				 "INACTIVE")
		self.assertEqual(api.cert(self.pki.cert_id(rev))["status"],
				 "REVOKED")

	def test_pending_activation(self):
		"""A CA whose new devices start PENDING_ACTIVATION: the first
		connection is refused 0x87 and leaves the record; refused again
		(v3.1.1: 0x05) until activated; then it connects."""
		p, api = self.pki, self.api
		ca = p.ca("%s-pend" % self.tag, "Pending CA")
		ca_id = api.register_ca(p, ca, auto_status="PENDING_ACTIVATION")[
			"certificateId"]
		name = p.device(ca, "%s-pdev" % self.tag)
		cid = p.cert_id(name)
		self.assertIsNone(api.cert(cid))
		o = self.attempt(name, self.cid("p", 0), 5)
		self.assertEqual((o.kind, o.rc), ("connack", RC5_NOT_AUTHORIZED), o)
		r = api.cert(cid)
		self.assertIsNotNone(r, "no record after the first connection")
		self.assertEqual((r["status"], r["registeredBy"],
				  r["caCertificateId"]),
				 ("PENDING_ACTIVATION", "AUTO", ca_id))
		o = self.attempt(name, self.cid("p", 1), 5)
		self.assertEqual(o.rc, RC5_NOT_AUTHORIZED, o)
		o = self.attempt(name, "", 4)
		self.assertEqual(o.rc, RC3_NOT_AUTHORIZED, o)
		self.assertEqual(len(api.certs("ca=" + ca_id)), 1)
		st, j = api.cert_action(cid, "activate")
		self.assertEqual((st, j["status"]), (200, "ACTIVE"))
		for s in range(self.n):
			o = self.attempt(name, self.cid("p", s), 5)
			self.assertEqual(o.rc, 0, (s, o))
		o = self.attempt(name, "", 4)
		self.assertEqual(o.rc, 0, o)

	def test_ca_inactive_and_no_auto_registration(self):
		"""A known ACTIVE device of an INACTIVE CA is refused 0x87 /
		0x05; an unknown device of a CA without automatic registration
		is refused and nothing is written; activating the CA again
		lets its devices in."""
		p, api = self.pki, self.api
		ca = p.ca("%s-ca" % self.tag, "Toggle CA")
		ca_id = api.register_ca(p, ca)["certificateId"]
		known = p.device(ca, "%s-known" % self.tag)
		self.assertEqual(self.attempt(known, "", 5).rc, 0)
		st, j = api.ca_action(ca_id, "deactivate")
		self.assertEqual((st, j["status"]), (200, "INACTIVE"))
		self.assertEqual(self.attempt(known, "", 5).rc,
				 RC5_NOT_AUTHORIZED)
		self.assertEqual(self.attempt(known, "", 4).rc,
				 RC3_NOT_AUTHORIZED)
		fresh = p.device(ca, "%s-fresh" % self.tag)
		self.assertEqual(self.attempt(fresh, "", 5).rc,
				 RC5_NOT_AUTHORIZED)
		self.assertIsNone(api.cert(p.cert_id(fresh)))
		st, j = api.ca_action(ca_id, "activate")
		self.assertEqual((st, j["status"]), (200, "ACTIVE"))
		self.assertEqual(self.attempt(known, "", 5).rc, 0)
		st, j = api.call("PUT", "/api/v1/cas/%s/auto-registration" % ca_id,
				 {"enabled": False})
		self.assertEqual((st, j["autoRegistration"]), (200, False))
		for v, rc in ((5, RC5_NOT_AUTHORIZED), (4, RC3_NOT_AUTHORIZED)):
			self.assertEqual(self.attempt(fresh, "", v).rc, rc)
		self.assertIsNone(api.cert(p.cert_id(fresh)))
		self.assertEqual(self.attempt(known, "", 5).rc, 0)
		self.assertEqual([c["certificateId"] for c in
				  api.certs("ca=" + ca_id)], [p.cert_id(known)])

	def test_tampered_copy_of_a_known_certificate(self):
		"""A known ACTIVE device (cached on every shard) and a copy of
		its certificate with one bit of the CA's signature flipped, with
		the right key: the copy fails the handshake (the cache never
		stands in for a signature it has not seen)."""
		p, api = self.pki, self.api
		name = self.dev("known")
		for s in range(2 * self.n):
			self.assertEqual(self.attempt(name, self.cid("k", s)).rc, 0)
		der = bytearray(ssl.PEM_cert_to_DER_cert(p.pem(name)))
		der[-1] ^= 1
		forged = "%s-forged" % self.tag
		with open(p.path(forged), "w") as f:
			f.write(ssl.DER_cert_to_PEM_cert(bytes(der)))
		shutil.copy(p.path(name, "key"), p.path(forged, "key"))
		for v in (TLS12, TLS13):
			for s in range(self.n):
				o = self.attempt(forged, max_v=v)
				self.assertEqual(o.kind, "alert", (v, o))
				self.assertIn("bad certificate", o.err)
		self.assertIsNone(api.cert(p.cert_id(forged)))
		self.assertEqual(self.attempt(name).rc, 0)

	def test_ca_deleted(self):
		"""A deleted CA is no trust anchor any more: its known devices
		fail the handshake (unknown ca); registered again, they are let
		in again."""
		p, api = self.pki, self.api
		ca = p.ca("%s-gone" % self.tag, "Gone CA")
		ca_id = api.register_ca(p, ca)["certificateId"]
		name = p.device(ca, "%s-gd" % self.tag)
		for s in range(self.n):
			self.assertEqual(self.attempt(name, self.cid("g", s)).rc, 0)
		st, j = api.call("DELETE", "/api/v1/cas/" + ca_id)
		self.assertEqual((st, j.get("error")), (409, "conflict"))
		self.assertEqual(api.ca_action(ca_id, "deactivate")[0], 200)
		st, j = api.call("DELETE", "/api/v1/cas/" + ca_id)
		self.assertEqual((st, j.get("deleted")), (200, True))
		self.assertEqual(api.call("GET", "/api/v1/cas/" + ca_id)[0], 404)
		for v in (TLS12, TLS13):
			o = self.attempt(name, max_v=v)
			self.assertEqual(o.kind, "alert", (v, o))
			self.assertIn("unknown ca", o.err)
		# the root's devices are not affected
		self.assertEqual(self.attempt(self.dev("still")).rc, 0)
		self.assertEqual(api.register_ca(p, ca)["certificateId"], ca_id)
		for s in range(self.n):
			self.assertEqual(self.attempt(name, self.cid("g2", s)).rc, 0)

	# ------------------------------------------------------------ 3

	def test_auto_registration_record_and_event(self):
		"""The record of an automatic registration and the event on
		$SYS/certificates/registered/<ca>, once."""
		p, api = self.pki, self.api
		watcher = self.admin_watcher("watch", "$SYS/certificates/registered/#")
		name = self.dev("auto", extra=["--o", "Acme", "--ou", "line-7"])
		info = p.show(name)
		cid = p.cert_id(name)
		self.assertEqual(cid, info["id"])
		self.assertIsNone(api.cert(cid))
		t0 = time.time()
		d = self.paho(name, self.cid("auto", 1 % self.n))
		self.assertEqual(d.connect(), 0)
		t1 = time.time()
		r = api.cert(cid)
		self.assertIsNotNone(r)
		self.assertEqual(r["certificateId"], cid)
		self.assertEqual(r["status"], "ACTIVE")
		self.assertEqual(r["commonName"], name)
		self.assertEqual(r["organization"], "Acme")
		self.assertEqual(r["organizationalUnit"], "line-7")
		self.assertEqual(r["serialNumber"], info["serial"].lstrip("0") if
				 len(info["serial"].lstrip("0")) % 2 == 0 else
				 "0" + info["serial"].lstrip("0"))
		self.assertEqual(r["caCertificateId"], self.root_id)
		self.assertEqual(r["registeredBy"], "AUTO")
		self.assertEqual(r["createdBy"], "auto")
		self.assertEqual(r["clientId"], "")
		self.assertEqual(r["certificatePem"].strip(),
				 p.pem(name).strip())
		self.assertEqual(r["notAfter"], info["not_after"])
		h = api.ok("GET", "/api/v1/certificates/%s/history" % cid)["events"]
		self.assertEqual([(e["event"], e["registeredBy"], e["actor"])
				  for e in h], [("REGISTERED", "AUTO", "auto")])
		# the event
		topic = "$SYS/certificates/registered/" + self.root_id
		ev = watcher.expect(PUBLISH, timeout=slow(5),
				    pred=lambda m: json.loads(m.payload).get(
					    "certificateId") == cid)
		self.assertEqual(ev.topic, topic)
		j = json.loads(ev.payload)
		for k, v in (("certificateId", cid),
			     ("caCertificateId", self.root_id),
			     ("serialNumber", r["serialNumber"]),
			     ("commonName", name), ("status", "ACTIVE")):
			self.assertEqual(j.get(k), v, k)
		self.assertIsInstance(j.get("timestamp"), int)
		self.assertGreaterEqual(j["timestamp"], int(t0) - 1)
		self.assertLessEqual(j["timestamp"], int(t1) + 1)
		# a returning device is not registered again
		d.close()
		self.assertEqual(self.attempt(name, "", 5).rc, 0)
		self.assertEqual(self.attempt(name, "", 4).rc, 0)
		more = [m for m in watcher.poll(0.5) if m.type == PUBLISH and
			json.loads(m.payload).get("certificateId") == cid]
		self.assertEqual(more, [])
		self.assertEqual(len(api.ok("GET", "/api/v1/certificates/%s/"
					    "history" % cid)["events"]), 1)

	def test_rsa_and_concurrent_first_connections(self):
		"""RSA and EC devices under RSA and EC CAs; eight simultaneous
		first connections of one fresh certificate on every shard are
		all accepted, with one record and one registered event."""
		p, api = self.pki, self.api
		rsa_ca = p.ca("%s-rsaca" % self.tag, "RSA Root", key="rsa")
		rsa_id = api.register_ca(p, rsa_ca)["certificateId"]
		devs = [(p.device(rsa_ca, "%s-rr" % self.tag,
				  extra=["--key", "rsa"]), rsa_id),
			(p.device(rsa_ca, "%s-re" % self.tag), rsa_id),
			(self.dev("er", extra=["--key", "rsa"]), self.root_id)]
		for name, ca_id in devs:
			for v in (TLS12, TLS13):
				o = self.attempt(name, "", 5, max_v=v)
				self.assertEqual((o.kind, o.rc), ("connack", 0),
						 (name, v, o))
			self.assertEqual(api.cert(p.cert_id(name))[
				"caCertificateId"], ca_id)
		watcher = self.admin_watcher("w2", "$SYS/certificates/registered/#")
		name = self.dev("same")
		cid = p.cert_id(name)
		ctx = tls_context(p, name)
		res = [None] * 8
		go = threading.Barrier(len(res))

		def one(i):
			go.wait(slow(10))
			res[i] = tls_attempt(self.broker.tls_port, ctx,
					     self.cid("same", i), 5 if i % 2 else 4)

		ths = [threading.Thread(target=one, args=(i,))
		       for i in range(len(res))]
		for t in ths:
			t.start()
		for t in ths:
			t.join(slow(20))
		self.assertEqual([(o.kind, o.rc) for o in res],
				 [("connack", 0)] * len(res), res)
		self.assertEqual([c["certificateId"] for c in
				  api.certs("cn=" + name)], [cid])
		evs = [m for m in watcher.poll(slow(1)) if m.type == PUBLISH and
		       json.loads(m.payload)["certificateId"] == cid]
		self.assertEqual(len(evs), 1, evs)
		h = api.ok("GET", "/api/v1/certificates/%s/history" % cid)
		self.assertEqual([e["event"] for e in h["events"]],
				 ["REGISTERED"])

	# ------------------------------------------------------------ 7

	def test_client_id_binding(self):
		"""Bound client ID: assigned to an empty client ID (v5 property;
		v3.1.1 proven by takeover), another ID refused 0x85 / 0x02;
		rebinding takes effect; an unbound certificate gets its CN."""
		p, api = self.pki, self.api
		name = self.dev("bound")
		cid = p.cert_id(name)
		bound = "truck-" + self.tag
		st, j = api.register_cert(p.pem(name), client_id=bound)
		self.assertEqual((st, j["clientId"]), (201, bound))
		o = self.attempt(name, "", 5)
		self.assertEqual(o.rc, 0, o)
		self.assertEqual(o.packet.props.get(P_ASSIGNED_CLIENT_ID), bound)
		o = self.attempt(name, bound, 5)
		self.assertEqual(o.rc, 0, o)
		self.assertFalse(o.packet.props.has(P_ASSIGNED_CLIENT_ID))
		for s in range(self.n):
			o = self.attempt(name, self.cid("other", s), 5)
			self.assertEqual(o.rc, RC5_BAD_CLIENT_ID, (s, o))
		o = self.attempt(name, "other", 4)
		self.assertEqual(o.rc, RC3_BAD_CLIENT_ID, o)
		d = self.paho(name, "someone-else")
		self.assertEqual(d.connect(), RC5_BAD_CLIENT_ID)
		# v3.1.1 with an empty client ID gets the bound one: a v5
		# connection as `bound` takes its session over
		v3 = self.tls(name, "", version=4)
		v5 = self.tls(name, bound, version=5)
		v3.expect_closed(slow(3))
		# another certificate cannot take the bound device's session
		thief = self.dev("thief")
		for v, rc in ((5, RC5_BAD_CLIENT_ID), (4, RC3_BAD_CLIENT_ID)):
			o = self.attempt(thief, bound, v)
			self.assertEqual(o.rc, rc, (v, o))
		self.assertTrue(v5.is_open(slow(1)))	# still connected
		v5.disconnect()
		# rebinding
		st, j = api.call("PUT", "/api/v1/certificates/%s/client-id" % cid,
				 {"clientId": bound + "-b"})
		self.assertEqual((st, j["clientId"]), (200, bound + "-b"))
		o = self.attempt(name, "", 5)
		self.assertEqual(o.packet.props.get(P_ASSIGNED_CLIENT_ID),
				 bound + "-b")
		self.assertEqual(self.attempt(name, bound, 5).rc,
				 RC5_BAD_CLIENT_ID)
		# unbinding: the CN
		st, j = api.call("PUT", "/api/v1/certificates/%s/client-id" % cid,
				 {"clientId": ""})
		self.assertEqual((st, j["clientId"]), (200, ""))
		o = self.attempt(name, "", 5)
		self.assertEqual(o.packet.props.get(P_ASSIGNED_CLIENT_ID), name)
		self.assertEqual(self.attempt(name, "anything", 5).rc, 0)
		# an unbound, automatically registered certificate: the CN
		auto = self.dev("cn", cn="sensor-%s" % self.tag)
		o = self.attempt(auto, "", 5)
		self.assertEqual(o.rc, 0, o)
		self.assertEqual(o.packet.props.get(P_ASSIGNED_CLIENT_ID),
				 "sensor-%s" % self.tag)
		self.assertEqual(api.cert(p.cert_id(auto))["clientId"], "")

	def test_client_id_mismatch_allowed(self):
		"""--allow-clientid-mismatch: another client ID is accepted,
		the empty one still gets the bound ID."""
		p = self.pki
		name = self.dev("mm")
		bound = "pump-" + self.tag
		with IdBroker(p, extra=["--allow-clientid-mismatch"]) as b:
			b.api.register_ca(p, "root")
			st, j = b.api.register_cert(p.pem(name), client_id=bound)
			self.assertEqual(st, 201, j)
			for v, cid, want in ((5, "other-" + self.tag, 0),
					     (4, "other3-" + self.tag, 0),
					     (5, bound, 0)):
				o = tls_attempt(b.tls_port, tls_context(p, name),
						cid, v)
				self.assertEqual(o.rc, want, (v, cid, o))
				self.assertFalse(o.packet.props.has(
					P_ASSIGNED_CLIENT_ID))
			o = tls_attempt(b.tls_port, tls_context(p, name), "", 5)
			self.assertEqual(o.rc, 0)
			self.assertEqual(o.packet.props.get(P_ASSIGNED_CLIENT_ID),
					 bound)

	# ------------------------------------------------------------ 8

	def test_intermediate_chain(self):
		"""A device signed by an unregistered intermediate of a
		registered root presents device+intermediate and is registered
		under the root; without the chain the handshake fails; the
		root's deactivation closes it."""
		p, api = self.pki, self.api
		root = p.ca("%s-r2" % self.tag, "Chain Root")
		root_id = api.register_ca(p, root)["certificateId"]
		inter = p.intermediate(root, "%s-int" % self.tag, "Chain Issuing")
		names = [p.device(inter, "%s-ch%d" % (self.tag, i)) for i in
			 range(3)]
		for nm in names:
			with open(p.path(nm + ".chain")) as f:
				self.assertEqual(f.read().count(
					"BEGIN CERTIFICATE"), 2)
		# the leaf alone does not chain to a trust anchor
		o = tls_attempt(self.broker.tls_port,
				tls_context(p, names[2]), "", 5)
		self.assertEqual(o.kind, "alert", o)
		self.assertIn("unknown ca", o.err)
		# mosquitto_pub --cert CHAIN
		rc, out = mosq_pub_tls(self.broker, p, names[0], "ch/a", "1",
				       client_id=self.cid("ch0", 0), chain=True)
		self.assertEqual(rc, 0, out)
		r = api.cert(p.cert_id(names[0]))
		self.assertIsNotNone(r, "the chained device was not registered")
		self.assertEqual((r["caCertificateId"], r["status"],
				  r["registeredBy"]), (root_id, "ACTIVE", "AUTO"))
		self.assertEqual(r["certificateId"], p.cert_id(names[0]))
		# Python ssl with the chain, both TLS versions
		for v in (TLS12, TLS13):
			o = tls_attempt(self.broker.tls_port, tls_context(
				p, names[1], chain=True, max_v=v), "", 5)
			self.assertEqual((o.kind, o.rc), ("connack", 0), (v, o))
		self.assertEqual(api.cert(p.cert_id(names[1]))["caCertificateId"],
				 root_id)
		# the leaf alone, after the intermediate was seen in chains:
		# still not let in, and not registered (wolfSSL may have cached
		# the verified intermediate: then the CONNECT is refused)
		o = tls_attempt(self.broker.tls_port,
				tls_context(p, names[2]), "", 5)
		self.assertTrue(o.kind == "alert" and "unknown ca" in o.err or
				(o.kind, o.rc) == ("connack", RC5_NOT_AUTHORIZED), o)
		self.assertIsNone(api.cert(p.cert_id(names[2])))
		# paho with the chain, then the root is deactivated: closed
		d = self.paho(names[2], self.cid("ch2", 1 % self.n), chain=True)
		self.assertEqual(d.connect(), 0)
		self.assertEqual(api.cert(p.cert_id(names[2]))["caCertificateId"],
				 root_id)
		st, _ = api.ca_action(root_id, "deactivate")
		self.assertEqual(st, 200)
		self.assertTrue(d.gone.wait(slow(2)), "not closed by the root")
		self.assertEqual(d.disconnect_rc, RC5_NOT_AUTHORIZED)
		o = tls_attempt(self.broker.tls_port, tls_context(
			p, names[1], chain=True), "", 5)
		self.assertEqual(o.rc, RC5_NOT_AUTHORIZED, o)
		# the root deleted: the intermediate (which wolfSSL may have
		# cached) is no trust anchor any more either
		st, _ = api.call("DELETE", "/api/v1/cas/" + root_id)
		self.assertEqual(st, 200)
		for nm, chain in ((names[1], True), (names[2], False)):
			o = tls_attempt(self.broker.tls_port, tls_context(
				p, nm, chain=chain), "", 5)
			self.assertEqual(o.kind, "alert", (nm, o))
			self.assertIn("unknown ca", o.err)


if __name__ == "__main__":
	unittest.main(verbosity=2)
