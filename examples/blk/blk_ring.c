// SPDX-License-Identifier: MIT
/*
 * One queue's io_uring for vduse-blk (see blk_ring.h).
 *
 *  - a parsed request is finished at once (errors, GET_ID, empty
 *    transfers) or gets one io_uring operation for its current step;
 *  - each completion either queues the request's next step (the rest of a
 *    short transfer, the next discard segment, another way to zero) or
 *    finishes it through the owner's callback;
 *  - a step that finds no SQE waits on the pending list, a step the kernel
 *    does not take stays in the SQ; both are retried on the next event,
 *    and the retry timer makes sure there is one;
 *  - on a memory-backed file (tmpfs, ramfs) a READ or WRITE is a copy done
 *    at once with preadv()/pwritev(): io_uring has no non-blocking path
 *    for those files and would pass every one to a worker thread;
 *  - with be->ring_wait the queue thread's waits (kick, stop, retry timer)
 *    are operations in the ring too, tagged with small user_data values
 *    (enum blk_ring_tag), so one io_uring_enter() is the thread's only
 *    wait.
 *
 * A request has at most one operation in flight.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/magic.h>

#include "blk_log.h"
#include "blk_ring.h"

#define BLK_RETRY_NS		(1000 * 1000)	/* 1 ms */
#define BLK_DRAIN_RETRIES	1000		/* 1 s of retries */

/* ------------------------------------------------------------------------ */
/* Pending list                                                              */

static void blk_pending_add(struct blk_ring *r, struct blk_io *io)
{
	io->next = NULL;
	*r->pending_tail = io;
	r->pending_tail = &io->next;
	r->npending++;
}

static struct blk_io *blk_pending_take(struct blk_ring *r)
{
	struct blk_io *io = r->pending;

	if (!io)
		return NULL;
	r->pending = io->next;
	if (!r->pending)
		r->pending_tail = &r->pending;
	r->npending--;
	io->next = NULL;
	return io;
}

/* ------------------------------------------------------------------------ */
/* Submission                                                                */

static void blk_io_finish(struct blk_ring *r, struct blk_io *io,
			  uint8_t status)
{
	r->done(r, io, status);
}

static int blk_fallocate_mode(enum blk_range_how how)
{
	if (how == BLK_RANGE_PUNCH)
		return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	/* BLK_RANGE_ZERO, and BLK_RANGE_BLKZEROOUT on a device */
	return FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
}

/* Fill @sqe with the request's current step. */
static void blk_io_prep(struct blk_ring *r, struct blk_io *io,
			struct io_uring_sqe *sqe)
{
	unsigned int nr = io->iov_cnt < IOV_MAX ? io->iov_cnt : IOV_MAX;
	int fd = r->be->fd;

	switch (io->req.op) {
	case BLK_OP_READ:
		io_uring_prep_readv(sqe, fd, io->iov, nr, io->off);
		break;
	case BLK_OP_WRITE:
		io_uring_prep_writev(sqe, fd, io->iov, nr, io->off);
		break;
	case BLK_OP_FLUSH:
		io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
		break;
	default:	/* DISCARD, WRITE_ZEROES: only the fallocate ways */
		io_uring_prep_fallocate(sqe, fd, blk_fallocate_mode(io->how),
					(off_t)io->range.offset,
					(off_t)io->range.len);
		break;
	}
	io_uring_sqe_set_data(sqe, io);
	r->inflight++;
}

/*
 * Operations in flight stay within the CQ's size, less what the owner's
 * waits may post, so that no completion overflows the CQ ring (overflowed
 * completions would not make the ring fd readable).
 */
static bool blk_ring_room(const struct blk_ring *r)
{
	unsigned int waits = r->own_wait ? BLK_RING_TAGS : 0;

	return r->inflight + waits < r->ring.cq.ring_entries;
}

/* An SQE for one more operation, or NULL. */
static struct io_uring_sqe *blk_ring_get_sqe(struct blk_ring *r)
{
	if (!blk_ring_room(r))
		return NULL;
	return io_uring_get_sqe(&r->ring);
}

static void blk_io_rw_done(struct blk_ring *r, struct blk_io *io, int res);

/*
 * READ or WRITE on a memory-backed file (r->sync_rw), right here: the
 * kernel has no non-blocking path for these, so io_uring would hand each
 * one to a worker thread only to do the same copy there.
 */
static void blk_io_sync_rw(struct blk_ring *r, struct blk_io *io)
{
	unsigned int nr = io->iov_cnt < IOV_MAX ? io->iov_cnt : IOV_MAX;
	ssize_t n;

	if (io->req.op == BLK_OP_READ)
		n = preadv(r->be->fd, io->iov, (int)nr, (off_t)io->off);
	else
		n = pwritev(r->be->fd, io->iov, (int)nr, (off_t)io->off);
	/* -EINTR, -EAGAIN: blk_io_rw_done() queues it again. */
	blk_io_rw_done(r, io, n < 0 ? -errno : (int)n);
}

/*
 * Queue the request's next operation.  This never fails: without an SQE
 * it waits on the pending list, behind the requests already there, until
 * a completion or the retry timer frees one.
 */
static void blk_io_queue(struct blk_ring *r, struct blk_io *io)
{
	struct io_uring_sqe *sqe = NULL;

	if (r->sync_rw && !r->sync_depth &&
	    (io->req.op == BLK_OP_READ || io->req.op == BLK_OP_WRITE)) {
		/* A retry or the rest of a short transfer goes to the ring. */
		r->sync_depth++;
		blk_io_sync_rw(r, io);
		r->sync_depth--;
		return;
	}

	if (!r->pending && blk_ring_room(r)) {
		sqe = io_uring_get_sqe(&r->ring);
		/* A full SQ: hand it to the kernel to make room. */
		if (!sqe && r->submit(&r->ring) > 0)
			sqe = io_uring_get_sqe(&r->ring);
	}
	if (sqe)
		blk_io_prep(r, io, sqe);
	else
		blk_pending_add(r, io);
}

static void blk_ring_arm_timer(struct blk_ring *r, long ns)
{
	struct itimerspec its = { .it_value.tv_nsec = ns };

	if (timerfd_settime(r->timer_fd, 0, &its, NULL) < 0) {
		blk_err("queue %u: cannot arm the retry timer: %s", r->index,
			strerror(errno));
		return;
	}
	r->retry_armed = true;
}

static void blk_ring_arm_retry(struct blk_ring *r)
{
	if (!r->retry_armed)
		blk_ring_arm_timer(r, BLK_RETRY_NS);
}

void blk_ring_wake(struct blk_ring *r)
{
	blk_ring_arm_timer(r, 1);
}

void blk_ring_submit(struct blk_ring *r)
{
	struct io_uring_sqe *sqe;
	int ret = 0;

	for (;;) {
		while (r->pending && (sqe = blk_ring_get_sqe(r)))
			blk_io_prep(r, blk_pending_take(r), sqe);
		/* The owner's next blk_ring_wait() submits them. */
		if (r->wait_submits)
			return;
		if (!io_uring_sq_ready(&r->ring))
			break;
		ret = r->submit(&r->ring);
		if (ret <= 0 || !r->pending)
			break;
	}
	/* Waiting for completions is fine: the ring fd will wake us. */
	if (!io_uring_sq_ready(&r->ring) && (!r->pending || r->inflight)) {
		if (r->stuck)
			blk_dbg("queue %u: submitting again", r->index);
		r->stuck = false;
		return;
	}
	/* The kernel took nothing, or not everything: try again soon. */
	if (!r->stuck && ret < 0)
		blk_warn("queue %u: io_uring_submit: %s; %u requests wait",
			 r->index, strerror(-ret),
			 io_uring_sq_ready(&r->ring) + r->npending);
	r->stuck = ret < 0 || r->stuck;
	blk_ring_arm_retry(r);
}

/* ------------------------------------------------------------------------ */
/* Request steps                                                             */

static void blk_io_range_done(struct blk_ring *r, struct blk_io *io,
			      int res);

/* BLKDISCARD has no io_uring operation: it runs here, synchronously. */
static int blk_io_blkdiscard(struct blk_ring *r, struct blk_io *io)
{
	uint64_t arg[2] = { io->range.offset, io->range.len };
	int ret;

	do {
		ret = ioctl(r->be->fd, BLKDISCARD, arg) < 0 ? -errno : 0;
	} while (ret == -EINTR || ret == -EAGAIN);
	return ret;
}

/* Carry out segment io->seg, loaded in io->range, the way it needs. */
static void blk_io_range_step(struct blk_ring *r, struct blk_io *io)
{
	io->how = blk_range_how(io->req.op, &io->range, r->be->blkdev,
				io->tried);
	switch (io->how) {
	case BLK_RANGE_NONE:
		blk_io_finish(r, io, VIRTIO_BLK_S_IOERR);
		return;
	case BLK_RANGE_SKIP:
		blk_io_range_done(r, io, 0);
		return;
	case BLK_RANGE_BLKDISCARD:
		blk_io_range_done(r, io, blk_io_blkdiscard(r, io));
		return;
	default:
		blk_io_queue(r, io);
		return;
	}
}

/* Load segment io->seg (the driver may have changed it) and start it. */
static void blk_io_next_range(struct blk_ring *r, struct blk_io *io)
{
	uint8_t st = blk_req_range(r->be->disk, &io->req, io->seg,
				   &io->range);

	if (st != VIRTIO_BLK_S_OK) {
		blk_io_finish(r, io, st);
		return;
	}
	io->tried = 0;
	blk_io_range_step(r, io);
}

void blk_ring_start(struct blk_ring *r, struct blk_io *io)
{
	struct blk_req *q = &io->req;

	io->next = NULL;
	switch (q->op) {
	case BLK_OP_DONE:
		blk_io_finish(r, io, q->status);
		return;
	case BLK_OP_GET_ID:
		blk_req_get_id(r->be->disk, q);
		blk_io_finish(r, io, VIRTIO_BLK_S_OK);
		return;
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		if (!q->len) {
			blk_io_finish(r, io, VIRTIO_BLK_S_OK);
			return;
		}
		io->iov = q->iov;
		io->iov_cnt = q->iov_cnt;
		io->off = q->offset;
		io->left = q->len;
		blk_io_queue(r, io);
		return;
	case BLK_OP_FLUSH:
		blk_io_queue(r, io);
		return;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		io->seg = 0;
		blk_io_next_range(r, io);
		return;
	}
	blk_io_finish(r, io, VIRTIO_BLK_S_IOERR);
}

/* ------------------------------------------------------------------------ */
/* Completions                                                               */

static void blk_io_rw_done(struct blk_ring *r, struct blk_io *io, int res)
{
	bool rd = io->req.op == BLK_OP_READ;

	if (res == -EINTR || res == -EAGAIN) {
		blk_io_queue(r, io);
		return;
	}
	if (res < 0 || (size_t)res > io->left) {
		blk_err("%s at %llu: %s", rd ? "read" : "write",
			(unsigned long long)io->off,
			res < 0 ? strerror(-res) : "bad length");
		blk_io_finish(r, io, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (res == 0) {
		if (rd) {
			/* End of file (it shrank): the rest reads as zeros. */
			blk_iov_memset(io->iov, io->iov_cnt, 0);
			blk_io_finish(r, io, VIRTIO_BLK_S_OK);
		} else {
			blk_err("write at %llu made no progress",
				(unsigned long long)io->off);
			blk_io_finish(r, io, VIRTIO_BLK_S_IOERR);
		}
		return;
	}
	blk_iov_skip(&io->iov, &io->iov_cnt, (size_t)res);
	io->off += (uint64_t)res;
	io->left -= (size_t)res;
	if (io->left)
		blk_io_queue(r, io);	/* short transfer: do the rest */
	else
		blk_io_finish(r, io, VIRTIO_BLK_S_OK);
}

static void blk_io_flush_done(struct blk_ring *r, struct blk_io *io,
			      int res)
{
	bool first;
	uint8_t st;

	if (res == -EINTR || res == -EAGAIN) {
		blk_io_queue(r, io);
		return;
	}
	st = blk_flush_result(r->be->flush, res, &first);
	if (r->be->test_hold_flush_ms) {
		fprintf(stderr, "vduse-blk: test: holding a flush for %u ms\n",
			r->be->test_hold_flush_ms);
		usleep(r->be->test_hold_flush_ms * 1000u);
	}
	if (first)
		blk_err("flush failed: %s; every later flush fails too",
			strerror(-res));
	else if (st != VIRTIO_BLK_S_OK)
		blk_dbg("queue %u: flush fails since an earlier one failed",
			r->index);
	blk_io_finish(r, io, st);
}

static const char *blk_how_name(enum blk_range_how how)
{
	switch (how) {
	case BLK_RANGE_PUNCH:
		return "punch hole";
	case BLK_RANGE_ZERO:
		return "zero range";
	case BLK_RANGE_BLKDISCARD:
		return "BLKDISCARD";
	case BLK_RANGE_BLKZEROOUT:
		return "zeroout";
	default:
		return "no-op";
	}
}

static void blk_io_range_done(struct blk_ring *r, struct blk_io *io,
			      int res)
{
	switch (blk_range_next(io->req.op, io->how, res, &io->range,
			       r->be->blkdev, &io->tried)) {
	case BLK_RANGE_NEXT_OK:
		if (++io->seg < io->req.nseg)
			blk_io_next_range(r, io);
		else
			blk_io_finish(r, io, VIRTIO_BLK_S_OK);
		return;
	case BLK_RANGE_NEXT_AGAIN:
		blk_io_queue(r, io);
		return;
	case BLK_RANGE_NEXT_OTHER:
		blk_dbg("%s unsupported at %llu, trying another way",
			blk_how_name(io->how),
			(unsigned long long)io->range.offset);
		blk_io_range_step(r, io);
		return;
	case BLK_RANGE_NEXT_FAIL:
		blk_err("%s (%s) at %llu+%llu: %s",
			io->req.op == BLK_OP_DISCARD ? "discard" :
						       "write zeroes",
			blk_how_name(io->how),
			(unsigned long long)io->range.offset,
			(unsigned long long)io->range.len, strerror(-res));
		blk_io_finish(r, io, VIRTIO_BLK_S_IOERR);
		return;
	}
}

static void blk_io_done(struct blk_ring *r, struct blk_io *io, int res)
{
	r->inflight--;
	switch (io->req.op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		blk_io_rw_done(r, io, res);
		break;
	case BLK_OP_FLUSH:
		blk_io_flush_done(r, io, res);
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		blk_io_range_done(r, io, res);
		break;
	default:
		blk_io_finish(r, io, VIRTIO_BLK_S_IOERR);
		break;
	}
}

/* One of the owner's waits completed (be->ring_wait). */
static void blk_ring_tag_done(struct blk_ring *r, enum blk_ring_tag tag,
			      int res)
{
	switch (tag) {
	case BLK_RING_TAG_KICK_POLL:
		/* Only failures post (CQE_SKIP_SUCCESS); the read follows
		 * with -ECANCELED. */
		blk_dbg("queue %u: poll of the kick fd: %s", r->index,
			strerror(-res));
		break;
	case BLK_RING_TAG_KICK:
		r->kick_armed = false;
		/* Even a failed read means: look at the ring. */
		r->kicked = true;
		if (res < 0 && res != -ECANCELED && res != -EAGAIN &&
		    res != -EINTR)
			blk_warn("queue %u: read of the kick fd: %s", r->index,
				 strerror(-res));
		break;
	case BLK_RING_TAG_STOP:
		r->stop_armed = false;
		if (res > 0)
			r->stopped = true;
		break;
	case BLK_RING_TAG_TIMER:
		r->timer_armed = false;
		break;
	default:
		break;
	}
}

unsigned int blk_ring_reap(struct blk_ring *r)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n, total = 0;
	uintptr_t data;

	/* A completion may queue a step whose submit posts a completion. */
	do {
		n = 0;
		io_uring_for_each_cqe(&r->ring, head, cqe) {
			data = (uintptr_t)io_uring_cqe_get_data(cqe);
			if (data < BLK_RING_TAGS) {
				blk_ring_tag_done(r, (enum blk_ring_tag)data,
						  cqe->res);
			} else {
				blk_io_done(r, (struct blk_io *)data, cqe->res);
				total++;
			}
			n++;
		}
		io_uring_cq_advance(&r->ring, n);
	} while (n);
	return total;
}

/* An SQE for one of the owner's waits (they do not count as inflight). */
static struct io_uring_sqe *blk_ring_wait_sqe(struct blk_ring *r,
					      unsigned int need)
{
	if (io_uring_sq_space_left(&r->ring) < need && r->submit(&r->ring) < 0)
		return NULL;
	if (io_uring_sq_space_left(&r->ring) < need)
		return NULL;
	return io_uring_get_sqe(&r->ring);
}

static bool blk_ring_arm_poll(struct blk_ring *r, int fd,
			      enum blk_ring_tag tag)
{
	struct io_uring_sqe *sqe = blk_ring_wait_sqe(r, 1);

	if (!sqe)
		return false;
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data(sqe, (void *)(uintptr_t)tag);
	return true;
}

/*
 * The kick: a poll linked to a read, so that the read runs once the
 * eventfd is readable whether or not the kernel would arm a poll for a
 * read of a non-blocking file itself; the poll posts only on failure.
 */
static bool blk_ring_arm_kick(struct blk_ring *r, int kick_fd)
{
	struct io_uring_sqe *sqe = blk_ring_wait_sqe(r, 2);

	if (!sqe)
		return false;
	io_uring_prep_poll_add(sqe, kick_fd, POLLIN);
	io_uring_sqe_set_data(sqe, (void *)(uintptr_t)BLK_RING_TAG_KICK_POLL);
	sqe->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
	sqe = io_uring_get_sqe(&r->ring);
	io_uring_prep_read(sqe, kick_fd, &r->kick_val, sizeof(r->kick_val), 0);
	io_uring_sqe_set_data(sqe, (void *)(uintptr_t)BLK_RING_TAG_KICK);
	return true;
}

int blk_ring_wait(struct blk_ring *r, int kick_fd, int stop_fd)
{
	struct __kernel_timespec ts = { .tv_nsec = BLK_RETRY_NS };
	struct io_uring_cqe *cqe;
	bool armed = true;
	int ret;

	if (!r->kick_armed)
		armed = r->kick_armed = blk_ring_arm_kick(r, kick_fd);
	if (!r->stop_armed && armed)
		armed = r->stop_armed = blk_ring_arm_poll(r, stop_fd,
							  BLK_RING_TAG_STOP);
	if (!r->timer_armed && armed)
		armed = r->timer_armed = blk_ring_arm_poll(r, r->timer_fd,
							   BLK_RING_TAG_TIMER);
	if (armed)
		ret = io_uring_submit_and_wait(&r->ring, 1);
	else	/* no room to arm a wait: do not sleep on it */
		ret = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts,
						       NULL);
	return ret < 0 ? ret : 0;
}

void blk_ring_poll(struct blk_ring *r)
{
	uint64_t ticks;

	if (r->retry_armed &&
	    read(r->timer_fd, &ticks, sizeof(ticks)) == sizeof(ticks))
		r->retry_armed = false;
	blk_ring_reap(r);
}

/* ------------------------------------------------------------------------ */
/* Set-up and tear-down                                                      */

bool blk_ring_memory_backed(int fd)
{
	struct statfs sfs;

	if (fstatfs(fd, &sfs) < 0)
		return false;
	return sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC;
}

/*
 * The ring: with be->ring_wait, only this thread submits and it reaps when
 * it waits, so SINGLE_ISSUER|DEFER_TASKRUN (6.1) if the kernel takes them,
 * SINGLE_ISSUER alone (6.0), or neither.
 */
static int blk_ring_setup(struct blk_ring *r, unsigned int entries)
{
	static const unsigned int tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER,
		0,
	};
	unsigned int i = r->own_wait ? 0 : 2;
	int ret;

	for (;; i++) {
		struct io_uring_params p = { .flags = tries[i] };

		ret = io_uring_queue_init_params(entries, &r->ring, &p);
		if (ret != -EINVAL || i == 2)
			break;
	}
	if (ret == 0 && r->own_wait)
		blk_dbg("queue %u: io_uring%s%s", r->index,
			tries[i] & IORING_SETUP_SINGLE_ISSUER ?
				" SINGLE_ISSUER" : "",
			tries[i] & IORING_SETUP_DEFER_TASKRUN ?
				"|DEFER_TASKRUN" : " without its setup flags");
	r->setup_flags = ret == 0 ? tries[i] : 0;
	return ret;
}

int blk_ring_init(struct blk_ring *r, const struct blk_backend *be,
		  unsigned int entries, unsigned int index,
		  blk_ring_done_fn *done, void *priv)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int ret;

	memset(r, 0, sizeof(*r));
	r->be = be;
	r->done = done;
	r->priv = priv;
	r->index = index;
	r->pending_tail = &r->pending;
	r->submit = io_uring_submit;
	r->timer_fd = -1;
	r->poll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (r->poll_fd < 0) {
		ret = -errno;
		blk_err("queue %u: epoll_create1: %s", index, strerror(errno));
		return ret;
	}
	r->timer_fd = timerfd_create(CLOCK_MONOTONIC,
				     TFD_NONBLOCK | TFD_CLOEXEC);
	if (r->timer_fd < 0) {
		ret = -errno;
		blk_err("queue %u: timerfd_create: %s", index, strerror(errno));
		goto err;
	}
	r->sync_rw = blk_ring_memory_backed(be->fd);
	r->own_wait = be->ring_wait;
	ret = blk_ring_setup(r, entries);
	if (ret < 0) {
		blk_err("queue %u: io_uring_queue_init: %s", index,
			strerror(-ret));
		goto err;
	}
	if (epoll_ctl(r->poll_fd, EPOLL_CTL_ADD, r->ring.ring_fd, &ev) < 0 ||
	    epoll_ctl(r->poll_fd, EPOLL_CTL_ADD, r->timer_fd, &ev) < 0) {
		ret = -errno;
		blk_err("queue %u: epoll_ctl: %s", index, strerror(errno));
		io_uring_queue_exit(&r->ring);
		goto err;
	}
	return 0;
err:
	if (r->timer_fd >= 0)
		close(r->timer_fd);
	close(r->poll_fd);
	r->timer_fd = r->poll_fd = -1;
	return ret;
}

void blk_ring_exit(struct blk_ring *r)
{
	io_uring_queue_exit(&r->ring);
	close(r->timer_fd);
	close(r->poll_fd);
	r->timer_fd = r->poll_fd = -1;
}

/*
 * Fail what the kernel never took: the pending list and the SQ entries it
 * did not consume (they are dropped with the ring).
 */
static void blk_ring_abandon(struct blk_ring *r)
{
	struct io_uring_sq *sq = &r->ring.sq;
	unsigned int head = io_uring_smp_load_acquire(sq->khead);
	unsigned int n = 0;
	struct blk_io *io;

	for (; head != sq->sqe_tail; head++) {
		if (sq->sqes[head & sq->ring_mask].user_data < BLK_RING_TAGS)
			continue;	/* the owner's wait */
		io = (struct blk_io *)(uintptr_t)
			sq->sqes[head & sq->ring_mask].user_data;
		r->inflight--;
		blk_io_finish(r, io, VIRTIO_BLK_S_IOERR);
		n++;
	}
	while ((io = blk_pending_take(r))) {
		blk_io_finish(r, io, VIRTIO_BLK_S_IOERR);
		n++;
	}
	if (n)
		blk_err("queue %u: the kernel took no I/O for a second; %u requests failed",
			r->index, n);
}

void blk_ring_drain(struct blk_ring *r)
{
	const struct timespec pause = { .tv_nsec = BLK_RETRY_NS };
	struct io_uring_cqe *cqe;
	unsigned int tries = 0;
	int ret;

	for (;;) {
		blk_ring_submit(r);
		blk_ring_reap(r);
		if (!r->inflight && !r->pending)
			return;
		if (r->inflight > io_uring_sq_ready(&r->ring)) {
			/* Something is in the kernel: wait for it. */
			ret = io_uring_wait_cqe(&r->ring, &cqe);
			if (ret < 0 && ret != -EINTR && ret != -EAGAIN) {
				/* Its buffers may still be in use: leak. */
				blk_err("queue %u: %u requests lost: %s",
					r->index, r->inflight + r->npending,
					strerror(-ret));
				return;
			}
			continue;
		}
		if (!io_uring_cq_ready(&r->ring) && tries++ >= BLK_DRAIN_RETRIES) {
			blk_ring_abandon(r);
			return;
		}
		nanosleep(&pause, NULL);
	}
}
