/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What both ring layouts (vq_split.c, vq_packed.c) share to turn a
 * descriptor's buffer into iovecs: the chain being collected, the mapping
 * cache, and the checked copy of an indirect table (16-byte entries in
 * both layouts).  Included by the two layouts' files only; everything is
 * called with the queue's iotlb lock held.
 */
#ifndef VDUSE_LIB_VQ_BUF_H
#define VDUSE_LIB_VQ_BUF_H

#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <string.h>

#include "vq_split.h"

/* Walks of one chain before giving up on an IOTLB that keeps changing. */
#define WALK_RETRIES	3

struct chain {
	struct iovec *iov;	/* where the iovecs go */
	unsigned int cap;	/* room there */
	unsigned int n;		/* iovecs collected */
	unsigned int out;	/* of which device-readable */
	unsigned int in;	/* of which device-writable */
};

/*
 * The mapping cache (vq_fast.h): copies of the mappings recent buffers
 * were found in, so that most buffers cost one comparison instead of a
 * search of the IOTLB.  Every mapping that leaves the IOTLB bumps its
 * generation, which empties the cache, so a cached mapping is always a
 * live one.  Returns a pointer to @len bytes at @iova with @perm, or NULL
 * (not cached: ask the IOTLB).  Locked.
 */
static inline unsigned int map_bucket(uint64_t iova)
{
	return (unsigned int)(iova >> VDUSE_VQ_MAP_SHIFT) %
	       VDUSE_VQ_MAP_CACHE;
}

static inline void *map_cache_ptr(struct vduse_vq *vq, uint64_t iova,
				  uint64_t len, unsigned int perm)
{
	const struct vduse_vq_fast *f = &vq->fast;
	const struct vduse_vq_map_hit *m = &f->maps[map_bucket(iova)];
	uint64_t off = iova - m->start;

	/*
	 * [iova, iova + len) within [start, start + span].  No mapping spans
	 * all 2^64 bytes (the IOTLB refuses to map that), so len 0, whose
	 * len - 1 is UINT64_MAX, never matches: it takes the IOTLB's path,
	 * which gives it no iovec.
	 */
	if (f->map_gen == vq->iotlb.gen && off <= m->span &&
	    len - 1 <= m->span - off && (m->perm & perm) == perm)
		return m->base + off;
	return NULL;
}

/* Remember the mapping that holds @iova (just found by the IOTLB). */
static __attribute__((noinline, unused)) void
map_cache_add(struct vduse_vq *vq, uint64_t iova)
{
	struct vduse_vq_fast *f = &vq->fast;
	const struct vduse_iotlb *t = &vq->iotlb;
	unsigned int lo = vduse_iotlb_find_slot(t, iova);

	if (f->map_gen != t->gen) {
		memset(f->maps, 0, sizeof(f->maps));
		f->map_gen = t->gen;
	}
	if (lo < t->nr && t->maps[lo]->start <= iova) {
		const struct vduse_iotlb_map *m = t->maps[lo];
		struct vduse_vq_map_hit *h = &f->maps[map_bucket(iova)];

		h->start = m->start;
		h->span = m->last - m->start;
		h->base = m->base;
		h->perm = m->perm;
	}
}

/*
 * Translate one descriptor's buffer into c->iov: 1 when the mapping cache
 * answered, 0 when the IOTLB did (it may have changed), or -errno.
 * -ENOBUFS: c->iov is smaller than the scratch array and too small: walk
 * again into that.
 */
static inline __attribute__((always_inline)) int
add_buffer(struct vduse_vq *vq, struct chain *c, uint64_t addr, uint32_t len,
	   bool write)
{
	unsigned int perm = write ? VDUSE_IOTLB_WRITE : VDUSE_IOTLB_READ;
	unsigned int before = c->n;
	void *p;
	int ret;

	if (!write && c->in) {
		vduse_vq_fail(vq, -EINVAL,
			      "device-readable descriptor after a writable one");
		return -EIO;
	}
	if (c->n < c->cap && (p = map_cache_ptr(vq, addr, len, perm))) {
		c->iov[c->n].iov_base = p;
		c->iov[c->n].iov_len = len;
		c->n++;
		if (write)
			c->in++;
		else
			c->out++;
		return 1;
	}
	ret = vduse_iotlb_iov(&vq->iotlb, addr, len, perm, c->iov, &c->n,
			      c->cap);
	if (ret == 0 && len)
		map_cache_add(vq, addr);
	if (ret == -ENOBUFS && c->cap < vq->iov_cap)
		return -ENOBUFS;
	if (ret == -ENOBUFS) {
		vduse_vq_fail(vq, -E2BIG, "chain needs more than %u iovecs",
			      vq->iov_cap);
		return -EIO;
	}
	if (vduse_iotlb_transient(ret))
		return -ENOMEM;
	if (ret < 0) {
		vduse_vq_fail(vq, ret, "%s buffer [0x%llx, +%u]: %s",
			      write ? "writable" : "readable",
			      (unsigned long long)addr, len,
			      ret == -EACCES ? "mapping lacks the permission" :
			      strerror(-ret));
		return -EIO;
	}
	if (write)
		c->in += c->n - before;
	else
		c->out += c->n - before;
	return 0;
}

/*
 * Copy and check an indirect table; returns its entry count, -EIO (the
 * queue broke) or -ENOMEM (a shortage: try again later).
 */
static inline int load_indirect(struct vduse_vq *vq, uint64_t addr,
				uint32_t len, bool next)
{
	unsigned int n = len / sizeof(struct vring_desc);
	void *p;
	int ret;

	if (!vq->indirect) {
		vduse_vq_fail(vq, -EINVAL, "indirect descriptor not negotiated");
		return -EIO;
	}
	if (next) {
		vduse_vq_fail(vq, -EINVAL, "indirect descriptor with NEXT");
		return -EIO;
	}
	if (len == 0 || len % sizeof(struct vring_desc) || n > vq->max_size) {
		vduse_vq_fail(vq, -EINVAL, "indirect table of bad size %u",
			      len);
		return -EIO;
	}
	p = map_cache_ptr(vq, addr, len, VDUSE_IOTLB_READ);
	if (p) {
		memcpy(vq->indirect_buf, p, len);
		return n;
	}
	ret = vduse_iotlb_read(&vq->iotlb, addr, vq->indirect_buf,
			       len);
	if (ret == 0)
		map_cache_add(vq, addr);
	if (vduse_iotlb_transient(ret))
		return -ENOMEM;
	if (ret < 0) {
		vduse_vq_fail(vq, ret, "indirect table at 0x%llx: %s",
			      (unsigned long long)addr,
			      strerror(-ret));
		return -EIO;
	}
	return n;
}

/*
 * A walk found the IOTLB changed under it (-ESTALE), @tries times before:
 * re-translate the rings for another walk (0), or give up (the queue
 * breaks after WALK_RETRIES; -EIO, or -ENOMEM for a shortage).
 */
static inline int walk_again(struct vduse_vq *vq, unsigned int tries)
{
	int ret;

	if (tries == WALK_RETRIES) {
		vduse_vq_fail(vq, -ESTALE,
			      "the IOTLB kept changing under a chain");
		return -EIO;
	}
	ret = rings_valid(vq);
	if (ret < 0)
		return ret == -ENOMEM ? ret : -EIO;
	return 0;
}

#endif
