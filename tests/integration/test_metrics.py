#!/usr/bin/python3
"""GET /metrics on the admin listener, against the real vouchd, parsed by
the Prometheus text parser of python3-prometheus-client.

- Format: Content-Type text/plain; version=0.0.4, every family typed and
  documented, counters end in _total, HEAD answers, other methods 405.
- Values move with real traffic: connections per shard go up with live
  clients on each shard (and down when they leave); messages and bytes in
  and out grow after publishing; a full TLS handshake then a resumed one
  are counted; a handshake with a certificate of an unknown CA is counted
  under reason="unknown_ca"; an automatic registration is counted as a
  signup (and one over the limit as over_limit); fingerprint-cache hits
  grow when a device returns; registry records by status match the
  registry's own answer; jemalloc's bytes are > 0 in the release build.
- With --admin-token-file, /metrics asks for the bearer token (401 JSON
  without it), /healthz does not.
"""

import json
import os
import ssl
import sys
import threading
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vouchtest import (BUILD, HOST, Broker, cid_on_shard, free_port,  # noqa: E402
		       slow, wait_until)
from idtest import (IdCase, Pki, IdBroker, tls_attempt, tls_context,  # noqa: E402
		    VOUCHCTL)

try:
	from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # pragma: no cover
	text_string_to_metric_families = None

TLS13 = ssl.TLSVersion.TLSv1_3
JEMALLOC = not any(s in os.path.basename(BUILD.rstrip("/"))
		   for s in ("asan", "tsan"))


class Scrape:
	"""One parsed exposition: samples by (name, labels), families."""

	def __init__(self, text):
		self.text = text
		self.families = {}
		self.samples = {}
		for fam in text_string_to_metric_families(text):
			self.families[fam.name] = fam
			for s in fam.samples:
				key = (s.name, tuple(sorted(s.labels.items())))
				assert key not in self.samples, key
				self.samples[key] = s.value

	def get(self, name, **labels):
		"""The value, or None when there is no such sample."""
		return self.samples.get((name, tuple(sorted(labels.items()))))

	def by(self, name, label):
		"""{label value: value} of a family with one label."""
		out = {}
		for (n, lab), v in self.samples.items():
			if n == name:
				d = dict(lab)
				assert list(d) == [label], (name, lab)
				out[d[label]] = v
		return out

	def total(self, name):
		return sum(v for (n, _), v in self.samples.items() if n == name)


def http(url, method="GET", token=None):
	"""(status, headers, body text)."""
	req = urllib.request.Request(url, method=method)
	if token:
		req.add_header("Authorization", "Bearer " + token)
	try:
		with urllib.request.urlopen(req, timeout=slow(10)) as r:
			return r.status, r.headers, r.read().decode()
	except urllib.error.HTTPError as e:
		return e.code, e.headers, e.read().decode()


def scrape(url, token=None):
	st, hdr, body = http(url + "/metrics", token=token)
	assert st == 200, (st, body)
	ct = hdr.get("Content-Type", "")
	assert ct.startswith("text/plain; version=0.0.4"), ct
	s = Scrape(body)
	# the parser is lenient: a sample outside its family would come back
	# as an untyped family of its own
	for name, fam in s.families.items():
		assert fam.type in ("counter", "gauge"), (name, fam.type)
		assert fam.documentation, name
	return s


class MetricsTest(IdCase):
	TAG = "m"
	PKI_PREFIX = "vouch-metrics-pki-"

	@classmethod
	def before_start(cls, p):
		if text_string_to_metric_families is None:
			raise unittest.SkipTest("no prometheus_client (python3-prometheus-client)")
		p.ca("stranger", "Unregistered CA")

	@classmethod
	def after_start(cls):
		cls.url = cls.api.url

	def scrape(self):
		return scrape(self.url)

	def until(self, pred, what, timeout=5):
		"""Scrape until pred(scrape) holds; returns that scrape."""
		box = {}

		def ok():
			box["s"] = self.scrape()
			return pred(box["s"])
		self.assertTrue(wait_until(ok, slow(timeout), 0.05),
				"%s; last scrape:\n%s" % (what, box["s"].text))
		return box["s"]

	def dev(self, name, ca="root"):
		return self.pki.device(ca, "%s-%s" % (self.tag, name))

	# ---------------------------------------------------------------

	def test_format(self):
		s = self.scrape()
		types = {
			"vouch_connections": "gauge",
			"vouch_connections_accepted_total": "counter",
			"vouch_connections_refused_total": "counter",
			"vouch_messages_received_total": "counter",
			"vouch_messages_sent_total": "counter",
			"vouch_received_bytes_total": "counter",
			"vouch_sent_bytes_total": "counter",
			"vouch_messages_dropped_total": "counter",
			"vouch_messages_queued": "gauge",
			"vouch_fingerprint_cache_hits_total": "counter",
			"vouch_fingerprint_cache_misses_total": "counter",
			"vouch_presence_events_dropped_total": "counter",
			"vouch_tls_handshakes_total": "counter",
			"vouch_tls_handshake_failures_total": "counter",
			"vouch_signups_total": "counter",
			"vouch_registry_certificates": "gauge",
			"vouch_registry_cas": "gauge",
			"vouch_registry_records": "gauge",
			"vouch_registry_file_bytes": "gauge",
		}
		if JEMALLOC:
			types["vouch_jemalloc_allocated_bytes"] = "gauge"
			types["vouch_jemalloc_resident_bytes"] = "gauge"
		for name, typ in types.items():
			# the parser names counter families without _total
			fam = s.families.get(name[:-6] if typ == "counter" else name)
			self.assertIsNotNone(fam, name)
			self.assertEqual(fam.type, typ, name)
			self.assertTrue(any(x.name == name for x in fam.samples), name)
		# one sample per shard for the per-shard families
		self.assertEqual(sorted(s.by("vouch_connections", "shard")),
				 sorted(str(i) for i in range(self.n)))
		self.assertEqual(set(s.by("vouch_tls_handshakes_total", "type")),
				 {"full", "resumed"})
		self.assertIn("unknown_ca", s.by("vouch_tls_handshake_failures_total",
						  "reason"))
		# HEAD answers without a body, other methods are refused as JSON
		st, hdr, body = http(self.url + "/metrics", "HEAD")
		self.assertEqual((st, body), (200, ""))
		self.assertTrue(hdr["Content-Type"].startswith("text/plain; version=0.0.4"))
		st, hdr, body = http(self.url + "/metrics", "POST")
		self.assertEqual(st, 405)
		self.assertEqual(json.loads(body)["error"], "method_not_allowed")

	def test_connections_per_shard(self):
		before = self.scrape().by("vouch_connections", "shard")
		clients = []
		for sh in range(self.n):
			for k in range(2):
				cid = cid_on_shard("%s-c%d" % (self.tag, k), sh, self.n)
				c = self.broker.raw_connect(cid)
				self.closers.append(c)
				clients.append(c)
		self.until(lambda s: all(
			s.get("vouch_connections", shard=str(sh)) >= before[str(sh)] + 2
			for sh in range(self.n)), "two more connections on every shard")
		for c in clients:
			c.disconnect()
		self.until(lambda s: all(
			s.get("vouch_connections", shard=str(sh)) <= before[str(sh)]
			for sh in range(self.n)), "connections back down")
		s = self.scrape()
		self.assertGreaterEqual(s.total("vouch_connections_accepted_total"),
					2 * self.n)

	def test_messages_and_bytes(self):
		n, size = 40, 1000
		pub_shard, sub_shard = 0, (1 % self.n)
		sub = self.broker.raw_connect(cid_on_shard(self.tag + "-sub", sub_shard,
							   self.n))
		pub = self.broker.raw_connect(cid_on_shard(self.tag + "-pub", pub_shard,
							   self.n))
		self.closers += [sub, pub]
		topic = "metrics/%s" % self.tag
		sub.subscribe(topic, qos=1)
		b = self.scrape()
		pub.publish_many([(topic, b"x" * size)] * n, qos=1)
		self.assertEqual(len(sub.messages(n, slow(10))), n)

		def moved(s):
			return (s.get("vouch_messages_received_total", shard=str(pub_shard)) >=
				b.get("vouch_messages_received_total", shard=str(pub_shard)) + n and
				s.get("vouch_messages_sent_total", shard=str(sub_shard)) >=
				b.get("vouch_messages_sent_total", shard=str(sub_shard)) + n and
				s.get("vouch_received_bytes_total", shard=str(pub_shard)) >=
				b.get("vouch_received_bytes_total", shard=str(pub_shard)) + n * size and
				s.get("vouch_sent_bytes_total", shard=str(sub_shard)) >=
				b.get("vouch_sent_bytes_total", shard=str(sub_shard)) + n * size)
		s = self.until(moved, "messages and bytes in and out grew")
		self.assertGreaterEqual(s.total("vouch_messages_received_total") -
					b.total("vouch_messages_received_total"), n)
		self.assertGreaterEqual(s.total("vouch_messages_sent_total") -
					b.total("vouch_messages_sent_total"), n)
		for sh in range(self.n):
			self.assertGreaterEqual(s.get("vouch_messages_queued", shard=str(sh)), 0)
			self.assertGreaterEqual(s.get("vouch_messages_dropped_total", shard=str(sh)),
						b.get("vouch_messages_dropped_total", shard=str(sh)))

	def test_tls_full_resumed_signup_and_cache(self):
		name = self.dev("res")
		ctx = tls_context(self.pki, name, min_v=TLS13, max_v=TLS13)
		b = self.scrape()
		o = tls_attempt(self.broker.tls_port, ctx, "", 5, keep=True)
		self.closers.append(o.client)
		self.assertEqual((o.kind, o.rc), ("connack", 0), o)
		sess, reused, _ = o.client.session_info()
		self.assertFalse(reused)
		o.client.disconnect()
		self.until(lambda s: s.get("vouch_tls_handshakes_total", type="full") >=
			   b.get("vouch_tls_handshakes_total", type="full") + 1 and
			   s.get("vouch_signups_total", outcome="registered") ==
			   b.get("vouch_signups_total", outcome="registered") + 1 and
			   s.get("vouch_registry_certificates", status="ACTIVE") ==
			   b.get("vouch_registry_certificates", status="ACTIVE") + 1,
			   "a full handshake and a signup counted")
		m = self.scrape()
		o = tls_attempt(self.broker.tls_port, ctx, "", 5, keep=True, session=sess)
		self.closers.append(o.client)
		self.assertEqual((o.kind, o.rc), ("connack", 0), o)
		self.assertTrue(o.client.session_info()[1], "session not resumed")
		o.client.disconnect()
		s = self.until(lambda s: s.get("vouch_tls_handshakes_total", type="resumed") >=
			       m.get("vouch_tls_handshakes_total", type="resumed") + 1,
			       "a resumed handshake counted")
		# a returning device is answered by the home shard's cache
		self.assertGreaterEqual(s.total("vouch_fingerprint_cache_hits_total"),
					m.total("vouch_fingerprint_cache_hits_total") + 1)
		self.assertGreaterEqual(s.total("vouch_fingerprint_cache_misses_total"),
					b.total("vouch_fingerprint_cache_misses_total") + 1)
		self.assertEqual(s.get("vouch_signups_total", outcome="registered"),
				 m.get("vouch_signups_total", outcome="registered"))

	def test_handshake_failure_unknown_ca(self):
		name = self.dev("alien", ca="stranger")
		b = self.scrape()
		o = tls_attempt(self.broker.tls_port, tls_context(self.pki, name), "", 5)
		self.assertNotEqual((o.kind, o.rc), ("connack", 0), o)
		self.until(lambda s: s.get("vouch_tls_handshake_failures_total",
					   reason="unknown_ca") >=
			   b.get("vouch_tls_handshake_failures_total", reason="unknown_ca") + 1,
			   "an unknown-CA handshake failure counted")
		s = self.scrape()
		self.assertEqual(s.get("vouch_signups_total", outcome="registered"),
				 b.get("vouch_signups_total", outcome="registered"))

	def test_registry_by_status_matches_registry(self):
		api = self.api
		ids = []
		for i in range(4):
			j = api.ok("POST", "/api/v1/certificates",
				   {"certificate": self.pki.pem(self.dev("h%d" % i))},
				   want=(201,))
			ids.append(j["certificateId"])
		self.assertEqual(api.cert_action(ids[0], "deactivate")[0], 200)
		self.assertEqual(api.cert_action(ids[1], "revoke")[0], 200)
		self.assertEqual(api.cert_action(ids[2], "deactivate")[0], 200)
		self.assertEqual(api.call("DELETE", "/api/v1/certificates/" + ids[2])[0], 200)
		want = {"ACTIVE": 0, "INACTIVE": 0, "PENDING_ACTIVATION": 0, "REVOKED": 0}
		for c in api.certs():
			want[c["status"]] += 1
		cas = {"ACTIVE": 0, "INACTIVE": 0}
		for c in api.ok("GET", "/api/v1/cas")["cas"]:
			cas[c["status"]] += 1
		s = self.scrape()
		got = {k: int(v) for k, v in s.by("vouch_registry_certificates",
						  "status").items()}
		self.assertEqual(got, want)
		self.assertGreaterEqual(want["REVOKED"], 1)
		self.assertGreaterEqual(want["INACTIVE"], 1)
		self.assertEqual({k: int(v) for k, v in s.by("vouch_registry_cas",
							     "status").items()}, cas)
		self.assertGreater(s.get("vouch_registry_records"), 0)
		self.assertGreater(s.get("vouch_registry_file_bytes"), 0)

	def test_jemalloc(self):
		s = self.scrape()
		a = s.get("vouch_jemalloc_allocated_bytes")
		r = s.get("vouch_jemalloc_resident_bytes")
		if not JEMALLOC:
			# the sanitizer builds have no jemalloc: the families are left out
			self.assertEqual((a, r), (None, None))
			return
		self.assertGreater(a, 0)
		self.assertGreater(r, 0)


class MetricsLimitTest(unittest.TestCase):
	"""Signups over the limit, on a broker with --signup-rate 1."""

	def test_over_limit_counted(self):
		if text_string_to_metric_families is None:
			raise unittest.SkipTest("no prometheus_client")
		if not os.access(VOUCHCTL, os.X_OK):
			raise unittest.SkipTest("no vouchctl at %s" % VOUCHCTL)
		p = Pki(prefix="vouch-metrics-lim-")
		try:
			p.ca("srvca", "Server CA")
			p.server("srvca")
			p.ca("root", "Fleet Root CA")
			names = [p.device("root", "lim-%d" % i) for i in range(6)]
			with IdBroker(p, rate=1, burst=1) as br:
				br.api.register_ca(p, "root")
				out = []

				def go(nm):
					out.append(tls_attempt(br.tls_port, tls_context(p, nm), "", 5))
				ts = [threading.Thread(target=go, args=(nm,)) for nm in names]
				for t in ts:
					t.start()
				for t in ts:
					t.join(slow(30))
				ok = sum(1 for o in out if o.rc == 0)
				limited = sum(1 for o in out if o.rc == 0x9F)
				self.assertGreaterEqual(limited, 1, out)
				url = br.api.url

				def counted():
					s = scrape(url)
					return (s.get("vouch_signups_total", outcome="registered") == ok and
						s.get("vouch_signups_total", outcome="over_limit") == limited)
				self.assertTrue(wait_until(counted, slow(5), 0.05),
						scrape(url).text)
		finally:
			p.cleanup()


class MetricsTokenTest(unittest.TestCase):
	"""With a token file, /metrics wants the bearer token."""

	def test_token(self):
		if text_string_to_metric_families is None:
			raise unittest.SkipTest("no prometheus_client")
		port = free_port()
		d = Pki(prefix="vouch-metrics-tok-")
		try:
			tokfile = os.path.join(d.dir, "tokens")
			with open(tokfile, "w") as f:
				f.write("prometheus:scrape-%d\n" % os.getpid())
			url = "http://%s:%d" % (HOST, port)
			with Broker(extra=["--admin-listen", "%s:%d" % (HOST, port),
					   "--admin-token-file", tokfile]):
				st, hdr, body = http(url + "/metrics")
				self.assertEqual(st, 401)
				self.assertEqual(json.loads(body)["error"], "unauthorized")
				self.assertEqual(hdr.get("WWW-Authenticate"), "Bearer")
				st, _, _ = http(url + "/metrics", token="wrong")
				self.assertEqual(st, 401)
				s = scrape(url, token="scrape-%d" % os.getpid())
				self.assertIsNotNone(s.get("vouch_connections", shard="0"))
				self.assertEqual(http(url + "/healthz")[0], 200)
		finally:
			d.cleanup()


if __name__ == "__main__":
	unittest.main(verbosity=2)
