// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Split virtqueues.  The ring lives in memory the driver controls, so every
 * index, descriptor, length and address read from it is checked before use:
 * a malformed ring breaks the queue (vduse_vq_fail) instead of crashing or
 * spinning.  Descriptors are copied before they are used, so the driver
 * cannot change one between the check and the use.
 */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"
#include "sys.h"

/* Memory shared with the driver: read and write each field exactly once. */
#define RING_LOAD(x)		__atomic_load_n(&(x), __ATOMIC_RELAXED)
#define RING_LOAD_ACQ(x)	__atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define RING_STORE(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define RING_STORE_REL(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

static size_t desc_size(unsigned int num)
{
	return sizeof(struct vring_desc) * num;
}

/* flags, idx, ring[num], used_event */
static size_t avail_size(unsigned int num)
{
	return sizeof(uint16_t) * (3 + num);
}

/* flags, idx, ring[num], avail_event */
static size_t used_size(unsigned int num)
{
	return sizeof(uint16_t) * 3 + sizeof(struct vring_used_elem) * num;
}

static uint16_t *used_event(struct vduse_vq *vq)
{
	return (uint16_t *)&vq->avail->ring[vq->num];
}

static uint16_t *avail_event(struct vduse_vq *vq)
{
	return (uint16_t *)&vq->used->ring[vq->num];
}

/* Called with the queue's iotlb lock held. */
int vduse_split_map_rings(struct vduse_vq *vq)
{
	struct vduse_iotlb *t = &vq->iotlb;
	void *desc, *avail, *used;
	int ret;

	ret = vduse_iotlb_ptr(t, vq->desc_addr, desc_size(vq->num),
			      VDUSE_IOTLB_READ, &desc);
	if (ret == 0)
		ret = vduse_iotlb_ptr(t, vq->avail_addr, avail_size(vq->num),
				      VDUSE_IOTLB_READ, &avail);
	if (ret == 0)
		ret = vduse_iotlb_ptr(t, vq->used_addr, used_size(vq->num),
				      VDUSE_IOTLB_READ | VDUSE_IOTLB_WRITE,
				      &used);
	if (ret < 0)
		return ret;
	if (((uintptr_t)desc & 15) || ((uintptr_t)avail & 1) ||
	    ((uintptr_t)used & 3))
		return -EINVAL;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	vq->ring_gen = t->gen;
	return 0;
}

void vduse_split_init_used(struct vduse_vq *vq)
{
	vq->used_idx = le16toh(RING_LOAD(vq->used->idx));
	/* Nothing pushed yet: nothing to notify about. */
	vq->signalled_used = vq->used_idx;
	vq->rings_pending = false;
	vduse_split_kicks_reset(vq);
	vduse_ilog_vq_start(vq);
}

void vduse_split_kicks_reset(struct vduse_vq *vq)
{
	vq->fast.rearm = vq->event_idx;
	if (vq->event_idx)
		RING_STORE(*avail_event(vq), htole16(vq->last_avail_idx));
	else
		RING_STORE(vq->used->flags, 0);
}

/* Put one completion in the used ring (used->idx is stored later). */
static inline __attribute__((always_inline)) void
put_used(struct vduse_vq *vq, uint32_t id, uint32_t len)
{
	struct vring_used_elem *u = &vq->used->ring[vq->used_idx % vq->num];

	if (vq->ilog)
		vduse_crash_point();
	RING_STORE(u->id, htole32(id));
	if (vq->ilog) {
		vduse_crash_point();
		RING_STORE(u->len, htole32(len));
		vduse_ilog_done(vq->ilog, id, vq->used_idx);
	} else {
		RING_STORE(u->len, htole32(len));
	}
	vq->used_idx++;
}

/* Make the used entries written so far visible to the driver. */
static void publish_used(struct vduse_vq *vq)
{
	if (vq->ilog)
		vduse_crash_point();
	RING_STORE_REL(vq->used->idx, htole16(vq->used_idx));
	if (vq->ilog)
		vduse_ilog_used(vq->ilog, vq->used_idx);
}

/* Publish the pushes the used ring could not take when they were made. */
static void flush_deferred(struct vduse_vq *vq)
{
	unsigned int i;

	for (i = 0; i < vq->nr_deferred; i++)
		put_used(vq, le32toh(vq->deferred[i].id),
			 le32toh(vq->deferred[i].len));
	publish_used(vq);
	/* The log kept them in flight until now. */
	for (i = 0; vq->ilog && i < vq->nr_deferred; i++)
		vduse_ilog_free(vq->ilog, le32toh(vq->deferred[i].id));
	vq->nr_deferred = 0;
	vq->flushed = true;	/* the driver may be waiting for an interrupt */
}

/*
 * Re-translate the rings if an UPDATE_IOTLB dropped mappings.  Locked.
 * Returns 0, -EIO when the queue is stopped, -ENOMEM for a shortage that
 * may pass (the queue stays usable), or another -errno after breaking the
 * queue.
 */
static int remap_rings(struct vduse_vq *vq)
{
	int ret = vduse_split_map_rings(vq);

	if (vduse_iotlb_transient(ret))
		return -ENOMEM;
	if (ret < 0) {
		vduse_vq_fail(vq, ret, "rings are no longer mapped: %s",
			      strerror(-ret));
		return ret;
	}
	if (vq->rings_pending)
		vduse_split_init_used(vq);
	if (vq->nr_deferred)
		flush_deferred(vq);
	return 0;
}

static inline int rings_valid(struct vduse_vq *vq)
{
	if (!vq->started)
		return -EIO;
	if (__builtin_expect(!vq->rings_pending &&
			     vq->ring_gen == vq->iotlb.gen, 1))
		return 0;
	return remap_rings(vq);
}

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
static __attribute__((noinline)) void
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
static int add_buffer(struct vduse_vq *vq, struct chain *c,
		      const struct vring_desc *d)
{
	uint64_t addr = le64toh(d->addr);
	uint32_t len = le32toh(d->len);
	bool write = le16toh(d->flags) & VRING_DESC_F_WRITE;
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
static int load_indirect(struct vduse_vq *vq, const struct vring_desc *d)
{
	uint32_t len = le32toh(d->len);
	uint16_t flags = le16toh(d->flags);
	unsigned int n = len / sizeof(struct vring_desc);
	void *p;
	int ret;

	if (!vq->indirect) {
		vduse_vq_fail(vq, -EINVAL, "indirect descriptor not negotiated");
		return -EIO;
	}
	if (flags & VRING_DESC_F_NEXT) {
		vduse_vq_fail(vq, -EINVAL, "indirect descriptor with NEXT");
		return -EIO;
	}
	if (len == 0 || len % sizeof(struct vring_desc) || n > vq->max_size) {
		vduse_vq_fail(vq, -EINVAL, "indirect table of bad size %u",
			      len);
		return -EIO;
	}
	p = map_cache_ptr(vq, le64toh(d->addr), len, VDUSE_IOTLB_READ);
	if (p) {
		memcpy(vq->indirect_buf, p, len);
		return n;
	}
	ret = vduse_iotlb_read(&vq->iotlb, le64toh(d->addr), vq->indirect_buf,
			       len);
	if (ret == 0)
		map_cache_add(vq, le64toh(d->addr));
	if (vduse_iotlb_transient(ret))
		return -ENOMEM;
	if (ret < 0) {
		vduse_vq_fail(vq, ret, "indirect table at 0x%llx: %s",
			      (unsigned long long)le64toh(d->addr),
			      strerror(-ret));
		return -EIO;
	}
	return n;
}

/*
 * Walk the chain that starts at @head, collecting iovecs.  Locked.
 * Returns -ESTALE when a lookup had to drop a cached mapping (the kernel
 * changed its IOTLB before telling us): the ring and the iovecs collected
 * so far may be stale translations, so the caller walks again.  -ENOMEM:
 * a shortage that may pass; -EIO: the queue broke.
 */
static int walk_chain(struct vduse_vq *vq, unsigned int head, struct chain *c)
{
	const struct vring_desc *table = vq->desc;
	unsigned int size = vq->num, idx = head, seen = 0;
	uint64_t gen = vq->iotlb.gen;
	bool in_indirect = false;

	for (;;) {
		struct vring_desc d;
		uint16_t flags;
		int ret;

		if (idx >= size) {
			vduse_vq_fail(vq, -EINVAL,
				      "descriptor index %u out of range (%u)",
				      idx, size);
			return -EIO;
		}
		if (++seen > size) {
			vduse_vq_fail(vq, -ELOOP,
				      "descriptor chain longer than %u (a loop?)",
				      size);
			return -EIO;
		}
		if (in_indirect) {
			d = table[idx];	/* our private copy */
		} else {
			d.addr = RING_LOAD(vq->desc[idx].addr);
			d.len = RING_LOAD(vq->desc[idx].len);
			d.flags = RING_LOAD(vq->desc[idx].flags);
			d.next = RING_LOAD(vq->desc[idx].next);
		}
		flags = le16toh(d.flags);

		if (flags & VRING_DESC_F_INDIRECT) {
			int n;

			if (in_indirect) {
				vduse_vq_fail(vq, -EINVAL,
					      "indirect descriptor inside an indirect table");
				return -EIO;
			}
			n = load_indirect(vq, &d);
			if (n < 0)
				return n;
			if (vq->iotlb.gen != gen)
				return -ESTALE;
			table = vq->indirect_buf;
			size = n;
			idx = 0;
			seen = 0;
			in_indirect = true;
			continue;
		}
		ret = add_buffer(vq, c, &d);
		if (ret < 0)
			return ret;
		/* Only the IOTLB's path (ret 0, not 1) can change it. */
		if (ret == 0 && vq->iotlb.gen != gen)
			return -ESTALE;
		if (!(flags & VRING_DESC_F_NEXT))
			return 0;
		idx = le16toh(d.next);
	}
}

static bool inflight_test(const struct vduse_vq *vq, unsigned int id)
{
	return vq->inflight_map[id / 64] & (1ULL << (id % 64));
}

static void inflight_flip(struct vduse_vq *vq, unsigned int id)
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
static int read_avail_idx(struct vduse_vq *vq)
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

/*
 * The head at last_avail_idx, or -EAGAIN when the ring is empty (kicks are
 * re-armed first, unless the backend turned them off), or -EIO.  *avail is
 * the available index last read (-1: none yet), so that a batch reads it
 * once per run of requests.  Locked.
 */
static inline __attribute__((always_inline)) int
avail_head(struct vduse_vq *vq, int *avail)
{
	unsigned int head;

	if (*avail < 0 || *avail == vq->last_avail_idx) {
		/* With EVENT_IDX, a run used up goes straight to the re-arm,
		 * which looks again anyway. */
		int a = *avail < 0 || !vq->fast.rearm ?
			read_avail_idx(vq) : *avail;

		if (a < 0)
			return a;
		if (a == vq->last_avail_idx) {
			if (!vq->fast.rearm)
				return -EAGAIN;
			/* Ask for a kick on the next request, then look again. */
			RING_STORE(*avail_event(vq),
				   htole16(vq->last_avail_idx));
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			a = read_avail_idx(vq);
			if (a < 0)
				return a;
			if (a == vq->last_avail_idx)
				return -EAGAIN;
		}
		*avail = a;
	}
	head = le16toh(RING_LOAD(vq->avail->ring[vq->last_avail_idx % vq->num]));
	if (head >= vq->num) {
		vduse_vq_fail(vq, -EINVAL, "head %u out of range (%u)", head,
			      vq->num);
		return -EIO;
	}
	if (inflight_test(vq, head)) {
		vduse_vq_fail(vq, -EINVAL, "head %u made available twice",
			      head);
		return -EIO;
	}
	return (int)head;
}

/* Walk the chain at @head into c->iov, again while the IOTLB changes. */
static int take_chain(struct vduse_vq *vq, unsigned int head, struct chain *c)
{
	unsigned int tries;
	int ret;

	for (tries = 0;; tries++) {
		c->n = c->out = c->in = 0;
		ret = walk_chain(vq, head, c);
		if (ret != -ESTALE)
			return ret;
		if (tries == WALK_RETRIES) {
			vduse_vq_fail(vq, -ESTALE,
				      "the IOTLB kept changing under a chain");
			return -EIO;
		}
		ret = rings_valid(vq);
		if (ret < 0)
			return ret == -ENOMEM ? ret : -EIO;
	}
}

/* Is a reconnect's list of requests to pop again not done yet? */
static bool replaying(const struct vduse_vq *vq)
{
	return vq->ilog && vq->replay_pos < vq->nr_replay;
}

/*
 * @head's chain was taken: it is in flight.  Returns true when it came
 * from the avail ring (false: from the list a reconnect replays).
 */
static inline __attribute__((always_inline)) bool
commit_pop(struct vduse_vq *vq, unsigned int head)
{
	vq->inflight++;
	vq->head_slot[head] = (uint8_t)pin(&vq->iotlb);
	if (vq->ilog) {
		if (vq->replay_pos < vq->nr_replay) {
			/* Logged and marked in flight by the recovery. */
			vq->replay_pos++;
			return false;
		}
		vduse_ilog_pop(vq->ilog, head, vq->last_avail_idx);
	}
	inflight_flip(vq, head);
	vq->last_avail_idx++;
	return true;
}

static int pop_locked(struct vduse_vq *vq, size_t sz, void **out)
{
	struct vduse_vq_elem *elem;
	struct chain c;
	int head, avail = -1, ret;

	if (vq->broken)
		return -EIO;
	ret = rings_valid(vq);
	if (ret < 0)
		return ret == -ENOMEM ? ret : -EIO;
	if (replaying(vq)) {
		/* After a reconnect: what the last process left in flight. */
		head = vq->replay[vq->replay_pos];
	} else {
		head = avail_head(vq, &avail);
		if (head < 0)
			return head;
	}
	c.iov = vq->iov;
	c.cap = vq->iov_cap;
	ret = take_chain(vq, (unsigned int)head, &c);
	if (ret < 0)
		return ret;

	elem = malloc(sz + c.n * sizeof(struct iovec));
	if (!elem)
		return -ENOMEM;
	memset(elem, 0, sz);
	elem->id = (uint32_t)head;
	elem->out_num = c.out;
	elem->in_num = c.in;
	elem->out_sg = (struct iovec *)((uint8_t *)elem + sz);
	elem->in_sg = elem->out_sg + c.out;
	memcpy(elem->out_sg, vq->iov, c.n * sizeof(struct iovec));
	*out = elem;
	if (commit_pop(vq, (unsigned int)head) && vq->fast.rearm)
		RING_STORE(*avail_event(vq), htole16(vq->last_avail_idx));
	return 0;
}

/* A chain longer than a slot holds: keep the scratch copy in slot->big. */
static int slot_keep_big(struct vduse_vq *vq, struct vduse_vq_slot *s,
			 unsigned int n)
{
	struct vduse_vq_fast *f = &vq->fast;

	if (n > s->big_cap) {
		struct iovec *big = malloc(n * sizeof(*big));

		if (!big)
			return -ENOMEM;
		f->spare_bytes -= s->big_cap * sizeof(*big);
		free(s->big);
		s->big = big;
		s->big_cap = n;
		f->spare_bytes += n * sizeof(*big);
	}
	memcpy(s->big, vq->iov, n * sizeof(*s->big));
	return 0;
}

/*
 * Pop into the per-head slots.  Returns how many were popped; *err is
 * why it stopped short of @max (-EAGAIN: the ring is empty).  Locked.
 */
static unsigned int pop_batch_locked(struct vduse_vq *vq,
				     struct vduse_vq_elem **elems,
				     unsigned int max, int *err)
{
	unsigned int n = 0;
	int avail = -1, ret = 0;
	bool moved = false;

	if (vq->broken) {
		*err = -EIO;
		return 0;
	}
	ret = rings_valid(vq);
	if (ret < 0) {
		*err = ret == -ENOMEM ? ret : -EIO;
		return 0;
	}
	while (n < max) {
		struct vduse_vq_slot *s;
		struct chain c;
		int head;

		if (replaying(vq)) {
			head = vq->replay[vq->replay_pos];
		} else {
			head = avail_head(vq, &avail);
			if (head < 0) {
				ret = head;
				break;
			}
		}
		s = &vq->fast.slots[head];
		c.iov = s->iov;
		c.cap = VDUSE_VQ_SLOT_IOV;
		ret = take_chain(vq, (unsigned int)head, &c);
		if (ret == -ENOBUFS) {
			/* Longer than a slot holds: the scratch array, then
			 * the slot's own larger array. */
			c.iov = vq->iov;
			c.cap = vq->iov_cap;
			ret = take_chain(vq, (unsigned int)head, &c);
			if (ret == 0)
				ret = slot_keep_big(vq, s, c.n);
			c.iov = s->big;
		}
		if (ret < 0)
			break;
		s->elem.id = (uint32_t)head;
		s->elem.out_num = c.out;
		s->elem.in_num = c.in;
		s->elem.reserved = 0;
		s->elem.out_sg = c.iov;
		s->elem.in_sg = c.iov + c.out;
		elems[n++] = &s->elem;
		if (commit_pop(vq, (unsigned int)head))
			moved = true;
	}
	/* One avail_event store for the batch (after -EAGAIN the re-arm in
	 * avail_head() wrote this value already). */
	if (moved && vq->fast.rearm && ret != -EAGAIN)
		RING_STORE(*avail_event(vq), htole16(vq->last_avail_idx));
	*err = ret;
	return n;
}

/*
 * After a call that found a shortage: make sure the caller comes back.  A
 * kick that arrived meanwhile may have been consumed already, and with
 * EVENT_IDX the driver does not kick again for what it made available.
 */
static void retry_later(struct vduse_vq *vq, const char *what)
{
	vduse_dbg("%s: queue %u: %s: out of memory or fds, will retry",
		  vq->dev->name, vq->index, what);
	vduse_vq_self_kick(vq);
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

int vduse_vq_pop(struct vduse_vq *vq, size_t sz, void **elem)
{
	bool notify;
	int ret;

	if (sz < sizeof(struct vduse_vq_elem))
		return -EINVAL;
	if (sz > SIZE_MAX / 2)
		return -EOVERFLOW;
	/* Keep the iovec array that follows the caller's struct aligned. */
	sz = (sz + _Alignof(struct iovec) - 1) & ~(_Alignof(struct iovec) - 1);
	vduse_iotlb_lock(&vq->iotlb);
	ret = pop_locked(vq, sz, elem);
	unlock_and_report(vq, &notify);
	if (ret == -ENOMEM)
		retry_later(vq, "pop");
	if (notify)
		vduse_vq_notify(vq);
	return ret;
}

int vduse_vq_pop_batch(struct vduse_vq *vq, struct vduse_vq_elem **elems,
		       unsigned int max)
{
	unsigned int n;
	bool notify;
	int err;

	if (max == 0)
		return -EINVAL;
	vduse_iotlb_lock(&vq->iotlb);
	n = pop_batch_locked(vq, elems, max, &err);
	unlock_and_report(vq, &notify);
	if (err == -ENOMEM)
		retry_later(vq, "pop");
	if (notify)
		vduse_vq_notify(vq);
	return n ? (int)n : err;
}

/* Does the driver want an interrupt for what was pushed?  Locked. */
static inline __attribute__((always_inline)) bool
need_interrupt(struct vduse_vq *vq)
{
	uint16_t old = vq->signalled_used, now = vq->used_idx;

	/* Order our used->idx store before reading the driver's wishes. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vq->signalled_used = now;
	if (vq->irq_pending) {
		vq->irq_pending = false;
		return true;
	}
	if (old == now)
		return false;
	if (!vq->event_idx)
		return !(le16toh(RING_LOAD(vq->avail->flags)) &
			 VRING_AVAIL_F_NO_INTERRUPT);
	return vring_need_event(le16toh(RING_LOAD(*used_event(vq))), now, old);
}

/* Unlocked.  1 when injected; a failure is kept for the next notify. */
static int inject_irq(struct vduse_vq *vq)
{
	uint32_t index = vq->index;
	int ret;

	ret = vduse_sys->ioctl(vq->dev->dev_fd, VDUSE_VQ_INJECT_IRQ, &index);
	if (ret < 0) {
		vduse_err("%s: queue %u: VDUSE_VQ_INJECT_IRQ: %s",
			  vq->dev->name, vq->index, strerror(-ret));
		/* Not lost: the next notify injects it again. */
		vduse_iotlb_lock(&vq->iotlb);
		vq->irq_pending = true;
		vduse_iotlb_unlock(&vq->iotlb);
		return ret;
	}
	return 1;
}

/* Take @n ids out of flight, or none of them (-EINVAL).  Locked. */
static int take_ids(struct vduse_vq *vq, struct vduse_vq_elem *const *elems,
		    unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint32_t id = elems[i]->id;

		/* A second push of an id in this batch fails here too. */
		if (id >= vq->num || !inflight_test(vq, id)) {
			vduse_err("%s: queue %u: push of id %u that is not in flight",
				  vq->dev->name, vq->index, id);
			while (i--)
				inflight_flip(vq, elems[i]->id);
			return -EINVAL;
		}
		inflight_flip(vq, id);
	}
	return 0;
}

/* The element of @id is done: release its pin and spare iovecs. */
static void release_id(struct vduse_vq *vq, uint32_t id)
{
	struct vduse_vq_fast *f = &vq->fast;
	struct vduse_vq_slot *s = &f->slots[id];

	vq->inflight--;
	unpin(&vq->iotlb, vq->head_slot[id]);
	if (s->big && f->spare_bytes > VDUSE_VQ_SPARE_IOV_BYTES) {
		f->spare_bytes -= s->big_cap * sizeof(*s->big);
		free(s->big);
		s->big = NULL;
		s->big_cap = 0;
	}
}

/*
 * Push @n completions: every used entry, one used->idx store, then the
 * log's frees (docs/recovery.md, "Write order").  *deferred: the used
 * ring could not be mapped and they wait in vq->deferred.  Locked.
 */
static int push_locked(struct vduse_vq *vq, struct vduse_vq_elem *const *elems,
		       const uint32_t *lens, unsigned int n, bool *deferred)
{
	unsigned int i;
	int ret;

	if (!vq->started)
		return -EIO;
	ret = take_ids(vq, elems, n);
	if (ret < 0)
		return ret;
	ret = rings_valid(vq);
	if (ret == -ENOMEM && vq->nr_deferred + n <= vq->num) {
		/* The library owns the retry: publish on a later call. */
		for (i = 0; i < n; i++) {
			vq->deferred[vq->nr_deferred].id = htole32(elems[i]->id);
			vq->deferred[vq->nr_deferred].len = htole32(lens[i]);
			vq->nr_deferred++;
		}
		*deferred = true;
	} else if (ret < 0) {
		for (i = 0; i < n; i++)
			inflight_flip(vq, elems[i]->id);
		return ret;
	} else if (n) {
		for (i = 0; i < n; i++)
			put_used(vq, elems[i]->id, lens[i]);
		publish_used(vq);
		for (i = 0; vq->ilog && i < n; i++)
			vduse_ilog_free(vq->ilog, elems[i]->id);
	}
	for (i = 0; i < n; i++)
		release_id(vq, elems[i]->id);
	return 0;
}

static int push(struct vduse_vq *vq, struct vduse_vq_elem *const *elems,
		const uint32_t *lens, unsigned int n, bool notify)
{
	bool flushed, deferred = false, need = false;
	int ret;

	vduse_iotlb_lock(&vq->iotlb);
	ret = push_locked(vq, elems, lens, n, &deferred);
	/* Covers what a flush of deferred completions published. */
	if (notify && ret == 0 && !deferred)
		need = need_interrupt(vq);
	unlock_and_report(vq, &flushed);
	if (deferred || ret == -ENOMEM)
		retry_later(vq, "push");
	if (ret < 0 || !notify) {
		if (flushed)
			vduse_vq_notify(vq);
		return ret;
	}
	if (!need)
		return 0;
	ret = inject_irq(vq);
	if (ret < 0) {
		/* The pushes stand: come back for the interrupt. */
		retry_later(vq, "interrupt");
		return 0;
	}
	return ret;
}

int vduse_vq_push(struct vduse_vq *vq, const struct vduse_vq_elem *elem,
		  uint32_t len)
{
	struct vduse_vq_elem *e = (struct vduse_vq_elem *)elem;

	return push(vq, &e, &len, 1, false);
}

int vduse_vq_push_batch(struct vduse_vq *vq, struct vduse_vq_elem *const *elems,
			const uint32_t *lens, unsigned int n,
			unsigned int flags)
{
	if (flags & ~VDUSE_VQ_PUSH_NOTIFY)
		return -EINVAL;
	return push(vq, elems, lens, n, flags & VDUSE_VQ_PUSH_NOTIFY);
}

/* Kick suppression (vduse_vq_disable_kicks / _enable_kicks).  Locked. */
static void kicks_off(struct vduse_vq *vq)
{
	vq->fast.rearm = false;
	if (vq->event_idx)
		/* Behind anything the driver can publish: no kick until
		 * the index wraps (then one, which does no harm). */
		RING_STORE(*avail_event(vq),
			   htole16((uint16_t)(vq->last_avail_idx - 1)));
	else
		RING_STORE(vq->used->flags, htole16(VRING_USED_F_NO_NOTIFY));
}

/* 1: requests are waiting (or to pop again), 0: empty, or -EIO. */
static int kicks_on(struct vduse_vq *vq)
{
	int avail;

	vq->fast.rearm = vq->event_idx;
	if (vq->event_idx)
		RING_STORE(*avail_event(vq), htole16(vq->last_avail_idx));
	else
		RING_STORE(vq->used->flags, 0);
	/* Order the re-arm before the last look, as the driver orders its
	 * avail->idx store before reading what we asked for. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (replaying(vq))
		return 1;
	avail = read_avail_idx(vq);
	if (avail < 0)
		return avail;
	return avail != vq->last_avail_idx;
}

static int set_kicks(struct vduse_vq *vq, bool on)
{
	bool notify;
	int ret;

	vduse_iotlb_lock(&vq->iotlb);
	ret = vq->broken ? -EIO : rings_valid(vq);
	if (ret == 0 && on)
		ret = kicks_on(vq);
	else if (ret == 0)
		kicks_off(vq);
	unlock_and_report(vq, &notify);
	if (ret == -ENOMEM)
		retry_later(vq, "kicks");
	if (notify)
		vduse_vq_notify(vq);
	return ret == -ENOMEM || ret >= 0 ? ret : -EIO;
}

int vduse_vq_disable_kicks(struct vduse_vq *vq)
{
	return set_kicks(vq, false);
}

int vduse_vq_enable_kicks(struct vduse_vq *vq)
{
	return set_kicks(vq, true);
}

int vduse_vq_notify(struct vduse_vq *vq)
{
	bool need, unused;
	int ret;

	vduse_iotlb_lock(&vq->iotlb);
	ret = rings_valid(vq);
	need = ret == 0 && need_interrupt(vq);	/* covers what was flushed */
	unlock_and_report(vq, &unused);
	if (ret == -ENOMEM) {
		retry_later(vq, "notify");
		return ret;
	}
	if (ret < 0)
		return ret;
	if (!need)
		return 0;
	return inject_irq(vq);
}
