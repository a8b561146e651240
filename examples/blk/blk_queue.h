/* SPDX-License-Identifier: MIT */
/*
 * The vduse-blk data path: runner callbacks that serve one virtqueue with
 * its own io_uring.  Each queue thread owns its ring and its requests; the
 * only thing the threads share is the read-only struct blk_backend.
 */
#ifndef BLK_QUEUE_H
#define BLK_QUEUE_H

#include <libvduse.h>

#include "blk_req.h"

/* Passed as the runner's opaque pointer; never written after start-up. */
struct blk_backend {
	const struct blk_disk *disk;
	int fd;			/* the backing file */
};

extern const struct vduse_runner_ops blk_runner_ops;

#endif /* BLK_QUEUE_H */
