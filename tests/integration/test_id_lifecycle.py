#!/usr/bin/python3
"""Device-certificate lifecycle over mutual TLS, against the real vouchd.

- Delete and re-registration follow the state rules: an ACTIVE certificate
  cannot be deleted (409); deactivated then deleted, it registers again on
  its next connection; revoked then deleted, it is refused and never
  registers again.
- Deactivating a certificate closes its live connections on every shard
  (v5 DISCONNECT 0x87, 3.1.1 closed) within milliseconds, and leaves other
  devices alone; deactivating a CA closes every device of that CA.
- Deactivating a certificate in the middle of a connect storm (most
  connections handed over to their client ID's home shard): nothing is
  accepted after the API answered and no accepted connection survives.
- TLS session resumption (1.2 and 1.3) keeps the identity, and a resumed
  session of a revoked certificate is refused 0x87; a deleted (not revoked)
  certificate that resumes registers again.
- CA proof of possession: a wrong code, another key, a non-CA certificate
  get a 4xx with a JSON message and register nothing.
"""

import os
import ssl
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vouchtest import (P_ASSIGNED_CLIENT_ID, CONNACK, DISCONNECT,  # noqa: E402
		       cid_on_shard, enc_connect, slow)
from idtest import (ClientsCase, Pki, IdBroker, TlsPaho, TlsRaw, tls_attempt,  # noqa: E402
		    tls_context, VOUCHCTL, RC5_NOT_AUTHORIZED,
		    RC3_NOT_AUTHORIZED)

TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3


class Watch:
	"""Reads a connected TlsRaw in a thread until the server closes it:
	records the DISCONNECT reason (None: closed without one) and when the
	close was seen."""

	def __init__(self, client):
		self.c = client
		self.rc = None
		self.packets = []
		self.closed_at = None
		self.error = None
		self.t = threading.Thread(target=self._run, daemon=True)
		self.t.start()

	def _run(self):
		try:
			for p in self.c.expect_closed(slow(10)):
				self.packets.append(p)
				if p.type == DISCONNECT:
					self.rc = p.rc
			self.closed_at = time.monotonic()
		except Exception as e:  # noqa: BLE001
			self.error = e
		finally:
			self.c.close()

	def join(self, timeout):
		self.t.join(timeout)
		return self.closed_at


class IdLifecycleTest(ClientsCase):
	TAG = "lc"

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
		return self.pki.device(ca, "%s-%s" % (self.tag, name), **kw)

	def attempt(self, name, client_id="", version=5, keep=False, **kw):
		o = tls_attempt(self.broker.tls_port,
				tls_context(self.pki, name, **kw), client_id,
				version, keep=keep)
		if o.client:
			self.closers.append(o.client)
		return o

	def tls(self, name, client_id, version=5):
		o = self.attempt(name, client_id, version, keep=True)
		self.assertEqual((o.kind, o.rc), ("connack", 0), o)
		return o.client

	# ------------------------------------------------------------ 5

	def test_delete_and_reregistration(self):
		p, api = self.pki, self.api
		a = self.dev("a")
		aid = p.cert_id(a)
		self.assertEqual(self.attempt(a).rc, 0)
		first = api.cert(aid)
		self.assertEqual((first["status"], first["registeredBy"]),
				 ("ACTIVE", "AUTO"))
		# ACTIVE cannot be deleted
		st, j = api.call("DELETE", "/api/v1/certificates/" + aid)
		self.assertEqual(st, 409, j)
		self.assertEqual(j["error"], "conflict")
		self.assertIn("deactivate", j["message"])
		self.assertEqual(api.cert(aid)["status"], "ACTIVE")
		# deactivate, delete: the next connection registers it again
		st, j = api.cert_action(aid, "deactivate")
		self.assertEqual((st, j["status"]), (200, "INACTIVE"))
		self.assertEqual(self.attempt(a).rc, RC5_NOT_AUTHORIZED)
		st, j = api.call("DELETE", "/api/v1/certificates/" + aid)
		self.assertEqual((st, j.get("deleted"), j.get("certificateId")),
				 (200, True, aid))
		self.assertIsNone(api.cert(aid))
		st, _ = api.call("DELETE", "/api/v1/certificates/" + aid)
		self.assertEqual(st, 404)
		o = self.attempt(a, "", 4)
		self.assertEqual(o.rc, 0, o)
		again = api.cert(aid)
		self.assertIsNotNone(again, "not registered again after delete")
		self.assertEqual((again["status"], again["registeredBy"],
				  again["caCertificateId"]),
				 ("ACTIVE", "AUTO", self.root_id))
		h = api.ok("GET", "/api/v1/certificates/%s/history" % aid)[
			"events"]
		self.assertEqual([e["event"] for e in h],
				 ["REGISTERED", "STATUS", "DELETED", "REGISTERED"])
		# PENDING_ACTIVATION can be deleted without deactivation
		pend = self.dev("pend")
		pid = p.cert_id(pend)
		st, j = api.register_cert(p.pem(pend), status="PENDING_ACTIVATION")
		self.assertEqual((st, j["status"]), (201, "PENDING_ACTIVATION"))
		st, j = api.call("DELETE", "/api/v1/certificates/" + pid)
		self.assertEqual(st, 200, j)
		# revoke, delete: refused, and never registered again
		b = self.dev("b")
		bid = p.cert_id(b)
		live = self.tls(b, self.cid("b", 0))
		w = Watch(live)
		st, j = api.cert_action(bid, "revoke")
		self.assertEqual((st, j["status"]), (200, "REVOKED"))
		self.assertTrue(w.join(slow(2)), "revoked session not closed")
		self.assertEqual(w.rc, RC5_NOT_AUTHORIZED)
		for act in ("activate", "deactivate"):
			st, j = api.cert_action(bid, act)
			self.assertEqual(st, 409, (act, j))
			self.assertIn("final", j["message"])
		st, j = api.call("DELETE", "/api/v1/certificates/" + bid)
		self.assertEqual(st, 200, j)
		self.assertIsNone(api.cert(bid))
		for v, rc in ((5, RC5_NOT_AUTHORIZED), (4, RC3_NOT_AUTHORIZED),
			      (5, RC5_NOT_AUTHORIZED)):
			o = self.attempt(b, "", v)
			self.assertEqual((o.kind, o.rc), ("connack", rc), (v, o))
			self.assertIsNone(api.cert(bid), "a revoked certificate "
					  "registered again")
		d = TlsPaho(self.broker.tls_port, p, b, "")
		self.closers.append(d)
		self.assertEqual(d.connect(), RC5_NOT_AUTHORIZED)
		self.assertEqual(api.certs("cn=%s-b" % self.tag), [])
		# registered by hand, it stays REVOKED: the revocation is on
		# record
		st, j = api.register_cert(p.pem(b))
		self.assertIn(st, (201, 409), j)
		if st == 201:
			self.assertEqual(j["status"], "REVOKED")
		self.assertEqual(self.attempt(b).rc, RC5_NOT_AUTHORIZED)

	# ------------------------------------------------------------ 6

	def _close_all(self, watches, t0, what):
		"""Every watch is closed with DISCONNECT 0x87 (v5) or without
		(3.1.1) within 1 s; returns the close delays in ms."""
		delays = []
		for name, w, v in watches:
			self.assertTrue(w.join(slow(3)), "%s: %s not closed (%r)" % (
				what, name, w.error))
			self.assertIsNone(w.error, name)
			if v == 5:
				self.assertEqual(w.rc, RC5_NOT_AUTHORIZED, (name,
									    w.packets))
			else:
				self.assertEqual([x.type for x in w.packets
						  if x.type == DISCONNECT], [])
			delays.append((w.closed_at - t0) * 1000)
		self.assertLess(max(delays), slow(1000), delays)
		return delays

	def test_deactivate_closes_sessions_on_every_shard(self):
		p, api = self.pki, self.api
		n = self.n
		multi = self.dev("multi")
		mid = p.cert_id(multi)
		other = self.dev("other")
		watches, keep = [], []
		for s in range(n):
			c = self.tls(multi, self.cid("m", s))
			watches.append(("m%d" % s, Watch(c), 5))
			keep.append(self.tls(other, self.cid("o", s)))
		c3 = self.tls(multi, self.cid("m3", 1), version=4)
		watches.append(("m-v3", Watch(c3), 4))
		pd = TlsPaho(self.broker.tls_port, p, multi, self.cid("mp", 2 % n))
		self.closers.append(pd)
		self.assertEqual(pd.connect(), 0)
		time.sleep(0.05)
		t0 = time.monotonic()
		st, j = api.cert_action(mid, "deactivate")
		t_http = time.monotonic()
		self.assertEqual((st, j["status"]), (200, "INACTIVE"))
		delays = self._close_all(watches, t0, "certificate")
		self.assertTrue(pd.gone.wait(slow(2)), "paho session not closed")
		self.assertEqual(pd.disconnect_rc, RC5_NOT_AUTHORIZED)
		sys.stderr.write("\n  deactivate -> close: HTTP answer %.1f ms, "
				 "closes %s ms after the request\n" % (
					 (t_http - t0) * 1000,
					 ", ".join("%.1f" % d for d in delays)))
		# the other device's sessions are untouched
		for c in keep:
			self.assertTrue(c.is_open(slow(1)))
		self.assertEqual(self.attempt(multi, self.cid("m", 0)).rc,
				 RC5_NOT_AUTHORIZED)

		# a CA deactivated closes every device it signed
		ca = p.ca("%s-ca" % self.tag, "Line CA")
		ca_id = api.register_ca(p, ca)["certificateId"]
		devs = [p.device(ca, "%s-cd%d" % (self.tag, s)) for s in range(n)]
		watches = []
		for s, d in enumerate(devs):
			c = self.tls(d, self.cid("cd", s))
			watches.append((d, Watch(c), 5))
		t0 = time.monotonic()
		st, j = api.ca_action(ca_id, "deactivate")
		self.assertEqual((st, j["status"]), (200, "INACTIVE"))
		delays = self._close_all(watches, t0, "CA")
		sys.stderr.write("  CA deactivate -> close: %s ms\n" % ", ".join(
			"%.1f" % d for d in delays))
		for c in keep:
			self.assertTrue(c.is_open(slow(1)))
		for d in devs:
			self.assertEqual(self.attempt(d).rc, RC5_NOT_AUTHORIZED)
			self.assertEqual(api.cert(p.cert_id(d))["status"], "ACTIVE")
		st, _ = api.ca_action(ca_id, "activate")
		self.assertEqual(st, 200)
		for s, d in enumerate(devs):
			self.assertEqual(self.attempt(d, self.cid("cd", s)).rc, 0)

	def test_deactivate_during_a_connect_storm(self):
		"""Threads connect one certificate again and again (client IDs
		homed on every shard: most connections are handed over to
		another shard) while it is deactivated: no CONNECT sent after
		the API answered is accepted, and every accepted connection is
		closed within 1 s of the answer (none slips through a
		hand-over)."""
		p, api = self.pki, self.api
		for rnd in range(10):
			name = self.dev("storm%d" % rnd)
			cid = p.cert_id(name)
			ctx = tls_context(p, name)
			self.assertEqual(tls_attempt(self.broker.tls_port, ctx,
						     "").rc, 0)
			stop = threading.Event()
			lock = threading.Lock()
			conns = []      # (CONNECT sent at, client, CONNACK rc)

			def worker(k):
				i = 0
				while not stop.is_set():
					i += 1
					try:
						c = TlsRaw(self.broker.tls_port, ctx)
					except OSError:
						continue
					t = time.monotonic()
					try:
						c.send(enc_connect(self.cid(
							"s%d-%d-%d" % (rnd, k, i), i)))
						ack = c.expect(CONNACK)
					except (OSError, AssertionError):
						c.close()
						continue
					with lock:
						conns.append((t, c, ack.rc))
					if ack.rc != 0:
						c.close()

			ths = [threading.Thread(target=worker, args=(k,),
						daemon=True) for k in range(4)]
			for t in ths:
				t.start()
			time.sleep(0.1 + 0.02 * rnd)
			st, j = api.cert_action(cid, "deactivate")
			t_ans = time.monotonic()
			self.assertEqual((st, j["status"]), (200, "INACTIVE"))
			time.sleep(0.1)
			stop.set()
			for t in ths:
				t.join(slow(10))
			with lock:
				got = list(conns)
			accepted = [(t, c) for t, c, rc in got if rc == 0]
			self.assertGreater(len(accepted), 0)
			late = [round((t - t_ans) * 1000, 1) for t, _ in accepted
				if t > t_ans]
			self.assertEqual(late, [], "accepted after the API "
					 "answered (ms after)")
			self.assertTrue(all(rc in (0, RC5_NOT_AUTHORIZED)
					    for _, _, rc in got))
			survivors = 0
			for t, c in accepted:
				left = max(0.05, t_ans + slow(1) - time.monotonic())
				try:
					c.expect_closed(left)
				except AssertionError:
					survivors += 1
				c.close()
			self.assertEqual(survivors, 0, "%d of %d accepted "
					 "connections survived the deactivation" % (
						 survivors, len(accepted)))

	# ------------------------------------------------------------ 9

	def test_resumption_keeps_identity_and_obeys_revocation(self):
		p, api = self.pki, self.api
		for v in (TLS12, TLS13):
			name = self.dev("res%d" % (v & 0xff))
			ctx = tls_context(p, name, min_v=v, max_v=v)
			o = tls_attempt(self.broker.tls_port, ctx, "", 5, keep=True)
			self.closers.append(o.client)
			self.assertEqual(o.rc, 0, o)
			self.assertEqual(o.packet.props.get(P_ASSIGNED_CLIENT_ID),
					 name)
			sess, reused, ver = o.client.session_info()
			self.assertFalse(reused)
			self.assertEqual(ver, "TLSv1.3" if v == TLS13 else "TLSv1.2")
			o.client.disconnect()
			self.assertIsNotNone(sess)
			# resumed: same identity (client ID from the CN)
			for i in range(2):
				o = tls_attempt(self.broker.tls_port, ctx, "", 5,
						keep=True, session=sess)
				self.closers.append(o.client)
				self.assertEqual(o.rc, 0, o)
				_, reused, _ = o.client.session_info()
				self.assertTrue(reused, "%s: session not resumed" % ver)
				self.assertEqual(o.packet.props.get(
					P_ASSIGNED_CLIENT_ID), name)
				sess = o.client.sock.session
				o.client.disconnect()
			# a live resumed session is closed by the revocation,
			# and a resumed connection afterwards is refused
			o = tls_attempt(self.broker.tls_port, ctx, "x-" + name, 5,
					keep=True, session=sess)
			self.assertEqual(o.rc, 0, o)
			self.assertTrue(o.client.session_info()[1])
			sess = o.client.sock.session
			w = Watch(o.client)
			st, j = api.cert_action(p.cert_id(name), "revoke")
			self.assertEqual((st, j["status"]), (200, "REVOKED"))
			self.assertTrue(w.join(slow(2)), "resumed session not closed")
			self.assertEqual(w.rc, RC5_NOT_AUTHORIZED)
			for ver_mqtt, rc in ((5, RC5_NOT_AUTHORIZED),
					     (4, RC3_NOT_AUTHORIZED)):
				o = tls_attempt(self.broker.tls_port, ctx, "", ver_mqtt,
						keep=True, session=sess)
				self.closers.append(o.client)
				self.assertEqual((o.kind, o.rc), ("connack", rc),
						 (ver, o))
				self.assertTrue(o.client.session_info()[1],
						"%s: not resumed" % ver)
				o.client.close()
			# a full handshake is refused the same way
			o = tls_attempt(self.broker.tls_port, tls_context(
				p, name, min_v=v, max_v=v), "", 5)
			self.assertEqual(o.rc, RC5_NOT_AUTHORIZED, o)

	def test_resumed_after_delete_registers_again(self):
		"""Deactivated and deleted, a device that resumes its TLS
		session (no certificate sent) registers again like one that
		does a full handshake."""
		p, api = self.pki, self.api
		for v in (TLS12, TLS13):
			name = self.dev("rd%d" % (v & 0xff))
			cid = p.cert_id(name)
			ctx = tls_context(p, name, min_v=v, max_v=v)
			o = tls_attempt(self.broker.tls_port, ctx, "", 5, keep=True)
			self.closers.append(o.client)
			self.assertEqual(o.rc, 0, o)
			sess = o.client.sock.session
			o.client.disconnect()
			self.assertEqual(api.cert_action(cid, "deactivate")[0], 200)
			st, _ = api.call("DELETE", "/api/v1/certificates/" + cid)
			self.assertEqual(st, 200)
			self.assertIsNone(api.cert(cid))
			o = tls_attempt(self.broker.tls_port, ctx, "", 5, keep=True,
					session=sess)
			self.closers.append(o.client)
			self.assertEqual((o.kind, o.rc), ("connack", 0), o)
			self.assertTrue(o.client.session_info()[1])
			self.assertEqual(o.packet.props.get(P_ASSIGNED_CLIENT_ID),
					 name)
			r = api.cert(cid)
			self.assertIsNotNone(r, "not registered again")
			self.assertEqual((r["status"], r["registeredBy"],
					  r["caCertificateId"]),
					 ("ACTIVE", "AUTO", self.root_id))
			o.client.disconnect()

	def test_resumed_session_is_bound_to_its_certificate(self):
		"""Two devices resume their own sessions: each keeps its own
		identity (no cross-over through the session cache)."""
		p = self.pki
		a, b = self.dev("ra"), self.dev("rb")
		for v in (TLS12, TLS13):
			ctxs = {n: tls_context(p, n, min_v=v, max_v=v) for n in (a, b)}
			sess = {}
			for n in (a, b):
				o = tls_attempt(self.broker.tls_port, ctxs[n], "", 5,
						keep=True)
				self.closers.append(o.client)
				self.assertEqual(o.rc, 0)
				sess[n] = o.client.sock.session
				o.client.disconnect()
			for n in (b, a, b):
				o = tls_attempt(self.broker.tls_port, ctxs[n], "", 5,
						keep=True, session=sess[n])
				self.closers.append(o.client)
				self.assertEqual(o.rc, 0)
				self.assertTrue(o.client.session_info()[1])
				self.assertEqual(o.packet.props.get(
					P_ASSIGNED_CLIENT_ID), n)
				o.client.disconnect()

	# ----------------------------------------------------------- 10

	def test_proof_of_possession(self):
		p = self.pki
		with IdBroker(p) as b:
			api = b.api
			ca = p.ca("%s-pop" % self.tag, "PoP CA")
			impostor = p.ca("%s-imp" % self.tag, "PoP CA")
			dev = p.device(ca, "%s-popdev" % self.tag)
			code = api.code()
			self.assertRegex(code, "^[0-9a-f]{32}$")

			def reg(ca_name, ver_name, **extra):
				body = {"caCertificate": p.pem(ca_name),
					"verificationCertificate": p.pem(ver_name),
					"autoRegistration": True}
				body.update(extra)
				return api.call("POST", "/api/v1/cas", body)

			bad = [
				(p.verification(ca, "0" * 32, "%s-v-code" % self.tag),
				 ca, 400, "verification_failed", "registration code"),
				(p.verification(impostor, code, "%s-v-key" % self.tag),
				 ca, 400, "verification_failed", "not signed by"),
				(p.verification(ca, code, "%s-v-dev" % self.tag),
				 dev, 400, "not_a_ca", "not a CA"),
			]
			for ver, ca_name, st_want, err, msg in bad:
				st, j = reg(ca_name, ver)
				self.assertEqual(st, st_want, (ver, j))
				self.assertEqual(j.get("error"), err, (ver, j))
				self.assertIn(msg, j.get("message", ""), (ver, j))
			st, j = api.call("POST", "/api/v1/cas", {
				"caCertificate": "-----BEGIN CERTIFICATE-----\nAAAA"
				"\n-----END CERTIFICATE-----\n",
				"verificationCertificate": p.pem(bad[0][0])})
			self.assertEqual(st, 400, j)
			self.assertIn("message", j)
			st, j = api.call("POST", "/api/v1/cas", b"{\"caCertificate\"")
			self.assertEqual((st, j.get("error")), (400, "bad_json"))
			self.assertEqual(api.ok("GET", "/api/v1/cas")["total"], 0)
			# nothing registered: the CA's device is not even trusted
			o = tls_attempt(b.tls_port, tls_context(p, dev), "", 5)
			self.assertEqual(o.kind, "alert", o)
			self.assertIn("unknown ca", o.err)
			self.assertEqual(api.certs(), [])
			# the right proof
			good = p.verification(ca, code, "%s-v-good" % self.tag)
			st, j = reg(ca, good)
			self.assertEqual(st, 201, j)
			ca_id = j["certificateId"]
			self.assertEqual(ca_id, p.cert_id(ca))
			st, j = reg(ca, good)
			self.assertEqual((st, j.get("error")), (409, "conflict"))
			o = tls_attempt(b.tls_port, tls_context(p, dev), "", 5)
			self.assertEqual(o.rc, 0, o)
			self.assertEqual(api.cert(p.cert_id(dev))["caCertificateId"],
					 ca_id)
			# a rotated code: the old verification no longer works
			st, j = api.call("POST", "/api/v1/registration-code", b"")
			self.assertEqual(st, 200, j)
			self.assertNotEqual(j["registrationCode"], code)
			st, j = reg(impostor, p.verification(
				impostor, code, "%s-v-old" % self.tag))
			self.assertEqual((st, j.get("error")),
					 (400, "verification_failed"))
			self.assertEqual(api.ok("GET", "/api/v1/cas")["total"], 1)


if __name__ == "__main__":
	unittest.main(verbosity=2)
