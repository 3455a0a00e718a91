/*
 * The shard loop: one thread, one io_uring ring. Each turn reaps a batch of
 * completions, then drains the inbound rings from other shards (after the
 * reap, so a message posted before a client saw our answer is applied
 * before that client's next packet), then dispatches the completions, runs
 * due timers, lets the layer above finish the turn, flushes output, and
 * wakes the peers it posted to.
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <sys/utsname.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/fifo.h"
#include "core/shard.h"
#include "core/spsc.h"

#define RING_ENTRIES 1024
#define XRING_CAP 8192
#define CQE_BATCH 256

static struct spsc *ring_to(struct broker_rt *rt, int to, int from)
{
	return &rt->rings[to * (rt->n + 1) + from];
}

struct io_uring_sqe *shard_sqe(struct shard *sh)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);
	if (!sqe) {
		io_uring_submit(&sh->ring);
		sqe = io_uring_get_sqe(&sh->ring);
	}
	return sqe;
}

int shard_timer(struct shard *sh, uint64_t at_ms, uint32_t kind, uint32_t id, uint32_t gen)
{
	return timer_add(&sh->timers, at_ms, kind, id, gen);
}

/* ---- cross-shard messages ---- */

/* How soon a shard holding messages for a full ring tries again. */
#define BACKLOG_RETRY_NS 200000

int shard_post(struct shard *sh, int to, const struct xmsg *m)
{
	struct broker_rt *rt = sh->rt;
	struct spsc *q = ring_to(rt, to, sh->id);
	if (sh->backlog_n[to] == 0 && spsc_push_mt(q, m) == 0) {
		sh->wake_mask |= 1ull << to;
		return 0;
	}
	if (sh->backlog_n[to] == sh->backlog_cap[to]) {
		uint32_t nc = sh->backlog_cap[to] ? sh->backlog_cap[to] * 2 : 1024;
		struct xmsg *nb = realloc(sh->backlog[to], nc * sizeof *nb);
		if (!nb)
			return -ENOMEM;
		sh->backlog[to] = nb;
		sh->backlog_cap[to] = nc;
	}
	sh->backlog[to][sh->backlog_n[to]++] = *m;
	sh->backlog_total++;
	return 0;
}

/* See core/shard.h. */
bool shard_backlogged(const struct shard *sh)
{
	/* --max-shard-backlog: about 2 MiB of xmsg by default; publishers
	 * then feel the slower shard through TCP instead of the heap */
	return sh->backlog_total >= sh->cfg->max_shard_backlog;
}

/* See core/shard.h. */
void conn_pause_flow(struct shard *sh, struct conn *c)
{
	if (c->input_paused)
		return;
	conn_pause_input(sh, c);
	atomic_fetch_add_explicit(&sh->stats.flow_paused, 1, memory_order_relaxed);
}

/* See core/shard.h. */
void conn_wait_backlog(struct shard *sh, struct conn *c)
{
	if (c->input_paused)
		return;
	if (sh->flow_n == sh->flow_cap) {
		uint32_t nc = sh->flow_cap ? sh->flow_cap * 2 : 64;
		struct conn_ref *nv = realloc(sh->flow_wait, nc * sizeof *nv);
		if (!nv)
			return; /* not paused: the backlog just grows further */
		sh->flow_wait = nv;
		sh->flow_cap = nc;
	}
	sh->flow_wait[sh->flow_n++] = (struct conn_ref){ c->slot, c->gen };
	conn_pause_flow(sh, c);
}

/* Once the backlog is down to a quarter of --max-shard-backlog, every
 * input paused for it reads again, the packet it stopped at first
 * (conn_resume_input offers what was kept before reading more). */
static void flow_resume(struct shard *sh)
{
	if (!sh->flow_n || sh->backlog_total > sh->cfg->max_shard_backlog / 4)
		return;
	struct conn_ref *w = sh->flow_wait;
	uint32_t n = sh->flow_n;
	/* a connection may pause again while being resumed: a fresh list */
	sh->flow_wait = NULL;
	sh->flow_n = sh->flow_cap = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct conn *c = shard_conn(sh, w[i].slot, w[i].gen);
		if (!c || !c->input_paused)
			continue;
		conn_resume_input(sh, c);
	}
	free(w);
}

static void flush_backlogs(struct shard *sh)
{
	for (int to = 0; to < sh->rt->n; to++) {
		uint32_t n = sh->backlog_n[to], i = 0;
		if (!n)
			continue;
		struct spsc *q = ring_to(sh->rt, to, sh->id);
		while (i < n && spsc_push_mt(q, &sh->backlog[to][i]) == 0)
			i++;
		if (i) {
			memmove(sh->backlog[to], sh->backlog[to] + i, (n - i) * sizeof(struct xmsg));
			sh->backlog_n[to] = n - i;
			sh->backlog_total -= i;
			sh->wake_mask |= 1ull << to;
		}
	}
}

static void send_wakes(struct shard *sh)
{
	uint64_t m = sh->wake_mask;
	sh->wake_mask = 0;
	while (m) {
		int to = __builtin_ctzll(m);
		m &= m - 1;
		if (to == sh->id)
			continue; /* drained at the start of our next turn */
		if (spsc_should_wake_mt(ring_to(sh->rt, to, sh->id)))
			sh->io->wake(sh, &sh->rt->shards[to]);
	}
}

int rt_post_external_mt(struct broker_rt *rt, int to, const struct xmsg *m)
{
	struct spsc *q = ring_to(rt, to, rt->n);
	int rc = spsc_push_mt(q, m);
	if (rc == 0 && spsc_should_wake_mt(q)) {
		uint64_t one = 1;
		ssize_t w = write(rt->shards[to].eventfd, &one, sizeof one);
		(void)w;
	}
	return rc;
}

static bool has_backlog(struct shard *sh)
{
	for (int to = 0; to < sh->rt->n; to++)
		if (sh->backlog_n[to])
			return true;
	return false;
}

static void drain_rings(struct shard *sh)
{
	struct broker_rt *rt = sh->rt;
	struct xmsg m;
	/* The outside ring (the registrar's) first: what it posted before
	 * answering an admin request (an unbinding, a revocation) must be in
	 * force for a connection another shard hands over in the same turn,
	 * which the requester may have opened after the answer. */
	for (int i = 0; i <= rt->n; i++) {
		int from = i == 0 ? rt->n : i - 1;
		struct spsc *q = ring_to(rt, sh->id, from);
		spsc_arm_mt(q);
		/* Bounded per turn so a flooding peer cannot starve our clients;
		 * leftovers make the next wait non-blocking. */
		for (int k = 0; k < 1024 && spsc_pop_mt(q, &m); k++)
			sh->ops->on_xmsg(sh, &m);
	}
}

static bool rings_pending(struct shard *sh)
{
	struct broker_rt *rt = sh->rt;
	for (int from = 0; from <= rt->n; from++) {
		struct spsc *q = ring_to(rt, sh->id, from);
		if (atomic_load_explicit(&q->tail, memory_order_acquire) !=
		    atomic_load_explicit(&q->head, memory_order_relaxed))
			return true;
	}
	return false;
}

/* ---- connections ---- */

struct conn *shard_conn(struct shard *sh, uint32_t slot, uint32_t gen)
{
	if (slot >= sh->n_slots)
		return NULL;
	struct conn *c = sh->conns[slot];
	return c && c->gen == gen ? c : NULL;
}

static struct conn *conn_new(struct shard *sh, int fd)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	uint32_t slot;
	if (sh->n_free) {
		slot = sh->free_slots[--sh->n_free];
	} else {
		if (sh->n_slots == sh->cap_slots) {
			uint32_t nc = sh->cap_slots ? sh->cap_slots * 2 : 1024;
			if (nc > 0xffffff) {
				free(c);
				return NULL;
			}
			struct conn **nv = realloc(sh->conns, nc * sizeof *nv);
			uint32_t *nf = realloc(sh->free_slots, nc * sizeof *nf);
			if (nv)
				sh->conns = nv;
			if (nf)
				sh->free_slots = nf;
			if (!nv || !nf) {
				free(c);
				return NULL;
			}
			sh->cap_slots = nc;
		}
		slot = sh->n_slots++;
		sh->conns[slot] = NULL;
	}
	static __thread uint32_t gen_seq;
	c->slot = slot;
	c->gen = ++gen_seq;
	c->fd = fd;
	c->opened_ms = sh->now_ms;
	sh->conns[slot] = c;
	sh->n_conns++;
	atomic_store_explicit(&sh->stats.conns, sh->n_conns, memory_order_relaxed);
	return c;
}

static void out_drop_all(struct shard *sh, struct conn *c);

/* ---- direct descriptors ---- */

static void count_direct(struct shard *sh, int d)
{
	atomic_store_explicit(&sh->stats.direct,
			      atomic_load_explicit(&sh->stats.direct, memory_order_relaxed) + (uint64_t)(int64_t)d,
			      memory_order_relaxed);
}

/* Give a table entry back. Nothing of ours is in flight on it any more;
 * SQEs run in order, so a later allocation cannot race the close. */
static void direct_close(struct shard *sh, int index)
{
	struct io_uring_sqe *sqe = shard_sqe(sh);
	if (!sqe)
		return; /* the entry leaks until the ring goes */
	io_uring_prep_close_direct(sqe, (unsigned)index);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, io_ud(OP_CANCEL, 0, 0));
}

static void cancel_op(struct shard *sh, uint64_t ud)
{
	struct io_uring_sqe *sqe = shard_sqe(sh);
	if (!sqe)
		return;
	io_uring_prep_cancel64(sqe, ud, 0);
	io_uring_sqe_set_data64(sqe, io_ud(OP_CANCEL, 0, 0));
}

static void fd_close(struct shard *sh, int fd, bool direct)
{
	if (fd < 0)
		return;
	if (direct)
		direct_close(sh, fd);
	else
		close(fd);
}

static uint64_t xfer_ud(enum io_op op, struct conn_xfer *x)
{
	/* user-space pointers fit in 56 bits */
	return (uint64_t)op | ((uint64_t)(uintptr_t)x << 8);
}

static struct conn_xfer *ud_xfer(uint64_t ud)
{
	return (struct conn_xfer *)(uintptr_t)(ud >> 8);
}

/* Take c off the flush list (it is short: the connections written to in
 * this turn). */
static void dirty_unlink(struct shard *sh, struct conn *c)
{
	uint32_t *link = &sh->dirty_head;
	while (*link) {
		struct conn *x = sh->conns[*link - 1];
		if (x == c) {
			*link = c->dirty_next;
			break;
		}
		link = &x->dirty_next;
	}
	c->dirty = false;
}

static void conn_free(struct shard *sh, struct conn *c, bool exported)
{
	if (c->dirty)
		dirty_unlink(sh, c);
	if (!exported) {
		if (sh->ops->on_closed)
			sh->ops->on_closed(sh, c);
		if (c->tr && c->tr->on_free)
			c->tr->on_free(sh, c);
		fd_close(sh, c->fd, c->direct);
		atomic_fetch_sub_explicit(&sh->rt->conn_count, 1, memory_order_relaxed);
	}
	if (c->direct)
		count_direct(sh, -1);
	out_drop_all(sh, c);
	free(c->segs);
	free(c->in);
	free(c->raw);
	free(c->iov_big);
	free(c->tx);
	sh->conns[c->slot] = NULL;
	sh->free_slots[sh->n_free++] = c->slot;
	sh->n_conns--;
	atomic_store_explicit(&sh->stats.conns, sh->n_conns, memory_order_relaxed);
	free(c);
}

/* Free the connection once the kernel holds nothing of it. */
static void conn_maybe_free(struct shard *sh, struct conn *c)
{
	if (c->inflight)
		return;
	if (c->state == CONN_SHUTDOWN) {
		conn_free(sh, c, false);
	} else if (c->state == CONN_DETACHING) {
		void (*cb)(struct shard *, struct conn *) = c->detach_cb;
		c->detach_cb = NULL;
		cb(sh, c);
		/* a callback that could not export it leaves the socket here:
		 * then this is an ordinary close */
		conn_free(sh, c, c->fd < 0);
	}
}

static void conn_shutdown(struct shard *sh, struct conn *c)
{
	if (c->state == CONN_SHUTDOWN)
		return;
	c->state = CONN_SHUTDOWN;
	/* Wakes any recv or send the kernel holds for this socket. */
	if (!c->direct) {
		shutdown(c->fd, SHUT_RDWR);
	} else {
		/* No IORING_OP_SHUTDOWN: it always runs in an io-wq worker and
		 * looks the index up there, by when close_direct may have given
		 * the index to a new connection. Cancel our operations instead;
		 * close_direct then drops the last reference (FIN). */
		if (c->recv_armed)
			cancel_op(sh, io_ud(OP_RECV, c->slot, c->gen));
		if (c->send_inflight)
			cancel_op(sh, io_ud(OP_SEND, c->slot, c->gen));
	}
	conn_maybe_free(sh, c);
}

void conn_close(struct shard *sh, struct conn *c, bool flush)
{
	if (c->state == CONN_SHUTDOWN || c->state == CONN_DETACHING)
		return;
	if (flush && c->out_queued > 0) {
		if (c->state != CONN_CLOSING) {
			c->state = CONN_CLOSING;
			c->close_deadline_ms = sh->now_ms + 2000;
			shard_timer(sh, c->close_deadline_ms, 0, c->slot, c->gen);
		}
		return;
	}
	conn_shutdown(sh, c);
}

void conn_pause_input(struct shard *sh, struct conn *c)
{
	if (c->input_paused)
		return;
	c->input_paused = true;
	/* A multishot recv would go on reading into c->in: end it, so the
	 * socket's buffer fills and TCP holds the peer back. What was read
	 * already is kept; the recv is armed again on resume. */
	if (c->recv_armed && c->state == CONN_OPEN)
		cancel_op(sh, io_ud(OP_RECV, c->slot, c->gen));
}

/* Offer what waits in c->in to the layer above; the caller holds c. */
static void offer_kept(struct shard *sh, struct conn *c)
{
	if (c->state != CONN_OPEN || c->in_len == 0)
		return;
	uint32_t used = sh->ops->on_input(sh, c, c->in, c->in_len);
	if (c->in) {
		if (used > c->in_len)
			used = c->in_len;
		memmove(c->in, c->in + used, c->in_len - used);
		c->in_len -= used;
	}
}

void conn_resume_input(struct shard *sh, struct conn *c)
{
	if (!c->input_paused)
		return;
	c->input_paused = false;
	if (c->state != CONN_OPEN)
		return;
	if (c->recv_armed) {
		/* the recv the pause cancelled has not ended yet, and the
		 * compat backend's lands in c->in itself: leave c->in alone
		 * until it has (on_recv_cqe offers it then) */
		c->reoffer = true;
		return;
	}
	c->inflight++; /* hold c while the layer above looks at it */
	offer_kept(sh, c);
	c->inflight--;
	if (c->state == CONN_OPEN && !c->input_paused && !c->recv_armed)
		sh->io->arm_recv(sh, c);
	else
		conn_maybe_free(sh, c);
}

static int in_reserve(struct conn *c, uint32_t extra)
{
	if (c->in_len + extra <= c->in_cap)
		return 0;
	uint32_t nc = c->in_cap ? c->in_cap : 4096;
	while (nc < c->in_len + extra)
		nc *= 2;
	uint8_t *nb = realloc(c->in, nc);
	if (!nb)
		return -ENOMEM;
	c->in = nb;
	c->in_cap = nc;
	return 0;
}

/* Offer input to the layer above: zero-copy from the kernel's buffer when
 * nothing is pending, else through c->in. Used by transports too. */
int conn_deliver_input(struct shard *sh, struct conn *c, const uint8_t *p, uint32_t n)
{
	if (c->in_len == 0) {
		uint32_t used = sh->ops->on_input(sh, c, p, n);
		if (used >= n || (c->state != CONN_OPEN && c->state != CONN_DETACHING))
			return 0;
		p += used;
		n -= used;
		if (in_reserve(c, n) != 0)
			return -ENOMEM;
		memcpy(c->in, p, n);
		c->in_len = n;
		return 0;
	}
	if (in_reserve(c, n) != 0)
		return -ENOMEM;
	memcpy(c->in + c->in_len, p, n);
	c->in_len += n;
	uint32_t used = sh->ops->on_input(sh, c, c->in, c->in_len);
	if (used > c->in_len)
		used = c->in_len;
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;
	if (c->in_len == 0 && c->in_cap > 65536) {
		free(c->in);
		c->in = NULL;
		c->in_cap = 0;
	}
	return 0;
}

/* ---- output ---- */

static int seg_push(struct conn *c, const struct outseg *s)
{
	if (c->seg_n == c->seg_cap) {
		struct outseg *ns = fifo_grow(c->segs, &c->seg_cap, &c->seg_head, c->seg_n,
					      sizeof *ns, 16);
		if (!ns)
			return -ENOMEM;
		c->segs = ns;
	}
	c->segs[(c->seg_head + c->seg_n) % c->seg_cap] = *s;
	c->seg_n++;
	return 0;
}

static struct outseg *seg_last(struct conn *c)
{
	return c->seg_n ? &c->segs[(c->seg_head + c->seg_n - 1) % c->seg_cap] : NULL;
}

static void mark_dirty(struct shard *sh, struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->dirty_next = sh->dirty_head;
	sh->dirty_head = c->slot + 1;
}

uint8_t *conn_reserve(struct shard *sh, struct conn *c, uint32_t n)
{
	(void)sh;
	if (n > OUTBLK_SIZE)
		return NULL;
	struct outblk *b = c->blk_tail;
	if (!b || OUTBLK_SIZE - b->used < n) {
		b = malloc(sizeof *b);
		if (!b)
			return NULL;
		b->next = NULL;
		b->used = 0;
		b->refs = 1; /* the tail reference */
		if (c->blk_tail && --c->blk_tail->refs == 0)
			free(c->blk_tail);
		c->blk_tail = b;
	}
	return b->data + b->used;
}

void conn_commit(struct shard *sh, struct conn *c, uint32_t n)
{
	if (n == 0)
		return;
	struct outblk *b = c->blk_tail;
	const uint8_t *p = b->data + b->used;
	struct outseg *last = seg_last(c);
	/* Extend the previous segment when it ends right here: fewer iovecs.
	 * Safe even while it is in flight: the iovec kept the old length and
	 * out_consume() sends the rest later. */
	bool wire = c->tr == NULL || c->writing_wire;
	if (last && last->blk == b && last->p + last->len == p && last->wire == wire) {
		last->len += n;
	} else {
		struct outseg s = { p, n, b, NULL, wire };
		if (seg_push(c, &s) != 0)
			return; /* out of memory: the bytes are lost; caller's
				   connection will fail on the protocol level */
		b->refs++;
	}
	b->used += n;
	c->out_queued += n;
	mark_dirty(sh, c);
}

int conn_write(struct shard *sh, struct conn *c, const void *p, uint32_t n)
{
	const uint8_t *src = p;
	while (n > 0) {
		uint32_t chunk = n > OUTBLK_SIZE ? OUTBLK_SIZE : n;
		uint8_t *dst = conn_reserve(sh, c, chunk);
		if (!dst)
			return -ENOMEM;
		memcpy(dst, src, chunk);
		conn_commit(sh, c, chunk);
		src += chunk;
		n -= chunk;
	}
	return 0;
}

int conn_write_ref(struct shard *sh, struct conn *c, const void *p, uint32_t n, void *ref)
{
	if (n == 0) {
		sh->ops->release_ref(ref);
		return 0;
	}
	struct outseg s = { p, n, NULL, ref, c->tr == NULL };
	if (seg_push(c, &s) != 0) {
		sh->ops->release_ref(ref);
		return -ENOMEM;
	}
	c->out_queued += n;
	mark_dirty(sh, c);
	return 0;
}

int conn_write_wire(struct shard *sh, struct conn *c, const void *p, uint32_t n)
{
	c->writing_wire = true;
	int rc = conn_write(sh, c, p, n);
	c->writing_wire = false;
	return rc;
}

static void seg_release(struct shard *sh, struct conn *c, struct outseg *s);

int conn_encrypt_pending(struct shard *sh, struct conn *c,
			 int (*enc)(void *ctx, const uint8_t *p, uint32_t n), void *ctx)
{
	uint32_t np = 0;
	for (uint32_t i = 0; i < c->seg_n; i++)
		if (!c->segs[(c->seg_head + i) % c->seg_cap].wire)
			np++;
	if (np == 0)
		return 0;
	struct outseg *plain = malloc(np * sizeof *plain);
	if (!plain)
		return -ENOMEM;
	/* keep the wire segments in place, in order; lift the plaintext out */
	uint32_t k = 0, w = 0;
	uint32_t off0 = c->seg_off;
	for (uint32_t i = 0; i < c->seg_n; i++) {
		struct outseg *s = &c->segs[(c->seg_head + i) % c->seg_cap];
		if (s->wire) {
			c->segs[(c->seg_head + w) % c->seg_cap] = *s;
			w++;
		} else {
			if (i == 0)
				off0 = 0; /* a plaintext head is never partially sent */
			plain[k++] = *s;
			c->out_queued -= s->len;
		}
	}
	c->seg_n = w;
	c->seg_off = w ? off0 : 0;
	int rc = 0;
	for (uint32_t i = 0; i < np; i++) {
		if (rc == 0)
			rc = enc(ctx, plain[i].p, plain[i].len);
		seg_release(sh, c, &plain[i]);
	}
	free(plain);
	return rc;
}

void conn_reoffer_input(struct shard *sh, struct conn *c)
{
	if (c->state != CONN_OPEN || c->in_len == 0)
		return;
	c->inflight++; /* hold c while the layer above looks at it */
	offer_kept(sh, c);
	c->inflight--;
	conn_maybe_free(sh, c);
}

static void seg_release(struct shard *sh, struct conn *c, struct outseg *s)
{
	(void)c;
	if (s->ref)
		sh->ops->release_ref(s->ref);
	if (s->blk && --s->blk->refs == 0)
		free(s->blk);
}

static void out_drop_all(struct shard *sh, struct conn *c)
{
	while (c->seg_n) {
		seg_release(sh, c, &c->segs[c->seg_head]);
		c->seg_head = (c->seg_head + 1) % c->seg_cap;
		c->seg_n--;
	}
	if (c->blk_tail && --c->blk_tail->refs == 0)
		free(c->blk_tail);
	c->blk_tail = NULL;
	c->out_queued = 0;
}

/* Consume n sent bytes from the head of the queue. */
static void out_consume(struct shard *sh, struct conn *c, uint32_t n)
{
	c->out_queued -= n;
	while (n > 0 && c->seg_n) {
		struct outseg *s = &c->segs[c->seg_head];
		uint32_t left = s->len - c->seg_off;
		if (n < left) {
			c->seg_off += n;
			return;
		}
		n -= left;
		c->seg_off = 0;
		seg_release(sh, c, s);
		c->seg_head = (c->seg_head + 1) % c->seg_cap;
		c->seg_n--;
	}
}

/* Everything queued has been sent: an idle connection keeps no output
 * memory (its block is 16 KiB, a third of what an idle TLS connection would
 * otherwise cost). The next write allocates again, from jemalloc's
 * thread cache. */
static void out_trim(struct conn *c)
{
	if (c->blk_tail && --c->blk_tail->refs == 0)
		free(c->blk_tail);
	c->blk_tail = NULL;
	free(c->segs);
	c->segs = NULL;
	c->seg_head = c->seg_cap = c->seg_off = 0;
	free(c->iov_big);
	c->iov_big = NULL;
	free(c->tx);
	c->tx = NULL;
}

static void start_send(struct shard *sh, struct conn *c)
{
	if (c->send_inflight || c->seg_n == 0 || c->state == CONN_SHUTDOWN)
		return;
	if (c->tr && c->tr->on_flush && c->tr->on_flush(sh, c) != 0) {
		conn_shutdown(sh, c);
		return;
	}
	/* A long queue (a fan-out of small messages is two segments each)
	 * goes out in one sendmsg of up to CONN_BIG_IOV iovecs. */
	if (!c->tx && !(c->tx = malloc(sizeof *c->tx)))
		return; /* retried next turn: stays dirty */
	struct iovec *v = c->tx->iov;
	uint32_t cap = CONN_MAX_IOV;
	if (c->seg_n > CONN_MAX_IOV &&
	    (c->iov_big || (c->iov_big = malloc(CONN_BIG_IOV * sizeof *c->iov_big)))) {
		v = c->iov_big;
		cap = CONN_BIG_IOV;
	}
	uint32_t k = 0;
	for (uint32_t i = 0; i < c->seg_n && k < cap; i++, k++) {
		struct outseg *s = &c->segs[(c->seg_head + i) % c->seg_cap];
		uint32_t off = i == 0 ? c->seg_off : 0;
		v[k].iov_base = (void *)(s->p + off);
		v[k].iov_len = s->len - off;
	}
	if (k == 0)
		return;
	memset(&c->tx->mh, 0, sizeof c->tx->mh);
	c->tx->mh.msg_iov = v;
	c->tx->mh.msg_iovlen = k;
	c->sent_iov_n = k;
	struct io_uring_sqe *sqe = shard_sqe(sh);
	if (!sqe)
		return; /* retried next turn: stays dirty */
	io_uring_prep_sendmsg(sqe, c->fd, &c->tx->mh, MSG_NOSIGNAL);
	if (c->direct)
		sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, io_ud(OP_SEND, c->slot, c->gen));
	c->send_inflight = true;
	c->inflight++;
}

static void flush_dirty(struct shard *sh)
{
	uint32_t s = sh->dirty_head;
	sh->dirty_head = 0;
	while (s) {
		struct conn *c = sh->conns[s - 1];
		s = c->dirty_next; /* freed connections unlink themselves */
		c->dirty = false;
		if (c->state == CONN_SHUTDOWN || c->state == CONN_DETACHING)
			continue;
		start_send(sh, c);
		if (c->seg_n > 0 && !c->send_inflight)
			mark_dirty(sh, c); /* no SQE: try again */
	}
}

static void on_send_cqe(struct shard *sh, struct conn *c, int res)
{
	c->send_inflight = false;
	c->inflight--;
	if (res < 0 || c->state == CONN_SHUTDOWN) {
		if (c->state != CONN_SHUTDOWN)
			conn_shutdown(sh, c);
		else
			conn_maybe_free(sh, c);
		return;
	}
	atomic_store_explicit(&sh->stats.bytes_out,
			      atomic_load_explicit(&sh->stats.bytes_out, memory_order_relaxed) + (uint64_t)res,
			      memory_order_relaxed);
	out_consume(sh, c, (uint32_t)res);
	if (c->seg_n) {
		start_send(sh, c);
		return;
	}
	out_trim(c);
	if (c->state == CONN_CLOSING) {
		conn_shutdown(sh, c);
	} else if (c->state == CONN_DETACHING) {
		conn_maybe_free(sh, c);
	}
}

/* ---- recv ---- */

static void on_recv_cqe(struct shard *sh, struct conn *c, struct io_uring_cqe *cqe)
{
	/* The recv still counts in c->inflight while its bytes are handled,
	 * so a close or detach from the layer above cannot free c under us. */
	bool more = cqe->flags & IORING_CQE_F_MORE;
	int res = cqe->res;
	int bid = -1;
	if (res > 0) {
		const uint8_t *p = sh->io->recv_data(sh, c, cqe, &bid);
		atomic_store_explicit(&sh->stats.bytes_in,
				      atomic_load_explicit(&sh->stats.bytes_in, memory_order_relaxed) + (uint64_t)res,
				      memory_order_relaxed);
		if (c->tr && c->tr->on_bytes &&
		    (c->state == CONN_OPEN || c->state == CONN_DETACHING)) {
			/* a transport buffers its own input while detaching or
			 * paused */
			if (c->tr->on_bytes(sh, c, p, (uint32_t)res) != 0)
				conn_close(sh, c, true);
		} else if (c->state == CONN_OPEN || c->state == CONN_DETACHING) {
			if (c->state == CONN_DETACHING || c->input_paused) {
				/* keep the bytes for later / for the new shard */
				if (in_reserve(c, (uint32_t)res) == 0) {
					if (p != c->in + c->in_len)
						memcpy(c->in + c->in_len, p, (size_t)res);
					c->in_len += (uint32_t)res;
				}
			} else if (p == c->in + c->in_len) {
				/* compat path: the bytes landed in c->in */
				c->in_len += (uint32_t)res;
				uint32_t used = sh->ops->on_input(sh, c, c->in, c->in_len);
				if (used > c->in_len)
					used = c->in_len;
				memmove(c->in, c->in + used, c->in_len - used);
				c->in_len -= used;
			} else if (conn_deliver_input(sh, c, p, (uint32_t)res) != 0) {
				conn_close(sh, c, false);
			}
		}
		if (bid >= 0)
			sh->io->recycle(sh, bid);
	} else if (res == -ENOBUFS) {
		/* ring buffers exhausted: re-arm below */
	} else if (res == 0 || (res < 0 && res != -ECANCELED && res != -EINTR)) {
		/* peer closed or error */
		if (c->state == CONN_OPEN || c->state == CONN_CLOSING)
			conn_shutdown(sh, c);
	}
	if (!more) {
		c->recv_armed = false;
		if (c->reoffer && c->state == CONN_OPEN && !c->input_paused) {
			/* resumed while this recv was ending (conn_resume_input) */
			c->reoffer = false;
			offer_kept(sh, c);
		}
		c->inflight--;
		if (c->state == CONN_OPEN && !c->input_paused && !c->recv_armed)
			sh->io->arm_recv(sh, c);
		else
			conn_maybe_free(sh, c);
	}
}

/* ---- accept / adopt ---- */

static void conn_started(struct shard *sh, struct conn *c)
{
	c->inflight++; /* hold c while the layer above looks at it */
	sh->ops->on_open(sh, c);
	c->inflight--;
	if (c->state == CONN_OPEN && !c->recv_armed && !c->input_paused)
		sh->io->arm_recv(sh, c);
	else
		conn_maybe_free(sh, c);
}

/* See core/shard.h. */
const char *conn_peer_text(const struct conn *c, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (c->peer.sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &c->peer.in4.sin_addr, host, sizeof host);
		snprintf(buf, len, "%s:%u", host, ntohs(c->peer.in4.sin_port));
	} else if (c->peer.sa.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &c->peer.in6.sin6_addr, host, sizeof host);
		snprintf(buf, len, "[%s]:%u", host, ntohs(c->peer.in6.sin6_port));
	} else {
		snprintf(buf, len, "unknown");
	}
	return buf;
}

/* Move an accepted socket into the ring's table, so that the process
 * holds a descriptor only while a connection is being accepted. The
 * connection starts when that is done (on_install_cqe). */
static bool install_direct(struct shard *sh, struct conn *c)
{
	struct io_uring_sqe *sqe = shard_sqe(sh);
	if (!sqe)
		return false;
	c->install_fd = c->fd;
	direct_prep_install(sqe, &c->install_fd);
	io_uring_sqe_set_data64(sqe, io_ud(OP_INSTALL, c->slot, c->gen));
	c->inflight++;
	return true;
}

static void on_install_cqe(struct shard *sh, struct conn *c, int res)
{
	c->inflight--;
	if (res == 1) {
		close(c->fd);
		c->fd = c->install_fd;
		c->direct = true;
		count_direct(sh, 1);
	} else if (log_limit_ok(&sh->noisy, sh->now_ms, 5, 10000)) {
		log_warn("cannot install a connection in the direct descriptor table (%s): it keeps a regular descriptor",
			 strerror(-res));
	}
	if (c->state == CONN_OPEN)
		conn_started(sh, c);
	else
		conn_maybe_free(sh, c);
}

static void on_accept_cqe(struct shard *sh, int li, struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	if (!more)
		sh->accept_armed[li] = false;
	int fd = cqe->res;
	if (fd >= 0) {
		uint32_t now = atomic_fetch_add_explicit(&sh->rt->conn_count, 1, memory_order_relaxed);
		struct conn *c = NULL;
		if (now >= sh->cfg->max_connections || sh->stopping ||
		    !(c = conn_new(sh, fd))) {
			atomic_fetch_sub_explicit(&sh->rt->conn_count, 1, memory_order_relaxed);
			atomic_store_explicit(&sh->stats.refused,
					      atomic_load_explicit(&sh->stats.refused, memory_order_relaxed) + 1,
					      memory_order_relaxed);
			if (log_limit_ok(&sh->noisy, sh->now_ms, 5, 10000))
				log_warn("refusing connection: %s", sh->stopping ? "shutting down" : "max-connections reached");
			close(fd);
		} else {
			atomic_store_explicit(&sh->stats.accepted,
					      atomic_load_explicit(&sh->stats.accepted, memory_order_relaxed) + 1,
					      memory_order_relaxed);
			c->listener = (uint8_t)li;
			socklen_t al = sizeof c->peer;
			getpeername(fd, &c->peer.sa, &al);
			if (!sh->rt->direct_table || !install_direct(sh, c))
				conn_started(sh, c);
		}
	} else if ((fd == -EMFILE || fd == -ENFILE) && !sh->stopping) {
		/* Out of descriptors: the connection stays in the listen
		 * backlog, and accepting again at once would only spin. Try
		 * again a little later, when some may have been closed. */
		if (log_limit_ok(&sh->noisy, sh->now_ms, 5, 10000))
			log_warn("accept: %s: new connections wait", strerror(-fd));
		struct io_uring_sqe *sqe = sh->accept_armed[li] ? NULL : shard_sqe(sh);
		if (sqe) {
			static struct __kernel_timespec backoff = { 0, 100 * 1000000 };
			io_uring_prep_timeout(sqe, &backoff, 0, 0);
			io_uring_sqe_set_data64(sqe, io_ud(OP_ACCEPT_AGAIN, (uint32_t)li, 0));
			sh->accept_armed[li] = true;
		}
	} else if (fd != -ECANCELED && fd != -EAGAIN && fd != -EINTR && !sh->stopping) {
		if (log_limit_ok(&sh->noisy, sh->now_ms, 5, 10000))
			log_warn("accept: %s", strerror(-fd));
	}
	if (!sh->accept_armed[li] && !sh->stopping)
		sh->io->arm_accept(sh, li);
}

int conn_detach(struct shard *sh, struct conn *c, void (*cb)(struct shard *sh, struct conn *c))
{
	if (c->state != CONN_OPEN)
		return -EINVAL;
	c->state = CONN_DETACHING;
	c->detach_cb = cb;
	if (c->recv_armed)
		cancel_op(sh, io_ud(OP_RECV, c->slot, c->gen));
	/* freed (and cb called) when the in-flight recv ends: never from
	 * inside the caller's stack */
	return 0;
}

void conn_export(struct shard *sh, struct conn *c, struct conn_xfer *x)
{
	(void)sh;
	memset(x, 0, sizeof *x);
	x->fd = c->fd;
	x->direct = c->direct;
	x->listener = c->listener;
	x->peer = c->peer;
	x->in = c->in;
	x->in_len = c->in_len;
	x->in_cap = c->in_cap;
	x->tr = c->tr;
	x->tr_ctx = c->tr_ctx;
	x->upper = c->upper;
	x->opened_ms = c->opened_ms;
	c->in = NULL;
	c->in_len = c->in_cap = 0;
	c->fd = -1;
	c->tr = NULL;
	c->tr_ctx = NULL;
	c->upper = NULL;
}

int shard_adopt(struct shard *sh, struct conn_xfer *x)
{
	struct conn *c = sh->stopping ? NULL : conn_new(sh, x->fd);
	if (!c) {
		fd_close(sh, x->fd, x->direct);
		atomic_fetch_sub_explicit(&sh->rt->conn_count, 1, memory_order_relaxed);
		free(x->in);
		return -ENOMEM;
	}
	c->direct = x->direct;
	if (c->direct)
		count_direct(sh, 1);
	c->listener = x->listener;
	c->peer = x->peer;
	c->tr = x->tr;
	c->tr_ctx = x->tr_ctx;
	c->upper = x->upper;
	c->opened_ms = x->opened_ms;
	uint8_t *pending = x->in;
	uint32_t n = x->in_len;
	c->inflight++; /* hold c while the layer above looks at it */
	sh->ops->on_open(sh, c);
	if (n && c->state == CONN_OPEN)
		conn_deliver_input(sh, c, pending, n);
	free(pending);
	/* a transport may hold input that arrived while the connection moved */
	if (c->state == CONN_OPEN && c->tr && c->tr->on_bytes && c->tr->on_bytes(sh, c, NULL, 0) != 0)
		conn_close(sh, c, true);
	c->inflight--;
	if (c->state == CONN_OPEN && !c->recv_armed && !c->input_paused)
		sh->io->arm_recv(sh, c);
	else
		conn_maybe_free(sh, c);
	return 0;
}

int shard_post_conn(struct shard *sh, int to, const struct xmsg *m, struct conn_xfer *x,
		    void (*discard)(const struct xmsg *m))
{
	if (!x->direct)
		return shard_post(sh, to, m);
	x->msg = *m;
	x->discard = discard;
	/* The MSG_RING and the close of our entry, linked: the close only
	 * once the target holds the file, and none if the move fails (then
	 * on_xfer_sent cleans up). Both SQEs in one submission. */
	if (io_uring_sq_space_left(&sh->ring) < 2)
		io_uring_submit(&sh->ring);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);
	struct io_uring_sqe *cl = sqe ? io_uring_get_sqe(&sh->ring) : NULL;
	if (!cl) {
		if (sqe) /* give the first back as a no-op */
			io_uring_prep_nop(sqe);
		if (sqe)
			io_uring_sqe_set_data64(sqe, io_ud(OP_CANCEL, 0, 0));
		direct_close(sh, x->fd);
		x->fd = -1;
		return -EBUSY;
	}
	direct_prep_send(sqe, sh->rt->shards[to].ring_fd, x->fd, xfer_ud(OP_ADOPT, x));
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe, xfer_ud(OP_XFER_SENT, x));
	io_uring_prep_close_direct(cl, (unsigned)x->fd);
	cl->flags |= IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(cl, io_ud(OP_CANCEL, 0, 0));
	/* last touch of x here unless the move fails */
	atomic_store_explicit(&x->sent, 1, memory_order_release);
	return 0;
}

/* Our MSG_RING of a connection completed. On success the target owns x
 * (do not touch it). On failure the target never saw it. */
static void on_xfer_sent(struct shard *sh, struct conn_xfer *x, int res)
{
	if (res >= 0)
		return;
	if (log_limit_ok(&sh->noisy, sh->now_ms, 5, 10000))
		log_warn("closing a connection that could not move to its home shard: %s%s", strerror(-res),
			 res == -ENFILE ? " (its direct descriptor table is full)" : "");
	direct_close(sh, x->fd); /* the linked close was cancelled */
	x->fd = -1;
	atomic_fetch_sub_explicit(&sh->rt->conn_count, 1, memory_order_relaxed);
	struct xmsg m = x->msg;
	x->discard(&m);
}

/* A moved descriptor is in our table at index res: now the message that
 * carries the rest of the connection is delivered. */
static void on_adopt_cqe(struct shard *sh, struct conn_xfer *x, int res)
{
	(void)atomic_load_explicit(&x->sent, memory_order_acquire);
	if (res < 0) { /* not posted by the kernel: only successes are */
		x->fd = -1;
		struct xmsg m = x->msg;
		x->discard(&m);
		return;
	}
	x->fd = res;
	struct xmsg m = x->msg;
	sh->ops->on_xmsg(sh, &m);
}

/* ---- the loop ---- */

static void arm_eventfd(struct shard *sh)
{
	if (sh->eventfd_armed)
		return;
	struct io_uring_sqe *sqe = shard_sqe(sh);
	if (!sqe)
		return;
	io_uring_prep_read(sqe, sh->eventfd, &sh->eventfd_val, sizeof sh->eventfd_val, 0);
	io_uring_sqe_set_data64(sqe, io_ud(OP_EVENTFD, 0, 0));
	sh->eventfd_armed = true;
}

static void dispatch(struct shard *sh, struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	if (ud == LIBURING_UDATA_TIMEOUT)
		return;
	enum io_op op = (enum io_op)(ud & 0xff);
	uint32_t slot = (uint32_t)(ud >> 8) & 0xffffff;
	uint32_t gen = (uint32_t)(ud >> 32);
	switch (op) {
	case OP_ACCEPT:
		on_accept_cqe(sh, (int)slot, cqe);
		return;
	case OP_WAKE:
	case OP_CANCEL:
		return;
	case OP_ADOPT:
		on_adopt_cqe(sh, ud_xfer(ud), cqe->res);
		return;
	case OP_ACCEPT_AGAIN:
		sh->accept_armed[slot] = false;
		if (!sh->stopping)
			sh->io->arm_accept(sh, (int)slot);
		return;
	case OP_XFER_SENT:
		on_xfer_sent(sh, ud_xfer(ud), cqe->res);
		return;
	case OP_INSTALL: {
		struct conn *c = shard_conn(sh, slot, gen);
		if (c)
			on_install_cqe(sh, c, cqe->res);
		return;
	}
	case OP_EVENTFD:
		sh->eventfd_armed = false;
		arm_eventfd(sh);
		return;
	case OP_RECV:
	case OP_SEND: {
		struct conn *c = shard_conn(sh, slot, gen);
		if (!c) {
			/* a buffer picked for a dead connection goes back */
			if (op == OP_RECV && (cqe->flags & IORING_CQE_F_BUFFER) && sh->bufring)
				sh->io->recycle(sh, (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
			return;
		}
		if (op == OP_RECV)
			on_recv_cqe(sh, c, cqe);
		else
			on_send_cqe(sh, c, cqe->res);
		return;
	}
	}
}

static void run_timers(struct shard *sh)
{
	struct timer_ent t;
	while (timer_pop_due(&sh->timers, sh->now_ms, &t)) {
		if (t.kind == 0) {
			/* core: close deadline of a flushing connection */
			struct conn *c = shard_conn(sh, t.id, t.gen);
			if (c && c->state == CONN_CLOSING && sh->now_ms >= c->close_deadline_ms)
				conn_shutdown(sh, c);
			continue;
		}
		sh->ops->on_timer(sh, &t);
	}
}

static void shard_turn(struct shard *sh, bool block)
{
	struct io_uring_cqe *cqes[CQE_BATCH];
	uint64_t next = timer_next(&sh->timers);
	bool busy = !block || rings_pending(sh) || sh->dirty_head;
	struct __kernel_timespec ts = { 0, 0 };
	if (!busy && has_backlog(sh)) {
		/* Only messages for a shard whose ring is full: it frees room
		 * at its own pace and does not wake us, so look again in a
		 * moment rather than spin a core on it. */
		ts.tv_nsec = BACKLOG_RETRY_NS;
	} else if (!busy && next != UINT64_MAX) {
		uint64_t d = next > sh->now_ms ? next - sh->now_ms : 0;
		ts.tv_sec = (long long)(d / 1000);
		ts.tv_nsec = (long long)(d % 1000) * 1000000;
	} else if (!busy) {
		ts.tv_sec = 1;
	}
	struct io_uring_cqe *first;
	if (busy)
		io_uring_submit_and_get_events(&sh->ring);
	else
		io_uring_submit_and_wait_timeout(&sh->ring, &first, 1, &ts, NULL);
	uint64_t t0 = time_now_ms();
	sh->now_ms = t0;
	unsigned n = io_uring_peek_batch_cqe(&sh->ring, cqes, CQE_BATCH);
	/* Copy, so the CQ can be released before dispatching (handlers may
	 * submit). */
	struct io_uring_cqe local[CQE_BATCH];
	for (unsigned i = 0; i < n; i++)
		local[i] = *cqes[i];
	io_uring_cq_advance(&sh->ring, n);
	drain_rings(sh);
	for (unsigned i = 0; i < n; i++)
		dispatch(sh, &local[i]);
	run_timers(sh);
	if (sh->ops->on_turn_end)
		sh->ops->on_turn_end(sh);
	flush_dirty(sh);
	flush_backlogs(sh);
	flow_resume(sh);
	send_wakes(sh);
	atomic_store_explicit(&sh->stats.backlog, sh->backlog_total, memory_order_relaxed);
	atomic_store_explicit(&sh->stats.turns,
			      atomic_load_explicit(&sh->stats.turns, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static void *shard_main(void *arg)
{
	struct shard *sh = arg;
	char name[24];
	snprintf(name, sizeof name, "shard %d", sh->id);
	log_set_thread_name(name);
	sh->now_ms = time_now_ms();
	if (sh->io->setup(sh) != 0) {
		log_error("shard %d: io_uring setup failed", sh->id);
		atomic_fetch_add(&sh->rt->ready, 1000);
		return NULL;
	}
	sh->ring_fd = sh->ring.ring_fd;
	if (sh->rt->direct_table) {
		int rc = io_uring_register_files_sparse(&sh->ring, sh->rt->direct_table);
		if (rc != 0) {
			/* the start-up probe passed: every shard must have a
			 * table, or connections could not move between them */
			log_error("shard %d: cannot register a direct descriptor table of %u: %s",
				  sh->id, sh->rt->direct_table, strerror(-rc));
			atomic_fetch_add(&sh->rt->ready, 1000);
			return NULL;
		}
		log_info("shard %d: direct descriptors (a ring file table of %u entries)", sh->id,
			 sh->rt->direct_table);
	} else {
		log_info("shard %d: regular descriptors (%s)", sh->id, sh->rt->direct_why);
	}
	arm_eventfd(sh);
	for (int li = 0; li < sh->cfg->n_listeners; li++)
		sh->io->arm_accept(sh, li);
	io_uring_submit(&sh->ring);
	if (sh->ops->on_start)
		sh->ops->on_start(sh);
	atomic_fetch_add(&sh->rt->ready, 1);
	/* Nothing is handled before every shard has its ring_fd and its
	 * descriptor table: a connection accepted now may move to any of
	 * them (and a wake-up goes to its ring_fd). */
	while (atomic_load(&sh->rt->ready) < sh->rt->n)
		usleep(100);
	sh->running = true;
	int phase_seen = 0;
	for (;;) {
		int phase = atomic_load(&sh->rt->phase);
		if (phase > phase_seen) {
			phase_seen = phase;
			sh->stopping = phase;
			if (phase == 1) {
				for (int li = 0; li < sh->cfg->n_listeners; li++)
					if (sh->listen_fds[li] >= 0)
						shutdown(sh->listen_fds[li], SHUT_RDWR);
			}
			if (sh->ops->on_shutdown)
				sh->ops->on_shutdown(sh, phase);
			if (phase == 2) {
				for (uint32_t s = 0; s < sh->n_slots; s++)
					if (sh->conns[s])
						conn_close(sh, sh->conns[s], true);
			}
			atomic_fetch_add(&sh->rt->phase_done, 1);
		}
		if (phase_seen >= 2 && sh->n_conns == 0 && !rings_pending(sh))
			break;
		shard_turn(sh, true);
	}
	if (sh->ops->on_stop)
		sh->ops->on_stop(sh);
	return NULL;
}

static int make_listener(const struct vouch_listener *l, char *err, size_t errlen)
{
	int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "vouchd: socket: %s", strerror(errno));
		return -errno;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	/* inherited by accepted sockets: no per-accept setsockopt */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) != 0 || listen(fd, 4096) != 0) {
		int e = errno;
		snprintf(err, errlen, "vouchd: cannot listen on %s: %s", l->text, strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

static bool kernel_at_least(int maj, int min)
{
	struct utsname u;
	if (uname(&u) != 0)
		return false;
	int a = 0, b = 0;
	sscanf(u.release, "%d.%d", &a, &b);
	return a > maj || (a == maj && b >= min);
}

int rt_init(struct broker_rt *rt, const struct vouch_config *cfg, const struct shard_ops *ops,
	    char *err, size_t errlen)
{
	memset(rt, 0, sizeof *rt);
	rt->cfg = cfg;
	rt->ops = ops;
	rt->n = cfg->shards;
	rt->started_ms = time_now_ms();
	rt->started_wall = time_wall_s();
	/* The fast path needs multishot recv with ring buffers (6.0) and
	 * MSG_RING (5.18); the probe confirms the opcode. */
	rt->fast_io = !cfg->io_compat && kernel_at_least(6, 0);
	if (rt->fast_io) {
		struct io_uring_probe *p = io_uring_get_probe();
		if (!p || !io_uring_opcode_supported(p, IORING_OP_MSG_RING))
			rt->fast_io = false;
		if (p)
			io_uring_free_probe(p);
	}
	/* Direct descriptors only on the fast path: --io-compat 5.10 keeps
	 * regular descriptors. */
	rt->direct_why = cfg->io_compat ? "forced by --io-compat" : "the kernel lacks the fast io_uring paths";
	if (rt->fast_io)
		rt->direct_table = direct_probe(cfg, cfg->shards, &rt->direct_why);
	rt->io_desc = rt->fast_io
		? "io_uring fast path: multishot accept, multishot recv with ring-provided buffers, MSG_RING wake-ups"
		: cfg->io_compat ? "io_uring Linux 5.10 paths (forced by --io-compat): single-shot accept and recv, eventfd wake-ups"
				 : "io_uring Linux 5.10 paths (kernel lacks the fast ones): single-shot accept and recv, eventfd wake-ups";
	rt->shards = calloc((size_t)rt->n, sizeof *rt->shards);
	rt->rings = calloc((size_t)rt->n * (size_t)(rt->n + 1), sizeof *rt->rings);
	if (!rt->shards || !rt->rings) {
		snprintf(err, errlen, "vouchd: out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < rt->n * (rt->n + 1); i++)
		if (spsc_init(&rt->rings[i], XRING_CAP) != 0) {
			snprintf(err, errlen, "vouchd: out of memory");
			return -ENOMEM;
		}
	for (int i = 0; i < rt->n; i++) {
		struct shard *sh = &rt->shards[i];
		sh->id = i;
		sh->rt = rt;
		sh->cfg = cfg;
		sh->ops = ops;
		sh->io = rt->fast_io ? &io_fast : &io_compat;
		sh->eventfd = eventfd(0, EFD_CLOEXEC);
		if (sh->eventfd < 0) {
			snprintf(err, errlen, "vouchd: eventfd: %s", strerror(errno));
			return -errno;
		}
		for (int li = 0; li < VOUCH_MAX_LISTENERS; li++)
			sh->listen_fds[li] = -1;
		for (int li = 0; li < cfg->n_listeners; li++) {
			int fd = make_listener(&cfg->listeners[li], err, errlen);
			if (fd < 0)
				return fd;
			sh->listen_fds[li] = fd;
		}
	}
	return 0;
}

int rt_start(struct broker_rt *rt)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	for (int i = 0; i < rt->n; i++) {
		struct shard *sh = &rt->shards[i];
		if (pthread_create(&sh->thread, NULL, shard_main, sh) != 0)
			return -errno;
		if (ncpu > 0) {
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET(i % ncpu, &set);
			pthread_setaffinity_np(sh->thread, sizeof set, &set);
		}
	}
	while (atomic_load(&rt->ready) < rt->n)
		usleep(1000);
	return atomic_load(&rt->ready) >= 1000 ? -EIO : 0;
}

static void wake_all(struct broker_rt *rt)
{
	for (int i = 0; i < rt->n; i++) {
		uint64_t one = 1;
		ssize_t w = write(rt->shards[i].eventfd, &one, sizeof one);
		(void)w;
	}
}

void rt_stop(struct broker_rt *rt)
{
	for (int phase = 1; phase <= 2; phase++) {
		atomic_store(&rt->phase_done, 0);
		atomic_store(&rt->phase, phase);
		wake_all(rt);
		for (int k = 0; k < 5000 && atomic_load(&rt->phase_done) < rt->n; k++)
			usleep(1000);
		/* let phase-1 work (wills crossing shards) be delivered */
		if (phase == 1)
			usleep(50000);
	}
	for (int i = 0; i < rt->n; i++) {
		wake_all(rt);
		pthread_join(rt->shards[i].thread, NULL);
	}
}

/* Moves still in a stopped shard's completion queue: their transfers are
 * freed (the table entries go with the ring). */
static void drop_moves_in_flight(struct shard *sh)
{
	struct io_uring_cqe *cqe;
	while (io_uring_peek_cqe(&sh->ring, &cqe) == 0) {
		uint64_t ud = cqe->user_data;
		int res = cqe->res;
		io_uring_cqe_seen(&sh->ring, cqe);
		enum io_op op = (enum io_op)(ud & 0xff);
		if (ud == LIBURING_UDATA_TIMEOUT ||
		    !(op == OP_ADOPT || (op == OP_XFER_SENT && res < 0)))
			continue;
		struct conn_xfer *x = ud_xfer(ud);
		x->fd = -1;
		struct xmsg m = x->msg;
		x->discard(&m);
	}
}

void rt_destroy(struct broker_rt *rt)
{
	for (int i = 0; i < rt->n; i++)
		if (rt->shards[i].running && rt->direct_table)
			drop_moves_in_flight(&rt->shards[i]);
	for (int i = 0; i < rt->n; i++) {
		struct shard *sh = &rt->shards[i];
		for (uint32_t s = 0; s < sh->n_slots; s++)
			if (sh->conns[s])
				conn_free(sh, sh->conns[s], false);
		if (sh->running)
			sh->io->teardown(sh);
		for (int li = 0; li < VOUCH_MAX_LISTENERS; li++)
			if (sh->listen_fds[li] >= 0)
				close(sh->listen_fds[li]);
		close(sh->eventfd);
		timer_free(&sh->timers);
		free(sh->conns);
		free(sh->free_slots);
		for (int k = 0; k <= VOUCH_MAX_SHARDS; k++)
			free(sh->backlog[k]);
		free(sh->flow_wait);
	}
	for (int i = 0; rt->rings && i < rt->n * (rt->n + 1); i++)
		spsc_destroy(&rt->rings[i]);
	free(rt->rings);
	free(rt->shards);
}
