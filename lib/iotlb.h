/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IOTLB cache: IOVA ranges mapped into this process by mmap'ing the files
 * VDUSE_IOTLB_GET_FD returns.  Each queue owns one cache, so the data path
 * takes only its own queue's lock, which the control thread contends only
 * while it applies an UPDATE_IOTLB.  Ranges are kept sorted and disjoint;
 * lookups are binary searches and misses are filled from the kernel.
 *
 * Mapping lifetime.  A popped element holds pointers into these mappings
 * until it is pushed, so an invalidated mapping is not unmapped at once: it
 * is retired (dropped from lookups, still mapped) and unmapped only when
 * every element popped before its retirement has been pushed.  Elements are
 * counted in one of two slots, as in a two-counter grace period: retiring
 * while elements are in flight flips the slot new pops count in, and the
 * retired batch is unmapped when the old slot drains.  Pop and push cost
 * one counter update each; nothing is ever unmapped under an element, so no
 * new mapping can reuse an address an element still points at.
 */
#ifndef VDUSE_LIB_IOTLB_H
#define VDUSE_LIB_IOTLB_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "umem.h"

/* Access the device needs: VDUSE_ACCESS_RO (device reads), _WO (writes). */
#define VDUSE_IOTLB_READ	0x1
#define VDUSE_IOTLB_WRITE	0x2

struct vduse_iotlb_map {
	uint64_t start;		/* first IOVA */
	uint64_t last;		/* last IOVA (inclusive) */
	uint8_t *base;		/* address of @start in this process */
	void *mmap_addr;	/* what to munmap */
	size_t mmap_len;
	unsigned int perm;	/* VDUSE_IOTLB_* */
	struct vduse_iotlb_map *next;	/* on a retired list */
	/*
	 * Mapped from an fd at IOVA 0 while umem may register: counted in
	 * its fd_maps while mapped.  (mmap_len 0: the backend's memory of
	 * a registered bounce region, nothing to unmap.)
	 */
	struct vduse_umem *fd_umem;
};

struct vduse_iotlb {
	pthread_mutex_t lock;
	int dev_fd;
	struct vduse_iotlb_map **maps;	/* sorted by start, disjoint */
	unsigned int nr;
	unsigned int cap;
	uint64_t gen;		/* bumped whenever a mapping goes away */

	/* Retired mappings (still mapped) and the elements that may use them. */
	struct vduse_iotlb_map *retired;	/* since the grace period began */
	struct vduse_iotlb_map *waiting;	/* for pins[slot ^ 1] to drain */
	unsigned int pins[2];	/* elements in flight, by slot */
	unsigned int slot;	/* where new elements are counted */
	bool grace;		/* waiting is waiting for pins[slot ^ 1] */

	/*
	 * API 1 with several address spaces: regions are looked up in
	 * address space @asid (IOTLB_GET_FD2).  Changed with the lock held.
	 */
	bool fd2;
	uint32_t asid;

	/*
	 * vduse_device_set_umem(): misses in address space 0 may be served
	 * from (and first register) the backend's memory (umem.h).  Set
	 * once, with the lock held, before the queue first starts.
	 */
	struct vduse_umem *umem;
};

void vduse_iotlb_init(struct vduse_iotlb *t, int dev_fd);
/* Unmaps everything and frees the table. */
void vduse_iotlb_destroy(struct vduse_iotlb *t);

/* The following expect t->lock held by the caller. */

/*
 * Find (or map) the region holding @iova with access @perm.  On success
 * *ptr points at @iova and *avail is the number of bytes from there to the
 * end of the region.  -EFAULT: not mapped in the kernel either; -EACCES:
 * mapped without @perm; other -errno from mmap.
 */
int vduse_iotlb_lookup(struct vduse_iotlb *t, uint64_t iova,
		       unsigned int perm, void **ptr, uint64_t *avail);

/* A pointer to @len contiguous bytes at @iova, or -errno (-E2BIG: split). */
int vduse_iotlb_ptr(struct vduse_iotlb *t, uint64_t iova, uint64_t len,
		    unsigned int perm, void **ptr);

/*
 * Append iovecs covering [iova, iova + len) to iov[*n .. max).  Returns 0,
 * -ENOBUFS when @max is too small, or a lookup error.
 */
int vduse_iotlb_iov(struct vduse_iotlb *t, uint64_t iova, uint64_t len,
		    unsigned int perm, struct iovec *iov, unsigned int *n,
		    unsigned int max);

/* Copy @len bytes at @iova into @dst (the source may span regions). */
int vduse_iotlb_read(struct vduse_iotlb *t, uint64_t iova, void *dst,
		     uint64_t len);

/*
 * Drop every mapping that overlaps [start, last] from lookups.  Each is
 * retired: unmapped by vduse_iotlb_reclaim() once no element popped before
 * now is in flight.
 */
void vduse_iotlb_invalidate(struct vduse_iotlb *t, uint64_t start,
			    uint64_t last);

/*
 * An element that may point into the current mappings is now in flight;
 * returns the slot to hand back to vduse_iotlb_unpin() when it is pushed.
 */
unsigned int vduse_iotlb_pin(struct vduse_iotlb *t);
void vduse_iotlb_unpin(struct vduse_iotlb *t, unsigned int slot);
/* Elements in flight. */
unsigned int vduse_iotlb_pinned(const struct vduse_iotlb *t);
/*
 * Forget every pin (the queue stopped: its backend holds no element any
 * more) and unmap whatever that frees.
 */
void vduse_iotlb_unpin_all(struct vduse_iotlb *t);

/* Unmap the retired mappings no element in flight can use any more. */
void vduse_iotlb_reclaim(struct vduse_iotlb *t);

/*
 * Is @err (from a lookup, or from allocating an element) a shortage that
 * may pass (memory, fds), as opposed to a bad address from the driver?
 */
bool vduse_iotlb_transient(int err);

/*
 * Index of the first mapping whose last byte is at or above @iova (t->nr
 * if none): the one that holds @iova if any holds it.  Inline for the
 * mapping cache's miss path (lib/vq_split.c).
 */
static inline unsigned int vduse_iotlb_find_slot(const struct vduse_iotlb *t,
						 uint64_t iova)
{
	unsigned int lo = 0, hi = t->nr;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (t->maps[mid]->last < iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Locking wrappers. */
static inline void vduse_iotlb_lock(struct vduse_iotlb *t)
{
	pthread_mutex_lock(&t->lock);
}

static inline void vduse_iotlb_unlock(struct vduse_iotlb *t)
{
	pthread_mutex_unlock(&t->lock);
}

#endif
