// SPDX-License-Identifier: MIT
/*
 * The vduse-blk data path.  One io_uring per queue thread:
 *
 *  - a kick pops every available request, parses it and either completes
 *    it at once (errors, GET_ID, empty transfers) or submits one io_uring
 *    operation for it;
 *  - the ring fd is the queue's poll fd; when it is readable the
 *    completions are reaped, and a request either submits its next step
 *    (the rest of a short transfer, the next discard segment) or is pushed
 *    back to the driver;
 *  - one vduse_vq_notify() after each batch of pushes.
 *
 * A request has at most one operation in flight, so a ring with as many
 * entries as the largest queue never runs out of SQEs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <liburing.h>

#include "blk_log.h"
#include "blk_queue.h"

struct blk_queue {
	struct io_uring ring;
	struct vduse_vq *vq;
	const struct blk_backend *be;
	unsigned int inflight;	/* requests with an operation in flight */
	unsigned int pushed;	/* pushes since the last notify */
};

struct blk_io {
	struct vduse_vq_elem elem;	/* first: vduse_vq_pop() allocates us */
	struct blk_req req;
	/* READ, WRITE: what is left to transfer */
	struct iovec *iov;
	unsigned int iov_cnt;
	uint64_t off;
	size_t left;
	/* DISCARD, WRITE_ZEROES: the segment in progress */
	unsigned int seg;
	struct blk_range range;
	bool punch_fallback;	/* ZERO_RANGE unsupported, punch a hole */
};

/* ------------------------------------------------------------------------ */
/* Completion                                                                */

static void blk_io_complete(struct blk_queue *q, struct blk_io *io,
			    uint8_t status)
{
	int ret;

	blk_req_set_status(&io->req, status);
	ret = vduse_vq_push(q->vq, &io->elem, blk_req_used_len(&io->req));
	if (ret < 0)
		blk_warn("queue %u: push failed: %s", vduse_vq_index(q->vq),
			 strerror(-ret));
	else
		q->pushed++;
	free(io);
}

/* A request without a status byte cannot be answered properly. */
static void blk_io_complete_bad(struct blk_queue *q, struct blk_io *io)
{
	int ret;

	blk_warn("queue %u: request %u has no status byte",
		 vduse_vq_index(q->vq), io->elem.id);
	ret = vduse_vq_push(q->vq, &io->elem, 0);
	if (ret == 0)
		q->pushed++;
	free(io);
}

static void blk_queue_notify(struct blk_queue *q)
{
	int ret;

	if (!q->pushed)
		return;
	q->pushed = 0;
	ret = vduse_vq_notify(q->vq);
	if (ret < 0)
		blk_dbg("queue %u: notify failed: %s", vduse_vq_index(q->vq),
			strerror(-ret));
}

/* ------------------------------------------------------------------------ */
/* Submission                                                                */

static struct io_uring_sqe *blk_queue_sqe(struct blk_queue *q)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);

	if (!sqe && io_uring_submit(&q->ring) >= 0)
		sqe = io_uring_get_sqe(&q->ring);
	return sqe;
}

static int blk_fallocate_mode(const struct blk_io *io)
{
	if (io->req.op == BLK_OP_DISCARD || io->range.unmap ||
	    io->punch_fallback)
		return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	return FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
}

/* Queue the operation for the request's current step. */
static int blk_io_submit(struct blk_queue *q, struct blk_io *io)
{
	struct io_uring_sqe *sqe = blk_queue_sqe(q);
	int fd = q->be->fd;
	unsigned int nr;

	if (!sqe)
		return -EBUSY;
	nr = io->iov_cnt < IOV_MAX ? io->iov_cnt : IOV_MAX;
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
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		io_uring_prep_fallocate(sqe, fd, blk_fallocate_mode(io),
					(off_t)io->range.offset,
					(off_t)io->range.len);
		break;
	default:
		return -EINVAL;
	}
	io_uring_sqe_set_data(sqe, io);
	q->inflight++;
	return 0;
}

/* Submit the next step or, if that cannot be queued, fail the request. */
static void blk_io_continue(struct blk_queue *q, struct blk_io *io)
{
	int ret = blk_io_submit(q, io);

	if (ret < 0) {
		blk_err("queue %u: cannot queue I/O: %s",
			vduse_vq_index(q->vq), strerror(-ret));
		blk_io_complete(q, io, VIRTIO_BLK_S_IOERR);
	}
}

/* Load segment io->seg and submit it; complete when it is bad. */
static void blk_io_next_range(struct blk_queue *q, struct blk_io *io)
{
	uint8_t st = blk_req_range(q->be->disk, &io->req, io->seg,
				   &io->range);

	if (st != VIRTIO_BLK_S_OK) {
		blk_io_complete(q, io, st);
		return;
	}
	io->punch_fallback = false;
	blk_io_continue(q, io);
}

/* A freshly parsed request. */
static void blk_io_start(struct blk_queue *q, struct blk_io *io)
{
	struct blk_req *r = &io->req;

	switch (r->op) {
	case BLK_OP_DONE:
		blk_io_complete(q, io, r->status);
		return;
	case BLK_OP_GET_ID:
		blk_req_get_id(q->be->disk, r);
		blk_io_complete(q, io, VIRTIO_BLK_S_OK);
		return;
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		if (!r->len) {
			blk_io_complete(q, io, VIRTIO_BLK_S_OK);
			return;
		}
		io->iov = r->iov;
		io->iov_cnt = r->iov_cnt;
		io->off = r->offset;
		io->left = r->len;
		blk_io_continue(q, io);
		return;
	case BLK_OP_FLUSH:
		blk_io_continue(q, io);
		return;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		io->seg = 0;
		blk_io_next_range(q, io);
		return;
	}
}

/* ------------------------------------------------------------------------ */
/* Completions                                                               */

static void blk_io_rw_done(struct blk_queue *q, struct blk_io *io, int res)
{
	bool rd = io->req.op == BLK_OP_READ;

	if (res == -EINTR || res == -EAGAIN) {
		blk_io_continue(q, io);
		return;
	}
	if (res < 0 || (size_t)res > io->left) {
		blk_err("%s at %llu: %s", rd ? "read" : "write",
			(unsigned long long)io->off,
			res < 0 ? strerror(-res) : "bad length");
		blk_io_complete(q, io, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (res == 0) {
		if (rd) {
			/* End of file (it shrank): the rest reads as zeros. */
			blk_iov_memset(io->iov, io->iov_cnt, 0);
			blk_io_complete(q, io, VIRTIO_BLK_S_OK);
		} else {
			blk_err("write at %llu made no progress",
				(unsigned long long)io->off);
			blk_io_complete(q, io, VIRTIO_BLK_S_IOERR);
		}
		return;
	}
	blk_iov_skip(&io->iov, &io->iov_cnt, (size_t)res);
	io->off += (uint64_t)res;
	io->left -= (size_t)res;
	if (io->left)
		blk_io_continue(q, io);	/* short transfer: do the rest */
	else
		blk_io_complete(q, io, VIRTIO_BLK_S_OK);
}

static void blk_io_range_done(struct blk_queue *q, struct blk_io *io,
			      int res)
{
	if (res == -EOPNOTSUPP && io->req.op == BLK_OP_DISCARD) {
		res = 0;	/* discard is a hint: ignoring it is allowed */
	} else if (res == -EOPNOTSUPP && !io->punch_fallback &&
		   (blk_fallocate_mode(io) & FALLOC_FL_ZERO_RANGE)) {
		io->punch_fallback = true;	/* a hole reads as zeros too */
		blk_io_continue(q, io);
		return;
	}
	if (res == -EINTR || res == -EAGAIN) {
		blk_io_continue(q, io);
		return;
	}
	if (res < 0) {
		blk_err("%s at %llu+%llu: %s",
			io->req.op == BLK_OP_DISCARD ? "discard" :
						       "write zeroes",
			(unsigned long long)io->range.offset,
			(unsigned long long)io->range.len, strerror(-res));
		blk_io_complete(q, io, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (++io->seg < io->req.nseg)
		blk_io_next_range(q, io);
	else
		blk_io_complete(q, io, VIRTIO_BLK_S_OK);
}

static void blk_io_done(struct blk_queue *q, struct blk_io *io, int res)
{
	q->inflight--;
	switch (io->req.op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		blk_io_rw_done(q, io, res);
		break;
	case BLK_OP_FLUSH:
		if (res == -EINTR || res == -EAGAIN) {
			blk_io_continue(q, io);
			break;
		}
		if (res < 0)
			blk_err("flush: %s", strerror(-res));
		blk_io_complete(q, io, res < 0 ? VIRTIO_BLK_S_IOERR :
						 VIRTIO_BLK_S_OK);
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		blk_io_range_done(q, io, res);
		break;
	default:
		blk_io_complete(q, io, VIRTIO_BLK_S_IOERR);
		break;
	}
}

static void blk_queue_reap(struct blk_queue *q)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	io_uring_for_each_cqe(&q->ring, head, cqe) {
		blk_io_done(q, io_uring_cqe_get_data(cqe), cqe->res);
		n++;
	}
	io_uring_cq_advance(&q->ring, n);
}

/* ------------------------------------------------------------------------ */
/* Requests from the driver                                                  */

static void blk_queue_pop_all(struct blk_queue *q)
{
	struct blk_io *io;
	int ret;

	for (;;) {
		ret = vduse_vq_pop(q->vq, sizeof(*io), (void **)&io);
		if (ret == -EAGAIN)
			return;
		if (ret < 0) {
			if (ret != -EIO)
				blk_err("queue %u: pop failed: %s",
					vduse_vq_index(q->vq), strerror(-ret));
			return;
		}
		memset((char *)io + sizeof(io->elem), 0,
		       sizeof(*io) - sizeof(io->elem));
		ret = blk_req_parse(q->be->disk, io->elem.out_sg,
				    io->elem.out_num, io->elem.in_sg,
				    io->elem.in_num, &io->req);
		if (ret < 0)
			blk_io_complete_bad(q, io);
		else
			blk_io_start(q, io);
	}
}

static void blk_queue_submit(struct blk_queue *q)
{
	int ret = io_uring_submit(&q->ring);

	if (ret < 0)
		blk_err("queue %u: io_uring_submit: %s",
			vduse_vq_index(q->vq), strerror(-ret));
}

/* ------------------------------------------------------------------------ */
/* Runner callbacks                                                          */

static int blk_queue_init(struct vduse_vq *vq, void *opaque, int *poll_fd)
{
	const struct blk_backend *be = opaque;
	struct blk_queue *q;
	int ret;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->vq = vq;
	q->be = be;
	ret = io_uring_queue_init(be->disk->queue_size, &q->ring, 0);
	if (ret < 0) {
		blk_err("queue %u: io_uring_queue_init: %s",
			vduse_vq_index(vq), strerror(-ret));
		free(q);
		return ret;
	}
	vduse_vq_set_priv(vq, q);
	*poll_fd = q->ring.ring_fd;
	blk_dbg("queue %u: started (size %u)", vduse_vq_index(vq),
		vduse_vq_size(vq));
	/* The runner follows with a KICK event, which serves whatever the
	 * driver queued before this thread existed. */
	return 0;
}

static void blk_queue_event(struct vduse_vq *vq, void *opaque,
			    unsigned int events)
{
	struct blk_queue *q = vduse_vq_priv(vq);

	if (!q)
		return;
	if (events & VDUSE_RUNNER_POLL)
		blk_queue_reap(q);
	if (events & VDUSE_RUNNER_KICK)
		blk_queue_pop_all(q);
	blk_queue_submit(q);
	blk_queue_notify(q);
}

/* Wait for every operation in flight so that each request gets pushed. */
static void blk_queue_exit(struct vduse_vq *vq, void *opaque)
{
	struct blk_queue *q = vduse_vq_priv(vq);
	int ret;

	if (!q)
		return;
	while (q->inflight) {
		ret = io_uring_submit_and_wait(&q->ring, 1);
		if (ret < 0 && ret != -EINTR) {
			/* The requests still in the ring are leaked. */
			blk_err("queue %u: %u requests lost: %s",
				vduse_vq_index(vq), q->inflight,
				strerror(-ret));
			break;
		}
		blk_queue_reap(q);
	}
	blk_queue_notify(q);
	io_uring_queue_exit(&q->ring);
	vduse_vq_set_priv(vq, NULL);
	blk_dbg("queue %u: stopped", vduse_vq_index(vq));
	free(q);
}

const struct vduse_runner_ops blk_runner_ops = {
	.size = sizeof(struct vduse_runner_ops),
	.queue_init = blk_queue_init,
	.queue_event = blk_queue_event,
	.queue_exit = blk_queue_exit,
};
