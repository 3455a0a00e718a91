/*
 * io_uring paths that work on Linux 5.10: one accept and one recv at a time
 * (re-armed on completion), recv straight into the connection's input
 * buffer, and peer wake-ups through each shard's eventfd. Selected when the
 * kernel lacks the fast path or --io-compat 5.10 forces it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/shard.h"

#define COMPAT_RING_ENTRIES 1024
#define COMPAT_RECV_CHUNK 16384

static int compat_setup(struct shard *sh)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = COMPAT_RING_ENTRIES * 8;
	return io_uring_queue_init_params(COMPAT_RING_ENTRIES, &sh->ring, &p);
}

static void compat_arm_accept(struct shard *sh, int li)
{
	struct io_uring_sqe *sqe = shard_sqe(sh);
	if (!sqe)
		return;
	sh->accept_alen[li] = sizeof sh->accept_addr[li];
	io_uring_prep_accept(sqe, sh->listen_fds[li], (struct sockaddr *)&sh->accept_addr[li],
			     &sh->accept_alen[li], SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, io_ud(OP_ACCEPT, (uint32_t)li, 0));
	sh->accept_armed[li] = true;
}

static void compat_arm_recv(struct shard *sh, struct conn *c)
{
	if (c->tr) {
		/* a transport's wire bytes must not land among the plaintext */
		if (!c->raw && !(c->raw = malloc(COMPAT_RECV_CHUNK))) {
			conn_close(sh, c, false);
			return;
		}
		struct io_uring_sqe *sqe = shard_sqe(sh);
		if (!sqe)
			return;
		io_uring_prep_recv(sqe, c->fd, c->raw, COMPAT_RECV_CHUNK, 0);
		io_uring_sqe_set_data64(sqe, io_ud(OP_RECV, c->slot, c->gen));
		c->recv_armed = true;
		c->inflight++;
		return;
	}
	if (c->in_cap - c->in_len < COMPAT_RECV_CHUNK / 4) {
		uint32_t nc = c->in_cap ? c->in_cap : COMPAT_RECV_CHUNK;
		while (nc - c->in_len < COMPAT_RECV_CHUNK / 4)
			nc *= 2;
		uint8_t *nb = realloc(c->in, nc);
		if (!nb) {
			conn_close(sh, c, false);
			return;
		}
		c->in = nb;
		c->in_cap = nc;
	}
	struct io_uring_sqe *sqe = shard_sqe(sh);
	if (!sqe)
		return;
	io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	io_uring_sqe_set_data64(sqe, io_ud(OP_RECV, c->slot, c->gen));
	c->recv_armed = true;
	c->inflight++;
}

static const uint8_t *compat_recv_data(struct shard *sh, struct conn *c,
				       const struct io_uring_cqe *cqe, int *bid)
{
	(void)sh;
	(void)cqe;
	*bid = -1;
	return c->tr ? c->raw : c->in + c->in_len;
}

static void compat_recycle(struct shard *sh, int bid)
{
	(void)sh;
	(void)bid;
}

static void compat_wake(struct shard *sh, struct shard *peer)
{
	(void)sh;
	uint64_t one = 1;
	/* never blocks: the counter cannot reach its maximum */
	ssize_t w = write(peer->eventfd, &one, sizeof one);
	(void)w;
}

static void compat_teardown(struct shard *sh)
{
	io_uring_queue_exit(&sh->ring);
}

const struct io_backend io_compat = {
	.name = "compat",
	.setup = compat_setup,
	.arm_accept = compat_arm_accept,
	.arm_recv = compat_arm_recv,
	.recv_data = compat_recv_data,
	.recycle = compat_recycle,
	.wake = compat_wake,
	.teardown = compat_teardown,
};
