#!/usr/bin/python3
"""The mutual-TLS transport (tls/) end to end, against the real vouchd.

What the identity suites (test_id_*.py) do not look at: the transport.

- mosquitto_pub / mosquitto_sub over TLS 1.2 and 1.3 (--tls-version),
  MQTT 3.1.1 and 5.0; paho over TLS 1.2 and 1.3.
- A message of 600 kB both ways (many records each way).
- A handshake and a CONNECT trickled a few bytes at a time (records and
  handshake messages split across reads).
- A plain MQTT client, or HTTP, on the TLS port is dropped at once, not at
  the connect timeout.
- Client IDs homed on every shard: the connection moves to its home shard
  right after the handshake (with TLS 1.3 the CONNECT comes with the
  client's Finished), and the session ticket it gets there resumes.
- Forty handshakes at once.
- SIGHUP with a new server certificate: a live connection goes on, new
  handshakes get the new certificate, sessions from before resume; a
  broken key file on SIGHUP keeps the running certificate.

Skips (exit 0) with "skipped: --tls-listen not wired yet" when vouchd has no
--tls-listen flag.
"""

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vouchtest import (VOUCHD, HOST, CONNACK, PUBLISH, cid_on_shard,  # noqa: E402
		       enc_connect, enc_publish, mqtt, slow, wait_until)
from idtest import (ClientsCase, Pki, IdBroker, TlsRaw, tls_attempt, tls_context,  # noqa: E402
		    mosq_tls_args, pem_blocks, VOUCHCTL)

TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3
VERSIONS = ((TLS12, "tlsv1.2", "TLSv1.2"), (TLS13, "tlsv1.3", "TLSv1.3"))


def tls_listen_wired():
	try:
		out = subprocess.run([VOUCHD, "--help"], capture_output=True,
				     timeout=10).stdout.decode()
	except OSError:
		return False
	return "--tls-listen" in out


_ctxs = {}


def ctx_for(pki, name, ver):
	"""One client context per (pki, name, version): a TLS session only
	resumes through the context that made it."""
	key = (pki.dir, name, ver)
	if key not in _ctxs:
		_ctxs[key] = tls_context(pki, name, min_v=ver, max_v=ver)
	return _ctxs[key]


def der_of(pki, name):
	return ssl.PEM_cert_to_DER_cert(pem_blocks(pki.pem(name))[0])


class TlsBase(ClientsCase):
	TAG = "tt"
	"""A broker with a mutual-TLS listener, the CA 'root' registered and
	a few device certificates."""

	DEVICES = ("dev-a", "dev-b")

	@classmethod
	def setUpClass(cls):
		if not os.access(VOUCHCTL, os.X_OK):
			raise unittest.SkipTest("no vouchctl at %s" % VOUCHCTL)
		p = cls.pki = Pki(prefix="vouch-tls-pki-")
		cls.broker = None
		try:
			p.ca("srvca", "Server CA")
			p.server("srvca")
			p.ca("root", "Transport Root CA")
			for d in cls.DEVICES:
				p.device("root", d)
			cls.extra_pki(p)
			cls.broker = IdBroker(p, extra=cls.broker_extra()).start()
			cls.broker.api.register_ca(p, "root")
		except BaseException:
			if cls.broker:
				cls.broker.stop()
			p.cleanup()
			raise
		cls.n = cls.broker.shards

	@classmethod
	def extra_pki(cls, p):
		pass

	@classmethod
	def broker_extra(cls):
		return []

	@classmethod
	def tearDownClass(cls):
		try:
			if cls.broker:
				cls.broker.stop()
		finally:
			cls.pki.cleanup()


	def raw(self, name, ver, client_id, version=5, session=None):
		"""A connected TlsRaw over TLS version ver (CONNACK 0)."""
		o = tls_attempt(self.broker.tls_port, ctx_for(self.pki, name, ver),
				client_id, version, keep=True, session=session)
		self.assertEqual((o.kind, o.rc), ("connack", 0), o)
		self.closers.append(o.client)
		return o.client

	def roundtrip(self, c, topic, payload=b"ping", qos=1):
		"""c subscribes to topic, publishes payload, gets it back."""
		c.subscribe(topic, qos)
		c.publish(topic, payload, qos)
		m = c.message(timeout=slow(10))
		self.assertEqual((m.topic, m.payload), (topic, payload))


class TlsTransportTest(TlsBase):

	def test_mosquitto_tls12_and_tls13(self):
		"""mosquitto_sub and mosquitto_pub with each TLS version and
		each MQTT version."""
		for _, mv, _ in VERSIONS:
			for proto in ("mqttv311", "mqttv5"):
				topic = "%s/mosq/%s/%s" % (self.tag, mv, proto)
				# line-buffered, so that SUBACK shows before the end
				sub = subprocess.Popen(
					["stdbuf", "-oL", "mosquitto_sub"] +
					mosq_tls_args(self.broker, self.pki, "dev-a") +
					["--tls-version", mv, "-V", proto, "-t", topic,
					 "-C", "1", "-W", str(int(slow(15))), "-d"],
					stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
				try:
					got = b""
					end = time.monotonic() + slow(10)
					while b"SUBACK" not in got and time.monotonic() < end:
						line = sub.stdout.readline()
						if not line:
							break
						got += line
					self.assertIn(b"SUBACK", got, "%s %s: %r" % (
						mv, proto, got))
					r = subprocess.run(
						["mosquitto_pub"] +
						mosq_tls_args(self.broker, self.pki, "dev-b") +
						["--tls-version", mv, "-V", proto, "-t", topic,
						 "-m", "hello " + mv, "-q", "1"],
						capture_output=True, timeout=slow(15))
					self.assertEqual(r.returncode, 0, r.stderr)
					out, _ = sub.communicate(timeout=slow(15))
					self.assertEqual(sub.returncode, 0, out)
					self.assertIn(("hello " + mv).encode(), got + out)
				finally:
					if sub.poll() is None:
						sub.kill()
						sub.wait()

	def test_paho_tls12_and_tls13(self):
		"""paho over each TLS version: the negotiated version is the one
		asked for, and a message goes round."""
		for ver, _, name in VERSIONS:
			got = []
			ev = threading.Event()
			conn = threading.Event()
			c = mqtt.Client("%s-paho-%s" % (self.tag, name),
					protocol=mqtt.MQTTv5)
			c.tls_set_context(ctx_for(self.pki, "dev-a", ver))
			c.on_connect = lambda *a: conn.set()
			c.on_message = lambda cl, ud, m: (got.append(m), ev.set())
			c.connect(HOST, self.broker.tls_port, 30)
			c.loop_start()
			try:
				self.assertTrue(conn.wait(slow(10)), "no CONNACK")
				self.assertEqual(c.socket().version(), name)
				topic = "%s/paho/%s" % (self.tag, name)
				c.subscribe(topic, 1)
				time.sleep(0.2)
				info = c.publish(topic, b"paho " + name.encode(), 1)
				info.wait_for_publish(slow(10))
				self.assertTrue(ev.wait(slow(10)), "no message")
				self.assertEqual(got[0].payload, b"paho " + name.encode())
			finally:
				c.disconnect()
				c.loop_stop()

	def test_large_message_both_ways(self):
		"""600 kB in one PUBLISH each way: dozens of records."""
		for ver, _, name in VERSIONS:
			c = self.raw("dev-a", ver, "%s-big-%s" % (self.tag, name))
			payload = bytes((i * 7 + 3) & 0xff for i in range(600000))
			self.roundtrip(c, "%s/big/%s" % (self.tag, name), payload)
			c.disconnect()

	def test_trickled_handshake(self):
		"""Every byte of the handshake and of the CONNECT arrives in
		pieces of one to three bytes."""
		for ver, _, name in VERSIONS:
			ctx = ctx_for(self.pki, "dev-a", ver)
			inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
			obj = ctx.wrap_bio(inc, out, server_hostname=HOST)
			s = socket.create_connection((HOST, self.broker.tls_port),
						     slow(5))
			s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
			self.closers.append(s)
			k = 0

			def flush():
				nonlocal k
				data = out.read()
				i = 0
				while i < len(data):
					n = 1 + (k % 3)
					k += 1
					s.sendall(data[i:i + n])
					i += n
					time.sleep(0.0005)

			def pull():
				b = s.recv(65536)
				if not b:
					raise ConnectionError("closed")
				inc.write(b)

			end = time.monotonic() + slow(15)
			while True:
				try:
					obj.do_handshake()
					break
				except ssl.SSLWantReadError:
					flush()
					pull()
				self.assertLess(time.monotonic(), end, "handshake")
			flush()
			obj.write(enc_connect("%s-trickle-%s" % (self.tag, name)))
			flush()
			data = b""
			while len(data) < 2 or len(data) < 2 + data[1]:
				try:
					data += obj.read(4096)
				except ssl.SSLWantReadError:
					pull()
				self.assertLess(time.monotonic(), end, "CONNACK")
			self.assertEqual(data[0] >> 4, CONNACK, data)
			self.assertEqual(data[3], 0, data)  # v5 reason code
			s.close()

	def test_not_tls_is_dropped_at_once(self):
		"""A plain MQTT client (or HTTP) on the TLS port: closed at once,
		not after --connect-timeout."""
		for junk in (enc_connect("%s-plain" % self.tag),
			     b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
			s = socket.create_connection((HOST, self.broker.tls_port),
						     slow(5))
			t0 = time.monotonic()
			s.sendall(junk)
			s.settimeout(slow(5))
			try:
				while s.recv(4096):
					pass
			except ConnectionResetError:
				pass
			self.assertLess(time.monotonic() - t0, slow(2))
			s.close()

	def test_home_shard_handover_then_resumption(self):
		"""A client ID homed on each shard: whichever shard accepted the
		connection, it works after the hand-over, and its session (the
		TLS 1.3 ticket is sent from the home shard) resumes."""
		for ver, _, name in VERSIONS:
			for shard in range(self.n):
				cid = cid_on_shard("%s-h%s" % (self.tag, name), shard,
						   self.n)
				c = self.raw("dev-a", ver, cid)
				topic = "%s/home/%s/%d" % (self.tag, name, shard)
				self.roundtrip(c, topic)
				sess, reused, v = c.session_info()
				self.assertEqual(v, name)
				self.assertFalse(reused)
				c.disconnect()
				self.assertIsNotNone(sess)
				self.assertTrue(sess.has_ticket, "%s: no ticket" % name)
				c2 = self.raw("dev-a", ver, cid, session=sess)
				_, reused, _ = c2.session_info()
				self.assertTrue(reused, "%s shard %d: not resumed" % (
					name, shard))
				self.roundtrip(c2, topic + "/again")
				c2.disconnect()

	def test_forty_handshakes_at_once(self):
		results = []
		lock = threading.Lock()

		def one(i):
			ver = TLS13 if i % 2 else TLS12
			o = tls_attempt(self.broker.tls_port,
					ctx_for(self.pki, "dev-b", ver),
					"%s-many-%d" % (self.tag, i), 5)
			with lock:
				results.append((o.kind, o.rc))

		th = [threading.Thread(target=one, args=(i,)) for i in range(40)]
		for t in th:
			t.start()
		for t in th:
			t.join(slow(30))
		self.assertEqual(results.count(("connack", 0)), 40, results)


class TlsReloadTest(TlsBase):
	"""SIGHUP reloads the server certificate and key."""

	@classmethod
	def extra_pki(cls, p):
		p.server("srvca", name="server2")

	def sighup_and_wait(self, text, count):
		"""SIGHUP, then wait for the count-th log line holding text."""
		os.kill(self.broker.pid(), signal.SIGHUP)
		self.assertTrue(wait_until(
			lambda: self.broker.stderr().count(text) >= count, slow(10)),
			"no %r in the log" % text)

	def peer_der(self, ver):
		o = tls_attempt(self.broker.tls_port, ctx_for(self.pki, "dev-a", ver),
				"%s-peer" % self.tag, 5, keep=True)
		self.assertEqual((o.kind, o.rc), ("connack", 0), o)
		der = o.client.sock.getpeercert(binary_form=True)
		o.client.disconnect()
		return der

	def test_sighup_reload(self):
		p = self.pki
		saved = {ext: p.pem("server", ext) for ext in ("crt", "key")}
		try:
			self.assertEqual(self.peer_der(TLS13), der_of(p, "server"))
			live = self.raw("dev-a", TLS13, "%s-live" % self.tag)
			self.roundtrip(live, "%s/live/1" % self.tag)
			sessions = {}
			for ver, _, name in VERSIONS:
				c = self.raw("dev-b", ver, "%s-s-%s" % (self.tag, name))
				self.roundtrip(c, "%s/s/%s" % (self.tag, name))
				sessions[ver] = c.session_info()[0]
				c.disconnect()

			# the new certificate and key, in place
			for ext in ("crt", "key"):
				with open(p.path("server", ext), "w") as f:
					f.write(p.pem("server2", ext))
			self.sighup_and_wait("server certificate and key reloaded", 1)

			# the live connection goes on
			self.roundtrip(live, "%s/live/2" % self.tag, b"after")
			# new handshakes see the new certificate
			for ver, _, _ in VERSIONS:
				self.assertEqual(self.peer_der(ver), der_of(p, "server2"))
			# sessions from before resume
			for ver, _, name in VERSIONS:
				c = self.raw("dev-b", ver, "%s-s-%s" % (self.tag, name),
					     session=sessions[ver])
				self.assertTrue(c.session_info()[1],
						"%s: not resumed after reload" % name)
				self.roundtrip(c, "%s/s2/%s" % (self.tag, name))
				c.disconnect()

			# a broken key: the running certificate stays
			with open(p.path("server", "key"), "w") as f:
				f.write("not a key\n")
			self.sighup_and_wait("keeping the old certificate", 1)
			self.assertEqual(self.peer_der(TLS12), der_of(p, "server2"))
			self.roundtrip(live, "%s/live/3" % self.tag, b"still")
			live.disconnect()
		finally:
			for ext, pem in saved.items():
				with open(p.path("server", ext), "w") as f:
					f.write(pem)


if __name__ == "__main__":
	if not tls_listen_wired():
		print("skipped: --tls-listen not wired yet")
		sys.exit(0)
	unittest.main(verbosity=2)
