// SPDX-License-Identifier: MIT
/*
 * The vduse-blk data path: runner callbacks that serve one virtqueue with
 * its own io_uring (blk_ring.c does the I/O), on libvduse's batch API.
 *
 *  - requests are popped in batches (vduse_vq_pop_batch()); the elements
 *    are the library's, and each request's state is q->io[elem->id], so
 *    nothing is allocated per request;
 *  - finished requests collect in q->done and go back with one
 *    vduse_vq_push_batch(VDUSE_VQ_PUSH_NOTIFY): one used->idx store and one
 *    interrupt decision per batch;
 *  - a read or write that hits the page cache completes inside the
 *    submit (and on tmpfs blk_ring.c does it at once, without io_uring):
 *    those completions are reaped and pushed in the same event, without
 *    waiting for the ring's poll fd;
 *  - while requests are in flight kicks are off (vduse_vq_disable_kicks()):
 *    each completion event looks at the ring itself.  When the queue runs
 *    idle, kicks go back on before the thread sleeps, and
 *    vduse_vq_enable_kicks() looking at the ring once more closes the race
 *    with a request made available in between;
 *  - with --poll-us, an idle queue first keeps kicks off and looks at the
 *    ring for that long, so that a request arriving meanwhile costs the
 *    driver no kick and this thread no wake-up;
 *  - with --wait=ring (blk_runner_ops_ring) the runner hands the thread's
 *    wait to blk_queue_run(): the kick eventfd's read, the runner's stop
 *    fd and the retry timer are operations in the queue's io_uring, and
 *    one io_uring_enter() submits the I/O, re-arms and waits for all of
 *    them (docs/architecture.md, "one wait").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blk_log.h"
#include "blk_queue.h"
#include "blk_ring.h"

/* Rounds of pop, submit, reap and push in one event before yielding. */
#define BLK_QUEUE_ROUNDS	32

struct blk_queue {
	struct blk_ring ring;
	struct vduse_vq *vq;
	unsigned int size;		/* the ring's: elem->id < size */
	struct blk_io *io;		/* [size], by elem->id */
	struct vduse_vq_elem **popped;	/* [size], vduse_vq_pop_batch() */
	struct vduse_vq_elem **done;	/* [size], finished, not pushed */
	uint32_t *done_len;		/* [size] */
	unsigned int ndone;
	unsigned int busy;		/* popped and not finished */
	bool kicks_off;			/* vduse_vq_disable_kicks() is on */
	bool again;			/* left work for the next event */
	bool poll_dead;			/* the runner no longer polls the ring */
	uint64_t poll_ns;		/* --poll-us, in ns */
};

/* ------------------------------------------------------------------------ */
/* Completion                                                                */

static void blk_queue_finish(struct blk_queue *q, struct blk_io *io,
			     uint32_t len)
{
	q->done[q->ndone] = io->elem;
	q->done_len[q->ndone] = len;
	q->ndone++;
	q->busy--;
	io->elem = NULL;
}

/* blk_ring_done_fn: queue the finished request for the next push. */
static void blk_queue_done(struct blk_ring *ring, struct blk_io *io,
			   uint8_t status)
{
	struct blk_queue *q = ring->priv;

	blk_req_set_status(&io->req, status);
	blk_queue_finish(q, io, blk_req_used_len(&io->req));
}

/*
 * Push what finished, with one interrupt decision; with nothing to push,
 * only notify when @notify (an interrupt the library could not inject is
 * injected by the next notify, and it signals the kick fd for that).
 */
static void blk_queue_push(struct blk_queue *q, bool notify)
{
	int ret;

	if (!q->ndone && !notify)
		return;
	ret = vduse_vq_push_batch(q->vq, q->done, q->done_len, q->ndone,
				  VDUSE_VQ_PUSH_NOTIFY);
	if (ret == -ENOMEM) {
		/* Nothing was pushed; the library signalled the kick fd. */
		blk_dbg("queue %u: push: %s; retrying on the next kick",
			vduse_vq_index(q->vq), strerror(-ret));
		return;
	}
	if (ret < 0)
		blk_warn("queue %u: push of %u requests failed: %s",
			 vduse_vq_index(q->vq), q->ndone, strerror(-ret));
	q->ndone = 0;
}

/* ------------------------------------------------------------------------ */
/* Requests from the driver                                                  */

static void blk_queue_start(struct blk_queue *q, struct vduse_vq_elem *e)
{
	struct blk_io *io = &q->io[e->id];

	memset(io, 0, sizeof(*io));
	io->elem = e;
	q->busy++;
	if (blk_req_parse(q->ring.be->disk, e->out_sg, e->out_num, e->in_sg,
			  e->in_num, &io->req) < 0) {
		/* No status byte to answer in. */
		blk_warn("queue %u: request %u has no status byte",
			 vduse_vq_index(q->vq), e->id);
		blk_queue_finish(q, io, 0);
		return;
	}
	blk_ring_start(&q->ring, io);
}

/* Pop and start everything available.  Returns the number popped. */
static unsigned int blk_queue_pop_all(struct blk_queue *q)
{
	unsigned int total = 0, max;
	int i, n;

	do {
		max = q->size - q->busy;
		n = vduse_vq_pop_batch(q->vq, q->popped, max);
		if (n == -EAGAIN || n == -EIO || n == -EINVAL)
			break;	/* empty, broken (queue_error said so), full */
		if (n < 0) {
			/*
			 * Transient (-ENOMEM): nothing was consumed and the
			 * library signalled the kick fd, so stop for now.
			 */
			blk_dbg("queue %u: pop: %s; retrying on the next kick",
				vduse_vq_index(q->vq), strerror(-n));
			break;
		}
		for (i = 0; i < n; i++) {
			if (q->popped[i]->id >= q->size) {
				/* The library promises otherwise. */
				blk_err("queue %u: element id %u out of range",
					vduse_vq_index(q->vq), q->popped[i]->id);
				abort();
			}
			blk_queue_start(q, q->popped[i]);
		}
		total += (unsigned int)n;
		/* Fewer than asked for: the ring was found empty. */
	} while ((unsigned int)n == max && q->busy < q->size);
	return total;
}

static uint64_t blk_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * --poll-us: the queue is idle; with kicks off, look at the ring for
 * q->poll_ns.  Returns true when requests came (they were started).
 */
static bool blk_queue_spin(struct blk_queue *q)
{
	uint64_t end;

	if (!q->kicks_off) {
		if (vduse_vq_disable_kicks(q->vq) != 0)
			return false;
		q->kicks_off = true;
	}
	end = blk_now_ns() + q->poll_ns;
	do {
		if (blk_queue_pop_all(q))
			return true;
	} while (blk_now_ns() < end);
	return false;
}

/*
 * Serve the queue until it waits for something: completions (kicks off)
 * or a kick (kicks on, the ring seen empty after turning them on).
 */
static void blk_queue_serve(struct blk_queue *q, bool pop, bool notify)
{
	unsigned int round;
	int ret;

	q->again = false;
	for (round = 0; round < BLK_QUEUE_ROUNDS; round++) {
		if (pop)
			blk_queue_pop_all(q);
		pop = false;
		blk_ring_submit(&q->ring);
		/* Completions the submit itself posted: no need to wait. */
		if (blk_ring_ready(&q->ring) || q->poll_dead)
			pop = blk_ring_reap(&q->ring) > 0;
		blk_queue_push(q, notify);
		notify = false;
		if (q->busy && !q->poll_dead) {
			if (!q->kicks_off) {
				ret = vduse_vq_disable_kicks(q->vq);
				q->kicks_off = ret == 0;
			}
			if (!pop)
				return;	/* the ring's poll fd wakes us */
			continue;	/* room was freed: look for more */
		}
		if (!q->busy && q->poll_ns && !q->poll_dead &&
		    blk_queue_spin(q)) {
			pop = false;	/* blk_queue_spin() started them */
			continue;
		}
		if (!q->kicks_off)
			return;		/* idle: the next request kicks */
		ret = vduse_vq_enable_kicks(q->vq);
		if (ret == -ENOMEM)
			return;		/* the kick fd was signalled */
		q->kicks_off = false;
		if (ret != 1)
			return;		/* 0: empty, kicks on; or broken */
		pop = true;		/* requests came meanwhile */
	}
	/* Busy for a while: let the runner look at its stop fd first. */
	q->again = true;
	blk_ring_wake(&q->ring);
}

/* ------------------------------------------------------------------------ */
/* Runner callbacks                                                          */

static void blk_queue_free(struct blk_queue *q)
{
	free(q->io);
	free(q->popped);
	free(q->done);
	free(q->done_len);
	free(q);
}

/* --pin: queue N's thread on the Nth CPU this thread may use (modulo). */
static void blk_queue_pin(unsigned int index)
{
	cpu_set_t allowed, one;
	int cpu, n, want, ret;

	if (pthread_getaffinity_np(pthread_self(), sizeof(allowed), &allowed))
		return;
	n = CPU_COUNT(&allowed);
	if (n <= 0)
		return;
	want = (int)(index % (unsigned int)n);
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &allowed) || want--)
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		ret = pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
		if (ret)
			blk_warn("queue %u: cannot pin to CPU %d: %s", index,
				 cpu, strerror(ret));
		else
			blk_dbg("queue %u: pinned to CPU %d", index, cpu);
		return;
	}
}

static int blk_queue_init(struct vduse_vq *vq, void *opaque, int *poll_fd)
{
	const struct blk_backend *be = opaque;
	struct blk_queue *q;
	int ret;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	if (be->pin)
		blk_queue_pin(vduse_vq_index(vq));
	q->vq = vq;
	q->size = vduse_vq_size(vq);
	q->poll_ns = (uint64_t)be->poll_us * 1000u;
	q->io = calloc(q->size, sizeof(*q->io));
	q->popped = calloc(q->size, sizeof(*q->popped));
	q->done = calloc(q->size, sizeof(*q->done));
	q->done_len = calloc(q->size, sizeof(*q->done_len));
	if (!q->size || !q->io || !q->popped || !q->done || !q->done_len) {
		blk_queue_free(q);
		return -ENOMEM;
	}
	/* One SQE per request in flight at most: a full ring is rare. */
	ret = blk_ring_init(&q->ring, be, be->disk->queue_size,
			    vduse_vq_index(vq), blk_queue_done, q);
	if (ret < 0) {
		blk_queue_free(q);
		return ret;
	}
	vduse_vq_set_priv(vq, q);
	*poll_fd = blk_ring_fd(&q->ring);
	blk_dbg("queue %u: started (size %u)", vduse_vq_index(vq), q->size);
	/* The runner follows with a KICK event, which serves whatever the
	 * driver queued before this thread existed. */
	return 0;
}

static void blk_queue_event(struct vduse_vq *vq, void *opaque,
			    unsigned int events)
{
	struct blk_queue *q = vduse_vq_priv(vq);
	bool kick = events & VDUSE_RUNNER_KICK;

	(void)opaque;
	if (!q)
		return;
	if (events & VDUSE_RUNNER_POLL_ERR) {
		/* Nothing will wake us for completions: keep kicks on and
		 * reap on every event. */
		blk_err("queue %u: the io_uring's poll fd failed",
			vduse_vq_index(vq));
		q->poll_dead = true;
	}
	if (events & VDUSE_RUNNER_POLL)
		blk_ring_poll(&q->ring);
	/* Completions first: they have waited longest. */
	blk_queue_push(q, false);
	blk_queue_serve(q, kick || q->kicks_off || q->again, kick);
}

/*
 * --wait=ring: the thread's only wait is blk_ring_wait(), which submits the
 * I/O, re-arms the kick read and the stop and timer polls, and sleeps
 * until one of them (or a request's I/O) completes.  Returns once the
 * runner's stop fd is readable; queue_exit follows.
 */
static int blk_queue_run(struct vduse_vq *vq, void *opaque, int stop_fd)
{
	struct blk_queue *q = vduse_vq_priv(vq);
	struct blk_ring *ring;
	bool warned = false, kick;
	int ret;

	(void)opaque;
	if (!q || !q->ring.own_wait)
		return -EOPNOTSUPP;
	ring = &q->ring;
	/* Requests may be waiting from before the kick fd was armed. */
	ring->kicked = true;
	/* I/O is submitted by the wait's own io_uring_enter(). */
	ring->wait_submits = true;
	for (;;) {
		if (ring->stopped) {
			ring->wait_submits = false;	/* queue_exit drains */
			return 0;
		}
		kick = ring->kicked;
		ring->kicked = false;
		blk_queue_push(q, false);
		blk_queue_serve(q, kick || q->kicks_off || q->again, kick);
		if (ring->kicked || ring->stopped)
			continue;	/* seen while serving */
		ret = blk_ring_wait(ring, vduse_vq_kick_fd(vq), stop_fd);
		if (ret < 0 && ret != -EINTR && ret != -ETIME) {
			/* The kernel took nothing: pause, then try again. */
			if (!warned)
				blk_warn("queue %u: io_uring_enter: %s; retrying",
					 vduse_vq_index(vq), strerror(-ret));
			warned = true;
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 },
				  NULL);
		}
		blk_ring_poll(ring);
	}
}

/* Wait for every request in flight so that each one gets pushed. */
static void blk_queue_exit(struct vduse_vq *vq, void *opaque)
{
	struct blk_queue *q = vduse_vq_priv(vq);

	(void)opaque;
	if (!q)
		return;
	blk_ring_drain(&q->ring);
	blk_queue_push(q, true);
	if (q->ndone)
		blk_warn("queue %u: %u requests could not be pushed",
			 vduse_vq_index(vq), q->ndone);
	blk_ring_exit(&q->ring);
	vduse_vq_set_priv(vq, NULL);
	blk_dbg("queue %u: stopped", vduse_vq_index(vq));
	blk_queue_free(q);
}

const struct vduse_runner_ops blk_runner_ops = {
	.size = sizeof(struct vduse_runner_ops),
	.queue_init = blk_queue_init,
	.queue_event = blk_queue_event,
	.queue_exit = blk_queue_exit,
};

const struct vduse_runner_ops blk_runner_ops_ring = {
	.size = sizeof(struct vduse_runner_ops),
	.queue_init = blk_queue_init,
	.queue_event = blk_queue_event,
	.queue_exit = blk_queue_exit,
	.queue_run = blk_queue_run,
};
