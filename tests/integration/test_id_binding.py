#!/usr/bin/python3
"""A client ID bound to a certificate belongs to that certificate, against
the real vouchd, whether or not the bound device ever connected:

- another certificate, or a plain-TCP client, connecting as the bound ID is
  refused with CONNACK 0x85 and the reason string (v5) / 0x02 (v3.1.1),
  wherever the ID's home shard is; the bound device itself connects;
- --allow-clientid-mismatch allows it;
- unbinding, deleting the certificate, or moving the binding frees the ID
  (also from the session the bound device left behind); two certificates
  bound to one ID may both use it;
- a broker restarted on the same data directory still protects the ID;
- a client connected as an ID that then gets bound to another certificate
  is disconnected at once (v5 DISCONNECT 0x87).
"""

import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vouchtest import (P_REASON_STRING, P_SESSION_EXPIRY,  # noqa: E402
		       DISCONNECT, PUBLISH, cid_on_shard, slow)
from idtest import (IdCase, IdBroker, TlsRaw, tls_attempt, tls_context,  # noqa: E402
		    RC5_BAD_CLIENT_ID, RC3_BAD_CLIENT_ID)

WHY = "client ID is bound to another certificate"


class IdBindingTest(IdCase):
	TAG = "bd"

	# ---------------------------------------------------------- helpers

	def dev(self, name):
		return self.pki.device("root", "%s-%s" % (self.tag, name))

	def bind(self, name, client_id, api=None):
		st, j = (api or self.api).call(
			"PUT", "/api/v1/certificates/%s/client-id" %
			self.pki.cert_id(name), {"clientId": client_id})
		self.assertEqual((st, j.get("clientId")), (200, client_id), j)

	def tls_rc(self, name, client_id, version=5, broker=None, props=None):
		o = tls_attempt((broker or self.broker).tls_port,
				tls_context(self.pki, name), client_id, version,
				props=props)
		self.assertEqual(o.kind, "connack", o)
		return o

	def plain_rc(self, client_id, version=5, broker=None):
		c = (broker or self.broker).raw(version)
		try:
			return c.connect(client_id, expect_rc=None)
		finally:
			c.close()

	def assert_refused(self, client_id, names, broker=None):
		"""Every certificate in names and a plain-TCP client are refused
		client_id, for MQTT 5.0 (0x85 with the reason) and 3.1.1 (0x02)."""
		for nm in names:
			o = self.tls_rc(nm, client_id, 5, broker)
			self.assertEqual(o.rc, RC5_BAD_CLIENT_ID, (nm, o))
			self.assertEqual(o.packet.props.get(P_REASON_STRING), WHY)
			o = self.tls_rc(nm, client_id, 4, broker)
			self.assertEqual(o.rc, RC3_BAD_CLIENT_ID, (nm, o))
		p = self.plain_rc(client_id, 5, broker)
		self.assertEqual(p.rc, RC5_BAD_CLIENT_ID)
		self.assertEqual(p.props.get(P_REASON_STRING), WHY)
		self.assertEqual(self.plain_rc(client_id, 4, broker).rc,
				 RC3_BAD_CLIENT_ID)

	# ------------------------------------------------------------ tests

	def test_bound_never_connected(self):
		"""Bound by the API, never connected: another certificate and
		plain TCP are refused, on every home shard; the device is not."""
		p = self.pki
		for s in range(self.n):
			x = cid_on_shard("%s-x" % self.tag, s, self.n)
			a, b = self.dev("a%d" % s), self.dev("b%d" % s)
			st, j = self.api.register_cert(p.pem(a), client_id=x)
			self.assertEqual((st, j.get("clientId")), (201, x), j)
			self.assertEqual(self.tls_rc(b, "%s-b%d" % (self.tag, s)).rc, 0)
			self.assert_refused(x, [b])
			self.assertEqual(self.tls_rc(a, x, 5).rc, 0)
			self.assertEqual(self.tls_rc(a, x, 4).rc, 0)
			# still refused once the device has connected and left
			self.assert_refused(x, [b])
		# a client ID bound later through the API, by a manual
		# registration's own binding
		c, d = self.dev("c"), self.dev("d")
		y = "%s-y" % self.tag
		self.assertEqual(self.tls_rc(c, "").rc, 0)  # auto-registered
		self.assertEqual(self.plain_rc(y).rc, 0)
		self.bind(c, y)
		self.assert_refused(y, [d])
		self.assertEqual(self.tls_rc(c, y).rc, 0)

	def test_binding_closes_a_live_impostor(self):
		"""Connected as X under another identity (a certificate, plain
		TCP) when X is bound: disconnected at once with 0x87 and the
		presence reason; the bound device then connects as X."""
		p = self.pki
		a, b = self.dev("la"), self.dev("lb")
		x = "%s-live" % self.tag
		self.assertEqual(self.tls_rc(a, "").rc, 0)       # registers a
		watch = self.broker.raw(5)
		watch.connect("%s-w" % self.tag)
		watch.subscribe("$SYS/presence/disconnected/" + x)
		c = TlsRaw(self.broker.tls_port, tls_context(p, b))
		c.connect(x)
		self.bind(a, x)
		d = c.expect(DISCONNECT, slow(5))
		self.assertEqual(d.rc, 0x87)
		c.close()
		m = watch.expect(PUBLISH, slow(5))
		self.assertEqual(json.loads(m.payload)["reason"],
				 "client ID bound to another certificate")
		watch.close()
		self.assertEqual(self.tls_rc(a, x).rc, 0)
		# a plain-TCP client as X is closed the same way on a rebind
		self.bind(a, "")
		q = self.broker.raw(5)
		q.connect(x)
		self.bind(a, x)
		self.assertEqual(q.expect(DISCONNECT, slow(5)).rc, 0x87)
		q.close()

	def test_unbind_delete_rebind(self):
		"""Unbinding, deleting the certificate and moving the binding
		free or move the client ID; two certificates may share one."""
		p, api = self.pki, self.api
		x = "%s-x" % self.tag
		a, b, c = self.dev("a"), self.dev("b"), self.dev("c")
		st, _ = api.register_cert(p.pem(a), client_id=x)
		self.assertEqual(st, 201)
		self.assertEqual(self.tls_rc(b, "%s-b" % self.tag).rc, 0)
		self.assertEqual(self.tls_rc(c, "%s-c" % self.tag).rc, 0)
		self.assert_refused(x, [b])
		# unbinding frees it
		self.bind(a, "")
		self.assertEqual(self.tls_rc(b, x).rc, 0)
		self.assertEqual(self.plain_rc(x).rc, 0)
		# bound again, then moved to B
		self.bind(a, x)
		self.assert_refused(x, [b])
		self.bind(b, x)
		self.bind(a, "")
		self.assert_refused(x, [a, c])
		self.assertEqual(self.tls_rc(b, x).rc, 0)
		# bound to two certificates: both may use it
		self.bind(a, x)
		self.assertEqual(self.tls_rc(a, x).rc, 0)
		self.assertEqual(self.tls_rc(b, x).rc, 0)
		self.assert_refused(x, [c])
		# deleting B leaves A's binding; deleting A frees the ID
		for nm in (b, a):
			cid = p.cert_id(nm)
			st, j = api.cert_action(cid, "deactivate")
			self.assertEqual(st, 200, j)
			st, j = api.call("DELETE", "/api/v1/certificates/" + cid)
			self.assertEqual(st, 200, j)
			if nm == b:
				self.assert_refused(x, [c])
				self.assertEqual(self.tls_rc(a, x).rc, 0)
		self.assertEqual(self.tls_rc(c, x).rc, 0)
		self.assertEqual(self.plain_rc(x, 4).rc, 0)

	def test_unbinding_frees_the_left_session(self):
		"""The bound device leaves a session behind (which it alone
		could resume); after unbinding, another certificate may use the
		client ID."""
		p = self.pki
		x = "%s-x" % self.tag
		a, b = self.dev("a"), self.dev("b")
		st, _ = self.api.register_cert(p.pem(a), client_id=x)
		self.assertEqual(st, 201)
		keep = {P_SESSION_EXPIRY: 600}
		self.assertEqual(self.tls_rc(a, x, props=keep).rc, 0)
		self.assert_refused(x, [b])
		self.bind(a, "")
		o = self.tls_rc(b, x, props=keep)
		self.assertEqual(o.rc, 0, o)

	def test_mismatch_allowed(self):
		"""--allow-clientid-mismatch: anyone may use a bound ID."""
		p = self.pki
		x = "%s-x" % self.tag
		a, b = self.dev("a"), self.dev("b")
		with IdBroker(p, extra=["--allow-clientid-mismatch"]) as br:
			br.api.register_ca(p, "root")
			st, _ = br.api.register_cert(p.pem(a), client_id=x)
			self.assertEqual(st, 201)
			for v in (5, 4):
				self.assertEqual(self.tls_rc(b, x, v, br).rc, 0)
				self.assertEqual(self.plain_rc(x, v, br).rc, 0)
			self.assertEqual(self.tls_rc(a, x, 5, br).rc, 0)

	def test_binding_survives_restart(self):
		"""A broker restarted on the same data directory protects the
		bound client ID before its device ever connects."""
		p = self.pki
		x = "%s-x" % self.tag
		a, b = self.dev("a"), self.dev("b")
		data = tempfile.mkdtemp(prefix="vouch-id-binding-")
		try:
			with IdBroker(p, data_dir=data) as br:
				br.api.register_ca(p, "root")
				st, _ = br.api.register_cert(p.pem(a), client_id=x)
				self.assertEqual(st, 201)
				self.assertEqual(self.tls_rc(b, "%s-b" % self.tag,
							     5, br).rc, 0)
			with IdBroker(p, data_dir=data) as br:
				self.assert_refused(x, [b], br)
				self.assertEqual(self.tls_rc(a, x, 5, br).rc, 0)
				# unbinding after the restart still frees it
				self.bind(a, "", br.api)
				self.assertEqual(self.tls_rc(b, x, 5, br).rc, 0)
		finally:
			shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
	unittest.main()
