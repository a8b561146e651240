/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal structures shared by the library's files. */
#ifndef VDUSE_LIB_INTERNAL_H
#define VDUSE_LIB_INTERNAL_H

#include <sys/ioctl.h>
#include <linux/vduse.h>
#include <stdbool.h>
#include <stdint.h>

#include "libvduse.h"
#include "iotlb.h"
#include "inflight_log.h"
#include "vq_fast.h"

#define VDUSE_LIB_MAX_QUEUE_SIZE	32768u
#define VDUSE_LIB_MAX_QUEUES		65535u
#define VDUSE_LIB_MAX_GROUPS		65535u	/* and address spaces */

struct vring_desc;
struct vring_avail;
struct vring_used;
struct vduse_packed;

/* Hooks through which a runner follows queue start and stop. */
struct vduse_queue_hooks {
	int (*start)(void *data, struct vduse_vq *vq);
	/*
	 * Stop the queue's thread.  Returns 0 once it has ended, or 1 when it
	 * is still running past the hook's time limit: the queue is then
	 * stopped without it ("left behind"), and the hooks' owner calls
	 * vduse_vq_left_behind_gone() once the thread has ended.
	 */
	int (*stop)(void *data, struct vduse_vq *vq);
	/* Every queue is about to stop: tell them all before any stop(). */
	void (*stop_begin)(void *data);
	/* Wait for a left-behind thread of @vq (the queue is about to start). */
	void (*reap)(void *data, struct vduse_vq *vq);
};

struct vduse_vq {
	struct vduse_device *dev;
	unsigned int index;
	unsigned int max_size;
	int kick_fd;
	void *priv;

	/* Guest-visible ring, valid while started. */
	bool started;
	bool broken;
	bool event_idx;
	bool indirect;
	unsigned int num;
	uint64_t desc_addr;
	uint64_t avail_addr;
	uint64_t used_addr;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t ring_gen;	/* iotlb.gen the ring pointers came from */
	/*
	 * VIRTIO_F_RING_PACKED (vq_packed.c): one descriptor ring the device
	 * writes used descriptors into, and two event suppression areas.
	 * last_avail_idx and used_idx are then ring positions (< num) with
	 * their wrap counters, and an element's id is a slot (< num) that
	 * holds the driver's buffer id: ids stay below the queue size for
	 * the backend whatever ids the driver uses.
	 */
	bool packed;
	struct vduse_packed *pk;
	/*
	 * Started since the last reset: GET_VQ_STATE answers from our
	 * indices, otherwise from the kernel's (VQ_GET_INFO).
	 */
	bool state_ours;

	uint16_t last_avail_idx;
	uint16_t used_idx;
	uint16_t signalled_used;	/* used_idx at the last notify */
	bool irq_pending;	/* an interrupt that failed to go out */
	bool rings_pending;	/* rings not mapped yet (a transient failure) */
	unsigned int inflight;
	uint64_t *inflight_map;	/* one bit per descriptor head */
	uint8_t *head_slot;	/* per head: its iotlb pin slot */
	/* Pushes not yet in the used ring (the ring could not be mapped). */
	struct vring_used_elem *deferred;	/* num entries */
	unsigned int nr_deferred;
	bool flushed;		/* they went out: the driver wants to know */

	/* A failure found with the lock held, reported after unlocking. */
	int fail_err;
	/*
	 * Stopped while a thread that may hold elements still ran: their
	 * mappings stay pinned and queue_stop waits until it has ended.
	 */
	bool left_behind;

	/* Per-queue scratch, so that pop allocates only the element. */
	struct iovec *iov;
	unsigned int iov_cap;
	struct vring_desc *indirect_buf;	/* max_size entries */
	/* Batch element storage and the mapping cache (vq_fast.h). */
	struct vduse_vq_fast fast;

	/*
	 * In-flight log record (NULL: no log, and pop and push do nothing
	 * more than test this).  After a reconnect, the heads to pop again
	 * before anything new, in their original order.
	 */
	struct vduse_ilog_vq *ilog;
	uint16_t *replay;
	unsigned int nr_replay, replay_pos;

	struct vduse_iotlb iotlb;
	void *runner_data;

	/*
	 * VDUSE_F_QUEUE_READY: the driver enabled the queue (SET_VQ_READY),
	 * which the kernel may not report in VQ_GET_INFO before it has our
	 * answer.  Cleared by a reset.
	 */
	bool ready_msg;
	uint32_t group;		/* its virtqueue group (API 1) */
};

struct vduse_device {
	char name[VDUSE_NAME_MAX];
	int control_fd;
	int dev_fd;
	bool created;
	bool attached;

	uint32_t device_id;
	uint32_t vendor_id;
	uint64_t features;	/* offered */
	bool packed_auto;	/* VIRTIO_F_RING_PACKED added by the library */
	uint64_t negotiated;
	uint8_t status;

	unsigned int num_queues;
	unsigned int queue_size;
	uint8_t *config;
	uint32_t config_size;

	struct vduse_device_ops ops;
	void *opaque;
	struct vduse_vq *vqs;

	const struct vduse_queue_hooks *hooks;
	void *hooks_data;

	struct vduse_ilog ilog;	/* ilog.hdr NULL: none */
	/* Opened by vduse_device_open(): recover on the first process(). */
	bool recover_pending;
	bool recovering;	/* queues start from the log */

	/* The VDUSE uAPI chosen on the control fd (device.c). */
	unsigned int api_version;
	uint64_t vduse_features;	/* 1 << VDUSE_F_*, in use */
	bool suspended;		/* VDUSE_SUSPEND: no queue starts until reset */
	/* API 1: groups, address spaces, each group's space (num_groups). */
	uint32_t num_groups;
	uint32_t num_as;
	uint32_t *group_asid;
	uint32_t *queue_group;	/* from the config, NULL: all 0 */
	/* vduse_device_set_umem() (umem.c), NULL: none. */
	struct vduse_umem *umem;
	/* Bound to vhost_vdpa by vduse_device_attach_driver(): no umem. */
	bool vhost_bound;
};

/* vq.c */
/* @setup: tell the kernel (VDUSE_VQ_SETUP); not for a reopened device. */
int vduse_vq_init(struct vduse_vq *vq, struct vduse_device *dev,
		  unsigned int index, unsigned int max_size, bool setup);
void vduse_vq_release(struct vduse_vq *vq);
int vduse_vq_start(struct vduse_vq *vq);
void vduse_vq_stop(struct vduse_vq *vq);
/*
 * Break @vq: log why and record @err; the queue_error callback runs from
 * vduse_vq_report_failure(), which the caller calls once it holds no lock.
 */
void vduse_vq_fail(struct vduse_vq *vq, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Take the recorded failure (0 if none).  Call with the lock held. */
int vduse_vq_take_failure(struct vduse_vq *vq);
/* Call the queue_error callback for @err (no-op for 0).  Unlocked. */
void vduse_vq_report_failure(struct vduse_vq *vq, int err);
/* Signal our own kick fd, so that whoever polls it comes back to retry. */
void vduse_vq_self_kick(struct vduse_vq *vq);
/*
 * The thread a stop left behind has ended: release what its elements
 * pinned and call queue_stop.  On the thread that starts and stops queues.
 */
void vduse_vq_left_behind_gone(struct vduse_vq *vq);

/* vq_split.c */
int vduse_ring_map(struct vduse_vq *vq);
/* Take the used index from the freshly mapped ring.  Locked. */
void vduse_ring_init_used(struct vduse_vq *vq);

/* device.c */
void vduse_device_stop_queues(struct vduse_device *dev);
int vduse_device_set_hooks(struct vduse_device *dev,
			   const struct vduse_queue_hooks *hooks, void *data);

/*
 * Drop @dev as a killed process would: no queue stop reaches the log, the
 * device stays in the kernel.  For the unit tests' crash simulations.
 */
void vduse_device_forget(struct vduse_device *dev);

/* message.c */
void vduse_device_set_status(struct vduse_device *dev, uint8_t status);

#endif
