#!/usr/bin/python3
"""Certificate revocation lists, against the real vouchd.

- POST /api/v1/crls with a CRL signed by a registered CA: a live device it
  lists is disconnected at once (v5 DISCONNECT 0x87), cannot reconnect and
  is REVOKED (history actor crl:admin); a listed serial the broker never
  saw can never auto-register; the answer counts what changed, and a
  second import (as base64 DER) changes nothing.
- A CRL signed by another key with the CA's name, with or without an
  authority key identifier, and garbage: 4xx with a JSON message and
  nothing applied (the device stays connected and ACTIVE).
- `vouchctl crl import FILE` (DER) through the API, and its errors.
- --crl-dir: a CRL file written in two halves is not applied half-written
  (a half left for a whole scan is reported once, like a bad file); once
  complete it is imported within seconds (live session closed);
  a file signed by another key is refused, logged once, never applied.
"""

import base64
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vouchtest import slow, wait_until  # noqa: E402
from idtest import (IdCase, TlsPaho, tls_attempt, tls_context,  # noqa: E402
		    vouchctl, HAVE_CRYPTOGRAPHY, RC5_NOT_AUTHORIZED)

if HAVE_CRYPTOGRAPHY:
	from cryptography import x509
	from cryptography.hazmat.primitives import hashes, serialization


def load_cert(pki, name):
	with open(pki.path(name), "rb") as f:
		return x509.load_pem_x509_certificate(f.read())


def load_key(pki, name):
	with open(pki.path(name, "key"), "rb") as f:
		return serialization.load_pem_private_key(f.read(), None)


def make_crl(pki, ca, serials, signer=None, akid=True, der=False):
	"""A CRL with ca's name listing serials, signed by signer's key
	(default ca's), with an authority key identifier of the signer."""
	cac = load_cert(pki, ca)
	sig = signer or ca
	now = datetime.datetime.now(datetime.timezone.utc)
	b = (x509.CertificateRevocationListBuilder()
	     .issuer_name(cac.subject)
	     .last_update(now - datetime.timedelta(minutes=1))
	     .next_update(now + datetime.timedelta(days=7))
	     .add_extension(x509.CRLNumber(1), critical=False))
	if akid:
		ski = load_cert(pki, sig).extensions.get_extension_for_class(
			x509.SubjectKeyIdentifier).value
		b = b.add_extension(x509.AuthorityKeyIdentifier.
				    from_issuer_subject_key_identifier(ski),
				    critical=False)
	for s in serials:
		b = b.add_revoked_certificate(
			x509.RevokedCertificateBuilder().serial_number(s)
			.revocation_date(now - datetime.timedelta(minutes=2))
			.build())
	crl = b.sign(load_key(pki, sig), hashes.SHA256())
	return crl.public_bytes(serialization.Encoding.DER if der else
				serialization.Encoding.PEM)


class CrlTest(IdCase):
	TAG = "crl"
	PKI_PREFIX = "vouch-crl-"
	crldir = None

	@classmethod
	def before_start(cls, p):
		if not HAVE_CRYPTOGRAPHY:
			raise unittest.SkipTest("python3-cryptography is missing")
		# the same name, another key
		p.ca("evil", "Fleet Root CA")
		cls.crldir = tempfile.mkdtemp(prefix="vouch-crldir-")

	@classmethod
	def broker_kw(cls):
		return {"extra": ["--crl-dir", cls.crldir]}

	@classmethod
	def cleanup(cls):
		if cls.crldir:
			shutil.rmtree(cls.crldir, ignore_errors=True)

	def dev(self, name):
		return self.pki.device("root", "%s-%s" % (self.tag, name))

	def serial(self, name):
		return load_cert(self.pki, name).serial_number

	def attempt(self, name, client_id=""):
		return tls_attempt(self.broker.tls_port,
				   tls_context(self.pki, name), client_id, 5)

	def live(self, name):
		"""A connected paho client of device `name` (registered now)."""
		c = TlsPaho(self.broker.tls_port, self.pki, name,
			    "%s-%s" % (self.tag, name))
		self.closers.append(c)
		self.assertEqual(c.connect(), 0)
		return c

	def post(self, body):
		return self.api.call("POST", "/api/v1/crls", body)

	def test_import_revokes_live_and_blocks_unseen(self):
		p, api = self.pki, self.api
		live, unseen = self.dev("live"), self.dev("unseen")
		bystander = self.dev("by")
		c = self.live(live)
		cb = self.live(bystander)
		time.sleep(0.05)
		crl = make_crl(p, "root", [self.serial(live), self.serial(unseen),
					   0x7e57ab1e]).decode()
		t0 = time.monotonic()
		st, j = self.post({"crl": crl})
		self.assertEqual(st, 200, j)
		self.assertEqual((j["listed"], j["revokedRegistered"],
				  j["revokedUnseen"], j["alreadyRevoked"]),
				 (3, 1, 2, 0), j)
		self.assertEqual(j["caCertificateId"], self.root_id)
		self.assertEqual(j["actor"], "crl:admin")
		self.assertFalse(j["stale"])
		# the live session closes at once
		self.assertTrue(c.gone.wait(slow(2)), "session not closed")
		sys.stderr.write("\n  CRL import -> close: %.1f ms\n" % (
			(c.gone_at - t0) * 1000))
		self.assertEqual(c.disconnect_rc, RC5_NOT_AUTHORIZED)
		self.assertFalse(cb.gone.is_set(), "a bystander was closed")
		rec = api.cert(p.cert_id(live))
		self.assertEqual(rec["status"], "REVOKED")
		hist = api.ok("GET", "/api/v1/certificates/%s/history" %
			      p.cert_id(live))
		events = hist["events"] if isinstance(hist, dict) else hist
		self.assertEqual(events[-1]["actor"], "crl:admin", events)
		# it cannot come back; the unseen one can never register
		self.assertEqual(self.attempt(live).rc, RC5_NOT_AUTHORIZED)
		self.assertEqual(self.attempt(unseen).rc, RC5_NOT_AUTHORIZED)
		self.assertIsNone(api.cert(p.cert_id(unseen)))
		self.assertEqual(self.attempt(bystander).rc, 0)
		# the same list again, as base64 DER: nothing new
		der = make_crl(p, "root", [self.serial(live), self.serial(unseen),
					   0x7e57ab1e], der=True)
		st, j = self.post({"crl": base64.b64encode(der).decode(),
				   "name": "again"})
		self.assertEqual(st, 200, j)
		self.assertEqual((j["listed"], j["revokedRegistered"],
				  j["revokedUnseen"], j["alreadyRevoked"]),
				 (3, 0, 0, 3), j)
		self.assertEqual(j["actor"], "crl:admin:again")

	def test_refused_crls_apply_nothing(self):
		p, api = self.pki, self.api
		d = self.dev("target")
		c = self.live(d)
		cid = p.cert_id(d)
		s = self.serial(d)
		# another key under the CA's name: by key identifier, then
		# (no AKID) by signature
		for akid, code in ((True, "unknown_issuer"),
				   (False, "bad_signature")):
			crl = make_crl(p, "root", [s, 0x51], signer="evil",
				       akid=akid).decode()
			st, j = self.post({"crl": crl})
			self.assertEqual((st, j.get("error")), (422, code), j)
			self.assertIn("nothing was applied", j["message"])
		for body, code in (({"crl": "not a crl"}, "bad_crl"),
				   ({"crl": p.pem("root")}, "bad_crl"),
				   ({"crl": 5}, "bad_field"),
				   ({"crl": "x", "extra": 1}, "bad_field"),
				   (b"{", "bad_json")):
			st, j = self.post(body)
			self.assertEqual((st, j.get("error")), (400, code), j)
		# a damaged signature
		der = bytearray(make_crl(p, "root", [s], der=True))
		der[-3] ^= 0x10
		st, j = self.post({"crl": base64.b64encode(bytes(der)).decode()})
		self.assertEqual((st, j.get("error")), (422, "bad_signature"), j)
		st, j = self.api.call("GET", "/api/v1/crls")
		self.assertEqual(st, 405, j)
		time.sleep(0.2)
		self.assertFalse(c.gone.is_set(), "closed by a refused CRL")
		self.assertEqual(api.cert(cid)["status"], "ACTIVE")
		# the serial was not recorded either: a valid CRL revokes it now
		st, j = self.post({"crl": make_crl(p, "root", [s]).decode()})
		self.assertEqual((st, j["revokedRegistered"]), (200, 1), j)
		self.assertTrue(c.gone.wait(slow(2)))

	def test_vouchctl_import(self):
		p = self.pki
		d = self.dev("ctl")
		self.assertEqual(self.attempt(d).rc, 0)
		path = os.path.join(p.dir, "%s.crl" % self.tag)
		with open(path, "wb") as f:
			f.write(make_crl(p, "root", [self.serial(d)], der=True))
		url = "http://127.0.0.1:%d" % self.broker.admin_port
		_, out, _ = vouchctl("--json", "crl", "import", "--url", url, path)
		j = json.loads(out)
		self.assertEqual(j["revokedRegistered"], 1, j)
		self.assertEqual(j["actor"], "crl:admin:%s.crl" % self.tag)
		self.assertEqual(self.api.cert(p.cert_id(d))["status"], "REVOKED")
		bad = os.path.join(p.dir, "%s.bad" % self.tag)
		with open(bad, "wb") as f:
			f.write(make_crl(p, "root", [1], signer="evil", akid=False))
		rc, _, err = vouchctl("crl", "import", "--url", url, bad, check=None)
		self.assertEqual(rc, 1, err)
		self.assertIn("signature", err)
		rc, _, err = vouchctl("crl", "import", check=None)
		self.assertEqual(rc, 2, err)

	def test_crl_dir(self):
		p, api = self.pki, self.api
		d = self.dev("dir")
		c = self.live(d)
		der = make_crl(p, "root", [self.serial(d), 0xd1d1], der=True)
		path = os.path.join(self.crldir, "%s.crl" % self.tag)
		# half a file for longer than a scan: nothing applied
		with open(path, "wb") as f:
			f.write(der[:len(der) // 2])
		time.sleep(2.5)
		self.assertFalse(c.gone.is_set())
		self.assertEqual(api.cert(p.cert_id(d))["status"], "ACTIVE")
		t0 = time.monotonic()
		with open(path, "ab") as f:
			f.write(der[len(der) // 2:])
		self.assertTrue(c.gone.wait(slow(5)), "not imported")
		sys.stderr.write("\n  --crl-dir: imported %.1f s after the write\n"
				 % (c.gone_at - t0))
		self.assertTrue(wait_until(lambda: api.cert(p.cert_id(d))[
			"status"] == "REVOKED", slow(2)))
		hist = api.ok("GET", "/api/v1/certificates/%s/history" %
			      p.cert_id(d))
		events = hist["events"] if isinstance(hist, dict) else hist
		self.assertEqual(events[-1]["actor"], "crl:%s.crl" % self.tag)
		# a file signed by another key: refused once, never applied
		other = self.dev("other")
		c2 = self.live(other)
		bad = os.path.join(self.crldir, "%s-bad.pem" % self.tag)
		with open(bad + ".part", "wb") as f:
			f.write(make_crl(p, "root", [self.serial(other)],
					 signer="evil", akid=False))
		os.rename(bad + ".part", bad)
		time.sleep(3.5)
		self.assertFalse(c2.gone.is_set())
		self.assertEqual(api.cert(p.cert_id(other))["status"], "ACTIVE")
		with open(self.broker.stderr_path, "rb") as f:
			log = f.read().decode("utf-8", "replace")
		self.assertEqual(log.count("%s not applied" % bad), 1, log[-2000:])
		# the half file, left unchanged for a whole scan, was reported
		# (at most) once, and still imported once complete
		self.assertLessEqual(log.count("%s.crl not applied" % self.tag), 1)


if __name__ == "__main__":
	unittest.main(verbosity=2)
