/*
 * Direct (ring-registered) descriptors. A socket installed into a ring's
 * file table does not count against RLIMIT_NOFILE, so with one table per
 * shard ring the process holds more connections than its open-files limit.
 * The kernel caps one table at RLIMIT_NOFILE entries (io_sqe_files_register
 * refuses more), hence the table size below.
 *
 * What it takes, all probed here once at start-up on two scratch rings:
 * IORING_OP_FILES_UPDATE with IORING_FILE_INDEX_ALLOC (5.19) to install an
 * accepted socket, IORING_OP_MSG_RING with IORING_MSG_SEND_FD (6.0) to move
 * one to another shard's table. Both tables are allocated by the kernel
 * (the whole table is the allocation range), so accepted and adopted
 * sockets share one pool and a shard never picks an index itself.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/shard.h"

#define DIRECT_MAX (1u << 20)  /* the kernel's IORING_MAX_FIXED_FILES */
#define DIRECT_MIN 64

void direct_prep_install(struct io_uring_sqe *sqe, int *fdp)
{
	/* the kernel writes the allocated index back into *fdp; res = 1 */
	io_uring_prep_files_update(sqe, fdp, 1, 0);
	sqe->off = IORING_FILE_INDEX_ALLOC;
}

void direct_prep_send(struct io_uring_sqe *sqe, int target_ring_fd, int index, uint64_t target_ud)
{
	/* liburing 2.3 has no io_uring_prep_msg_ring_fd: the uapi layout is
	 * addr = command, addr3 = our index, file_index = the target's slot
	 * (ALLOC: the kernel picks, the target's CQE res is the index), off =
	 * the target CQE's user_data. */
	io_uring_prep_rw(IORING_OP_MSG_RING, sqe, target_ring_fd,
			 (void *)(uintptr_t)IORING_MSG_SEND_FD, 0, target_ud);
	sqe->addr3 = (uint64_t)index;
	sqe->file_index = IORING_FILE_INDEX_ALLOC;
}

static int wait_one(struct io_uring *r, uint64_t ud, int *res)
{
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { 1, 0 };
	int rc = io_uring_wait_cqe_timeout(r, &cqe, &ts);
	if (rc < 0)
		return rc;
	*res = cqe->res;
	rc = cqe->user_data == ud ? 0 : -EPROTO;
	io_uring_cqe_seen(r, cqe);
	return rc;
}

/* Install an eventfd in ring a's table, send it to ring b's: the whole
 * path a connection takes. 0 or why not. */
static const char *probe_rings(struct io_uring *a, struct io_uring *b, uint32_t size)
{
	int rc = io_uring_register_files_sparse(a, size);
	if (rc < 0)
		return rc == -EMFILE ? "the table size exceeds RLIMIT_NOFILE" : "no sparse file tables";
	if (io_uring_register_files_sparse(b, size) < 0)
		return "no second file table";
	int efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0)
		return "eventfd failed";
	int slot = efd, res = -1;
	struct io_uring_sqe *sqe = io_uring_get_sqe(a);
	direct_prep_install(sqe, &slot);
	sqe->user_data = 1;
	io_uring_submit(a);
	rc = wait_one(a, 1, &res);
	close(efd);
	if (rc < 0 || res != 1)
		return "no IORING_OP_FILES_UPDATE with IORING_FILE_INDEX_ALLOC (Linux 5.19)";
	sqe = io_uring_get_sqe(a);
	direct_prep_send(sqe, b->ring_fd, slot, 2);
	sqe->user_data = 3;
	io_uring_submit(a);
	if (wait_one(a, 3, &res) < 0 || res < 0 || wait_one(b, 2, &res) < 0 || res < 0)
		return "no IORING_MSG_SEND_FD (Linux 6.0)";
	return NULL;
}

uint32_t direct_probe(const struct vouch_config *cfg, int shards, const char **why)
{
	/* The kernel compares a table's size with the soft limit: take the
	 * hard one, as any daemon that counts on descriptors would. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		*why = "getrlimit failed";
		return 0;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = { rl.rlim_max, rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	/* A shard's share of --max-connections, plus a quarter: client IDs
	 * spread over home shards by a hash, not evenly, and a connection
	 * being moved holds an entry in both tables for a moment. */
	uint64_t share = ((uint64_t)cfg->max_connections + (uint64_t)shards - 1) / (uint64_t)shards;
	uint64_t size = share + share / 4 + DIRECT_MIN;
	if (size > rl.rlim_cur)
		size = rl.rlim_cur;
	if (size > DIRECT_MAX)
		size = DIRECT_MAX;
	if (size < DIRECT_MIN) {
		*why = "RLIMIT_NOFILE is too low for a useful table";
		return 0;
	}
	struct io_uring a, b;
	if (io_uring_queue_init(8, &a, 0) != 0) {
		*why = "io_uring_queue_init failed";
		return 0;
	}
	if (io_uring_queue_init(8, &b, 0) != 0) {
		io_uring_queue_exit(&a);
		*why = "io_uring_queue_init failed";
		return 0;
	}
	*why = probe_rings(&a, &b, (uint32_t)size);
	io_uring_queue_exit(&b);
	io_uring_queue_exit(&a);
	return *why ? 0 : (uint32_t)size;
}
