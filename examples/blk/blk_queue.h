/* SPDX-License-Identifier: MIT */
/*
 * The vduse-blk data path: runner callbacks that serve one virtqueue with
 * its own io_uring.  Each queue thread owns its ring and its requests; the
 * only thing the threads share is the read-only struct blk_backend.
 */
#ifndef BLK_QUEUE_H
#define BLK_QUEUE_H

#include <libvduse.h>

#include "blk_ring.h"

/*
 * The runner's opaque pointer is a struct blk_backend (blk_ring.h).
 * blk_runner_ops: the runner waits (poll() on the kick fd and the ring);
 * blk_runner_ops_ring: each queue thread waits in its io_uring
 * (blk_backend.ring_wait must be set).
 */
extern const struct vduse_runner_ops blk_runner_ops;
extern const struct vduse_runner_ops blk_runner_ops_ring;

#endif /* BLK_QUEUE_H */
