// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Split virtqueues, the device's side: used entries (one used->idx store
 * per push or batch, deferred ones published later), the interrupt
 * decision and its injection, and kick suppression.  The driver's side
 * (rings, chains, pops) is in vq_split.c; what both use, in vq_split.h.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sys.h"
#include "vq_split.h"
#include "vq_packed.h"

/* Put one completion in the used ring (used->idx is stored later). */
static inline __attribute__((always_inline)) void
put_used(struct vduse_vq *vq, uint32_t id, uint32_t len)
{
	struct vring_used_elem *u;

	if (vq->packed) {
		vduse_packed_put_used(vq, id, len);
		return;
	}
	u = &vq->used->ring[vq->used_idx % vq->num];

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

/* The log forgets a completion once the driver can see it. */
static inline void log_free(struct vduse_vq *vq, uint32_t id)
{
	if (vq->packed)
		vduse_packed_log_free(vq, id);
	else
		vduse_ilog_free(vq->ilog, id);
}

/* Make the used entries written so far visible to the driver. */
static void publish_used(struct vduse_vq *vq)
{
	/* Packed: each used descriptor was published by its flags. */
	if (vq->packed)
		return;
	if (vq->ilog)
		vduse_crash_point();
	RING_STORE_REL(vq->used->idx, htole16(vq->used_idx));
	if (vq->ilog)
		vduse_ilog_used(vq->ilog, vq->used_idx);
}

/* Publish the pushes the used ring could not take when they were made. */
void vduse_split_flush_deferred(struct vduse_vq *vq)
{
	unsigned int i;

	for (i = 0; i < vq->nr_deferred; i++)
		put_used(vq, le32toh(vq->deferred[i].id),
			 le32toh(vq->deferred[i].len));
	publish_used(vq);
	/* The log kept them in flight until now. */
	for (i = 0; vq->ilog && i < vq->nr_deferred; i++)
		log_free(vq, le32toh(vq->deferred[i].id));
	vq->nr_deferred = 0;
	vq->flushed = true;	/* the driver may be waiting for an interrupt */
}

/* Does the driver want an interrupt for what was pushed?  Locked. */
static inline __attribute__((always_inline)) bool
need_interrupt(struct vduse_vq *vq)
{
	uint16_t old = vq->signalled_used, now = vq->used_idx;

	if (vq->packed)
		return vduse_packed_need_interrupt(vq);
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

	if (!vq->started) {
		vduse_dbg("%s: queue %u: push: the queue is stopped",
			  vq->dev->name, vq->index);
		return -EIO;
	}
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
			log_free(vq, elems[i]->id);
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
		vduse_split_retry_later(vq, "push");
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
		vduse_split_retry_later(vq, "interrupt");
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
	if (flags & ~VDUSE_VQ_PUSH_NOTIFY) {
		vduse_err("%s: queue %u: push_batch: unknown flags 0x%x",
			  vq->dev->name, vq->index, flags);
		return -EINVAL;
	}
	return push(vq, elems, lens, n, flags & VDUSE_VQ_PUSH_NOTIFY);
}

/* Kick suppression (vduse_vq_disable_kicks / _enable_kicks).  Locked. */
static void kicks_off(struct vduse_vq *vq)
{
	vq->fast.rearm = false;
	if (vq->packed)
		vduse_packed_kicks_off(vq);
	else if (vq->event_idx)
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

	if (vq->packed)
		return vduse_packed_kicks_on(vq);
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
		vduse_split_retry_later(vq, "kicks");
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
		vduse_split_retry_later(vq, "notify");
		return ret;
	}
	if (ret < 0)
		return ret;
	if (!need)
		return 0;
	return inject_irq(vq);
}
