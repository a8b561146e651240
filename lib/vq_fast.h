/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Per-queue state of the data path's fast path (vq_split.c): element
 * storage for vduse_vq_pop_batch(), one slot per descriptor head, and a
 * small cache of the IOTLB mappings the last buffers were found in.
 */
#ifndef VDUSE_LIB_VQ_FAST_H
#define VDUSE_LIB_VQ_FAST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "libvduse.h"

/* iovecs a slot holds in place: a 4 KiB virtio-blk request needs 3. */
#define VDUSE_VQ_SLOT_IOV	6u
/* Bytes of larger iovec arrays a queue keeps for reuse across pushes. */
#define VDUSE_VQ_SPARE_IOV_BYTES	(1u << 20)
/*
 * IOTLB mappings remembered per queue, direct-mapped by IOVA bits 20-22:
 * a buffer costs one comparison when its 1 MiB of IOVA space was looked
 * up before (one large bounce or guest-memory mapping fills every entry).
 */
#define VDUSE_VQ_MAP_CACHE	8u
#define VDUSE_VQ_MAP_SHIFT	20

/*
 * The element vduse_vq_pop_batch() hands out for head h is slots[h].elem:
 * at most one element per head is in flight, so the storage never runs
 * out and needs no allocation once the queue has started.
 */
struct vduse_vq_slot {
	struct vduse_vq_elem elem;
	struct iovec *big;	/* a chain longer than iov[]: kept for reuse */
	unsigned int big_cap;
	struct iovec iov[VDUSE_VQ_SLOT_IOV];
};

/*
 * A copy of a live IOTLB mapping's fields (they never change).  A zeroed
 * entry has no permission and matches nothing.
 */
struct vduse_vq_map_hit {
	uint64_t start;
	uint64_t span;		/* last - start */
	uint8_t *base;		/* address of start */
	unsigned int perm;
};

struct vduse_vq_fast {
	struct vduse_vq_slot *slots;	/* nr_slots (the ring size) */
	unsigned int nr_slots;
	/*
	 * EVENT_IDX and kicks on (not vduse_vq_disable_kicks()): pops move
	 * avail_event, and one that finds the ring empty re-arms it.
	 */
	bool rearm;
	size_t spare_bytes;	/* in slots[].big */

	/*
	 * Mappings that held recent buffers: valid while map_gen is the
	 * IOTLB's generation, which moves whenever a mapping goes away.
	 */
	struct vduse_vq_map_hit maps[VDUSE_VQ_MAP_CACHE];
	uint64_t map_gen;
};

struct vduse_vq;

/*
 * The ring asks for kicks again: a new start, or a reconnect (the dead
 * process may have left them off).  Rings mapped, locked.
 */
void vduse_ring_kicks_reset(struct vduse_vq *vq);

#endif
