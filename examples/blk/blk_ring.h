/* SPDX-License-Identifier: MIT */
/*
 * One queue's io_uring: carries out parsed virtio-blk requests on the
 * backing file and hands each finished request to its owner through a
 * callback.  No libvduse calls, so it is unit tested on its own
 * (examples/test-blk-ring.c).
 *
 * A request that cannot get a submission queue entry (the SQ is full) or
 * whose entry the kernel does not take (io_uring_submit() fails, e.g. with
 * -EAGAIN or -EBUSY) is never failed for that reason: it waits, in order,
 * on the ring's pending list or in the SQ, and blk_ring_submit() arms a
 * 1 ms retry timer.  The poll fd is readable when completions arrive or
 * the timer fires, so a waiting request is retried even when nothing else
 * is in flight and the driver never kicks again.
 *
 * With blk_backend.ring_wait the ring is also the queue thread's only wait
 * (blk_ring_wait()): a poll and a read of the kick eventfd, a poll of the
 * runner's stop fd and one of the retry timer sit in the ring next to the
 * I/O, so one io_uring_enter() submits, waits and re-arms.  The ring is
 * then created with IORING_SETUP_SINGLE_ISSUER|IORING_SETUP_DEFER_TASKRUN
 * when the kernel takes them (without them otherwise).
 */
#ifndef BLK_RING_H
#define BLK_RING_H

#include <stdbool.h>

#include <liburing.h>
#include <libvduse.h>		/* struct vduse_vq_elem */

#include "blk_req.h"

/* What every queue serves; read-only after start-up but for *flush. */
struct blk_backend {
	const struct blk_disk *disk;
	int fd;			/* the backing file */
	bool blkdev;		/* it is a block device */
	struct blk_flush_state *flush;	/* shared, sticky flush error */
	/*
	 * Tests only (VDUSE_BLK_TEST_HOLD_FLUSH_MS): hold each completed
	 * flush this long before pushing it, saying so on stderr, so that a
	 * test can kill the daemon while a FLUSH is in flight.
	 */
	unsigned int test_hold_flush_ms;
	/* --wait=ring: each queue thread waits in its ring (blk_ring_wait()). */
	bool ring_wait;
	/* --pin: queue thread N runs on the Nth CPU it may use (modulo). */
	bool pin;
	/* --poll-us: look at an idle ring this long, kicks off, before sleeping. */
	unsigned int poll_us;
};

/* One request, from pop to push. */
struct blk_io {
	struct vduse_vq_elem *elem;	/* the library's, until pushed */
	struct blk_req req;
	struct blk_io *next;		/* on the ring's pending list */
	/* READ, WRITE: what is left to transfer */
	struct iovec *iov;
	unsigned int iov_cnt;
	uint64_t off;
	size_t left;
	/* DISCARD, WRITE_ZEROES: the segment in progress */
	unsigned int seg;
	struct blk_range range;
	enum blk_range_how how;
	unsigned int tried;		/* ways that were unsupported */
};

struct blk_ring;

/* A request is finished: store @status and give it back to the driver. */
typedef void blk_ring_done_fn(struct blk_ring *r, struct blk_io *io,
			      uint8_t status);

struct blk_ring {
	struct io_uring ring;
	const struct blk_backend *be;
	blk_ring_done_fn *done;
	void *priv;			/* the owner's */
	unsigned int index;		/* the queue's, for messages */
	int poll_fd;			/* epoll: ring fd and retry timer */
	int timer_fd;
	unsigned int inflight;		/* given an SQE, not yet reaped */
	struct blk_io *pending;		/* waiting for an SQE, oldest first */
	struct blk_io **pending_tail;
	unsigned int npending;
	bool retry_armed;
	bool stuck;			/* the kernel refused; logged once */
	/*
	 * READ and WRITE with preadv()/pwritev() in the caller's thread, set
	 * by blk_ring_init() for a memory-backed file (blk_ring_memory_backed());
	 * a retry after -EINTR/-EAGAIN and the rest of a short transfer still
	 * go through the ring (sync_depth).  The tests may change it.
	 */
	bool sync_rw;
	unsigned int sync_depth;
	/* io_uring_submit(); the tests replace it to inject failures. */
	int (*submit)(struct io_uring *ring);
	/* be->ring_wait: the owner's waits in the ring (blk_ring_wait()) */
	bool own_wait;
	/*
	 * The owner is in its blk_ring_wait() loop: blk_ring_submit() only
	 * fills the SQ and the wait's io_uring_enter() submits it.
	 */
	bool wait_submits;
	unsigned int setup_flags;	/* what io_uring_queue_init took */
	bool kick_armed, stop_armed, timer_armed;
	bool kicked;			/* the kick fd fired: the owner clears it */
	bool stopped;			/* the stop fd is readable */
	uint64_t kick_val;		/* the kick eventfd's count lands here */
};

/*
 * The user_data of the owner's waits in the ring; a request's is its
 * struct blk_io pointer, never this small.
 */
enum blk_ring_tag {
	BLK_RING_TAG_KICK_POLL = 1,	/* linked to the read; error only */
	BLK_RING_TAG_KICK,		/* the read of the kick eventfd */
	BLK_RING_TAG_STOP,
	BLK_RING_TAG_TIMER,
	BLK_RING_TAGS			/* CQEs they may take at once: below */
};

/*
 * Set up @r with an io_uring of @entries.  Returns 0 or -errno (logged).
 */
int blk_ring_init(struct blk_ring *r, const struct blk_backend *be,
		  unsigned int entries, unsigned int index,
		  blk_ring_done_fn *done, void *priv);

/*
 * Is @fd a file on tmpfs or ramfs?  Copying to or from it never waits for
 * a device, and io_uring cannot do it without a worker thread.
 */
bool blk_ring_memory_backed(int fd);

/* Release the ring; call blk_ring_drain() first. */
void blk_ring_exit(struct blk_ring *r);

/* The fd to wait on for POLLIN; then call blk_ring_poll(). */
static inline int blk_ring_fd(const struct blk_ring *r)
{
	return r->poll_fd;
}

/* Start a parsed request: finish it at once or queue its first step. */
void blk_ring_start(struct blk_ring *r, struct blk_io *io);

/* The poll fd was readable: take the completions, clear the timer. */
void blk_ring_poll(struct blk_ring *r);

/*
 * Completions are waiting in the CQ (the kernel may post them inside the
 * submit, e.g. for a file in the page cache): blk_ring_reap() takes them
 * without waiting for the poll fd.
 */
static inline bool blk_ring_ready(struct blk_ring *r)
{
	return io_uring_cq_ready(&r->ring) != 0;
}

/*
 * Handle every completion in the CQ; returns how many requests' there were
 * (the waits' set r->kicked, r->stopped).
 */
unsigned int blk_ring_reap(struct blk_ring *r);

/*
 * be->ring_wait: arm what is not armed (a poll then a read of @kick_fd, a
 * poll of @stop_fd and of the retry timer), submit everything and wait for
 * one completion, in one io_uring_enter().  Then call blk_ring_poll().
 * Returns 0 or -errno (-EINTR, -ETIME: go on; others: the kernel took
 * nothing, try again after a pause).
 */
int blk_ring_wait(struct blk_ring *r, int kick_fd, int stop_fd);

/*
 * Make the poll fd readable at once (through the retry timer), for an
 * owner that stopped with work left and wants an event to come back to.
 */
void blk_ring_wake(struct blk_ring *r);

/*
 * After a batch of blk_ring_start()/blk_ring_poll(): move waiting requests
 * into the SQ and submit.  What the kernel does not take stays queued and
 * the retry timer is armed.
 */
void blk_ring_submit(struct blk_ring *r);

/*
 * Wait until every request was finished.  Requests the kernel never took
 * are failed with IOERR when it still refuses them after a second.
 */
void blk_ring_drain(struct blk_ring *r);

#endif /* BLK_RING_H */
