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

#include "log.h"
#include "sys.h"
#include "vq_buf.h"
#include "vq_packed.h"

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

/* Called with the queue's iotlb lock held. */
int vduse_ring_map(struct vduse_vq *vq)
{
	struct vduse_iotlb *t = &vq->iotlb;
	void *desc, *avail, *used;
	int ret;

	if (vq->packed)
		return vduse_packed_map_rings(vq);
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

void vduse_ring_init_used(struct vduse_vq *vq)
{
	if (vq->packed) {
		vduse_packed_init_used(vq);
		vduse_ilog_vq_start(vq);
		return;
	}
	vq->used_idx = le16toh(RING_LOAD(vq->used->idx));
	/* Nothing pushed yet: nothing to notify about. */
	vq->signalled_used = vq->used_idx;
	vq->rings_pending = false;
	vduse_ring_kicks_reset(vq);
	vduse_ilog_vq_start(vq);
}

void vduse_ring_kicks_reset(struct vduse_vq *vq)
{
	if (vq->packed) {
		vduse_packed_kicks_reset(vq);
		return;
	}
	vq->fast.rearm = vq->event_idx;
	if (vq->event_idx)
		RING_STORE(*avail_event(vq), htole16(vq->last_avail_idx));
	else
		RING_STORE(vq->used->flags, 0);
}

/*
 * Re-translate the rings if an UPDATE_IOTLB dropped mappings.  Locked.
 * Returns 0, -EIO when the queue is stopped, -ENOMEM for a shortage that
 * may pass (the queue stays usable), or another -errno after breaking the
 * queue.
 */
int vduse_ring_remap(struct vduse_vq *vq)
{
	int ret = vduse_ring_map(vq);

	if (vduse_iotlb_transient(ret))
		return -ENOMEM;
	if (ret < 0) {
		vduse_vq_fail(vq, ret, "rings are no longer mapped: %s",
			      strerror(-ret));
		return ret;
	}
	if (vq->rings_pending)
		vduse_ring_init_used(vq);
	if (vq->nr_deferred)
		vduse_split_flush_deferred(vq);
	return 0;
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
			n = load_indirect(vq, le64toh(d.addr),
					  le32toh(d.len),
					  flags & VRING_DESC_F_NEXT);
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
		ret = add_buffer(vq, c, le64toh(d.addr), le32toh(d.len),
				 flags & VRING_DESC_F_WRITE);
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
		ret = walk_again(vq, tries);
		if (ret < 0)
			return ret;
	}
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
		vduse_ilog_pop(vq->ilog, head, vq->last_avail_idx,
			       vq->max_size);
	}
	inflight_flip(vq, head);
	vq->last_avail_idx++;
	return true;
}

/*
 * The layout-independent steps of a pop: the next request's head (split:
 * its head descriptor; packed: the slot it will take), -EAGAIN or -EIO;
 * its chain walked into @c; then it is in flight (true: the avail
 * position moved, for the avail_event store).
 */
static inline __attribute__((always_inline)) int
next_head(struct vduse_vq *vq, int *avail)
{
	if (replaying(vq))
		/* After a reconnect: what the last process left in flight. */
		return vq->replay[vq->replay_pos];
	if (vq->packed)
		return vduse_packed_avail(vq);
	return avail_head(vq, avail);
}

static inline __attribute__((always_inline)) int
take(struct vduse_vq *vq, unsigned int head, struct chain *c,
     struct vduse_packed_chain *pc)
{
	if (vq->packed)
		return vduse_packed_take(vq, c, pc);
	return take_chain(vq, head, c);
}

static inline __attribute__((always_inline)) bool
commit(struct vduse_vq *vq, unsigned int head,
       const struct vduse_packed_chain *pc)
{
	if (vq->packed) {
		vduse_packed_commit(vq, head, pc);
		return false;
	}
	return commit_pop(vq, head);
}

static int pop_locked(struct vduse_vq *vq, size_t sz, void **out)
{
	struct vduse_packed_chain pc;
	struct vduse_vq_elem *elem;
	struct chain c;
	int head, avail = -1, ret;

	if (vq->broken)
		return -EIO;
	ret = rings_valid(vq);
	if (ret < 0)
		return ret == -ENOMEM ? ret : -EIO;
	head = next_head(vq, &avail);
	if (head < 0)
		return head;
	c.iov = vq->iov;
	c.cap = vq->iov_cap;
	ret = take(vq, (unsigned int)head, &c, &pc);
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
	if (commit(vq, (unsigned int)head, &pc) && vq->fast.rearm)
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
		struct vduse_packed_chain pc;
		struct vduse_vq_slot *s;
		struct chain c;
		int head;

		head = next_head(vq, &avail);
		if (head < 0) {
			ret = head;
			break;
		}
		s = &vq->fast.slots[head];
		c.iov = s->iov;
		c.cap = VDUSE_VQ_SLOT_IOV;
		ret = take(vq, (unsigned int)head, &c, &pc);
		if (ret == -ENOBUFS) {
			/* Longer than a slot holds: the scratch array, then
			 * the slot's own larger array. */
			c.iov = vq->iov;
			c.cap = vq->iov_cap;
			ret = take(vq, (unsigned int)head, &c, &pc);
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
		if (commit(vq, (unsigned int)head, &pc))
			moved = true;
	}
	/* One avail_event store for the batch (after -EAGAIN the re-arm in
	 * avail_head() wrote this value already). */
	if (moved && vq->fast.rearm && ret != -EAGAIN)
		RING_STORE(*avail_event(vq), htole16(vq->last_avail_idx));
	*err = ret;
	return n;
}

int vduse_vq_pop(struct vduse_vq *vq, size_t sz, void **elem)
{
	bool notify;
	int ret;

	if (sz < sizeof(struct vduse_vq_elem)) {
		vduse_err("%s: queue %u: pop: sz %zu is smaller than struct vduse_vq_elem (%zu)",
			  vq->dev->name, vq->index, sz,
			  sizeof(struct vduse_vq_elem));
		return -EINVAL;
	}
	if (sz > SIZE_MAX / 2) {
		vduse_err("%s: queue %u: pop: sz %zu is larger than SIZE_MAX / 2",
			  vq->dev->name, vq->index, sz);
		return -EOVERFLOW;
	}
	/* Keep the iovec array that follows the caller's struct aligned. */
	sz = (sz + _Alignof(struct iovec) - 1) & ~(_Alignof(struct iovec) - 1);
	vduse_iotlb_lock(&vq->iotlb);
	ret = pop_locked(vq, sz, elem);
	unlock_and_report(vq, &notify);
	if (ret == -ENOMEM)
		vduse_split_retry_later(vq, "pop");
	else if (ret == -EIO)	/* a break was logged when it happened */
		vduse_dbg("%s: queue %u: pop: the queue is %s", vq->dev->name,
			  vq->index, vq->broken ? "broken" : "stopped");
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

	if (max == 0) {
		vduse_err("%s: queue %u: pop_batch of 0 elements",
			  vq->dev->name, vq->index);
		return -EINVAL;
	}
	vduse_iotlb_lock(&vq->iotlb);
	n = pop_batch_locked(vq, elems, max, &err);
	unlock_and_report(vq, &notify);
	if (err == -ENOMEM)
		vduse_split_retry_later(vq, "pop");
	if (notify)
		vduse_vq_notify(vq);
	return n ? (int)n : err;
}

/*
 * After a call that found a shortage: make sure the caller comes back.  A
 * kick that arrived meanwhile may have been consumed already, and with
 * EVENT_IDX the driver does not kick again for what it made available.
 */
void vduse_split_retry_later(struct vduse_vq *vq, const char *what)
{
	vduse_dbg("%s: queue %u: %s: out of memory or fds, will retry",
		  vq->dev->name, vq->index, what);
	vduse_vq_self_kick(vq);
}
