/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the two halves of the split-ring code share: vq_split.c reads the
 * driver's side (rings, chains, pops), vq_split_used.c writes the
 * device's side (used entries, interrupts, kick suppression).  Everything
 * here is called with the queue's iotlb lock held unless it says
 * otherwise.
 */
#ifndef VDUSE_LIB_VQ_SPLIT_H
#define VDUSE_LIB_VQ_SPLIT_H

#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>

#include "internal.h"

/* Memory shared with the driver: read and write each field exactly once. */
#define RING_LOAD(x)		__atomic_load_n(&(x), __ATOMIC_RELAXED)
#define RING_LOAD_ACQ(x)	__atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define RING_STORE(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define RING_STORE_REL(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

static inline uint16_t *used_event(struct vduse_vq *vq)
{
	return (uint16_t *)&vq->avail->ring[vq->num];
}

static inline uint16_t *avail_event(struct vduse_vq *vq)
{
	return (uint16_t *)&vq->used->ring[vq->num];
}

/*
 * Re-translate the rings if an UPDATE_IOTLB dropped mappings.  Returns 0,
 * -EIO when the queue is stopped, -ENOMEM for a shortage that may pass (the
 * queue stays usable), or another -errno after breaking the queue.
 */
int vduse_ring_remap(struct vduse_vq *vq);

/* Publish the pushes the used ring could not take when they were made. */
void vduse_split_flush_deferred(struct vduse_vq *vq);

/*
 * Unlocked, after a call that found a shortage: make sure the caller comes
 * back.
 */
void vduse_split_retry_later(struct vduse_vq *vq, const char *what);

static inline int rings_valid(struct vduse_vq *vq)
{
	if (!vq->started)
		return -EIO;
	if (__builtin_expect(!vq->rings_pending &&
			     vq->ring_gen == vq->iotlb.gen, 1))
		return 0;
	return vduse_ring_remap(vq);
}

static inline bool inflight_test(const struct vduse_vq *vq, unsigned int id)
{
	return vq->inflight_map[id / 64] & (1ULL << (id % 64));
}

static inline void inflight_flip(struct vduse_vq *vq, unsigned int id)
{
	vq->inflight_map[id / 64] ^= 1ULL << (id % 64);
}

/* vduse_iotlb_pin(), inline. */
static inline unsigned int pin(struct vduse_iotlb *t)
{
	t->pins[t->slot]++;
	return t->slot;
}

/*
 * vduse_iotlb_unpin() without its reclaim: unlock_and_report() reclaims
 * once per call, before the lock is dropped.
 */
static inline void unpin(struct vduse_iotlb *t, unsigned int slot)
{
	if (t->pins[slot & 1])
		t->pins[slot & 1]--;
}

/* Locked.  Returns the available index, or -EIO if the driver is lying. */
static inline int read_avail_idx(struct vduse_vq *vq)
{
	uint16_t idx = le16toh(RING_LOAD_ACQ(vq->avail->idx));

	if ((uint16_t)(idx - vq->last_avail_idx) > vq->num) {
		vduse_vq_fail(vq, -EINVAL,
			      "available index jumped from %u to %u (size %u)",
			      vq->last_avail_idx, idx, vq->num);
		return -EIO;
	}
	return idx;
}

/* Is a reconnect's list of requests to pop again not done yet? */
static inline bool replaying(const struct vduse_vq *vq)
{
	return vq->ilog && vq->replay_pos < vq->nr_replay;
}

/* What every data-path call does on its way out of the lock. */
static inline __attribute__((always_inline)) void
unlock_and_report(struct vduse_vq *vq, bool *notify)
{
	int err = vq->fail_err ? vduse_vq_take_failure(vq) : 0;

	*notify = vq->flushed;
	vq->flushed = false;
	/* Nothing retired (the common case): nothing to reclaim. */
	if (vq->iotlb.retired || vq->iotlb.grace)
		vduse_iotlb_reclaim(&vq->iotlb);
	vduse_iotlb_unlock(&vq->iotlb);
	if (err)
		vduse_vq_report_failure(vq, err);
}

#endif /* VDUSE_LIB_VQ_SPLIT_H */
