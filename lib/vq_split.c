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
	vduse_ilog_vq_start(vq);
}

/* Put one completion in the used ring (used->idx is stored later). */
static void put_used(struct vduse_vq *vq, uint32_t id, uint32_t len)
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
static int rings_valid(struct vduse_vq *vq)
{
	int ret;

	if (!vq->started)
		return -EIO;
	if (!vq->rings_pending && vq->ring_gen == vq->iotlb.gen)
		return 0;
	ret = vduse_split_map_rings(vq);
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

/* Walks of one chain before giving up on an IOTLB that keeps changing. */
#define WALK_RETRIES	3

struct chain {
	unsigned int n;		/* iovecs collected */
	unsigned int out;	/* of which device-readable */
	unsigned int in;	/* of which device-writable */
};

/* Translate one descriptor's buffer into the scratch iovec array. */
static int add_buffer(struct vduse_vq *vq, struct chain *c,
		      const struct vring_desc *d)
{
	uint64_t addr = le64toh(d->addr);
	uint32_t len = le32toh(d->len);
	bool write = le16toh(d->flags) & VRING_DESC_F_WRITE;
	unsigned int before = c->n;
	int ret;

	if (!write && c->in) {
		vduse_vq_fail(vq, -EINVAL,
			      "device-readable descriptor after a writable one");
		return -EIO;
	}
	ret = vduse_iotlb_iov(&vq->iotlb, addr, len,
			      write ? VDUSE_IOTLB_WRITE : VDUSE_IOTLB_READ,
			      vq->iov, &c->n, vq->iov_cap);
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
	ret = vduse_iotlb_read(&vq->iotlb, le64toh(d->addr), vq->indirect_buf,
			       len);
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
		if (vq->iotlb.gen != gen)
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

static int pop_locked(struct vduse_vq *vq, size_t sz, void **out)
{
	struct vduse_vq_elem *elem;
	struct chain c;
	unsigned int head, tries;
	int avail, ret;

	if (vq->broken)
		return -EIO;
	ret = rings_valid(vq);
	if (ret < 0)
		return ret == -ENOMEM ? ret : -EIO;
	if (vq->ilog && vq->replay_pos < vq->nr_replay) {
		/* After a reconnect: what the last process left in flight. */
		head = vq->replay[vq->replay_pos];
		goto walk;
	}
	avail = read_avail_idx(vq);
	if (avail < 0)
		return avail;
	if (avail == vq->last_avail_idx) {
		if (!vq->event_idx)
			return -EAGAIN;
		/* Ask for a kick on the next request, then look again. */
		RING_STORE(*avail_event(vq), htole16(vq->last_avail_idx));
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail = read_avail_idx(vq);
		if (avail < 0)
			return avail;
		if (avail == vq->last_avail_idx)
			return -EAGAIN;
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
walk:
	for (tries = 0;; tries++) {
		memset(&c, 0, sizeof(c));
		ret = walk_chain(vq, head, &c);
		if (ret != -ESTALE)
			break;
		if (tries == WALK_RETRIES) {
			vduse_vq_fail(vq, -ESTALE,
				      "the IOTLB kept changing under a chain");
			return -EIO;
		}
		ret = rings_valid(vq);
		if (ret < 0)
			return ret == -ENOMEM ? ret : -EIO;
	}
	if (ret < 0)
		return ret;

	elem = malloc(sz + c.n * sizeof(struct iovec));
	if (!elem)
		return -ENOMEM;
	memset(elem, 0, sz);
	elem->id = head;
	elem->out_num = c.out;
	elem->in_num = c.in;
	elem->out_sg = (struct iovec *)((uint8_t *)elem + sz);
	elem->in_sg = elem->out_sg + c.out;
	memcpy(elem->out_sg, vq->iov, c.n * sizeof(struct iovec));

	vq->inflight++;
	vq->head_slot[head] = (uint8_t)vduse_iotlb_pin(&vq->iotlb);
	*out = elem;
	if (vq->ilog) {
		if (vq->replay_pos < vq->nr_replay) {
			/* Logged and marked in flight by the recovery. */
			vq->replay_pos++;
			return 0;
		}
		vduse_ilog_pop(vq->ilog, head, vq->last_avail_idx);
	}
	inflight_flip(vq, head);
	vq->last_avail_idx++;
	if (vq->event_idx)
		RING_STORE(*avail_event(vq), htole16(vq->last_avail_idx));
	return 0;
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
static void unlock_and_report(struct vduse_vq *vq, bool *notify)
{
	int err = vduse_vq_take_failure(vq);

	*notify = vq->flushed;
	vq->flushed = false;
	vduse_iotlb_reclaim(&vq->iotlb);
	vduse_iotlb_unlock(&vq->iotlb);
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

int vduse_vq_push(struct vduse_vq *vq, const struct vduse_vq_elem *elem,
		  uint32_t len)
{
	bool notify, deferred = false;
	int ret;

	vduse_iotlb_lock(&vq->iotlb);
	if (!vq->started) {
		ret = -EIO;
		goto out;
	}
	if (elem->id >= vq->num || !inflight_test(vq, elem->id)) {
		vduse_err("%s: queue %u: push of id %u that is not in flight",
			  vq->dev->name, vq->index, elem->id);
		ret = -EINVAL;
		goto out;
	}
	ret = rings_valid(vq);
	if (ret == -ENOMEM && vq->nr_deferred < vq->num) {
		/* The library owns the retry: publish on a later call. */
		vq->deferred[vq->nr_deferred].id = htole32(elem->id);
		vq->deferred[vq->nr_deferred].len = htole32(len);
		vq->nr_deferred++;
		deferred = true;
		ret = 0;
	} else if (ret < 0) {
		goto out;
	} else {
		put_used(vq, elem->id, len);
		publish_used(vq);
		if (vq->ilog)
			vduse_ilog_free(vq->ilog, elem->id);
	}
	inflight_flip(vq, elem->id);
	vq->inflight--;
	vduse_iotlb_unpin(&vq->iotlb, vq->head_slot[elem->id]);
out:
	unlock_and_report(vq, &notify);
	if (deferred || ret == -ENOMEM)
		retry_later(vq, "push");
	if (notify)
		vduse_vq_notify(vq);
	return ret;
}

/* Does the driver want an interrupt for what was pushed?  Locked. */
static bool need_interrupt(struct vduse_vq *vq)
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

int vduse_vq_notify(struct vduse_vq *vq)
{
	uint32_t index = vq->index;
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
