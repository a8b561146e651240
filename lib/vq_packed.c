// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Packed virtqueues.  One ring of descriptors: the driver makes a buffer
 * available by flipping its first descriptor's AVAIL/USED flags to match
 * its wrap counter, and the device hands a buffer back by writing one used
 * descriptor, with the buffer's id, at its own used position, which then
 * moves on by as many descriptors as the buffer took.  Two small areas
 * suppress events: the driver's (does it want interrupts) and the
 * device's (do we want kicks).
 *
 * As for split rings, the ring is untrusted input: descriptors are copied
 * before use, a chain may not be longer than the ring, the driver cannot
 * make more descriptors available than the ring holds (wrap-counter abuse)
 * nor a buffer id available twice, and any of these breaks the queue.
 *
 * The backend never sees the driver's buffer ids: an element's id is a
 * slot below the queue size, which holds the buffer id and the number of
 * descriptors to skip when it is used.
 */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vq_buf.h"
#include "vq_packed.h"

#define PACKED_AVAIL	(1u << VRING_PACKED_DESC_F_AVAIL)
#define PACKED_USED	(1u << VRING_PACKED_DESC_F_USED)
#define NR_BUFIDS	65536u

int vduse_packed_alloc(struct vduse_vq *vq)
{
	struct vduse_packed *pk;
	unsigned int i;

	vduse_packed_free(vq);
	pk = calloc(1, sizeof(*pk));
	if (!pk)
		return -ENOMEM;
	vq->pk = pk;
	pk->bufids = calloc(NR_BUFIDS / 64, sizeof(uint64_t));
	pk->bufid = calloc(vq->num, sizeof(uint16_t));
	pk->ndesc = calloc(vq->num, sizeof(uint16_t));
	pk->free = calloc(vq->num, sizeof(uint16_t));
	if (!pk->bufids || !pk->bufid || !pk->ndesc || !pk->free) {
		vduse_packed_free(vq);
		return -ENOMEM;
	}
	/* Slot 0 on top, so that slots are handed out in order at first. */
	for (i = 0; i < vq->num; i++)
		pk->free[i] = (uint16_t)(vq->num - 1 - i);
	pk->nr_free = vq->num;
	if (vq->ilog) {
		pk->seen = calloc(vq->num, sizeof(*pk->seen));
		pk->link = calloc(vq->num, sizeof(uint16_t));
		pk->pool_free = calloc(vq->num, sizeof(uint16_t));
		if (!pk->seen || !pk->link || !pk->pool_free) {
			vduse_packed_free(vq);
			return -ENOMEM;
		}
		for (i = 0; i < vq->num; i++) {
			pk->link[i] = VDUSE_ILOG_NONE;
			pk->pool_free[i] = (uint16_t)(vq->num - 1 - i);
		}
		pk->nr_pool_free = vq->num;
	}
	return 0;
}

void vduse_packed_free(struct vduse_vq *vq)
{
	struct vduse_packed *pk = vq->pk;

	if (!pk)
		return;
	free(pk->bufids);
	free(pk->bufid);
	free(pk->ndesc);
	free(pk->free);
	free(pk->seen);
	free(pk->link);
	free(pk->pool_free);
	free(pk);
	vq->pk = NULL;
}

int vduse_packed_set_state(struct vduse_vq *vq, bool avail_wrap,
			   uint16_t avail_idx, bool used_wrap,
			   uint16_t used_idx)
{
	struct vduse_packed *pk = vq->pk;
	unsigned int in_ring;

	if (avail_idx >= vq->num || used_idx >= vq->num)
		return -EINVAL;
	/* The avail position is never behind the used one. */
	if (avail_wrap == used_wrap)
		in_ring = avail_idx >= used_idx ?
			  (unsigned int)(avail_idx - used_idx) : vq->num + 1;
	else
		in_ring = avail_idx + vq->num - used_idx;
	if (in_ring > vq->num)
		return -EINVAL;
	vq->last_avail_idx = avail_idx;
	vq->used_idx = used_idx;
	pk->avail_wrap = avail_wrap;
	pk->used_wrap = used_wrap;
	/*
	 * Descriptors a previous owner popped and never used: nobody will
	 * use them now, but they stay off limits to the ring's capacity.
	 */
	pk->in_ring = in_ring;
	return 0;
}

int vduse_packed_map_rings(struct vduse_vq *vq)
{
	struct vduse_iotlb *t = &vq->iotlb;
	void *desc, *driver, *device;
	int ret;

	ret = vduse_iotlb_ptr(t, vq->desc_addr,
			      sizeof(struct vring_packed_desc) * vq->num,
			      VDUSE_IOTLB_READ | VDUSE_IOTLB_WRITE, &desc);
	if (ret == 0)
		ret = vduse_iotlb_ptr(t, vq->avail_addr,
				      sizeof(struct vring_packed_desc_event),
				      VDUSE_IOTLB_READ, &driver);
	if (ret == 0)
		ret = vduse_iotlb_ptr(t, vq->used_addr,
				      sizeof(struct vring_packed_desc_event),
				      VDUSE_IOTLB_READ | VDUSE_IOTLB_WRITE,
				      &device);
	if (ret < 0)
		return ret;
	if (((uintptr_t)desc & 15) || ((uintptr_t)driver & 3) ||
	    ((uintptr_t)device & 3))
		return -EINVAL;
	vq->pk->desc = desc;
	vq->pk->driver = driver;
	vq->pk->device = device;
	vq->ring_gen = t->gen;
	return 0;
}

void vduse_packed_kicks_reset(struct vduse_vq *vq)
{
	/* Kicks on: ENABLE needs no moving index, so pops re-arm nothing. */
	vq->fast.rearm = false;
	RING_STORE(vq->pk->device->flags,
		   htole16(VRING_PACKED_EVENT_FLAG_ENABLE));
}

void vduse_packed_init_used(struct vduse_vq *vq)
{
	vq->pk->signalled = vq->pk->used_total;
	vq->rings_pending = false;
	vduse_packed_kicks_reset(vq);
}

static inline bool bufid_test(const struct vduse_packed *pk, uint16_t id)
{
	return pk->bufids[id / 64] & (1ULL << (id % 64));
}

static inline void bufid_flip(struct vduse_packed *pk, uint16_t id)
{
	pk->bufids[id / 64] ^= 1ULL << (id % 64);
}

/* Is the descriptor at the avail position available?  Acquires. */
static inline bool head_available(struct vduse_vq *vq)
{
	const struct vduse_packed *pk = vq->pk;
	uint16_t flags = le16toh(RING_LOAD_ACQ(pk->desc[vq->last_avail_idx].flags));
	bool avail = flags & PACKED_AVAIL, used = flags & PACKED_USED;

	return avail == pk->avail_wrap && used != pk->avail_wrap;
}

int vduse_packed_avail(struct vduse_vq *vq)
{
	struct vduse_packed *pk = vq->pk;

	if (!head_available(vq))
		return -EAGAIN;
	if (pk->in_ring >= vq->num || !pk->nr_free) {
		vduse_vq_fail(vq, -EINVAL,
			      "descriptor %u made available while all %u are in flight",
			      vq->last_avail_idx, vq->num);
		return -EIO;
	}
	return pk->free[pk->nr_free - 1];
}

/* Collect an indirect table's buffers (its entries are packed descs). */
static int walk_indirect(struct vduse_vq *vq, struct chain *c, uint64_t addr,
			 uint32_t len, bool next, uint64_t gen)
{
	const struct vring_packed_desc *table =
		(const struct vring_packed_desc *)vq->indirect_buf;
	int n, i, ret;

	n = load_indirect(vq, addr, len, next);
	if (n < 0)
		return n;
	if (vq->iotlb.gen != gen)
		return -ESTALE;
	for (i = 0; i < n; i++) {
		uint16_t flags = le16toh(table[i].flags);

		if (flags & VRING_DESC_F_INDIRECT) {
			vduse_vq_fail(vq, -EINVAL,
				      "indirect descriptor inside an indirect table");
			return -EIO;
		}
		ret = add_buffer(vq, c, le64toh(table[i].addr),
				 le32toh(table[i].len),
				 flags & VRING_DESC_F_WRITE);
		if (ret < 0)
			return ret;
		if (ret == 0 && vq->iotlb.gen != gen)
			return -ESTALE;
	}
	return 0;
}

/*
 * One descriptor @d (host order) of a buffer: 1 when it ends the buffer,
 * 0 when the next ring descriptor follows, or -errno (-ESTALE: the IOTLB
 * changed under the walk, walk again).
 */
static int walk_one(struct vduse_vq *vq, struct chain *c,
		    const struct vring_packed_desc *d, uint64_t gen)
{
	int ret;

	if (d->flags & VRING_DESC_F_INDIRECT) {
		ret = walk_indirect(vq, c, d->addr, d->len,
				    d->flags & VRING_DESC_F_NEXT, gen);
		return ret < 0 ? ret : 1;
	}
	ret = add_buffer(vq, c, d->addr, d->len, d->flags & VRING_DESC_F_WRITE);
	if (ret < 0)
		return ret;
	if (ret == 0 && vq->iotlb.gen != gen)
		return -ESTALE;
	return !(d->flags & VRING_DESC_F_NEXT);
}

/*
 * Walk the buffer whose first descriptor is at the avail position.  The
 * buffer id is the last descriptor's.  With a log, what was read stays
 * in pk->seen for the log's copies.
 */
static int walk(struct vduse_vq *vq, struct chain *c,
		struct vduse_packed_chain *pc)
{
	const struct vduse_packed *pk = vq->pk;
	unsigned int pos = vq->last_avail_idx, count = 0;
	unsigned int room = vq->num - pk->in_ring;
	uint64_t gen = vq->iotlb.gen;

	for (;;) {
		const struct vring_packed_desc *p = &pk->desc[pos];
		struct vring_packed_desc d;
		int ret;

		d.addr = le64toh(RING_LOAD(p->addr));
		d.len = le32toh(RING_LOAD(p->len));
		d.id = le16toh(RING_LOAD(p->id));
		d.flags = le16toh(RING_LOAD(p->flags));
		if (++count > room) {
			vduse_vq_fail(vq, -ELOOP,
				      "descriptor chain longer than the %u descriptors free in the ring",
				      room);
			return -EIO;
		}
		if (pk->seen)
			pk->seen[count - 1] = d;
		if (++pos == vq->num)
			pos = 0;
		ret = walk_one(vq, c, &d, gen);
		if (ret < 0)
			return ret;
		if (ret) {
			pc->bufid = d.id;
			pc->ndesc = (uint16_t)count;
			return 0;
		}
	}
}

/*
 * After a reconnect: walk the buffer in flight in @slot from the log's
 * copies of its ring descriptors (the ring may hold others by now); an
 * indirect table is read again from the driver's memory, which it does
 * not reuse before the buffer is used.  The recovery checked the chain.
 */
static int walk_copies(struct vduse_vq *vq, unsigned int slot,
		       struct chain *c, struct vduse_packed_chain *pc)
{
	const struct vduse_packed *pk = vq->pk;
	const struct vduse_ilog_desc *src =
		&vduse_ilog_first(vq->ilog, vq->max_size)[slot];
	const struct vduse_ilog_desc *pool =
		vduse_ilog_pool(vq->ilog, vq->max_size);
	unsigned int link = pk->link[slot], count;
	uint64_t gen = vq->iotlb.gen;

	for (count = 0; count < pk->ndesc[slot]; count++) {
		struct vring_packed_desc d = {
			.addr = src->addr, .len = src->len, .flags = src->flags,
		};
		int ret = walk_one(vq, c, &d, gen);

		if (ret)
			return ret < 0 ? ret : 0;
		if (link >= vq->num)
			break;
		src = &pool[link];
		link = src->id;
	}
	vduse_vq_fail(vq, -EINVAL, "slot %u: the in-flight log's copy of its chain ends early",
		      slot);
	return -EIO;
}

int vduse_packed_take(struct vduse_vq *vq, struct chain *c,
		      struct vduse_packed_chain *pc)
{
	bool again = replaying(vq);
	unsigned int tries, slot = again ? vq->replay[vq->replay_pos] : 0;
	int ret;

	for (tries = 0;; tries++) {
		c->n = c->out = c->in = 0;
		ret = again ? walk_copies(vq, slot, c, pc) : walk(vq, c, pc);
		if (ret != -ESTALE)
			break;
		ret = walk_again(vq, tries);
		if (ret < 0)
			return ret;
	}
	if (ret < 0)
		return ret;
	if (again) {
		/* In flight already (vduse_packed_recovered()). */
		pc->bufid = vq->pk->bufid[slot];
		pc->ndesc = vq->pk->ndesc[slot];
		return 0;
	}
	if (bufid_test(vq->pk, pc->bufid)) {
		vduse_vq_fail(vq, -EINVAL, "buffer id %u made available twice",
			      pc->bufid);
		return -EIO;
	}
	return 0;
}

/* Log copy of a ring descriptor: not yet published, so any store order. */
static void log_copy(struct vduse_ilog_desc *dst,
		     const struct vring_packed_desc *src, uint16_t id)
{
	vduse_crash_point();
	dst->addr = src->addr;
	dst->len = src->len;
	dst->id = id;
	dst->flags = src->flags;
}

/* The log's pop: the copies, then the slot's entry publishes them. */
static void log_pop(struct vduse_vq *vq, unsigned int slot,
		    const struct vduse_packed_chain *pc)
{
	struct vduse_packed *pk = vq->pk;
	struct vduse_ilog_vq *l = vq->ilog;
	struct vduse_ilog_desc *pool = vduse_ilog_pool(l, vq->max_size);
	uint16_t link = VDUSE_ILOG_NONE;
	unsigned int i;

	/* Last first, so that each links to the next.  The pool holds num
	 * entries, as many as the ring's descriptors in flight at most. */
	for (i = pc->ndesc; i-- > 1;) {
		uint16_t j = pk->pool_free[--pk->nr_pool_free];

		log_copy(&pool[j], &pk->seen[i], link);
		link = j;
	}
	log_copy(&vduse_ilog_first(l, vq->max_size)[slot], &pk->seen[0],
		 pc->bufid);
	vduse_crash_point();
	vduse_ilog_seq(l, vq->max_size)[slot] = pk->pops;
	pk->link[slot] = link;
	vduse_ilog_store(&l->heads[slot],
			 VDUSE_ILOG_PENTRY(VDUSE_ILOG_INFLIGHT,
					   VDUSE_ILOG_POS(vq->last_avail_idx,
							  pk->avail_wrap),
					   0, 0, link));
}

void vduse_packed_log_free(struct vduse_vq *vq, unsigned int slot)
{
	struct vduse_packed *pk = vq->pk;
	const struct vduse_ilog_desc *pool =
		vduse_ilog_pool(vq->ilog, vq->max_size);
	unsigned int link = pk->link[slot];

	vduse_ilog_free(vq->ilog, slot);
	while (link < vq->num && pk->nr_pool_free < vq->num) {
		pk->pool_free[pk->nr_pool_free++] = (uint16_t)link;
		link = pool[link].id;
	}
	pk->link[slot] = VDUSE_ILOG_NONE;
}

int vduse_packed_recovered(struct vduse_vq *vq, unsigned int slot,
			   uint16_t bufid, uint16_t ndesc, uint16_t link)
{
	struct vduse_packed *pk = vq->pk;

	if (bufid_test(pk, bufid))
		return -EINVAL;
	bufid_flip(pk, bufid);
	pk->bufid[slot] = bufid;
	pk->ndesc[slot] = ndesc;
	pk->link[slot] = link;
	inflight_flip(vq, slot);
	return 0;
}

void vduse_packed_recovered_end(struct vduse_vq *vq, const uint8_t *pool_used)
{
	struct vduse_packed *pk = vq->pk;
	unsigned int i;

	pk->nr_free = 0;
	pk->nr_pool_free = 0;
	for (i = vq->num; i-- > 0;) {
		if (!inflight_test(vq, i))
			pk->free[pk->nr_free++] = (uint16_t)i;
		if (!pool_used[i])
			pk->pool_free[pk->nr_pool_free++] = (uint16_t)i;
	}
}

void vduse_packed_commit(struct vduse_vq *vq, unsigned int slot,
			 const struct vduse_packed_chain *pc)
{
	struct vduse_packed *pk = vq->pk;
	unsigned int pos = vq->last_avail_idx + pc->ndesc;

	if (replaying(vq)) {
		/* Logged and in flight since the recovery. */
		vq->inflight++;
		vq->head_slot[slot] = (uint8_t)pin(&vq->iotlb);
		vq->replay_pos++;
		return;
	}
	if (vq->ilog)
		log_pop(vq, slot, pc);
	pk->nr_free--;		/* @slot: the top, from vduse_packed_avail() */
	pk->bufid[slot] = pc->bufid;
	pk->ndesc[slot] = pc->ndesc;
	bufid_flip(pk, pc->bufid);
	pk->in_ring += pc->ndesc;
	vq->inflight++;
	vq->head_slot[slot] = (uint8_t)pin(&vq->iotlb);
	inflight_flip(vq, slot);
	if (pos >= vq->num) {
		pos -= vq->num;
		pk->avail_wrap = !pk->avail_wrap;
	}
	vq->last_avail_idx = (uint16_t)pos;
	if (vq->ilog)
		vduse_ilog_store(&vq->ilog->avail_seq,
				 VDUSE_ILOG_AVAIL_SEQ(VDUSE_ILOG_POS(pos,
								     pk->avail_wrap),
						      ++pk->pops));
}

void vduse_packed_put_used(struct vduse_vq *vq, unsigned int slot,
			   uint32_t len)
{
	struct vduse_packed *pk = vq->pk;
	struct vduse_ilog_vq *l = vq->ilog;
	struct vring_packed_desc *u = &pk->desc[vq->used_idx];
	uint16_t flags = pk->used_wrap ? PACKED_AVAIL | PACKED_USED : 0;
	unsigned int pos = vq->used_idx + pk->ndesc[slot];

	if (l)
		vduse_crash_point();
	RING_STORE(u->id, htole16(pk->bufid[slot]));
	if (l)
		vduse_crash_point();
	RING_STORE(u->len, htole32(len));
	if (l) {
		/* What the flags were tells a recovery whether we got to
		 * publish (docs/recovery.md). */
		uint16_t old = le16toh(RING_LOAD(u->flags));

		vduse_ilog_done_packed(l, slot,
				       VDUSE_ILOG_POS(vq->used_idx,
						      pk->used_wrap),
				       (old & PACKED_AVAIL ? 1u : 0) |
				       (old & PACKED_USED ? 2u : 0));
		vduse_crash_point();
	}
	/* The flags make the entry the driver's: after id and len. */
	RING_STORE_REL(u->flags, htole16(flags));
	if (pos >= vq->num) {
		pos -= vq->num;
		pk->used_wrap = !pk->used_wrap;
	}
	vq->used_idx = (uint16_t)pos;
	if (l)
		vduse_ilog_used(l, VDUSE_ILOG_POS(pos, pk->used_wrap));
	pk->used_total += pk->ndesc[slot];
	pk->in_ring -= pk->ndesc[slot];
	bufid_flip(pk, pk->bufid[slot]);
	pk->free[pk->nr_free++] = (uint16_t)slot;
}

bool vduse_packed_need_interrupt(struct vduse_vq *vq)
{
	struct vduse_packed *pk = vq->pk;
	uint16_t old = pk->signalled, now = pk->used_total;
	uint16_t flags, off, event, moved = (uint16_t)(now - old);

	/* Order our used descriptors before reading the driver's wishes. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	pk->signalled = now;
	if (vq->irq_pending) {
		vq->irq_pending = false;
		return true;
	}
	if (!moved)
		return false;
	flags = le16toh(RING_LOAD(pk->driver->flags));
	if (flags == VRING_PACKED_EVENT_FLAG_DISABLE)
		return false;
	/* ENABLE, or a value the driver may not use: interrupt. */
	if (flags != VRING_PACKED_EVENT_FLAG_DESC || !vq->event_idx)
		return true;
	/*
	 * The event is at most a lap behind the used position (the driver
	 * sets it where it reads next), so counting back @moved descriptors,
	 * however many laps that is, finds whether it was passed.
	 */
	off = le16toh(RING_LOAD(pk->driver->off_wrap));
	event = off & ~(1u << VRING_PACKED_EVENT_F_WRAP_CTR);
	if ((bool)(off >> VRING_PACKED_EVENT_F_WRAP_CTR) != pk->used_wrap)
		event -= vq->num;
	return vring_need_event(event, vq->used_idx,
				(uint16_t)(vq->used_idx - moved));
}

void vduse_packed_kicks_off(struct vduse_vq *vq)
{
	RING_STORE(vq->pk->device->flags,
		   htole16(VRING_PACKED_EVENT_FLAG_DISABLE));
}

int vduse_packed_kicks_on(struct vduse_vq *vq)
{
	RING_STORE(vq->pk->device->flags,
		   htole16(VRING_PACKED_EVENT_FLAG_ENABLE));
	/* Order the re-arm before the last look, as the driver orders its
	 * descriptor flags store before reading what we asked for. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return replaying(vq) || head_available(vq);
}
