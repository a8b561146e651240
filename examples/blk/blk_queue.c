// SPDX-License-Identifier: MIT
/*
 * The vduse-blk data path: runner callbacks that serve one virtqueue with
 * its own io_uring (blk_ring.c does the I/O).
 *
 *  - a kick pops every available request, parses it and starts it on the
 *    queue's ring;
 *  - the ring's poll fd is the queue's poll fd; when it is readable the
 *    completions are reaped and finished requests are pushed back;
 *  - after each event the ring submits, and one vduse_vq_notify() covers
 *    the batch of pushes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blk_log.h"
#include "blk_queue.h"
#include "blk_ring.h"

struct blk_queue {
	struct blk_ring ring;
	struct vduse_vq *vq;
	unsigned int pushed;	/* pushes since the last notify */
};

/* ------------------------------------------------------------------------ */
/* Completion                                                                */

/* blk_ring_done_fn: push the finished request back to the driver. */
static void blk_queue_done(struct blk_ring *ring, struct blk_io *io,
			   uint8_t status)
{
	struct blk_queue *q = ring->priv;
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
static void blk_queue_done_bad(struct blk_queue *q, struct blk_io *io)
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
/* Requests from the driver                                                  */

static void blk_queue_pop_all(struct blk_queue *q)
{
	struct blk_io *io;
	int ret;

	for (;;) {
		ret = vduse_vq_pop(q->vq, sizeof(*io), (void **)&io);
		if (ret == -EAGAIN || ret == -EIO)
			return;	/* empty, or broken (queue_error said so) */
		if (ret < 0) {
			/*
			 * Transient (-ENOMEM): nothing was consumed and the
			 * library kicks the queue again, so stop for now.
			 */
			blk_dbg("queue %u: pop: %s; retrying on the next kick",
				vduse_vq_index(q->vq), strerror(-ret));
			return;
		}
		memset((char *)io + sizeof(io->elem), 0,
		       sizeof(*io) - sizeof(io->elem));
		ret = blk_req_parse(q->ring.be->disk, io->elem.out_sg,
				    io->elem.out_num, io->elem.in_sg,
				    io->elem.in_num, &io->req);
		if (ret < 0)
			blk_queue_done_bad(q, io);
		else
			blk_ring_start(&q->ring, io);
	}
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
	/* One SQE per request in flight at most: a full ring is rare. */
	ret = blk_ring_init(&q->ring, be, be->disk->queue_size,
			    vduse_vq_index(vq), blk_queue_done, q);
	if (ret < 0) {
		free(q);
		return ret;
	}
	vduse_vq_set_priv(vq, q);
	*poll_fd = blk_ring_fd(&q->ring);
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
		blk_ring_poll(&q->ring);
	if (events & VDUSE_RUNNER_KICK)
		blk_queue_pop_all(q);
	blk_ring_submit(&q->ring);
	blk_queue_notify(q);
}

/* Wait for every request in flight so that each one gets pushed. */
static void blk_queue_exit(struct vduse_vq *vq, void *opaque)
{
	struct blk_queue *q = vduse_vq_priv(vq);

	if (!q)
		return;
	blk_ring_drain(&q->ring);
	blk_queue_notify(q);
	blk_ring_exit(&q->ring);
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
