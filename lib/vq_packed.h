/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Packed virtqueues (VIRTIO_F_RING_PACKED), the ring layout behind the
 * same pop/push/notify calls as split rings: vq_split.c and
 * vq_split_used.c call in here where the layouts differ.  Everything is
 * called with the queue's iotlb lock held.
 */
#ifndef VDUSE_LIB_VQ_PACKED_H
#define VDUSE_LIB_VQ_PACKED_H

#include <stdbool.h>
#include <stdint.h>

struct vduse_vq;
struct vring_packed_desc;
struct vring_packed_desc_event;
struct chain;

struct vduse_packed {
	struct vring_packed_desc *desc;
	struct vring_packed_desc_event *driver;	/* the driver's wishes */
	struct vring_packed_desc_event *device;	/* ours: kick suppression */
	bool avail_wrap;	/* wrap counter of vq->last_avail_idx */
	bool used_wrap;		/* wrap counter of vq->used_idx */
	/*
	 * Ring descriptors popped and not yet used: the driver can make at
	 * most num - in_ring more available.
	 */
	unsigned int in_ring;
	uint16_t used_total;	/* descriptors used, free-running */
	uint16_t signalled;	/* used_total at the last interrupt decision */
	uint64_t *bufids;	/* one bit per 16-bit buffer id: in flight */
	uint16_t *bufid;	/* per slot: the driver's buffer id */
	uint16_t *ndesc;	/* per slot: ring descriptors it took */
	uint16_t *free;		/* free slots (a stack) */
	unsigned int nr_free;
	/*
	 * With an in-flight log (inflight_log.h): the ring descriptors the
	 * last walk read (host order), per slot the log's pool entry of its
	 * second descriptor, and the free pool entries (a stack; the log
	 * keeps none, a recovery rebuilds it from the in-flight chains).
	 */
	struct vring_packed_desc *seen;
	uint16_t *link;
	uint16_t *pool_free;
	unsigned int nr_pool_free;
	uint64_t pops;		/* the log's count of buffers popped */
};

/* What a walk found, for vduse_packed_commit(). */
struct vduse_packed_chain {
	uint16_t bufid;
	uint16_t ndesc;
};

int vduse_packed_alloc(struct vduse_vq *vq);
void vduse_packed_free(struct vduse_vq *vq);
/* Take the ring state VQ_GET_INFO gave; -EINVAL if it is impossible. */
int vduse_packed_set_state(struct vduse_vq *vq, bool avail_wrap,
			   uint16_t avail_idx, bool used_wrap,
			   uint16_t used_idx);

int vduse_packed_map_rings(struct vduse_vq *vq);
void vduse_packed_init_used(struct vduse_vq *vq);
void vduse_packed_kicks_reset(struct vduse_vq *vq);

/*
 * The slot the next available buffer will take, -EAGAIN when none is
 * available, or -EIO (the queue broke).
 */
int vduse_packed_avail(struct vduse_vq *vq);
/* Walk the buffer at the avail position into @c (0, -ENOMEM or -EIO). */
int vduse_packed_take(struct vduse_vq *vq, struct chain *c,
		      struct vduse_packed_chain *pc);
/* The buffer @pc is in flight in @slot. */
void vduse_packed_commit(struct vduse_vq *vq, unsigned int slot,
			 const struct vduse_packed_chain *pc);

/* Write @slot's used descriptor and free the slot. */
void vduse_packed_put_used(struct vduse_vq *vq, unsigned int slot,
			   uint32_t len);
/* The log's record of @slot is void once its used descriptor is
 * published: FREE, and its pool entries go back. */
void vduse_packed_log_free(struct vduse_vq *vq, unsigned int slot);
/*
 * A reconnect reconciles the log with the ring (inflight_log.c): @slot is
 * in flight with @ndesc ring descriptors for buffer id @bufid.  0, or
 * -EINVAL when the id is in flight twice.
 */
int vduse_packed_recovered(struct vduse_vq *vq, unsigned int slot,
			   uint16_t bufid, uint16_t ndesc, uint16_t link);
/* ... and then: every other slot and pool entry is free. */
void vduse_packed_recovered_end(struct vduse_vq *vq, const uint8_t *pool_used);
bool vduse_packed_need_interrupt(struct vduse_vq *vq);
void vduse_packed_kicks_off(struct vduse_vq *vq);
/* 1: buffers are available, 0: none, -EIO. */
int vduse_packed_kicks_on(struct vduse_vq *vq);

#endif
