// SPDX-License-Identifier: GPL-2.0-only
/*
 * vduse_shim: the shadow of the split rings, and a dead device's answers.
 *
 * The descriptor table and the avail ring are read-only to the daemon
 * (domain.c), so only the used ring is its to write; the bounds below are
 * kept all the same, as a second line (indirect tables live in the bounce
 * region, which the daemon writes).
 *
 * Everything below reads rings the daemon can write.  Every walk is bounded
 * by a number the shim chose (shadow_num, the size the driver's ring was
 * created with, at most VDUSE_SHIM_MAX_VQ_SIZE), never by one read from the
 * ring:
 *
 *  - a sync follows at most shadow_num avail and shadow_num used entries;
 *    an index further than that past the shadow's cannot come from the
 *    driver (it never has more than the queue size outstanding) and is not
 *    followed;
 *  - a fail pass answers each head at most once, however often the avail
 *    ring names it: at most shadow_num answers per pass;
 *  - a chain walk visits at most shadow_num descriptors, indirect ones
 *    included (the virtio spec bounds a chain by the queue size); an index
 *    or an indirect table entry past its table, and an indirect descriptor
 *    inside a table, end it;
 *  - with interrupts off run only the syncs and the claiming of the heads
 *    to fail (O(shadow_num) each) and vring_interrupt(); the chain walks run
 *    under the queue's fail_lock mutex, preemptible, with interrupts on.
 *
 * A dead device owns the ring's notification fields: each fail pass clears
 * VRING_USED_F_NO_NOTIFY and points avail_event at the shadow's avail index,
 * so that the driver kicks for every new request whatever the daemon last
 * wrote there, and the pass runs again every DEAD_POLL while a ring is
 * live, in case a kick was suppressed anyway (a daemon that still has the
 * ring mapped can rewrite those fields).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/nospec.h>
#include <linux/slab.h>
#include <linux/virtio_ring.h>
#include <uapi/linux/virtio_blk.h>
#include <uapi/linux/virtio_config.h>

#include "vduse_shim.h"

#define DEAD_POLL	(HZ / 5)
/* Saturation of a head's count; -1 is a use seen before its avail entry. */
#define INFLIGHT_MAX	S16_MAX
#define INFLIGHT_MIN	-1

static void inflight_add(s16 *count, int delta)
{
	*count = clamp(*count + delta, INFLIGHT_MIN, INFLIGHT_MAX);
}

static void shadow_untrusted(struct vduse_shim_vq *vq, const char *which,
			     u16 idx, u16 shadow)
{
	pr_warn_ratelimited("%s: vq %u: %s index %u is %u entries past %u, more than the ring holds: not followed\n",
			    dev_name(&vq->vdev->dev), vq->index, which, idx,
			    (u16)(idx - shadow), shadow);
}

/*
 * Follow the split ring, so that the shim knows which heads the daemon still
 * owes an answer for.  Counted per head, so the order in which new avail and
 * used entries are seen does not matter.
 */
void vduse_shim_vq_shadow_sync(struct vduse_shim_vq *vq, bool used_too)
{
	struct virtio_device *vdev = vq->vdev;
	u32 num = vq->shadow_num;
	u16 idx, n;

	lockdep_assert_held(&vq->shadow_lock);
	if (!vq->inflight)
		return;

	/* Pairs with the driver's barrier before it publishes avail->idx. */
	idx = virtio16_to_cpu(vdev, smp_load_acquire(&vq->avail_va->idx));
	n = idx - vq->shadow_avail;
	if (n > num)
		shadow_untrusted(vq, "avail", idx, vq->shadow_avail);
	for (; n && n <= num; n--) {
		__virtio16 *slot = &vq->avail_va->ring[vq->shadow_avail % num];
		u16 head = virtio16_to_cpu(vdev, READ_ONCE(*slot));

		if (head < num)
			inflight_add(&vq->inflight[array_index_nospec(head, num)],
				     1);
		vq->shadow_avail++;
	}
	if (!used_too)
		return;
	/* Pairs with the daemon's barrier before it publishes used->idx. */
	idx = virtio16_to_cpu(vdev, smp_load_acquire(&vq->used_va->idx));
	n = idx - vq->shadow_used;
	if (n > num)
		shadow_untrusted(vq, "used", idx, vq->shadow_used);
	for (; n && n <= num; n--) {
		struct vring_used_elem *elem;
		u32 id;

		elem = &vq->used_va->ring[vq->shadow_used % num];
		id = virtio32_to_cpu(vdev, READ_ONCE(elem->id));
		if (id < num)
			inflight_add(&vq->inflight[array_index_nospec(id, num)],
				     -1);
		vq->shadow_used++;
	}
}

static void read_desc(struct virtio_device *vdev, const struct vring_desc *d,
		      u64 *addr, u32 *len, u16 *flags, u16 *next)
{
	*addr = virtio64_to_cpu(vdev, READ_ONCE(d->addr));
	*len = virtio32_to_cpu(vdev, READ_ONCE(d->len));
	*flags = virtio16_to_cpu(vdev, READ_ONCE(d->flags));
	*next = virtio16_to_cpu(vdev, READ_ONCE(d->next));
}

/*
 * IOVA of the status byte: the last byte of the chain's last descriptor.
 * At most shadow_num descriptors are visited, indirect ones included.
 */
static bool chain_status_iova(struct vduse_shim_dev *dev,
			      struct vduse_shim_vq *vq, u16 head, u64 *iova)
{
	struct virtio_device *vdev = vq->vdev;
	u32 num = vq->shadow_num, max = num, i = head, n, len;
	u64 table = 0;		/* IOVA of an indirect table, 0 if none */
	u16 flags, next;
	u64 addr;

	for (n = 0; n < num; n++) {
		const struct vring_desc *d;

		if (i >= max)
			return false;
		if (table) {
			/* Descriptors are 16-byte aligned: never split. */
			d = vduse_shim_domain_bounce_kaddr(dev->domain,
							   table + (u64)i * sizeof(*d),
							   sizeof(*d));
			if (!d)
				return false;
		} else {
			d = &vq->desc_va[array_index_nospec(i, num)];
		}
		read_desc(vdev, d, &addr, &len, &flags, &next);
		if (flags & VRING_DESC_F_INDIRECT) {
			if (table || !addr || !len || len % sizeof(*d) ||
			    !IS_ALIGNED(addr, sizeof(*d)))
				return false;
			table = addr;
			max = len / sizeof(*d);
			i = 0;
			continue;
		}
		if (!(flags & VRING_DESC_F_NEXT)) {
			if (!(flags & VRING_DESC_F_WRITE) || !len)
				return false;
			*iova = addr + len - 1;
			return true;
		}
		i = next;
	}
	return false;
}

/* Answer one head with VIRTIO_BLK_S_IOERR in used entry @idx. */
static void fail_head(struct vduse_shim_dev *dev, struct vduse_shim_vq *vq,
		      u16 head, u16 idx)
{
	struct virtio_device *vdev = vq->vdev;
	struct vring_used_elem *elem;
	u8 *status = NULL;
	u64 iova;

	if (chain_status_iova(dev, vq, head, &iova))
		status = vduse_shim_domain_bounce_kaddr(dev->domain, iova, 1);
	if (status)
		*status = VIRTIO_BLK_S_IOERR;
	else
		pr_warn_ratelimited("%s: vq %u head %u: no status byte to fail\n",
				    dev->name, vq->index, head);
	elem = &vq->used_va->ring[idx % vq->shadow_num];
	WRITE_ONCE(elem->id, cpu_to_virtio32(vdev, head));
	WRITE_ONCE(elem->len, cpu_to_virtio32(vdev, 1));
	atomic_long_inc(&vduse_shim_stats.reqs_failed_by_shim);
}

/*
 * Take the heads in flight off the shadow (each once) into fail_heads, and
 * take the notification fields over.  Returns how many; *again is set when
 * the driver made more available meanwhile.
 */
static u32 vq_claim_inflight(struct vduse_shim_vq *vq, bool *again)
{
	struct virtio_device *vdev = vq->vdev;
	u32 head, n = 0, ahead;
	__virtio16 *avail_event;
	u16 idx;

	lockdep_assert_held(&vq->shadow_lock);
	vduse_shim_vq_shadow_sync(vq, true);
	for (head = 0; head < vq->shadow_num; head++) {
		if (vq->inflight[head] > 0) {
			vq->inflight[head] = 0;
			vq->fail_heads[n++] = head;
		}
	}

	avail_event = (__virtio16 *)&vq->used_va->ring[vq->shadow_num];
	WRITE_ONCE(vq->used_va->flags, cpu_to_virtio16(vdev, 0));
	WRITE_ONCE(*avail_event, cpu_to_virtio16(vdev, vq->shadow_avail));
	/* Pairs with the driver's barrier between avail->idx and avail_event. */
	smp_mb();
	/* Not for an index the sync does not follow: that would spin. */
	idx = virtio16_to_cpu(vdev, READ_ONCE(vq->avail_va->idx));
	ahead = (u16)(idx - vq->shadow_avail);
	*again = ahead && ahead <= vq->shadow_num;
	return n;
}

/*
 * Answer every request the daemon still owes with VIRTIO_BLK_S_IOERR, as the
 * device would.  Returns whether anything was answered; *live tells whether
 * the queue has a ring, *again whether to run again at once.
 */
static bool vq_fail_inflight(struct vduse_shim_dev *dev,
			     struct vduse_shim_vq *vq, bool *live, bool *again)
{
	unsigned long flags;
	u32 i, n = 0;
	u16 idx = 0;

	mutex_lock(&vq->fail_lock);
	spin_lock_irqsave(&vq->shadow_lock, flags);
	if (vq->inflight) {
		*live = true;
		n = vq_claim_inflight(vq, again);
		idx = vq->shadow_used;
	}
	spin_unlock_irqrestore(&vq->shadow_lock, flags);

	/* The ring stays mapped while fail_lock is held. */
	for (i = 0; i < n; i++) {
		fail_head(dev, vq, vq->fail_heads[i], idx++);
		cond_resched();
	}

	if (n) {
		spin_lock_irqsave(&vq->shadow_lock, flags);
		vq->shadow_used = idx;
		/* The entries are written before the driver can see them. */
		smp_store_release(&vq->used_va->idx,
				  cpu_to_virtio16(vq->vdev, idx));
		spin_unlock_irqrestore(&vq->shadow_lock, flags);
	}
	mutex_unlock(&vq->fail_lock);
	return n;
}

bool vduse_shim_dev_dead(struct vduse_shim_dev *dev)
{
	return READ_ONCE(dev->dead);
}

void vduse_shim_dev_fail_inflight(struct vduse_shim_dev *dev)
{
	mod_delayed_work(vduse_shim_wq, &dev->fail_work, 0);
}

void vduse_shim_fail_work_fn(struct work_struct *work)
{
	struct vduse_shim_dev *dev = container_of(to_delayed_work(work),
						  struct vduse_shim_dev,
						  fail_work);
	bool live = false, again = false;
	unsigned long flags;
	u32 i;

	for (i = 0; i < dev->vq_num; i++) {
		struct vduse_shim_vq *vq = &dev->vqs[i];

		if (!vq_fail_inflight(dev, vq, &live, &again))
			continue;
		spin_lock_irqsave(&vq->irq_lock, flags);
		if (vq->ready && vq->vq &&
		    (READ_ONCE(dev->status) & VIRTIO_CONFIG_S_DRIVER_OK))
			vring_interrupt(0, vq->vq);
		spin_unlock_irqrestore(&vq->irq_lock, flags);
	}
	/* New requests of a dead device fail even if no kick comes. */
	if (!READ_ONCE(dev->dead) || !live)
		return;
	if (again)
		mod_delayed_work(vduse_shim_wq, &dev->fail_work, 0);
	else
		queue_delayed_work(vduse_shim_wq, &dev->fail_work, DEAD_POLL);
}

/*
 * The avail index a daemon resumes the ring from: that of the oldest request
 * the driver made available and the daemon has not used, or the shadow's
 * avail index when none is in flight (0 for a new ring).  Every request
 * below it has been completed, so a daemon that completes in order and
 * reopens the device after a crash pops each request in flight again and
 * none that the driver already got back.  A daemon that completes out of
 * order needs its own record of what it took (libvduse's in-flight log).
 *
 * A head counted n times in flight is in flight from its n newest avail
 * entries: the walk goes back from the shadow's avail index over at most
 * shadow_num entries (the ring holds no more), under fail_lock, preemptible.
 */
int vduse_shim_vq_resume_index(struct vduse_shim_vq *vq, u16 *index)
{
	unsigned long flags;
	u32 num, i, pending = 0;
	u16 avail, oldest;
	s16 *left;

	*index = 0;
	mutex_lock(&vq->fail_lock);
	num = vq->shadow_num;
	if (!vq->inflight || !num) {
		mutex_unlock(&vq->fail_lock);
		return 0;
	}
	left = kmalloc_array(num, sizeof(*left), GFP_KERNEL);
	if (!left) {
		mutex_unlock(&vq->fail_lock);
		return -ENOMEM;
	}
	spin_lock_irqsave(&vq->shadow_lock, flags);
	vduse_shim_vq_shadow_sync(vq, true);
	memcpy(left, vq->inflight, num * sizeof(*left));
	avail = vq->shadow_avail;
	spin_unlock_irqrestore(&vq->shadow_lock, flags);

	for (i = 0; i < num; i++)
		if (left[i] > 0)
			pending += left[i];
	oldest = avail;
	for (i = 1; i <= num && pending; i++) {
		u16 a = avail - i;
		__virtio16 *slot = &vq->avail_va->ring[a % num];
		u16 head = virtio16_to_cpu(vq->vdev, READ_ONCE(*slot));

		if (head >= num)
			continue;
		head = array_index_nospec(head, num);
		if (left[head] > 0) {
			left[head]--;
			pending--;
			oldest = a;
		}
	}
	mutex_unlock(&vq->fail_lock);
	kfree(left);
	*index = oldest;
	return 0;
}
