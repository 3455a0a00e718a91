/*
 * io_uring fast path (Linux 6.0+): multishot accept, multishot recv picking
 * from a ring of provided buffers, MSG_RING to wake a peer shard, and a
 * ring set up with SINGLE_ISSUER and DEFER_TASKRUN where the kernel has
 * them. The Linux 5.10 equivalents are in io_compat.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/shard.h"

#define FAST_RING_ENTRIES 1024
#define FAST_BUFS 512           /* power of two */
#define FAST_BUF_SIZE 16384
#define FAST_BGID 1

static int fast_setup(struct shard *sh)
{
	struct io_uring_params p;
	unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int rc = -EINVAL;
	for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
		memset(&p, 0, sizeof p);
		p.flags = tries[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = FAST_RING_ENTRIES * 8;
		rc = io_uring_queue_init_params(FAST_RING_ENTRIES, &sh->ring, &p);
		if (rc == 0) {
			if (sh->id == 0)
				log_info("io_uring ring flags:%s%s", tries[i] & IORING_SETUP_SINGLE_ISSUER ? " SINGLE_ISSUER" : "",
					 tries[i] & IORING_SETUP_DEFER_TASKRUN ? " DEFER_TASKRUN" :
					 tries[i] & IORING_SETUP_COOP_TASKRUN ? " COOP_TASKRUN" : " (none)");
			break;
		}
	}
	if (rc != 0)
		return rc;
	sh->buf_count = FAST_BUFS;
	sh->buf_size = FAST_BUF_SIZE;
	size_t rsz = FAST_BUFS * sizeof(struct io_uring_buf);
	void *r = mmap(NULL, rsz, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (r == MAP_FAILED)
		return -ENOMEM;
	sh->bufring = r;
	io_uring_buf_ring_init(sh->bufring);
	struct io_uring_buf_reg reg = {
		.ring_addr = (unsigned long)r,
		.ring_entries = FAST_BUFS,
		.bgid = FAST_BGID,
	};
	rc = io_uring_register_buf_ring(&sh->ring, &reg, 0);
	if (rc != 0)
		return rc;
	sh->bufs = malloc((size_t)FAST_BUFS * FAST_BUF_SIZE);
	if (!sh->bufs)
		return -ENOMEM;
	int mask = io_uring_buf_ring_mask(FAST_BUFS);
	for (int i = 0; i < FAST_BUFS; i++)
		io_uring_buf_ring_add(sh->bufring, sh->bufs + (size_t)i * FAST_BUF_SIZE, FAST_BUF_SIZE,
				      (unsigned short)i, mask, i);
	io_uring_buf_ring_advance(sh->bufring, FAST_BUFS);
	return 0;
}

static void fast_arm_accept(struct shard *sh, int li)
{
	struct io_uring_sqe *sqe = shard_sqe(sh);
	if (!sqe)
		return;
	io_uring_prep_multishot_accept(sqe, sh->listen_fds[li], NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, io_ud(OP_ACCEPT, (uint32_t)li, 0));
	sh->accept_armed[li] = true;
}

static void fast_arm_recv(struct shard *sh, struct conn *c)
{
	struct io_uring_sqe *sqe = shard_sqe(sh);
	if (!sqe)
		return;
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT | (c->direct ? IOSQE_FIXED_FILE : 0);
	sqe->buf_group = FAST_BGID;
	io_uring_sqe_set_data64(sqe, io_ud(OP_RECV, c->slot, c->gen));
	c->recv_armed = true;
	c->inflight++;
}

static const uint8_t *fast_recv_data(struct shard *sh, struct conn *c,
				     const struct io_uring_cqe *cqe, int *bid)
{
	(void)c;
	if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
		*bid = -1;
		return NULL;
	}
	*bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	return sh->bufs + (size_t)*bid * sh->buf_size;
}

static void fast_recycle(struct shard *sh, int bid)
{
	io_uring_buf_ring_add(sh->bufring, sh->bufs + (size_t)bid * sh->buf_size, sh->buf_size,
			      (unsigned short)bid, io_uring_buf_ring_mask(sh->buf_count), 0);
	io_uring_buf_ring_advance(sh->bufring, 1);
}

static void fast_wake(struct shard *sh, struct shard *peer)
{
	struct io_uring_sqe *sqe = shard_sqe(sh);
	if (!sqe)
		return;
	io_uring_prep_msg_ring(sqe, peer->ring_fd, 0, io_ud(OP_WAKE, 0, 0), 0);
	/* our own completion of the MSG_RING is not interesting */
	io_uring_sqe_set_data64(sqe, io_ud(OP_CANCEL, 0, 0));
}

static void fast_teardown(struct shard *sh)
{
	io_uring_queue_exit(&sh->ring);
	if (sh->bufring)
		munmap(sh->bufring, sh->buf_count * sizeof(struct io_uring_buf));
	free(sh->bufs);
}

const struct io_backend io_fast = {
	.name = "fast",
	.setup = fast_setup,
	.arm_accept = fast_arm_accept,
	.arm_recv = fast_arm_recv,
	.recv_data = fast_recv_data,
	.recycle = fast_recycle,
	.wake = fast_wake,
	.teardown = fast_teardown,
};
