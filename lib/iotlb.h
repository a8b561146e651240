/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * IOTLB cache: IOVA ranges mapped into this process by mmap'ing the files
 * VDUSE_IOTLB_GET_FD returns.  Each queue owns one cache, so the data path
 * takes only its own queue's lock, which the control thread contends only
 * while it applies an UPDATE_IOTLB.  Ranges are kept sorted and disjoint;
 * lookups are binary searches and misses are filled from the kernel.
 */
#ifndef VDUSE_LIB_IOTLB_H
#define VDUSE_LIB_IOTLB_H

#include <pthread.h>
#include <stdint.h>
#include <sys/uio.h>

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
};

struct vduse_iotlb {
	pthread_mutex_t lock;
	int dev_fd;
	struct vduse_iotlb_map *maps;	/* sorted by start, disjoint */
	unsigned int nr;
	unsigned int cap;
	uint64_t gen;		/* bumped whenever a mapping goes away */
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

/* Drop every mapping that overlaps [start, last]. */
void vduse_iotlb_invalidate(struct vduse_iotlb *t, uint64_t start,
			    uint64_t last);

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
