/*
 * bench/loop.c - vouch-bench's connection engine.
 *
 * One epoll loop per thread drives that thread's non-blocking client
 * sockets through TCP connect, the TLS handshake (wolfSSL on the socket),
 * CONNECT/CONNACK, and then MQTT packets framed by the project's codec
 * (mqtt_decode / mqtt_encode), which it hands to the mode (struct
 * bench_ops). Output is queued per connection and written once per loop
 * turn, so that a publisher's burst leaves in few system calls.
 *
 * The main thread steers the run by setting the phase (an atomic) and
 * writing each loop's eventfd; a loop acknowledges a phase by storing it in
 * seen_phase after acting on it. Loops touch nothing of each other.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "bench/bench.h"
#include "mqtt/codec.h"

#include <errno.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* linux/in.h, Linux 4.2 */
#endif

#define EV_WAKE UINT64_MAX         /* epoll data of the eventfd */
#define SCAN_NS 250000000ull       /* timeouts and keep-alive, 4 per second */
#define MAX_SLEEP_NS 100000000ull  /* a loop looks at the phase this often */
#define IN_FIRST 2048
#define OUT_KEEP 16384             /* an empty output buffer above this is freed */
#define TLS_CHUNK 16384            /* one TLS record of plaintext */

/* See bench/bench.h. */
uint64_t bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* See bench/bench.h. */
void bthread_note(struct bthread *th, const char *fmt, ...)
{
	va_list ap;

	if (th->first_err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(th->first_err, sizeof th->first_err, fmt, ap);
	va_end(ap);
}

static uint32_t idx_of(const struct bthread *th, const struct bconn *c)
{
	return (uint32_t)(c - th->conns);
}

/* Room for need more bytes at b->p + b->len: compact, then grow. */
static int buf_reserve(struct bbuf *b, size_t need, size_t first)
{
	if (b->cap - b->len >= need)
		return 0;
	if (b->off) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= need)
			return 0;
	}
	size_t cap = b->cap ? b->cap : first;
	while (cap - b->len < need) {
		if (cap > ((size_t)MQTT_MAX_REMAINING + 5) * 2)
			return -ENOMEM;
		cap *= 2;
	}
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static void buf_free(struct bbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* Add or drop EPOLLOUT from c's interest set. */
static void arm_out(struct bthread *th, struct bconn *c, bool out)
{
	if (c->out_armed == out || c->fd < 0)
		return;
	struct epoll_event ev = {
		.events = EPOLLIN | (out ? EPOLLOUT : 0),
		.data.u64 = idx_of(th, c),
	};
	if (epoll_ctl(th->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->out_armed = out;
}

/*
 * Write what c has queued. Returns 0 (all written, or the rest waits for
 * EPOLLOUT) or -1 when the connection is broken (the caller decides).
 */
static int conn_flush(struct bthread *th, struct bconn *c)
{
	while (c->out.len > c->out.off) {
		size_t n = c->out.len - c->out.off;
		ssize_t w;
		if (c->ssl) {
			/* after WANT_WRITE wolfSSL wants the same call again */
			if (c->tls_retry)
				n = (size_t)c->tls_retry;
			else if (n > TLS_CHUNK)
				n = TLS_CHUNK;
			int r = wolfSSL_write(c->ssl, c->out.p + c->out.off, (int)n);
			if (r <= 0) {
				int e = wolfSSL_get_error(c->ssl, r);
				if (e == WOLFSSL_ERROR_WANT_WRITE || e == WOLFSSL_ERROR_WANT_READ) {
					c->tls_retry = (int)n;
					if (e == WOLFSSL_ERROR_WANT_WRITE)
						arm_out(th, c, true);
					return 0;
				}
				return -1;
			}
			c->tls_retry = 0;
			w = r;
		} else {
			w = send(c->fd, c->out.p + c->out.off, n, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EAGAIN || errno == EINTR) {
					arm_out(th, c, true);
					return 0;
				}
				return -1;
			}
		}
		c->out.off += (size_t)w;
		c->t_last_tx = bench_now();
	}
	c->out.off = c->out.len = 0;
	if (c->out.cap > OUT_KEEP)
		buf_free(&c->out);
	if (!c->tls_wants_out)
		arm_out(th, c, false);
	return 0;
}

/* Close c's socket and TLS session and free its buffers. With graceful,
 * a ready connection says DISCONNECT (and close_notify) first. */
static void conn_teardown(struct bthread *th, struct bconn *c, bool graceful)
{
	if (graceful && c->state == BC_READY) {
		struct mqtt_packet p = { .type = MQTT_DISCONNECT };
		if (bconn_send(th, c, &p) == 0)
			(void)conn_flush(th, c);
		if (c->ssl)
			(void)wolfSSL_shutdown(c->ssl);
	}
	if (c->ssl) {
		wolfSSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	buf_free(&c->in);
	buf_free(&c->out);
	free(c->pid_used);
	c->pid_used = NULL;
	c->tls_retry = 0;
	c->out_armed = false;
	c->tls_wants_out = false;
	if (c->state != BC_IDLE && c->state != BC_CLOSED)
		th->open--;
	c->state = BC_CLOSED;
}

/* See bench/bench.h. */
void bconn_down(struct bthread *th, struct bconn *c, enum bfail why)
{
	int was = c->state;
	if (was == BC_CLOSED || was == BC_IDLE)
		return;
	if (was < BC_READY) {
		th->st.fail[why]++;
		th->connecting--;
		if (th->sess)
			btls_resume_failed(th, c);
		atomic_fetch_add_explicit(&th->b->settled, 1, memory_order_relaxed);
	} else {
		th->st.down[why]++;
		atomic_fetch_add_explicit(&th->b->lost, 1, memory_order_relaxed);
	}
	conn_teardown(th, c, false);
	th->b->ops->on_down(th, c, why, was);
}

/* See bench/bench.h. */
void bconn_close(struct bthread *th, struct bconn *c)
{
	conn_teardown(th, c, true);
}

/* See bench/bench.h. */
void bconn_ready(struct bthread *th, struct bconn *c)
{
	if (c->state == BC_READY || c->state == BC_CLOSED)
		return;
	c->state = BC_READY;
	c->was_ready = true;
	th->connecting--;
	th->st.ok++;
	atomic_fetch_add_explicit(&th->b->ready, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&th->b->settled, 1, memory_order_relaxed);
}

/* See bench/bench.h. */
int bconn_send(struct bthread *th, struct bconn *c, const struct mqtt_packet *p)
{
	size_t n = mqtt_encoded_size(p, c->version);
	if (!n)
		return -EINVAL;
	if (buf_reserve(&c->out, n, 256))
		return -ENOMEM;
	if (mqtt_encode(p, c->version, c->out.p + c->out.len, c->out.cap - c->out.len) != n)
		return -EINVAL;
	c->out.len += n;
	th->st.bytes_out += n;
	if (!c->dirty) {
		c->dirty = true;
		th->dirty[th->ndirty++] = idx_of(th, c);
	}
	return 0;
}

static void send_connect(struct bthread *th, struct bconn *c)
{
	const struct bench_opts *o = th->b->o;
	char cid[128];
	int cid_len = 0;
	const char *role = c->role == ROLE_PUB ? "pub" : c->role == ROLE_SUB ? "sub" : "c";

	uint32_t n = o->id_base + c->gidx; /* workers: unique over the run */

	if (o->client_id_prefix)
		cid_len = snprintf(cid, sizeof cid, "%s%s%u", o->client_id_prefix, role, n);
	else if (!o->tls)
		cid_len = snprintf(cid, sizeof cid, "vbench-%d-%s%u", (int)getpid(), role, n);
	/* else empty: the broker takes the certificate's */
	if (cid_len < 0 || cid_len >= (int)sizeof cid)
		cid_len = 0;

	struct mqtt_packet p = { .type = MQTT_CONNECT };
	struct mqtt_connect *cn = &p.u.connect;
	cn->version = o->version;
	cn->clean = true; /* [MQTT-3.1.3-7] an empty client ID needs it */
	cn->keepalive = o->keepalive;
	cn->client_id = (struct mqtt_str){ (const uint8_t *)cid, (uint16_t)cid_len };
	c->state = BC_MQTT;
	if (bconn_send(th, c, &p) != 0) {
		bthread_note(th, "cannot encode CONNECT");
		bconn_down(th, c, BF_PROTOCOL);
	}
}

static void tls_handshake(struct bthread *th, struct bconn *c)
{
	int r = wolfSSL_connect(c->ssl);
	if (r == WOLFSSL_SUCCESS) {
		c->t_tls = bench_now();
		c->tls_wants_out = false;
		send_connect(th, c);
		return;
	}
	int e = wolfSSL_get_error(c->ssl, r);
	if (e == WOLFSSL_ERROR_WANT_READ) {
		c->tls_wants_out = false;
		arm_out(th, c, false);
		return;
	}
	if (e == WOLFSSL_ERROR_WANT_WRITE) {
		c->tls_wants_out = true;
		arm_out(th, c, true);
		return;
	}
	char msg[80];
	wolfSSL_ERR_error_string_n((unsigned long)e, msg, sizeof msg);
	bthread_note(th, "TLS handshake: %s (%d)", msg, e);
	bconn_down(th, c, BF_TLS);
}

static void tcp_connected(struct bthread *th, struct bconn *c)
{
	c->t_tcp = bench_now();
	hist_add(&th->st.tcp, c->t_tcp - c->t_start);
	if (!th->b->o->tls) {
		send_connect(th, c);
		return;
	}
	if (btls_attach(th->ctx, th->b->pool, c) != 0) {
		bthread_note(th, "cannot set up a TLS session (certificate %u)", c->gidx);
		bconn_down(th, c, BF_TLS);
		return;
	}
	if (th->sess)
		btls_resume_offer(th, c);
	c->state = BC_TLS;
	tls_handshake(th, c);
}

static void conn_start(struct bthread *th, struct bconn *c, uint64_t now)
{
	const struct bench_opts *o = th->b->o;

	c->t_start = now;
	c->t_last_tx = now;
	c->state = BC_TCP;
	th->connecting++;
	th->open++;
	c->fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		bthread_note(th, "socket: %s", strerror(errno));
		bconn_down(th, c, BF_TCP);
		return;
	}
	int one = 1;
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (o->nsrc) {
		/* the port is picked at connect() for the whole 4-tuple: more
		 * than one ephemeral range per source address */
		(void)setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
		const struct sockaddr_storage *sa = &o->src[(o->id_base + c->gidx) % o->nsrc];
		socklen_t len = sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							  : sizeof(struct sockaddr_in);
		if (bind(c->fd, (const struct sockaddr *)sa, len) != 0) {
			bthread_note(th, "bind to the source address: %s", strerror(errno));
			bconn_down(th, c, BF_TCP);
			return;
		}
	}
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u64 = idx_of(th, c) };
	if (epoll_ctl(th->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
		bthread_note(th, "epoll_ctl: %s", strerror(errno));
		bconn_down(th, c, BF_TCP);
		return;
	}
	c->out_armed = true;
	if (connect(c->fd, (const struct sockaddr *)&o->addr, o->addrlen) == 0) {
		tcp_connected(th, c);
	} else if (errno != EINPROGRESS) {
		bthread_note(th, "connect: %s", strerror(errno));
		bconn_down(th, c, BF_TCP);
	}
}

static void on_connack(struct bthread *th, struct bconn *c, const struct mqtt_packet *p)
{
	const struct mqtt_connack *ca = &p->u.connack;
	uint64_t now = bench_now();

	th->st.connack[ca->reason]++;
	if (ca->reason != MQTT_RC_SUCCESS) {
		bthread_note(th, "CONNACK refused: %s 0x%02x", c->version == MQTT_V5 ? "reason" : "return code",
			     rep_wire_code(th->b->o, ca->reason));
		bconn_down(th, c, BF_REFUSED);
		return;
	}
	hist_add(&th->st.conn, now - c->t_start);
	if (c->ssl)
		hist_add(&th->st.tls, c->t_tls - c->t_tcp);
	if (c->ssl && th->sess) {
		bool asked = c->resume_asked;
		if (btls_resume_keep(th, c)) {
			th->st.tls_resumed++;
			hist_add(&th->st.conn_res, now - c->t_start);
			hist_add(&th->st.tls_res, c->t_tls - c->t_tcp);
			atomic_fetch_add_explicit(&th->b->resumed, 1, memory_order_relaxed);
		} else {
			if (asked)
				th->st.tls_not_resumed++;
			else
				th->st.tls_full++;
			hist_add(&th->st.conn_full, now - c->t_start);
		}
	}
	if (!th->st.first_connack)
		th->st.first_connack = now;
	th->st.last_connack = now;
	c->window = (uint16_t)th->b->o->inflight;
	if (c->version == MQTT_V5) {
		if (MQTT_HAS(&ca->props, MQTT_PROP_RECEIVE_MAXIMUM) &&
		    ca->props.receive_maximum < c->window)
			c->window = ca->props.receive_maximum;
		if (MQTT_HAS(&ca->props, MQTT_PROP_SERVER_KEEPALIVE))
			c->keepalive = ca->props.server_keepalive;
	}
	th->b->ops->on_connack(th, c, p);
	if (c->state == BC_MQTT)
		bconn_ready(th, c);
}

static void dispatch(struct bthread *th, struct bconn *c, const struct mqtt_packet *p)
{
	if (c->state == BC_MQTT) {
		if (p->type == MQTT_CONNACK) {
			on_connack(th, c, p);
			return;
		}
		bthread_note(th, "packet type %u before CONNACK", p->type);
		bconn_down(th, c, BF_PROTOCOL);
		return;
	}
	switch (p->type) {
	case MQTT_PINGRESP:
		/* hold: which round's PINGREQ this answers (see bconn) */
		c->npongs++;
		if (c->first_round && c->npongs >= c->first_idx) {
			uint32_t r = c->first_round + (c->npongs - c->first_idx);
			uint64_t now = bench_now();
			if (r <= c->ping_round &&
			    now - th->b->round_at[r] <= (uint64_t)(th->b->o->timeout * 1e9)) {
				c->pong_round = r;
				th->st.pongs++;
				atomic_fetch_add_explicit(&th->b->pongs, 1, memory_order_relaxed);
			} else {
				th->st.pongs_late++;
			}
		}
		return;
	case MQTT_DISCONNECT:
		th->st.disconnect_rc[p->u.disconnect.reason]++;
		bthread_note(th, "server DISCONNECT, reason 0x%02x", p->u.disconnect.reason);
		bconn_down(th, c, BF_DISCONNECT);
		return;
	case MQTT_CONNACK:
		bthread_note(th, "second CONNACK");
		bconn_down(th, c, BF_PROTOCOL);
		return;
	default:
		th->b->ops->on_packet(th, c, p);
	}
}

/* Decode and dispatch every whole packet in c->in. Returns -1 when c was
 * closed on the way. */
static int conn_parse(struct bthread *th, struct bconn *c)
{
	while (c->state != BC_CLOSED && c->in.len > c->in.off) {
		struct mqtt_packet p;
		ssize_t n = mqtt_decode(c->in.p + c->in.off, c->in.len - c->in.off,
					c->version, 0, &p);
		if (n == 0)
			break;
		if (n < 0) {
			bthread_note(th, "malformed packet from the server: %s",
				     mqtt_err_str((enum mqtt_err)-n));
			bconn_down(th, c, BF_PROTOCOL);
			return -1;
		}
		c->in.off += (size_t)n;
		dispatch(th, c, &p);
	}
	if (c->state == BC_CLOSED)
		return -1;
	if (c->in.off == c->in.len) {
		c->in.off = c->in.len = 0;
		/* a flood connection reads twice in its life: hold no buffer */
		if (c->role == ROLE_FLOOD)
			buf_free(&c->in);
	}
	return 0;
}

/* Read what the socket (or wolfSSL) has, parsing as it comes. */
static void conn_read(struct bthread *th, struct bconn *c)
{
	for (;;) {
		if (buf_reserve(&c->in, 4096, IN_FIRST)) {
			bthread_note(th, "out of memory for input");
			bconn_down(th, c, BF_PROTOCOL);
			return;
		}
		size_t room = c->in.cap - c->in.len;
		ssize_t r;
		if (room > INT_MAX)
			room = INT_MAX;
		if (c->ssl) {
			int n = wolfSSL_read(c->ssl, c->in.p + c->in.len, (int)room);
			if (n <= 0) {
				int e = wolfSSL_get_error(c->ssl, n);
				if (e == WOLFSSL_ERROR_WANT_READ)
					return;
				if (e == WOLFSSL_ERROR_WANT_WRITE) {
					c->tls_wants_out = true;
					arm_out(th, c, true);
					return;
				}
				if (e == WOLFSSL_ERROR_ZERO_RETURN || e == SOCKET_PEER_CLOSED_E) {
					bconn_down(th, c, BF_CLOSED);
					return;
				}
				char msg[80];
				wolfSSL_ERR_error_string_n((unsigned long)e, msg, sizeof msg);
				bthread_note(th, "TLS read: %s (%d)", msg, e);
				/* TLS 1.3: a refused client certificate is
				 * an alert after the client's last flight */
				bconn_down(th, c, c->state < BC_READY ? BF_TLS : BF_CLOSED);
				return;
			}
			r = n;
		} else {
			r = recv(c->fd, c->in.p + c->in.len, room, 0);
			if (r < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				bthread_note(th, "recv: %s", strerror(errno));
				bconn_down(th, c, BF_CLOSED);
				return;
			}
			if (r == 0) {
				bconn_down(th, c, BF_CLOSED);
				return;
			}
		}
		c->in.len += (size_t)r;
		th->st.bytes_in += (uint64_t)r;
		if (conn_parse(th, c) < 0)
			return;
		if (!c->ssl && (size_t)r < room)
			return; /* the socket is drained */
	}
}

static void conn_event(struct bthread *th, struct bconn *c, uint32_t events)
{
	if (c->state == BC_CLOSED || c->state == BC_IDLE)
		return;
	if (c->state == BC_TCP) {
		int err = 0;
		socklen_t len = sizeof err;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err) {
			bthread_note(th, "connect: %s", strerror(err));
			bconn_down(th, c, BF_TCP);
		} else if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
			tcp_connected(th, c);
		}
		return;
	}
	if (c->state == BC_TLS) {
		tls_handshake(th, c);
		return;
	}
	if (events & EPOLLOUT) {
		if (conn_flush(th, c) < 0) {
			bconn_down(th, c, BF_CLOSED);
			return;
		}
		if (c->tls_wants_out) {
			c->tls_wants_out = false;
			conn_read(th, c);
			if (c->state == BC_CLOSED)
				return;
			if (c->out.len == c->out.off && !c->tls_wants_out)
				arm_out(th, c, false);
		}
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		conn_read(th, c);
}

static void flush_dirty(struct bthread *th)
{
	for (uint32_t i = 0; i < th->ndirty; i++) {
		struct bconn *c = &th->conns[th->dirty[i]];
		c->dirty = false;
		if (c->state != BC_CLOSED && c->state != BC_TLS && conn_flush(th, c) < 0)
			bconn_down(th, c, BF_CLOSED);
	}
	th->ndirty = 0;
}

/* Start the connections whose turn it is. Returns the time the next one
 * may start when only the pacing holds it back, else 0. */
static uint64_t start_pending(struct bthread *th, uint64_t now)
{
	const struct bench_opts *o = th->b->o;
	while (th->next_start < th->nconns && th->connecting < (uint32_t)o->concurrency) {
		struct bconn *c = &th->conns[th->next_start];
		/* --resume: wait for the certificate's first handshake */
		if (th->sess && !btls_resume_may_start(th, c))
			return 0;
		if (!th->b->ops->may_start(th, c))
			return 0;
		if (th->start_gap) {
			if (now < th->start_at)
				return th->start_at;
			th->start_at += th->start_gap;
		}
		th->next_start++;
		if (th->sess)
			btls_resume_started(th, c);
		conn_start(th, c, now);
	}
	return 0;
}

/* Attempts past --timeout fail; idle ready connections ping. */
static void scan(struct bthread *th, uint64_t now)
{
	uint64_t limit = (uint64_t)(th->b->o->timeout * 1e9);
	for (uint32_t i = 0; i < th->next_start; i++) {
		struct bconn *c = &th->conns[i];
		if (c->state == BC_CLOSED || c->state == BC_IDLE)
			continue;
		if (c->state < BC_READY) {
			if (now - c->t_start > limit) {
				bthread_note(th, "no %s within %.1f s",
					     c->state == BC_TCP ? "TCP connection"
					     : c->state == BC_TLS ? "TLS handshake"
					     : c->state == BC_MQTT ? "CONNACK" : "SUBACK",
					     th->b->o->timeout);
				bconn_down(th, c, BF_TIMEOUT);
			}
		} else if (c->keepalive && !c->ping_round &&
			   now - c->t_last_tx > (uint64_t)c->keepalive * 500000000ull) {
			/* (hold pings by rounds, see connect.c) */
			/* [MQTT-3.1.2-23] idle for half the keep-alive: ping */
			struct mqtt_packet p = { .type = MQTT_PINGREQ };
			c->t_last_tx = now;
			if (bconn_send(th, c, &p) == 0)
				c->npings++;
		}
	}
}

static void wait_events(struct bthread *th, uint64_t now, uint64_t deadline)
{
	struct epoll_event ev[256];
	uint64_t wait = deadline > now ? deadline - now : 0;
	if (wait > MAX_SLEEP_NS)
		wait = MAX_SLEEP_NS;
	struct timespec ts = { .tv_sec = (time_t)(wait / 1000000000ull),
			       .tv_nsec = (long)(wait % 1000000000ull) };
	int n = epoll_pwait2(th->ep, ev, 256, &ts, NULL);
	if (n < 0 && errno == ENOSYS)
		n = epoll_wait(th->ep, ev, 256, (int)((wait + 999999) / 1000000));
	for (int i = 0; i < n; i++) {
		if (ev[i].data.u64 == EV_WAKE) {
			uint64_t v;
			(void)!read(th->evfd, &v, sizeof v);
			continue;
		}
		conn_event(th, &th->conns[ev[i].data.u64], ev[i].events);
	}
}

static uint64_t min_deadline(uint64_t a, uint64_t b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

static void *bthread_main(void *arg)
{
	struct bthread *th = arg;
	struct bench *b = th->b;
	int ph;

	th->next_scan = bench_now() + SCAN_NS;
	while ((ph = atomic_load_explicit(&b->phase, memory_order_acquire)) != PH_DONE) {
		uint64_t now = bench_now();
		uint64_t dl = start_pending(th, now);
		dl = min_deadline(dl, b->ops->tick(th, now));
		if (now >= th->next_scan) {
			scan(th, now);
			th->next_scan = now + SCAN_NS;
		}
		flush_dirty(th);
		atomic_store_explicit(&th->seen_phase, ph, memory_order_release);
		dl = min_deadline(dl, th->next_scan);
		wait_events(th, now, dl);
	}
	for (uint32_t i = 0; i < th->nconns; i++)
		if (th->conns[i].state != BC_CLOSED && th->conns[i].state != BC_IDLE)
			conn_teardown(th, &th->conns[i], true);
	atomic_store_explicit(&th->seen_phase, PH_DONE, memory_order_release);
#ifdef FP_ECC
	wc_ecc_fp_free(); /* this thread's cache of ECC points */
#endif
	return NULL;
}

/* See bench/bench.h. */
int bthread_setup(struct bench *b, struct bthread *th, int id, uint32_t nconns)
{
	const struct bench_opts *o = b->o;

	th->id = id;
	th->b = b;
	th->ep = th->evfd = -1;
	hist_init(&th->st.lat);
	hist_init(&th->st.conn);
	hist_init(&th->st.tcp);
	hist_init(&th->st.tls);
	hist_init(&th->st.conn_full);
	hist_init(&th->st.conn_res);
	hist_init(&th->st.tls_res);
	th->conns = calloc(nconns ? nconns : 1, sizeof *th->conns);
	th->dirty = calloc(nconns ? nconns : 1, sizeof *th->dirty);
	if (!th->conns || !th->dirty)
		return -ENOMEM;
	th->nconns = nconns;
	for (uint32_t i = 0; i < nconns; i++) {
		th->conns[i].fd = -1;
		th->conns[i].version = o->version;
		th->conns[i].keepalive = o->keepalive;
		th->conns[i].next_pid = 1;
	}
	th->ep = epoll_create1(EPOLL_CLOEXEC);
	th->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (th->ep < 0 || th->evfd < 0)
		return -errno;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = EV_WAKE };
	if (epoll_ctl(th->ep, EPOLL_CTL_ADD, th->evfd, &ev) != 0)
		return -errno;
	if (o->tls) {
		char err[256];
		th->ctx = btls_ctx_new(o, err, sizeof err);
		if (!th->ctx) {
			fprintf(stderr, "vouch-bench: %s\n", err);
			return -EINVAL;
		}
		if (o->resume && btls_resume_setup(th, b->pool->n) != 0)
			return -ENOMEM;
	}
	return 0;
}

/* See bench/bench.h. */
void bthread_teardown(struct bthread *th)
{
	if (!th->b)
		return; /* never set up */
	if (th->conns) {
		for (uint32_t i = 0; i < th->nconns; i++) {
			struct bconn *c = &th->conns[i];
			if (c->ssl)
				wolfSSL_free(c->ssl);
			if (c->fd >= 0)
				close(c->fd);
			free(c->in.p);
			free(c->out.p);
			free(c->pid_used);
			free(c->last_seq);
		}
	}
	free(th->conns);
	free(th->dirty);
	free(th->pubs);
	free(th->payload);
	btls_resume_free(th, th->b->pool ? th->b->pool->n : 0);
	free(th->stamps);
	th->stamps = NULL;
	if (th->ctx)
		wolfSSL_CTX_free(th->ctx);
	if (th->ep >= 0)
		close(th->ep);
	if (th->evfd >= 0)
		close(th->evfd);
	th->conns = NULL;
	th->dirty = NULL;
	th->pubs = NULL;
	th->payload = NULL;
	th->ctx = NULL;
	th->ep = th->evfd = -1;
}

static void wake(struct bthread *th)
{
	uint64_t one = 1;
	(void)!write(th->evfd, &one, sizeof one);
}

/* See bench/bench.h. */
int bench_start(struct bench *b)
{
	for (int i = 0; i < b->nth; i++) {
		atomic_store(&b->th[i].seen_phase, -1);
		int rc = pthread_create(&b->th[i].tid, NULL, bthread_main, &b->th[i]);
		if (rc) {
			atomic_store(&b->phase, PH_DONE);
			for (int j = 0; j < i; j++) {
				wake(&b->th[j]);
				pthread_join(b->th[j].tid, NULL);
			}
			return -rc;
		}
	}
	return 0;
}

/* See bench/bench.h. */
void bench_phase(struct bench *b, enum bench_phase ph)
{
	atomic_store_explicit(&b->phase, (int)ph, memory_order_release);
	for (int i = 0; i < b->nth; i++)
		wake(&b->th[i]);
}

static void nap_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* See bench/bench.h. */
bool bench_phase_seen(struct bench *b, uint64_t timeout_ns)
{
	int ph = atomic_load(&b->phase);
	uint64_t end = bench_now() + timeout_ns;
	for (;;) {
		int i;
		for (i = 0; i < b->nth; i++)
			if (atomic_load_explicit(&b->th[i].seen_phase, memory_order_acquire) != ph)
				break;
		if (i == b->nth)
			return true;
		if (bench_now() >= end)
			return false;
		nap_ms(1);
	}
}

/* See bench/bench.h. */
bool bench_wait_settled(struct bench *b, uint64_t target, uint64_t deadline)
{
	while (atomic_load_explicit(&b->settled, memory_order_relaxed) < target) {
		if (bench_interrupted() || bench_now() >= deadline)
			return false;
		bench_progress(b, false);
		nap_ms(2);
	}
	return true;
}

/* See bench/bench.h. */
void bench_finish(struct bench *b)
{
	bench_phase(b, PH_DONE);
	for (int i = 0; i < b->nth; i++)
		pthread_join(b->th[i].tid, NULL);
}

/* See bench/bench.h. */
void bench_merge(const struct bench *b, struct bstats *out)
{
	memset(out, 0, sizeof *out);
	hist_init(&out->lat);
	hist_init(&out->conn);
	hist_init(&out->tcp);
	hist_init(&out->tls);
	hist_init(&out->conn_full);
	hist_init(&out->conn_res);
	hist_init(&out->tls_res);
	for (int i = 0; i < b->nth; i++)
		bstats_add(out, &b->th[i].st);
}

/* See bench/bench.h. */
void bstats_add(struct bstats *out, const struct bstats *s)
{
	hist_merge(&out->lat, &s->lat);
	hist_merge(&out->conn, &s->conn);
	hist_merge(&out->tcp, &s->tcp);
	hist_merge(&out->tls, &s->tls);
	hist_merge(&out->conn_full, &s->conn_full);
	hist_merge(&out->conn_res, &s->conn_res);
	hist_merge(&out->tls_res, &s->tls_res);
	out->tls_full += s->tls_full;
	out->tls_resumed += s->tls_resumed;
	out->tls_not_resumed += s->tls_not_resumed;
	out->pings += s->pings;
	out->pongs += s->pongs;
	out->pongs_late += s->pongs_late;
	for (int k = 0; k < BF__COUNT; k++) {
		out->fail[k] += s->fail[k];
		out->down[k] += s->down[k];
	}
	for (int k = 0; k < 256; k++) {
		out->connack[k] += s->connack[k];
		out->disconnect_rc[k] += s->disconnect_rc[k];
	}
	out->ok += s->ok;
	out->bytes_in += s->bytes_in;
	out->bytes_out += s->bytes_out;
	out->pub_in += s->pub_in;
	out->pub_out += s->pub_out;
	out->pub_refused += s->pub_refused;
	if (s->first_connack && (!out->first_connack || s->first_connack < out->first_connack))
		out->first_connack = s->first_connack;
	if (s->last_connack > out->last_connack)
		out->last_connack = s->last_connack;
	if (s->last_recv > out->last_recv)
		out->last_recv = s->last_recv;
}
