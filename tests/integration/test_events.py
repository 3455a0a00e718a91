#!/usr/bin/python3
"""Lifecycle and presence events on $SYS, received by a real subscriber,
against the real vouchd with mutual TLS.

- $SYS/presence/connected/<client ID> when a client is accepted (its
  certificate ID, peer address, shard, protocol version), and
  $SYS/presence/disconnected/<client ID> when its connection ends, with the
  reason: client disconnect, connection lost, keep-alive timeout, taken
  over, certificate disabled, protocol error. A client ID with '/', '+' or
  '#' is percent-encoded in the topic, raw in the JSON.
- A certificate's detail (GET /api/v1/certificates/<id>) lists its live
  clients ("clients"), and forgets them when they go.
- $SYS/certificates/status/<certificate ID> on every status change with
  the old status, the new one and who made it.
- $SYS/certificates/expiring/<certificate ID> for an ACTIVE certificate
  inside the --expiry-warning-days window, once per day.
"""

import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vouchtest import HOST, uniq, slow, wait_until  # noqa: E402
from idtest import IdCase, TlsPaho, TlsRaw, tls_context  # noqa: E402


class Watcher:
	"""A plain paho subscriber recording (topic, JSON) of $SYS events."""

	def __init__(self, broker, filters):
		self.msgs = []
		self.lock = threading.Lock()
		self.sub = broker.paho(uniq("watch"))
		self.sub.connect()
		self.sub.c.on_message = self._on
		for f in filters:
			self.sub.subscribe(f)

	def _on(self, c, ud, m):
		with self.lock:
			self.msgs.append((m.topic, json.loads(m.payload)))

	def find(self, topic, pred=lambda j: True, timeout=None):
		def look():
			with self.lock:
				for t, j in self.msgs:
					if t == topic and pred(j):
						return j
			return None
		return wait_until(look, timeout or slow(5))

	def count(self, topic):
		with self.lock:
			return sum(1 for t, _ in self.msgs if t == topic)

	def close(self):
		self.sub.close()


class EventsTest(IdCase):
	TAG = "ev"

	@classmethod
	def broker_kw(cls):
		return {"extra": ["--expiry-warning-days", "30"]}

	@classmethod
	def after_start(cls):
		cls.w = Watcher(cls.broker, ["$SYS/presence/#", "$SYS/certificates/#"])

	@classmethod
	def tearDownClass(cls):
		if getattr(cls, "w", None):
			cls.w.close()
		super().tearDownClass()

	def device(self, name, **kw):
		name = "%s-%s" % (self.tag, name)
		self.pki.device("root", name, **kw)
		return name, self.pki.cert_id(name)

	def paho(self, name, cid, v5=True):
		c = TlsPaho(self.broker.tls_port, self.pki, name, client_id=cid, v5=v5)
		self.closers.append(c)
		self.assertEqual(c.connect(), 0)
		return c

	def raw(self, name, cid, version=5, keepalive=60):
		c = TlsRaw(self.broker.tls_port, tls_context(self.pki, name), version=version)
		self.closers.append(c)
		c.connect(cid, keepalive=keepalive)
		return c

	def connected(self, cid, cert_id=None):
		j = self.w.find("$SYS/presence/connected/" + cid)
		self.assertIsNotNone(j, "no connected event for " + cid)
		if cert_id:
			self.assertEqual(j["certificateId"], cert_id)
		return j

	def gone(self, cid, reason):
		j = self.w.find("$SYS/presence/disconnected/" + cid)
		self.assertIsNotNone(j, "no disconnected event for " + cid)
		self.assertEqual(j["reason"], reason)
		return j

	def test_connect_detail_and_client_disconnect(self):
		name, cert = self.device("a")
		cid = self.tag + "-a"
		c = self.paho(name, cid)
		j = self.connected(cid, cert)
		self.assertEqual(j["clientId"], cid)
		self.assertEqual(j["protocolVersion"], "5.0")
		self.assertTrue(j["peerAddress"].startswith(HOST))
		self.assertIn(j["shard"], range(self.broker.shards))
		self.assertLess(abs(j["connectedAt"] - time.time()), 60)
		d = self.api.cert(cert)
		self.assertEqual(len(d["clients"]), 1, d)
		cl = d["clients"][0]
		self.assertEqual(cl["clientId"], cid)
		self.assertEqual(cl["shard"], j["shard"])
		self.assertEqual(cl["peerAddress"], j["peerAddress"])
		self.assertEqual(cl["protocolVersion"], "5.0")
		# a second client of the same certificate, MQTT 3.1.1
		c2 = self.paho(name, cid + "-2", v5=False)
		self.assertEqual(self.connected(cid + "-2", cert)["protocolVersion"], "3.1.1")
		self.assertTrue(wait_until(lambda: len(self.api.cert(cert)["clients"]) == 2, slow(5)))
		c.close()
		j = self.gone(cid, "client disconnect")
		self.assertEqual(j["certificateId"], cert)
		c2.close()
		self.gone(cid + "-2", "client disconnect")
		self.assertTrue(wait_until(lambda: self.api.cert(cert)["clients"] == [], slow(5)))

	def test_connection_lost(self):
		name, cert = self.device("lost")
		cid = self.tag + "-lost"
		c = self.raw(name, cid)
		self.connected(cid, cert)
		c.abort()
		self.gone(cid, "connection lost")

	def test_keepalive_timeout(self):
		name, cert = self.device("ka")
		cid = self.tag + "-ka"
		self.raw(name, cid, keepalive=1)
		self.connected(cid, cert)
		self.gone(cid, "keep-alive timeout")

	def test_taken_over(self):
		name, cert = self.device("to")
		cid = self.tag + "-to"
		self.raw(name, cid)
		first = self.connected(cid, cert)
		self.raw(name, cid)
		self.gone(cid, "taken over")
		# the new connection is the live one
		self.assertTrue(wait_until(
			lambda: self.w.count("$SYS/presence/connected/" + cid) == 2, slow(5)))
		self.assertTrue(wait_until(
			lambda: len(self.api.cert(cert)["clients"]) == 1, slow(5)))
		self.assertEqual(first["certificateId"], cert)

	def test_certificate_disabled_and_status_event(self):
		name, cert = self.device("off")
		cid = self.tag + "-off"
		self.raw(name, cid)
		self.connected(cid, cert)
		self.api.cert_action(cert, "deactivate")
		self.gone(cid, "certificate disabled")
		j = self.w.find("$SYS/certificates/status/" + cert,
				lambda j: j.get("newStatus") == "INACTIVE")
		self.assertIsNotNone(j, "no status event")
		self.assertEqual(j["oldStatus"], "ACTIVE")
		self.assertEqual(j["status"], "INACTIVE")
		self.assertEqual(j["caCertificateId"], self.root_id)
		self.assertTrue(j["actor"], j)
		self.api.cert_action(cert, "activate")
		j = self.w.find("$SYS/certificates/status/" + cert,
				lambda j: j.get("newStatus") == "ACTIVE")
		self.assertIsNotNone(j)
		self.assertEqual(j["oldStatus"], "INACTIVE")
		self.api.cert_action(cert, "revoke")
		j = self.w.find("$SYS/certificates/status/" + cert,
				lambda j: j.get("newStatus") == "REVOKED")
		self.assertIsNotNone(j)
		self.assertEqual(j["oldStatus"], "ACTIVE")

	def test_protocol_error(self):
		name, cert = self.device("pe")
		cid = self.tag + "-pe"
		c = self.raw(name, cid)
		self.connected(cid, cert)
		c.send(bytes([0x30, 0x02, 0x00, 0x05]))  # topic length past the packet
		self.gone(cid, "protocol error")

	def test_client_id_escaped(self):
		name, cert = self.device("esc")
		cid = self.tag + "/a+b#c%"
		enc = self.tag + "%2Fa%2Bb%23c%25"
		c = self.raw(name, cid)
		j = self.connected(enc, cert)
		self.assertEqual(j["clientId"], cid)
		c.disconnect()
		self.assertEqual(self.gone(enc, "client disconnect")["clientId"], cid)

	def test_plain_client_has_no_certificate(self):
		cid = self.tag + "-plain"
		p = self.broker.paho(cid)
		p.connect()
		self.assertIsNone(self.connected(cid)["certificateId"])
		p.close()       # drops the socket without DISCONNECT
		self.gone(cid, "connection lost")

	def test_expiring(self):
		name, cert = self.device("exp", extra=("--days", "10"))
		far, far_id = self.device("far", extra=("--days", "400"))
		self.raw(far, self.tag + "-far")
		self.raw(name, self.tag + "-exp")   # auto-registered ACTIVE: warned at once
		j = self.w.find("$SYS/certificates/expiring/" + cert)
		self.assertIsNotNone(j, "no expiring event")
		self.assertIn(j["daysLeft"], (9, 10))
		self.assertEqual(j["caCertificateId"], self.root_id)
		self.assertGreater(j["notAfter"], time.time())
		# once a day: a status round trip does not warn again
		self.api.cert_action(cert, "deactivate")
		self.api.cert_action(cert, "activate")
		time.sleep(slow(0.5))
		self.assertEqual(self.w.count("$SYS/certificates/expiring/" + cert), 1)
		self.assertEqual(self.w.count("$SYS/certificates/expiring/" + far_id), 0)


if __name__ == "__main__":
	unittest.main(verbosity=2)
