#!/usr/bin/python3
"""Provisioning by CSR (the certificate vending machine), against the real
vouchd with --issuing-ca/--issuing-key, over mutual TLS with paho.

- A device holding only a claim certificate publishes a PKCS#10 request
  (made here with python3-cryptography) on $SYS/provisioning/create-from-csr
  with a v5 response topic and correlation data; the answer comes back on
  the response topic with the same correlation data: the certificate (PEM,
  signed by the issuing CA, the CSR's subject and key), its ID and status.
  The device then connects with the new certificate; it is registered
  (MANUAL, the CA's initial status).
- v3.1.1: the answer goes to .../accepted/<client ID> or .../rejected/<client ID>.
- A bad CSR (garbage, a tampered signature, JSON without "csr") is answered
  with an error and registers nothing; the signup limit applies ("over the
  signup limit, retry"); a client without a certificate is refused 0x87.
"""

import base64
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vouchtest import uniq, slow, mqtt, P_RESPONSE_TOPIC  # noqa: E402
from idtest import (Pki, IdBroker, TlsPaho, TlsRaw, tls_context,  # noqa: E402
		    VOUCHCTL,
		    HAVE_CRYPTOGRAPHY, cert_id_of_pem)

if HAVE_CRYPTOGRAPHY:
	from cryptography import x509
	from cryptography.hazmat.primitives import hashes, serialization
	from cryptography.hazmat.primitives.asymmetric import ec
	from cryptography.x509.oid import NameOID
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

TOPIC = "$SYS/provisioning/create-from-csr"

# What a claim certificate may do: ask for its certificate and read the
# answer; nothing else (the CA default policy of the claim CA).
CLAIM_POLICY = {
	"name": "claim",
	"statements": [
		{"effect": "allow", "actions": ["publish"], "topics": [TOPIC]},
		{"effect": "allow", "actions": ["subscribe", "receive"],
		 "topics": ["devices/#", TOPIC + "/+/${clientid}"]},
	],
}


def make_csr(pki, name, cn):
	"""A new P-256 key in pki as NAME.key and a CSR for CN (PEM bytes)."""
	key = ec.generate_private_key(ec.SECP256R1())
	with open(pki.path(name, "key"), "wb") as f:
		f.write(key.private_bytes(serialization.Encoding.PEM,
					  serialization.PrivateFormat.PKCS8,
					  serialization.NoEncryption()))
	csr = (x509.CertificateSigningRequestBuilder()
	       .subject_name(x509.Name([
		       x509.NameAttribute(NameOID.ORGANIZATION_NAME, "IoV"),
		       x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
	       .sign(key, hashes.SHA256()))
	return csr.public_bytes(serialization.Encoding.PEM)


class ProvisionTest(unittest.TestCase):
	BURST = 4

	@classmethod
	def setUpClass(cls):
		if not os.access(VOUCHCTL, os.X_OK):
			raise unittest.SkipTest("no vouchctl at %s" % VOUCHCTL)
		if not HAVE_CRYPTOGRAPHY:
			raise unittest.SkipTest("python3-cryptography is missing")
		p = cls.pki = Pki(prefix="vouch-prov-")
		p.ca("srvca", "Server CA")
		p.server("srvca")
		p.ca("fleet", "Fleet Issuing CA")
		p.ca("claimca", "Claim CA")
		cls.broker = IdBroker(p, rate=cls.BURST, burst=cls.BURST, extra=[
			"--issuing-ca", p.path("fleet"),
			"--issuing-key", p.path("fleet", "key")]).start()
		try:
			cls.api = cls.broker.api
			cls.fleet_id = cls.api.register_ca(p, "fleet", auto=False)[
				"certificateId"]
			claim_id = cls.api.register_ca(p, "claimca")["certificateId"]
			cls.api.ok("POST", "/api/v1/policies", CLAIM_POLICY, want=(201,))
			cls.api.ok("POST", "/api/v1/policies/claim/attach",
				   {"caCertificateId": claim_id})
			p.ca("other", "No Provisioning CA")
			cls.api.register_ca(p, "other")
		except BaseException:
			cls.broker.stop()
			p.cleanup()
			raise

	@classmethod
	def tearDownClass(cls):
		try:
			if cls.broker:
				cls.broker.stop()
		finally:
			cls.pki.cleanup()

	def setUp(self):
		self.tag = uniq("pv")
		self.closers = []
		self.broker.assert_alive()
		# a fresh limiter: BURST a second, and nothing in the last second
		time.sleep(1.2)

	def tearDown(self):
		for c in self.closers:
			try:
				c.close()
			except Exception:
				pass
		self.broker.check_stderr()
		self.broker.assert_alive()

	def claim(self, v5=True):
		"""A connected device with only its claim certificate."""
		name = self.pki.device("claimca", "%s-claim" % self.tag)
		c = TlsPaho(self.broker.tls_port, self.pki, name,
			    "%s-claim" % self.tag, v5=v5)
		self.closers.append(c)
		self.assertEqual(c.connect(), 0)
		return c

	def request(self, c, payload, corr, resp):
		props = Properties(PacketTypes.PUBLISH)
		props.ResponseTopic = resp
		props.CorrelationData = corr
		info = c.c.publish(TOPIC, payload, 1, properties=props)
		info.wait_for_publish(slow(5))
		self.assertTrue(info.is_published())

	def answer(self, c, corr=None):
		m = c.get(slow(10))
		if corr is not None:
			self.assertEqual(m.properties.CorrelationData, corr)
		return m, json.loads(m.payload)

	def test_device_provisions_itself_and_connects(self):
		p, api = self.pki, self.api
		c = self.claim()
		resp = "devices/%s/provisioning" % self.tag
		c.subscribe(resp, 1)
		name = "%s-dev" % self.tag
		csr = make_csr(p, name, name)
		t0 = time.monotonic()
		self.request(c, csr, b"req-1", resp)
		m, j = self.answer(c, b"req-1")
		sys.stderr.write("\n  CSR -> certificate: %.1f ms\n" % (
			(time.monotonic() - t0) * 1000))
		self.assertEqual(m.topic, resp)
		self.assertEqual(set(j), {"certificateId", "certificatePem",
					  "status"}, j)
		self.assertEqual(j["status"], "ACTIVE")
		self.assertEqual(j["certificateId"],
				 cert_id_of_pem(j["certificatePem"]))
		cert = x509.load_pem_x509_certificate(j["certificatePem"].encode())
		self.assertEqual(cert.subject.get_attributes_for_oid(
			NameOID.COMMON_NAME)[0].value, name)
		fleet = x509.load_pem_x509_certificate(p.pem("fleet").encode())
		self.assertEqual(cert.issuer, fleet.subject)
		fleet.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
					  ec.ECDSA(cert.signature_hash_algorithm))
		rec = api.cert(j["certificateId"])
		self.assertEqual((rec["status"], rec["registeredBy"]),
				 ("ACTIVE", "MANUAL"), rec)
		# connect with the new certificate
		with open(p.path(name), "w") as f:
			f.write(j["certificatePem"])
		d = TlsPaho(self.broker.tls_port, p, name, name)
		self.closers.append(d)
		self.assertEqual(d.connect(), 0)
		d.subscribe("devices/%s/#" % name)
		d.publish("devices/%s/hello" % name, b"hi")
		self.assertEqual(d.get().payload, b"hi")

	def test_v311_convention(self):
		p = self.pki
		c = self.claim(v5=False)
		cid = "%s-claim" % self.tag
		c.subscribe("%s/accepted/%s" % (TOPIC, cid), 1)
		c.subscribe("%s/rejected/%s" % (TOPIC, cid), 1)
		name = "%s-v3" % self.tag
		csr = make_csr(p, name, name).decode()
		c.publish(TOPIC, json.dumps({"csr": csr}).encode())
		m = c.get(slow(10))
		self.assertEqual(m.topic, "%s/accepted/%s" % (TOPIC, cid))
		self.assertIn("certificatePem", json.loads(m.payload))
		c.publish(TOPIC, b"not a csr")
		m = c.get(slow(10))
		self.assertEqual(m.topic, "%s/rejected/%s" % (TOPIC, cid))
		self.assertEqual(json.loads(m.payload)["error"], "bad_request")

	def test_bad_csrs_are_answered_with_errors(self):
		p, api = self.pki, self.api
		c = self.claim()
		resp = "devices/%s/prov" % self.tag
		c.subscribe(resp, 1)
		before = len(api.certs("ca=" + self.fleet_id))
		csr = make_csr(p, "%s-bad" % self.tag, "bad")
		der = bytearray(x509.load_pem_x509_csr(csr).public_bytes(
			serialization.Encoding.DER))
		der[-2] ^= 0x01      # the signature
		tampered = ("-----BEGIN CERTIFICATE REQUEST-----\n%s\n"
			    "-----END CERTIFICATE REQUEST-----\n" %
			    base64.b64encode(bytes(der)).decode()).encode()
		cases = [(b"garbage", "bad_request"),
			 (json.dumps({"nocsr": 1}).encode(), "bad_request"),
			 (b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n"
			  b"-----END CERTIFICATE REQUEST-----\n", "bad_csr"),
			 (tampered, "bad_csr_signature")]
		for i, (payload, code) in enumerate(cases):
			corr = b"bad-%d" % i
			self.request(c, payload, corr, resp)
			_, j = self.answer(c, corr)
			self.assertEqual(j.get("error"), code, j)
			self.assertTrue(j.get("message"), j)
		self.assertEqual(len(api.certs("ca=" + self.fleet_id)), before)
		# a response topic that could pose as the broker's: refused
		# (PUBACK 0x90), nothing issued
		props = Properties(PacketTypes.PUBLISH)
		props.ResponseTopic = "$SYS/certificates/status/x"
		info = c.c.publish(TOPIC, csr, 1, properties=props)
		info.wait_for_publish(slow(5))
		self.assertEqual(len(api.certs("ca=" + self.fleet_id)), before)
		# a client without a certificate may not ask
		plain = mqtt.Client("%s-plain" % self.tag, protocol=mqtt.MQTTv5)
		acks = []
		plain.on_publish = lambda cl, ud, mid, *a: acks.append(mid)
		plain.connect("127.0.0.1", self.broker.port)
		plain.loop_start()
		try:
			info = plain.publish(TOPIC, csr, 1)
			info.wait_for_publish(slow(5))
		finally:
			plain.loop_stop()
			plain.disconnect()
		self.assertEqual(len(api.certs("ca=" + self.fleet_id)), before)

	def test_signup_limit_applies(self):
		p = self.pki
		c = self.claim()          # takes one token (auto-registration)
		resp = "devices/%s/lim" % self.tag
		c.subscribe(resp, 1)
		n = self.BURST + 3
		for i in range(n):
			name = "%s-l%d" % (self.tag, i)
			self.request(c, make_csr(p, name, name), b"l%d" % i, resp)
		answers = [self.answer(c)[1] for _ in range(n)]
		ok = [a for a in answers if "certificatePem" in a]
		over = [a for a in answers if a.get("error") == "over_limit"]
		self.assertEqual(len(ok) + len(over), n, answers)
		self.assertGreaterEqual(len(over), 2, answers)
		self.assertLessEqual(len(ok), self.BURST, answers)
		self.assertEqual(over[0]["message"], "over the signup limit, retry")

	def test_provisioning_needs_a_policy_grant(self):
		"""A certificate whose policy does not grant the request topic
		(here: no policy at all) is refused 0x87 and nothing is issued."""
		p = self.pki
		name = p.device("other", "%s-nogrant" % self.tag)
		c = TlsRaw(self.broker.tls_port, tls_context(p, name))
		self.closers.append(c)
		c.connect("%s-nogrant" % self.tag)
		before = len(self.api.certs("ca=" + self.fleet_id))
		c.publish(TOPIC, make_csr(p, name + "-new", name), qos=1,
			  props=[(P_RESPONSE_TOPIC, "devices/%s/x" % self.tag)],
			  expect_rc=0x87)
		time.sleep(slow(0.3))
		self.assertEqual(len(self.api.certs("ca=" + self.fleet_id)), before)
		self.assertTrue(c.is_open())

if __name__ == "__main__":
	unittest.main(verbosity=2)
