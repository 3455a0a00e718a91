#!/usr/bin/python3
"""idtest: helpers of the device-identity integration tests (test_id_*.py).

- Pki: certificates in a temporary directory, made with `vouchctl pki`
  (CAs, intermediates, the server, verification certificates, expired and
  not-yet-valid devices), and in bulk with the `cryptography` package when
  a test needs many fresh device certificates (vouchctl fsyncs every file;
  the bulk path falls back to parallel vouchctl runs without it).
- IdBroker: vouchd with a mutual-TLS listener and the admin API on free
  ports (fresh ports on every start attempt), an optional data directory
  that outlives the broker (restarts, crash tests) and crash() for kill -9.
- Api: the admin HTTP/JSON API through urllib, answers as (status, JSON).
- TlsRaw: vouchtest's RawClient over an ssl socket (exact reason codes over
  mutual TLS); tls_attempt() tells a CONNACK from a failed handshake.
- TlsPaho: a paho-mqtt 1.6.1 client over mutual TLS, driven by hand (no
  automatic reconnect), recording CONNACK, DISCONNECT reason and close.
- mosquitto_pub / mosquitto_sub argument helpers for mutual TLS.
- IdCase: a test case with a class-wide IdBroker, a server CA and a
  registered fleet CA, per-test tags and clients closed after each test.
"""

import concurrent.futures
import datetime
import hashlib
import json
import os
import queue
import shutil
import signal
import socket
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
from vouchtest import (BUILD, HOST, SHARDS, Broker, BrokerError,  # noqa: E402,F401
		       Closed, RawClient, CONNACK, DISCONNECT, PUBLISH,
		       enc_connect, free_port, slow, mqtt, uniq, wait_until)

try:
	from cryptography import x509
	from cryptography.hazmat.primitives import hashes, serialization
	from cryptography.hazmat.primitives.asymmetric import ec
	from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
	HAVE_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover
	HAVE_CRYPTOGRAPHY = False

VOUCHCTL = os.path.join(BUILD, "vouchctl")

# CONNACK reason codes (MQTT 5.0 / 3.1.1)
RC5_NOT_AUTHORIZED = 0x87
RC3_NOT_AUTHORIZED = 0x05
RC5_RATE_EXCEEDED = 0x9F
RC3_UNAVAILABLE = 0x03
RC5_BAD_CLIENT_ID = 0x85
RC3_BAD_CLIENT_ID = 0x02


def vouchctl(*args, check=0):
	"""vouchctl with args; (rc, stdout, stderr); checks the exit code."""
	p = subprocess.run([VOUCHCTL] + list(args), stdout=subprocess.PIPE,
			   stderr=subprocess.PIPE, timeout=slow(60))
	out, err = p.stdout.decode(), p.stderr.decode()
	if check is not None and p.returncode != check:
		raise AssertionError("vouchctl %s: rc %d, want %d\n%s%s" % (
			" ".join(args), p.returncode, check, out, err))
	return p.returncode, out, err


def pem_blocks(text):
	"""The CERTIFICATE PEM blocks of text, in order."""
	out, cur = [], None
	for line in text.splitlines():
		if line.startswith("-----BEGIN CERTIFICATE-----"):
			cur = [line]
		elif cur is not None:
			cur.append(line)
			if line.startswith("-----END CERTIFICATE-----"):
				out.append("\n".join(cur) + "\n")
				cur = None
	return out


def cert_id_of_pem(pem):
	"""Certificate ID: SHA-256 of the DER, lower-case hex."""
	return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


class Pki:
	"""Certificates in a temporary directory. Names are file stems:
	NAME.crt, NAME.key (and NAME.chain.crt for devices)."""

	def __init__(self, prefix="vouch-id-pki-"):
		self.dir = tempfile.mkdtemp(prefix=prefix)
		self._cryptoca = {}

	def path(self, name, ext="crt"):
		return os.path.join(self.dir, "%s.%s" % (name, ext))

	def pem(self, name, ext="crt"):
		with open(self.path(name, ext)) as f:
			return f.read()

	def cert_id(self, name):
		return cert_id_of_pem(pem_blocks(self.pem(name))[0])

	def show(self, name):
		"""`vouchctl --json pki show` of NAME.crt (first certificate)."""
		_, out, _ = vouchctl("--json", "pki", "show", self.path(name))
		v = json.loads(out)
		return v[0] if isinstance(v, list) else v

	def ca(self, name, cn=None, key="ec", extra=()):
		vouchctl("pki", "ca", "--out", self.dir, "--name", name,
			 "--cn", cn or name, "--key", key, *extra)
		return name

	def intermediate(self, ca, name, cn=None, extra=()):
		vouchctl("pki", "intermediate", "--ca-cert", self.path(ca),
			 "--ca-key", self.path(ca, "key"), "--out", self.dir,
			 "--name", name, "--cn", cn or name, *extra)
		return name

	def server(self, ca, name="server"):
		vouchctl("pki", "server", "--ca-cert", self.path(ca), "--ca-key",
			 self.path(ca, "key"), "--out", self.dir, "--name", name,
			 "--cn", "localhost", "--ip", HOST)
		return name

	def device(self, ca, name, cn=None, extra=()):
		vouchctl("pki", "device", "--ca-cert", self.path(ca), "--ca-key",
			 self.path(ca, "key"), "--out", self.dir, "--name", name,
			 "--cn", cn or name, *extra)
		return name

	def verification(self, ca, code, name, key_of=None):
		"""A verification certificate with CN=code signed by ca's key
		(or by key_of's key, which must be a CA of the same name)."""
		signer = key_of or ca
		vouchctl("pki", "verification", "--ca-cert", self.path(signer),
			 "--ca-key", self.path(signer, "key"), "--code", code,
			 "--out", self.dir, "--name", name, "--force")
		return name

	# -- bulk

	def devices(self, ca, prefix, n, jobs=4):
		"""n fresh device certificates of ca named PREFIX-0.. PREFIX-n-1
		(CN = name). Returns the names."""
		names = ["%s-%d" % (prefix, i) for i in range(n)]
		if HAVE_CRYPTOGRAPHY:
			for nm in names:
				self._crypto_device(ca, nm)
			return names
		with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
			list(ex.map(lambda nm: self.device(ca, nm), names))
		return names

	def _crypto_device(self, ca, name):
		if ca not in self._cryptoca:
			with open(self.path(ca), "rb") as f:
				cac = x509.load_pem_x509_certificate(f.read())
			with open(self.path(ca, "key"), "rb") as f:
				cak = serialization.load_pem_private_key(f.read(), None)
			ski = cac.extensions.get_extension_for_class(
				x509.SubjectKeyIdentifier).value
			self._cryptoca[ca] = (cac, cak, ski)
		cac, cak, ski = self._cryptoca[ca]
		key = ec.generate_private_key(ec.SECP256R1())
		now = datetime.datetime.now(datetime.timezone.utc)
		b = (x509.CertificateBuilder()
		     .subject_name(x509.Name([x509.NameAttribute(
			     NameOID.COMMON_NAME, name)]))
		     .issuer_name(cac.subject)
		     .public_key(key.public_key())
		     .serial_number(x509.random_serial_number())
		     .not_valid_before(now - datetime.timedelta(minutes=5))
		     .not_valid_after(now + datetime.timedelta(days=30))
		     .add_extension(x509.BasicConstraints(ca=False,
							  path_length=None),
				    critical=True)
		     .add_extension(x509.KeyUsage(
			     digital_signature=True, content_commitment=False,
			     key_encipherment=False, data_encipherment=False,
			     key_agreement=False, key_cert_sign=False,
			     crl_sign=False, encipher_only=False,
			     decipher_only=False), critical=True)
		     .add_extension(x509.ExtendedKeyUsage(
			     [ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
		     .add_extension(x509.AuthorityKeyIdentifier.
				    from_issuer_subject_key_identifier(ski),
				    critical=False))
		cert = b.sign(cak, hashes.SHA256())
		with open(self.path(name), "wb") as f:
			f.write(cert.public_bytes(serialization.Encoding.PEM))
		with open(self.path(name, "key"), "wb") as f:
			f.write(key.private_bytes(
				serialization.Encoding.PEM,
				serialization.PrivateFormat.PKCS8,
				serialization.NoEncryption()))

	def cleanup(self):
		shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------ API

class Api:
	"""The admin API at url (no token: the brokers here run without a
	token file)."""

	def __init__(self, url):
		self.url = url

	def call(self, method, path, body=None, timeout=None):
		"""(HTTP status, parsed JSON body)."""
		data = None
		if body is not None:
			data = body if isinstance(body, bytes) else \
				json.dumps(body).encode()
		req = urllib.request.Request(self.url + path, method=method,
					     data=data)
		if data is not None:
			req.add_header("Content-Type", "application/json")
		try:
			with urllib.request.urlopen(
					req, timeout=timeout or slow(20)) as r:
				return r.status, json.loads(r.read() or b"null")
		except urllib.error.HTTPError as e:
			raw = e.read()
			try:
				return e.code, json.loads(raw)
			except ValueError:
				return e.code, {"raw": raw.decode("utf-8",
								  "replace")}

	def ok(self, method, path, body=None, want=(200, 201)):
		st, j = self.call(method, path, body)
		if st not in want:
			raise AssertionError("%s %s: HTTP %d %r" % (method, path,
								  st, j))
		return j

	def code(self):
		return self.ok("GET", "/api/v1/registration-code")[
			"registrationCode"]

	def cert(self, cid):
		"""The device record or None (404)."""
		st, j = self.call("GET", "/api/v1/certificates/" + cid)
		if st == 404:
			return None
		if st != 200:
			raise AssertionError("GET certificate: %d %r" % (st, j))
		return j

	def certs(self, query=""):
		"""Every device record matching the query (all pages)."""
		out, off = [], 0
		while True:
			sep = "&" if query else ""
			j = self.ok("GET", "/api/v1/certificates?%s%slimit=1000"
				    "&offset=%d" % (query, sep, off))
			out += j["certificates"]
			off += len(j["certificates"])
			if off >= j["total"] or not j["certificates"]:
				return out

	def cert_action(self, cid, action):
		"""POST /certificates/{id}/{action}: (status, JSON)."""
		return self.call("POST", "/api/v1/certificates/%s/%s" % (
			cid, action), b"")

	def ca_action(self, cid, action):
		return self.call("POST", "/api/v1/cas/%s/%s" % (cid, action), b"")

	def register_ca(self, pki, ca, auto=True, auto_status=None,
			status=None):
		"""Registers pki's CA with a fresh verification certificate;
		returns the CA record."""
		ver = pki.verification(ca, self.code(), ca + "-ver")
		body = {"caCertificate": pki.pem(ca),
			"verificationCertificate": pki.pem(ver),
			"autoRegistration": auto}
		if auto_status:
			body["autoStatus"] = auto_status
		if status:
			body["status"] = status
		return self.ok("POST", "/api/v1/cas", body, want=(201,))

	def register_cert(self, pem, status=None, client_id=None):
		body = {"certificate": pem}
		if status:
			body["status"] = status
		if client_id is not None:
			body["clientId"] = client_id
		return self.call("POST", "/api/v1/certificates", body)


# --------------------------------------------------------------- broker

class IdBroker(Broker):
	"""vouchd with --tls-listen and --admin-listen on free ports.

	data_dir: a directory that outlives the broker (else the broker's
	own temporary one). The server certificate is pki's `server`."""

	def __init__(self, pki, data_dir=None, rate=None, burst=None,
		     extra=None, **kw):
		self.pki = pki
		self.base_extra = list(extra or [])
		self.data_dir = data_dir
		self.rate = rate
		self.burst = burst
		self.tls_port = None
		self.admin_port = None
		self.api = None
		super().__init__(extra=self.base_extra, **kw)

	def args(self):
		# fresh ports on every attempt of start()
		self.tls_port = free_port()
		self.admin_port = free_port()
		ex = ["--tls-listen", "%s:%d" % (HOST, self.tls_port),
		      "--cert", self.pki.path("server"),
		      "--key", self.pki.path("server", "key"),
		      "--admin-listen", "%s:%d" % (HOST, self.admin_port),
		      # plain-TCP clients of these tests watch $SYS/certificates/#
		      "--plain-role", "admin"]
		if self.data_dir:
			ex += ["--data-dir", self.data_dir]
		if self.rate is not None:
			ex += ["--signup-rate", str(self.rate)]
		if self.burst is not None:
			ex += ["--signup-burst", str(self.burst)]
		self.extra = ex + self.base_extra
		self.api = Api("http://%s:%d" % (HOST, self.admin_port))
		return super().args()

	def crash(self):
		"""kill -9 and clean up (the data directory stays). Returns
		False if the broker had died by itself before."""
		alive = self.alive()
		if alive:
			os.kill(self.proc.pid, signal.SIGKILL)
		try:
			self.proc.wait(slow(5))
		except subprocess.TimeoutExpired:
			pass
		self.check_stderr()
		self._kill()
		shutil.rmtree(self.dir, ignore_errors=True)
		self.proc = None
		return alive


# ---------------------------------------------------------- TLS clients

def tls_context(pki, name, ca="srvca", min_v=None, max_v=None, chain=False):
	"""A client context: trusts pki's ca (the server's issuer) and
	presents NAME (NAME.chain.crt with chain) or no certificate (None)."""
	ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
	ctx.load_verify_locations(pki.path(ca))
	ctx.check_hostname = False
	if name:
		ctx.load_cert_chain(pki.path(name + ".chain" if chain else name),
				    pki.path(name, "key"))
	if min_v:
		ctx.minimum_version = min_v
	if max_v:
		ctx.maximum_version = max_v
	return ctx


class TlsRaw(RawClient):
	"""RawClient over TLS. The handshake runs in the constructor (an
	ssl.SSLError may come from it, or, with TLS 1.3, from the first
	read: the server checks the client certificate after the client's
	Finished)."""

	def __init__(self, port, ctx, version=5, auto_ack=True, timeout=None,
		     session=None):
		self.version = version
		self.auto_ack = auto_ack
		self.timeout = timeout or slow(5)
		raw = socket.create_connection((HOST, port), self.timeout)
		raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
		try:
			self.sock = ctx.wrap_socket(raw, server_hostname=HOST,
						    session=session)
		except BaseException:
			raw.close()
			raise
		self.sock.settimeout(self.timeout)
		self.buf = bytearray()
		self.pending = []
		self.closed = False
		self.next_pid = 1
		self.connack = None

	def _fill(self, deadline):
		try:
			return super()._fill(deadline)
		except ssl.SSLZeroReturnError:
			self.closed = True
			raise Closed()
		except ssl.SSLEOFError:
			self.closed = True
			raise Closed()

	def session_info(self):
		"""(session, session_reused, TLS version)."""
		return self.sock.session, self.sock.session_reused, \
			self.sock.version()


class Outcome:
	"""What a connection attempt ended with: kind is "connack" (rc, the
	CONNACK packet), "alert" (err: the SSL error text) or "closed"."""

	def __init__(self, kind, rc=None, err=None, packet=None, client=None):
		self.kind = kind
		self.rc = rc
		self.err = err
		self.packet = packet
		self.client = client

	def __repr__(self):
		return "<Outcome %s rc=%s err=%r>" % (
			self.kind, None if self.rc is None else "0x%02x" % self.rc,
			self.err)


def tls_attempt(port, ctx, client_id="", version=5, keep=False,
		session=None, timeout=None, props=None):
	"""Handshake, CONNECT, and the answer. With keep and CONNACK 0 the
	connected TlsRaw is in Outcome.client (else it is closed)."""
	try:
		c = TlsRaw(port, ctx, version, timeout=timeout, session=session)
	except ssl.SSLError as e:
		return Outcome("alert", err=str(e))
	except (ConnectionError, socket.timeout) as e:
		return Outcome("closed", err=str(e))
	try:
		c.send(enc_connect(client_id, version=version, props=props))
		p = c.expect(CONNACK, timeout=timeout or slow(10))
	except ssl.SSLError as e:
		c.close()
		return Outcome("alert", err=str(e))
	except (ConnectionError, BrokenPipeError) as e:
		c.close()
		return Outcome("closed", err=str(e))
	except AssertionError as e:
		c.close()
		if "closed" in str(e):
			return Outcome("closed", err=str(e))
		raise
	c.connack = p
	if keep and p.rc == 0:
		return Outcome("connack", rc=p.rc, packet=p, client=c)
	out = Outcome("connack", rc=p.rc, packet=p, client=c if keep else None)
	if not keep:
		c.close()
	return out


class TlsPaho:
	"""paho-mqtt over mutual TLS, looped by hand so that a refused
	device stays refused; records CONNACK, DISCONNECT and close."""

	def __init__(self, port, pki, name, client_id="", v5=True, ca="srvca",
		     chain=False):
		self.port = port
		self.connected = threading.Event()
		self.gone = threading.Event()
		self.rc = None
		self.props = None
		self.disconnect_rc = None
		self.gone_at = None
		self.q = queue.Queue()
		self.c = mqtt.Client(client_id, protocol=mqtt.MQTTv5 if v5 else
				     mqtt.MQTTv311)
		self.c.tls_set(ca_certs=pki.path(ca),
			       certfile=pki.path(name + ".chain" if chain
						 else name),
			       keyfile=pki.path(name, "key"),
			       cert_reqs=ssl.CERT_REQUIRED,
			       tls_version=ssl.PROTOCOL_TLS_CLIENT)
		self.c.tls_insecure_set(True)   # no host name check
		self.c.on_connect = self._on_connect
		self.c.on_disconnect = self._on_disconnect
		self.c.on_message = lambda c, ud, m: self.q.put(m)
		self.subacks = {}
		self.c.on_subscribe = self._on_subscribe
		self.stop = False
		self.thread = None
		self.error = None

	def _on_connect(self, c, ud, flags, rc, props=None):
		self.rc = rc.value if hasattr(rc, "value") else rc
		self.props = props
		self.connected.set()

	def _on_disconnect(self, c, ud, rc, props=None):
		self.disconnect_rc = rc.value if hasattr(rc, "value") else rc
		self.gone_at = time.monotonic()
		self.gone.set()

	def _on_subscribe(self, c, ud, mid, granted, props=None):
		self.subacks[mid] = granted

	def _loop(self):
		while not self.stop:
			try:
				rc = self.c.loop(0.02)
			except (OSError, ssl.SSLError) as e:
				# a TLS 1.3 alert after the client's Finished
				self.error = str(e)
				rc = -1
			if rc != mqtt.MQTT_ERR_SUCCESS:
				if self.gone_at is None:
					self.gone_at = time.monotonic()
				self.gone.set()
				break

	def connect(self, timeout=None):
		"""CONNACK reason code, or None when the connection went away
		without one (a failed handshake)."""
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
			time.sleep(0.005)
		raise AssertionError("paho TLS: no CONNACK and no close")

	def subscribe(self, topic, qos=0, timeout=None):
		rc, mid = self.c.subscribe(topic, qos)
		assert rc == mqtt.MQTT_ERR_SUCCESS, rc
		assert wait_until(lambda: mid in self.subacks,
				  timeout or slow(5)), "no SUBACK"

	def publish(self, topic, payload, qos=1, timeout=None):
		info = self.c.publish(topic, payload, qos)
		if qos:
			info.wait_for_publish(timeout or slow(5))
			assert info.is_published(), "not acknowledged"

	def get(self, timeout=None):
		try:
			return self.q.get(timeout=timeout or slow(5))
		except queue.Empty:
			raise AssertionError("paho TLS: no message")

	def close(self):
		try:
			if self.connected.is_set() and not self.gone.is_set():
				self.c.disconnect()
				self.gone.wait(slow(1))
		except Exception:
			pass
		self.stop = True
		if self.thread:
			self.thread.join(slow(2))
		try:
			s = self.c.socket()
			if s:
				s.close()
		except Exception:
			pass


def mosq_tls_args(broker, pki, name, ca="srvca", chain=False):
	"""mosquitto_pub/sub arguments for mutual TLS with NAME."""
	return ["-h", HOST, "-p", str(broker.tls_port), "--cafile",
		pki.path(ca), "--cert",
		pki.path(name + ".chain" if chain else name), "--key",
		pki.path(name, "key"), "--insecure"]


def mosq_pub_tls(broker, pki, name, topic, message, client_id=None,
		 v5=True, qos=1, chain=False, timeout=None):
	"""mosquitto_pub over mutual TLS: (exit code, stderr)."""
	args = ["mosquitto_pub"] + mosq_tls_args(broker, pki, name,
						 chain=chain)
	args += ["-t", topic, "-m", message, "-q", str(qos), "-V",
		 "mqttv5" if v5 else "mqttv311"]
	if client_id is not None:
		args += ["-i", client_id]
	r = subprocess.run(args, capture_output=True,
			   timeout=timeout or slow(15))
	return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


class ClientsCase(unittest.TestCase):
	"""Per-test set-up around a class-wide broker (cls.broker): a fresh tag
	(uniq(TAG)) for names and client IDs, and the clients a test puts in
	self.closers closed after it; the broker must be alive before and
	after, and quiet on stderr."""
	TAG = "t"

	def setUp(self):
		self.tag = uniq(self.TAG)
		self.closers = []
		self.broker.assert_alive()

	def tearDown(self):
		for c in self.closers:
			try:
				c.close()
			except Exception:
				pass
		self.broker.check_stderr()
		self.broker.assert_alive()


class IdCase(ClientsCase):
	"""A class-wide IdBroker with a server CA "srvca", its server
	certificate and a registered fleet CA "root" (automatic registration
	on; its ID in root_id). Subclasses set TAG and PKI_PREFIX and may
	override before_start(p) (more certificates, directories: raise
	unittest.SkipTest there when something is missing), broker_kw() (the
	IdBroker's arguments), after_start() and cleanup() (after the broker
	stopped). Per test: self.tag, self.closers (closed after the test),
	and the broker alive with a clean stderr after each test."""

	TAG = "t"
	PKI_PREFIX = "vouch-id-pki-"
	broker = None
	pki = None

	@classmethod
	def before_start(cls, p):
		pass

	@classmethod
	def broker_kw(cls):
		return {}

	@classmethod
	def after_start(cls):
		pass

	@classmethod
	def cleanup(cls):
		pass

	@classmethod
	def setUpClass(cls):
		if not os.access(VOUCHCTL, os.X_OK):
			raise unittest.SkipTest("no vouchctl at %s" % VOUCHCTL)
		p = cls.pki = Pki(prefix=cls.PKI_PREFIX)
		try:
			p.ca("srvca", "Server CA")
			p.server("srvca")
			p.ca("root", "Fleet Root CA")
			cls.before_start(p)
			cls.broker = IdBroker(p, **cls.broker_kw()).start()
			cls.api = cls.broker.api
			cls.n = cls.broker.shards
			cls.root_id = cls.api.register_ca(p, "root")["certificateId"]
			cls.after_start()
		except BaseException:
			# tearDownClass does not run when setUpClass fails
			cls.tearDownClass()
			raise

	@classmethod
	def tearDownClass(cls):
		try:
			if cls.broker:
				cls.broker.stop()
		finally:
			cls.pki.cleanup()
			cls.cleanup()

