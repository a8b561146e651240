/* SPDX-License-Identifier: MIT */
/*
 * What the two crash recovery tests share (test_recovery.c with the
 * single-element API, test_recovery_batch.c with the batch API): a
 * simulated driver on queue 0 that makes numbered requests, the device's
 * config with an in-flight log file, the first start and the reconnection,
 * the successor's serve-to-the-end loop and the crash-at-every-point loop.
 *
 * A request r is two descriptors on an even head: 4 readable bytes that
 * hold r, then 8 writable bytes in which the device writes r's mark.
 * What differs between the tests is in rec_params, which each test
 * program defines.
 */
#ifndef RECOVERY_DRV_H
#define RECOVERY_DRV_H

#include "test_util.h"

#define REC_QS		16u		/* ring size */
#define REC_MAX_OUT	(REC_QS / 2)	/* two descriptors a request */
#define REC_MAX_REQ	64u		/* bound of rec_params.nreq */

struct rec_params {
	const char *name;		/* device name, log file prefix */
	unsigned int nreq;		/* requests the driver makes in all */
	uint32_t mark;			/* request r completes with mark + r */
	const void *config;		/* config space (NULL: none) */
	uint32_t config_size;
	const char *log_id;		/* NULL: none */
	uint32_t log_id_size;

	/* rec_serve_to_end(): pop some elements into @el (at most
	 * REC_QS): how many, or -EAGAIN when the ring is empty. */
	int (*pop)(struct vduse_vq *vq, struct vduse_vq_elem **el);
	/* ... and complete them with rec_mark_done() (asserts success). */
	void (*complete)(struct vduse_vq *vq, struct vduse_vq_elem **el,
			 unsigned int n);

	/* test_crash_at_every_point(): */
	void (*child_script)(struct vduse_vq *vq);	/* the first process */
	unsigned int prefill;		/* requests published before it */
	unsigned long min_points;	/* crash points it passes, more than */
	/* Optional: a check of the successor right after it reconnected. */
	void (*recovered)(struct vduse_device *dev);
};

/* Defined by each test program. */
extern const struct rec_params rec_params;

/* The driver (always in the parent process). */
struct rec_drv {
	struct sim_vq s;
	int head_req[REC_QS];		/* request on a head, -1: free */
	unsigned int completions[REC_MAX_REQ];
	unsigned int next_req, outstanding, done;
};
extern struct rec_drv rec_drv;

/* Publish the next request on a free even head; false when all are made
 * or REC_MAX_OUT are outstanding. */
bool rec_submit(void);
/* Take every used entry; each must complete an outstanding request. */
void rec_collect(void);
/* Every request made completed once; the used index counts them. */
void rec_check_all_once(void);

/* The device side: an element's request number, and its mark written. */
uint32_t rec_elem_req(const struct vduse_vq_elem *e);
void rec_mark_done(struct vduse_vq_elem *e);

/* The device config, with the log at rec_log_path. */
extern char rec_log_path[64];
struct vduse_device_config rec_config(void);

/* cmocka fixtures: tu_setup() and a fresh log file; unlink it. */
int rec_setup(void **state);
int rec_teardown(void **state);

/* A fresh fake kernel with the device created and the driver live. */
struct vduse_device *rec_first_start(uint64_t features);
/* The successor: reopen, process once, queue 0 started. */
struct vduse_device *rec_reopen(void);
/*
 * The successor serves until the driver has made and seen every request:
 * its pops must come in avail order (what it pops again first, then new
 * requests), and never a request that was already completed.
 */
void rec_serve_to_end(struct vduse_device *dev);

/* The first process is killed at every crash point of its script in
 * turn; a successor serves every request to the end each time.  Named
 * test_* like every case (mutate.py reads the failed cases' names). */
void test_crash_at_every_point(void **state);
void test_crash_at_every_point_event_idx(void **state);

#endif
