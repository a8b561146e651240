// SPDX-License-Identifier: GPL-2.0-only
/*
 * vduse_shim: /dev/vduse/control and /dev/vduse/$NAME.
 *
 * The uAPI is that of upstream VDUSE at API version 0 (<linux/vduse.h>).
 * Control messages (SET_STATUS, UPDATE_IOTLB) go to the daemon through
 * read(2) and come back through write(2); every one of them has a timeout
 * after which the device is broken.  A broken device, or one whose daemon is
 * gone, is "dead": the shim then fails the requests the driver still has in
 * flight itself, so that detaching never waits on userspace.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ctype.h>
#include <linux/dma-map-ops.h>
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/module.h>
#include <linux/nospec.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/virtio_ring.h>
#include <uapi/linux/virtio_blk.h>
#include <uapi/linux/virtio_config.h>
#include <uapi/linux/virtio_ids.h>

#include "vduse_shim.h"

static DEFINE_MUTEX(devs_lock);		/* the idr, device names */
static DEFINE_IDR(devs_idr);

static dev_t vduse_devt;
static struct cdev ctrl_cdev;
static struct cdev dev_cdev;
static struct class *vduse_class;
static struct device *ctrl_device;
static struct workqueue_struct *shim_wq;

static bool all_zero(const void *p, size_t len)
{
	return !memchr_inv(p, 0, len);
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                   */

static void fail_msgs_locked(struct vduse_shim_dev *dev)
{
	struct vduse_shim_msg *msg, *tmp;

	list_splice_init(&dev->recv_list, &dev->send_list);
	list_for_each_entry_safe(msg, tmp, &dev->send_list, list) {
		list_del(&msg->list);
		msg->resp.result = VDUSE_REQ_RESULT_FAILED;
		msg->completed = true;
		complete(&msg->done);
	}
}

static void fail_work_fn(struct work_struct *work);

/*
 * The daemon is gone or does not answer: fail the pending messages, refuse
 * new ones, and fail the driver's in-flight requests from a work item.
 */
void vduse_shim_go_dead(struct vduse_shim_dev *dev, const char *why)
{
	bool first;

	spin_lock(&dev->msg_lock);
	first = !dev->dead;
	dev->dead = true;
	dev->broken = true;
	fail_msgs_locked(dev);
	spin_unlock(&dev->msg_lock);
	wake_up_all(&dev->waitq);
	if (first)
		pr_warn("%s: %s; failing its requests\n", dev->name, why);
	mod_delayed_work(shim_wq, &dev->fail_work, 0);
}

static int msg_sync(struct vduse_shim_dev *dev, struct vduse_shim_msg *msg)
{
	long left;
	int ret;

	init_completion(&msg->done);
	spin_lock(&dev->msg_lock);
	if (dev->broken) {
		spin_unlock(&dev->msg_lock);
		return -EIO;
	}
	msg->req.request_id = dev->msg_next++;
	list_add_tail(&msg->list, &dev->send_list);
	spin_unlock(&dev->msg_lock);
	wake_up(&dev->waitq);

	left = READ_ONCE(vduse_shim_msg_timeout) * HZ;
	left = wait_for_completion_killable_timeout(&msg->done, left);

	spin_lock(&dev->msg_lock);
	if (!msg->completed) {
		list_del(&msg->list);
		msg->resp.result = VDUSE_REQ_RESULT_FAILED;
	}
	ret = msg->resp.result == VDUSE_REQ_RESULT_OK ? 0 : -EIO;
	spin_unlock(&dev->msg_lock);

	if (!msg->completed && left == 0) {
		atomic_long_inc(&vduse_shim_stats.msgs_timed_out);
		vduse_shim_go_dead(dev, "message timed out");
	}
	return ret;
}

int vduse_shim_msg_set_status(struct vduse_shim_dev *dev, u8 status)
{
	struct vduse_shim_msg msg = { };

	msg.req.type = VDUSE_SET_STATUS;
	msg.req.s.status = status;
	return msg_sync(dev, &msg);
}

int vduse_shim_msg_update_iotlb(struct vduse_shim_dev *dev, u64 start,
				u64 last)
{
	struct vduse_shim_msg msg = { };

	msg.req.type = VDUSE_UPDATE_IOTLB;
	msg.req.iova.start = start;
	msg.req.iova.last = last;
	return msg_sync(dev, &msg);
}

static void domain_invalidate(void *priv, u64 start, u64 last)
{
	if (!vduse_shim_msg_update_iotlb(priv, start, last))
		atomic_long_inc(&vduse_shim_stats.iotlb_updates);
}

/* The domain refused an unmap or sync: the daemon rewrote the ring. */
static void domain_broken(void *priv)
{
	vduse_shim_go_dead(priv, "DMA unmap of a mapping that is not live");
}

static ssize_t dev_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct file *file = iocb->ki_filp;
	struct vduse_shim_dev *dev = file->private_data;
	struct vduse_dev_request req;
	struct vduse_shim_msg *msg;
	int ret;

	if (iov_iter_count(to) < sizeof(req))
		return -EINVAL;

	spin_lock(&dev->msg_lock);
	while (list_empty(&dev->send_list)) {
		bool broken = dev->broken;

		spin_unlock(&dev->msg_lock);
		if (broken)
			return -EIO;
		if (file->f_flags & O_NONBLOCK)
			return -EAGAIN;
		ret = wait_event_interruptible_exclusive(dev->waitq,
							 !list_empty(&dev->send_list) ||
							 READ_ONCE(dev->broken));
		if (ret)
			return ret;
		spin_lock(&dev->msg_lock);
	}
	msg = list_first_entry(&dev->send_list, struct vduse_shim_msg, list);
	list_move_tail(&msg->list, &dev->recv_list);
	/* The sender may give up once we unlock: work on a copy. */
	req = msg->req;
	spin_unlock(&dev->msg_lock);

	if (copy_to_iter(&req, sizeof(req), to) == sizeof(req))
		return sizeof(req);

	spin_lock(&dev->msg_lock);
	list_for_each_entry(msg, &dev->recv_list, list) {
		if (msg->req.request_id == req.request_id) {
			list_move(&msg->list, &dev->send_list);
			break;
		}
	}
	spin_unlock(&dev->msg_lock);
	return -EFAULT;
}

static ssize_t dev_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct vduse_shim_dev *dev = iocb->ki_filp->private_data;
	struct vduse_dev_response resp;
	struct vduse_shim_msg *msg, *found = NULL;

	if (iov_iter_count(from) != sizeof(resp))
		return -EINVAL;
	if (copy_from_iter(&resp, sizeof(resp), from) != sizeof(resp))
		return -EFAULT;
	if (!all_zero(resp.reserved, sizeof(resp.reserved)))
		return -EINVAL;

	spin_lock(&dev->msg_lock);
	list_for_each_entry(msg, &dev->recv_list, list) {
		if (msg->req.request_id == resp.request_id) {
			found = msg;
			break;
		}
	}
	if (found) {
		list_del(&found->list);
		found->resp = resp;
		found->completed = true;
		complete(&found->done);
	}
	spin_unlock(&dev->msg_lock);

	return found ? sizeof(resp) : -ENOENT;
}

static __poll_t dev_poll(struct file *file, poll_table *wait)
{
	struct vduse_shim_dev *dev = file->private_data;
	__poll_t mask = 0;

	poll_wait(file, &dev->waitq, wait);
	spin_lock(&dev->msg_lock);
	if (dev->broken)
		mask |= EPOLLERR;
	if (!list_empty(&dev->send_list))
		mask |= EPOLLIN | EPOLLRDNORM;
	if (!list_empty(&dev->recv_list))
		mask |= EPOLLOUT | EPOLLWRNORM;
	spin_unlock(&dev->msg_lock);
	return mask;
}

/* ------------------------------------------------------------------------ */
/* Virtqueues                                                                 */

void vduse_shim_vq_kick(struct vduse_shim_vq *vq)
{
	unsigned long flags;

	spin_lock_irqsave(&vq->kick_lock, flags);
	if (vq->kickfd)
		eventfd_signal(vq->kickfd, 1);
	else
		vq->kicked = true;
	spin_unlock_irqrestore(&vq->kick_lock, flags);
}

static void kick_work_fn(struct work_struct *work)
{
	vduse_shim_vq_kick(container_of(work, struct vduse_shim_vq, kick_work));
}

/* Where an eventfd may not be signalled (nested in another's wake-up). */
void vduse_shim_vq_kick_later(struct vduse_shim_vq *vq)
{
	queue_work(shim_wq, &vq->kick_work);
}

/*
 * The shadow of the split rings, and the answers of a dead device.
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
	mod_delayed_work(shim_wq, &dev->fail_work, 0);
}

static void fail_work_fn(struct work_struct *work)
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
		mod_delayed_work(shim_wq, &dev->fail_work, 0);
	else
		queue_delayed_work(shim_wq, &dev->fail_work, DEAD_POLL);
}

static void dead_work_fn(struct work_struct *work)
{
	struct vduse_shim_dev *dev = container_of(to_delayed_work(work),
						  struct vduse_shim_dev,
						  dead_work);

	vduse_shim_go_dead(dev, "daemon did not let the driver go");
}

/* Under dev->lock, so that a reopen cannot slip in between. */
static void gone_work_fn(struct work_struct *work)
{
	struct vduse_shim_dev *dev = container_of(to_delayed_work(work),
						  struct vduse_shim_dev,
						  gone_work);

	mutex_lock(&dev->lock);
	if (!dev->connected && (dev->vdev || dev->attaching))
		vduse_shim_go_dead(dev, "no daemon reopened it within reconnect_timeout");
	mutex_unlock(&dev->lock);
}

static void vq_clear_kickfd(struct vduse_shim_vq *vq)
{
	unsigned long flags;

	spin_lock_irqsave(&vq->kick_lock, flags);
	if (vq->kickfd)
		eventfd_ctx_put(vq->kickfd);
	vq->kickfd = NULL;
	vq->kicked = false;
	spin_unlock_irqrestore(&vq->kick_lock, flags);
}

/* Device reset, driver side: forget everything the driver set up. */
void vduse_shim_dev_reset(struct vduse_shim_dev *dev)
{
	unsigned long flags;
	u32 i;

	dev->status = 0;
	dev->driver_features = 0;
	dev->generation++;
	for (i = 0; i < dev->vq_num; i++) {
		struct vduse_shim_vq *vq = &dev->vqs[i];

		spin_lock_irqsave(&vq->irq_lock, flags);
		vq->ready = false;
		vq->num = 0;
		vq->desc_addr = 0;
		vq->driver_addr = 0;
		vq->device_addr = 0;
		spin_unlock_irqrestore(&vq->irq_lock, flags);
		vq_clear_kickfd(vq);
		flush_work(&vq->kick_work);
	}
}

static int vq_setup_kickfd(struct vduse_shim_dev *dev,
			   struct vduse_vq_eventfd *efd)
{
	struct eventfd_ctx *ctx = NULL;
	struct vduse_shim_vq *vq;
	unsigned long flags;

	if (efd->index >= dev->vq_num)
		return -EINVAL;
	vq = &dev->vqs[array_index_nospec(efd->index, dev->vq_num)];
	if (efd->fd >= 0) {
		ctx = eventfd_ctx_fdget(efd->fd);
		if (IS_ERR(ctx))
			return PTR_ERR(ctx);
	} else if (efd->fd != VDUSE_EVENTFD_DEASSIGN) {
		return -EINVAL;
	}

	spin_lock_irqsave(&vq->kick_lock, flags);
	if (vq->kickfd)
		eventfd_ctx_put(vq->kickfd);
	vq->kickfd = ctx;
	/* A kick that came before the eventfd is not lost. */
	if (ctx && vq->kicked) {
		eventfd_signal(ctx, 1);
		vq->kicked = false;
	}
	spin_unlock_irqrestore(&vq->kick_lock, flags);
	return 0;
}

static int vq_inject_irq(struct vduse_shim_dev *dev, u32 index)
{
	struct vduse_shim_vq *vq;
	unsigned long flags;
	int ret = -EINVAL;

	if (index >= dev->vq_num)
		return -EINVAL;
	vq = &dev->vqs[array_index_nospec(index, dev->vq_num)];

	spin_lock_irqsave(&vq->irq_lock, flags);
	if (vq->ready && vq->vq &&
	    (READ_ONCE(dev->status) & VIRTIO_CONFIG_S_DRIVER_OK)) {
		spin_lock(&vq->shadow_lock);
		vduse_shim_vq_shadow_sync(vq, true);
		spin_unlock(&vq->shadow_lock);
		vring_interrupt(0, vq->vq);
		ret = 0;
	}
	spin_unlock_irqrestore(&vq->irq_lock, flags);
	return ret;
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
static int vq_resume_index(struct vduse_shim_vq *vq, u16 *index)
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

static int vq_get_info(struct vduse_shim_dev *dev, struct vduse_vq_info *info)
{
	struct vduse_shim_vq *vq;
	unsigned long flags;
	u32 index = info->index;

	if (index >= dev->vq_num)
		return -EINVAL;
	vq = &dev->vqs[array_index_nospec(index, dev->vq_num)];

	memset(info, 0, sizeof(*info));
	info->index = index;
	spin_lock_irqsave(&vq->irq_lock, flags);
	info->num = vq->num;
	info->desc_addr = vq->desc_addr;
	info->driver_addr = vq->driver_addr;
	info->device_addr = vq->device_addr;
	info->ready = vq->ready;
	spin_unlock_irqrestore(&vq->irq_lock, flags);
	return vq_resume_index(vq, &info->split.avail_index);
}

/* ------------------------------------------------------------------------ */
/* /dev/vduse/$NAME                                                           */

static int dev_set_config(struct vduse_shim_dev *dev, void __user *argp)
{
	struct vduse_config_data hdr;
	unsigned long flags;
	void *buf;

	if (copy_from_user(&hdr, argp, sizeof(hdr)))
		return -EFAULT;
	if (!hdr.length || hdr.offset > dev->config_size ||
	    hdr.length > dev->config_size - hdr.offset)
		return -EINVAL;
	buf = memdup_user(argp + sizeof(hdr), hdr.length);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	spin_lock_irqsave(&dev->config_lock, flags);
	memcpy(dev->config + hdr.offset, buf, hdr.length);
	spin_unlock_irqrestore(&dev->config_lock, flags);
	kfree(buf);
	return 0;
}

static long dev_iotlb_get_fd(struct vduse_shim_dev *dev, void __user *argp)
{
	struct vduse_iotlb_entry entry;
	struct file *f = NULL;
	int ret;

	if (copy_from_user(&entry, argp, sizeof(entry)))
		return -EFAULT;
	if (entry.start > entry.last)
		return -EINVAL;

	mutex_lock(&dev->lock);
	ret = -EINVAL;
	if (dev->domain) {
		ret = vduse_shim_domain_lookup(dev->domain, &entry);
		if (!ret) {
			f = vduse_shim_domain_open(dev->domain);
			if (IS_ERR(f))
				ret = PTR_ERR(f);
		}
	}
	mutex_unlock(&dev->lock);
	if (ret)
		return ret;

	if (copy_to_user(argp, &entry, sizeof(entry))) {
		fput(f);
		return -EFAULT;
	}
	ret = receive_fd(f, O_CLOEXEC);
	fput(f);
	return ret;
}

static long dev_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct vduse_shim_dev *dev = file->private_data;
	void __user *argp = (void __user *)arg;

	if (READ_ONCE(dev->broken))
		return -EIO;

	switch (cmd) {
	case VDUSE_IOTLB_GET_FD:
		return dev_iotlb_get_fd(dev, argp);
	case VDUSE_DEV_GET_FEATURES:
		return put_user(dev->driver_features, (u64 __user *)argp);
	case VDUSE_DEV_SET_CONFIG:
		return dev_set_config(dev, argp);
	case VDUSE_DEV_INJECT_CONFIG_IRQ:
		if (!(READ_ONCE(dev->status) & VIRTIO_CONFIG_S_DRIVER_OK))
			return -EINVAL;
		mutex_lock(&dev->lock);
		vduse_shim_vdev_config_changed(dev);
		mutex_unlock(&dev->lock);
		return 0;
	case VDUSE_VQ_SETUP: {
		struct vduse_vq_config cfg;
		int ret = 0;

		if (copy_from_user(&cfg, argp, sizeof(cfg)))
			return -EFAULT;
		if (cfg.index >= dev->vq_num ||
		    !all_zero(cfg.reserved, sizeof(cfg.reserved)) ||
		    !cfg.max_size || !is_power_of_2(cfg.max_size) ||
		    cfg.max_size > VDUSE_SHIM_MAX_VQ_SIZE)
			return -EINVAL;
		mutex_lock(&dev->lock);
		if (dev->vdev || dev->attaching)
			ret = -EBUSY;
		else
			dev->vqs[array_index_nospec(cfg.index,
					dev->vq_num)].num_max = cfg.max_size;
		mutex_unlock(&dev->lock);
		return ret;
	}
	case VDUSE_VQ_GET_INFO: {
		struct vduse_vq_info info;
		int ret;

		if (copy_from_user(&info, argp, sizeof(info)))
			return -EFAULT;
		ret = vq_get_info(dev, &info);
		if (ret)
			return ret;
		return copy_to_user(argp, &info, sizeof(info)) ? -EFAULT : 0;
	}
	case VDUSE_VQ_SETUP_KICKFD: {
		struct vduse_vq_eventfd efd;

		if (copy_from_user(&efd, argp, sizeof(efd)))
			return -EFAULT;
		return vq_setup_kickfd(dev, &efd);
	}
	case VDUSE_VQ_INJECT_IRQ: {
		u32 index;

		if (get_user(index, (u32 __user *)argp))
			return -EFAULT;
		return vq_inject_irq(dev, index);
	}
	case VDUSE_IOTLB_REG_UMEM:
	case VDUSE_IOTLB_DEREG_UMEM:
	case VDUSE_IOTLB_GET_INFO:
		return -EOPNOTSUPP;
	default:
		return -ENOTTY;
	}
}

/*
 * A daemon (re)opens the device.  Within reconnect_timeout of the last
 * close of an attached device, it takes over where the old one stopped:
 * the requests in flight stay pending, VQ_GET_INFO tells where the ring
 * stands, and messages the old daemon read but did not answer come again.
 * gone_work checks connected under dev->lock, so a reopen either comes
 * first and keeps the device, or finds it dead (EIO).
 */
static int dev_open(struct inode *inode, struct file *file)
{
	struct vduse_shim_dev *dev;
	int ret = -ENODEV;

	mutex_lock(&devs_lock);
	dev = idr_find(&devs_idr, iminor(inode));
	if (dev) {
		mutex_lock(&dev->lock);
		if (dev->connected || dev->destroying) {
			ret = -EBUSY;
		} else if (READ_ONCE(dev->broken)) {
			ret = -EIO;
			pr_warn_ratelimited("%s: not reopened: the device is dead (no daemon came back within reconnect_timeout, or it stopped answering); detach and destroy it\n",
					    dev->name);
		} else {
			dev->connected = true;
			kref_get(&dev->ref);
			file->private_data = dev;
			ret = 0;
		}
		mutex_unlock(&dev->lock);
	}
	mutex_unlock(&devs_lock);
	return ret;
}

static void vq_clear_kickfd(struct vduse_shim_vq *vq);

static int dev_release(struct inode *inode, struct file *file)
{
	struct vduse_shim_dev *dev = file->private_data;
	unsigned long flags;
	u32 i;

	/* Messages read but not answered are offered again to a new opener. */
	spin_lock(&dev->msg_lock);
	list_splice_init(&dev->recv_list, &dev->send_list);
	spin_unlock(&dev->msg_lock);

	/*
	 * The eventfds were the old daemon's: kicks from now on wait for the
	 * next one's, and a live queue gets one at once (kicks that came
	 * while nobody listened are not lost).
	 */
	for (i = 0; i < dev->vq_num; i++) {
		struct vduse_shim_vq *vq = &dev->vqs[i];
		bool ready;

		vq_clear_kickfd(vq);
		spin_lock_irqsave(&vq->irq_lock, flags);
		ready = vq->ready;
		spin_unlock_irqrestore(&vq->irq_lock, flags);
		if (ready)
			vduse_shim_vq_kick(vq);
	}

	mutex_lock(&dev->lock);
	dev->connected = false;
	/* A restarted daemon has reconnect_timeout to come back. */
	if (dev->vdev || dev->attaching)
		mod_delayed_work(shim_wq, &dev->gone_work,
				 (unsigned long)READ_ONCE(vduse_shim_reconnect_timeout) * HZ);
	mutex_unlock(&dev->lock);
	vduse_shim_dev_put(dev);
	return 0;
}

static const struct file_operations dev_fops = {
	.owner		= THIS_MODULE,
	.open		= dev_open,
	.release	= dev_release,
	.read_iter	= dev_read_iter,
	.write_iter	= dev_write_iter,
	.poll		= dev_poll,
	.unlocked_ioctl	= dev_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

/* ------------------------------------------------------------------------ */
/* Create, destroy, attach, detach                                            */

static struct vduse_shim_dev *find_dev_locked(const char *name)
{
	struct vduse_shim_dev *dev;
	int id;

	lockdep_assert_held(&devs_lock);
	idr_for_each_entry(&devs_idr, dev, id)
		if (!strcmp(dev->name, name))
			return dev;
	return NULL;
}

/* The device named @name, with a reference, or NULL. */
static struct vduse_shim_dev *find_dev_get(const char *name)
{
	struct vduse_shim_dev *dev;

	mutex_lock(&devs_lock);
	dev = find_dev_locked(name);
	if (dev)
		kref_get(&dev->ref);
	mutex_unlock(&devs_lock);
	return dev;
}

static void dev_free(struct vduse_shim_dev *dev)
{
	u32 i;

	cancel_delayed_work_sync(&dev->dead_work);
	cancel_delayed_work_sync(&dev->gone_work);
	cancel_delayed_work_sync(&dev->fail_work);

	if (dev->vqs) {
		for (i = 0; i < dev->vq_num; i++)
			vq_clear_kickfd(&dev->vqs[i]);
		kfree(dev->vqs);
	}
	if (dev->domain)
		vduse_shim_domain_destroy(dev->domain);
	kvfree(dev->config);
	kfree(dev);
	atomic_long_dec(&vduse_shim_stats.devices);
}

static void dev_release_ref(struct kref *ref)
{
	dev_free(container_of(ref, struct vduse_shim_dev, ref));
}

void vduse_shim_dev_put(struct vduse_shim_dev *dev)
{
	kref_put(&dev->ref, dev_release_ref);
}

/* [A-Za-z0-9._-]+, not "control", ".", "..": a safe node and sysfs name. */
static bool name_valid(const char *name)
{
	size_t i, len = strnlen(name, VDUSE_NAME_MAX);

	if (!len || len == VDUSE_NAME_MAX || !strcmp(name, "control") ||
	    !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (i = 0; i < len; i++)
		/* The kernel's isalnum() takes Latin-1 letters too. */
		if (!isascii(name[i]) ||
		    (!isalnum(name[i]) && !strchr("._-", name[i])))
			return false;
	return true;
}

static bool config_valid(const struct vduse_dev_config *cfg)
{
	if (!name_valid(cfg->name))
		return false;
	if (!all_zero(cfg->reserved, sizeof(cfg->reserved)))
		return false;
	if (cfg->device_id != VIRTIO_ID_BLOCK)
		return false;
	if (!(cfg->features & BIT_ULL(VIRTIO_F_ACCESS_PLATFORM)))
		return false;
	/* The config space is read-only for the driver. */
	if (cfg->features & BIT_ULL(VIRTIO_BLK_F_CONFIG_WCE))
		return false;
	if (!cfg->vq_num || cfg->vq_num > VDUSE_SHIM_MAX_VQS)
		return false;
	if (!cfg->vq_align || !is_power_of_2(cfg->vq_align) ||
	    cfg->vq_align > PAGE_SIZE)
		return false;
	if (cfg->config_size > PAGE_SIZE)
		return false;
	return true;
}

static int create_dev(struct vduse_dev_config *cfg, void *config)
{
	struct vduse_shim_dev *dev;
	u32 i;
	int ret;

	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		return -ENOMEM;
	atomic_long_inc(&vduse_shim_stats.devices);
	strscpy(dev->name, cfg->name, sizeof(dev->name));
	kref_init(&dev->ref);
	mutex_init(&dev->lock);
	spin_lock_init(&dev->config_lock);
	spin_lock_init(&dev->msg_lock);
	INIT_LIST_HEAD(&dev->send_list);
	INIT_LIST_HEAD(&dev->recv_list);
	init_waitqueue_head(&dev->waitq);
	INIT_DELAYED_WORK(&dev->dead_work, dead_work_fn);
	INIT_DELAYED_WORK(&dev->gone_work, gone_work_fn);
	INIT_DELAYED_WORK(&dev->fail_work, fail_work_fn);
	dev->device_id = cfg->device_id;
	dev->vendor_id = cfg->vendor_id;
	dev->device_features = cfg->features;
	dev->vq_num = cfg->vq_num;
	dev->vq_align = cfg->vq_align;
	dev->config_size = cfg->config_size;

	dev->vqs = kcalloc(dev->vq_num, sizeof(*dev->vqs), GFP_KERNEL);
	if (!dev->vqs) {
		kfree(dev);
		atomic_long_dec(&vduse_shim_stats.devices);
		return -ENOMEM;
	}
	for (i = 0; i < dev->vq_num; i++) {
		struct vduse_shim_vq *vq = &dev->vqs[i];

		vq->index = i;
		spin_lock_init(&vq->kick_lock);
		spin_lock_init(&vq->irq_lock);
		mutex_init(&vq->fail_lock);
		spin_lock_init(&vq->shadow_lock);
		INIT_WORK(&vq->kick_work, kick_work_fn);
	}

	mutex_lock(&devs_lock);
	ret = -EEXIST;
	if (find_dev_locked(dev->name))
		goto err_unlock;
	ret = idr_alloc(&devs_idr, dev, 1, VDUSE_SHIM_MAX_DEVICES, GFP_KERNEL);
	if (ret < 0)
		goto err_unlock;
	dev->minor = ret;
	dev->dev = device_create(vduse_class, NULL,
				 MKDEV(MAJOR(vduse_devt), dev->minor), dev,
				 "%s", dev->name);
	if (IS_ERR(dev->dev)) {
		ret = PTR_ERR(dev->dev);
		idr_remove(&devs_idr, dev->minor);
		goto err_unlock;
	}
	/* The class device is the DMA device of the virtio device. */
	dev->dev->coherent_dma_mask = DMA_BIT_MASK(64);
	dev->dev->dma_mask = &dev->dev->coherent_dma_mask;
	set_dma_ops(dev->dev, &vduse_shim_dma_ops);
	dev->config = config;
	mutex_unlock(&devs_lock);
	return 0;

err_unlock:
	mutex_unlock(&devs_lock);
	dev_free(dev);
	return ret;
}

/*
 * Called with devs_lock; dev->destroying is set.  Unlinks the device and
 * drops the idr's reference: whoever still holds one frees it.
 */
static void destroy_dev_locked(struct vduse_shim_dev *dev)
{
	lockdep_assert_held(&devs_lock);
	device_destroy(vduse_class, MKDEV(MAJOR(vduse_devt), dev->minor));
	idr_remove(&devs_idr, dev->minor);
	vduse_shim_dev_put(dev);
}

static int destroy_dev(const char *name)
{
	struct vduse_shim_dev *dev;
	int ret = -EINVAL;

	mutex_lock(&devs_lock);
	dev = find_dev_locked(name);
	if (dev) {
		mutex_lock(&dev->lock);
		ret = -EBUSY;
		if (!dev->connected && !dev->vdev && !dev->attaching &&
		    !dev->destroying) {
			dev->destroying = true;
			ret = 0;
		}
		mutex_unlock(&dev->lock);
		if (!ret)
			destroy_dev_locked(dev);
	}
	mutex_unlock(&devs_lock);
	return ret;
}

u16 vduse_shim_dev_max_vq_size(struct vduse_shim_dev *dev)
{
	u16 max = 0;
	u32 i;

	for (i = 0; i < dev->vq_num; i++)
		max = max_t(u16, max, dev->vqs[i].num_max);
	return max;
}

int vduse_shim_attach(const char *name)
{
	struct vduse_shim_dev *dev;
	struct vduse_shim_domain *domain;
	int ret;
	u32 i;

	dev = find_dev_get(name);
	if (!dev)
		return -ENODEV;
	mutex_lock(&dev->lock);
	ret = -EEXIST;
	if (dev->vdev || dev->attaching)
		goto unlock_dev;
	ret = -ENODEV;
	if (dev->destroying)
		goto unlock_dev;
	ret = -EIO;
	if (READ_ONCE(dev->broken))
		goto unlock_dev;
	ret = -EINVAL;
	for (i = 0; i < dev->vq_num; i++)
		if (!dev->vqs[i].num_max)
			goto unlock_dev;
	ret = 0;
	if (!dev->domain) {
		domain = vduse_shim_domain_create(vduse_shim_bounce_size,
						  domain_invalidate,
						  domain_broken, dev);
		if (IS_ERR(domain))
			ret = PTR_ERR(domain);
		else
			dev->domain = domain;
	}
	if (!ret)
		dev->attaching = true;
unlock_dev:
	mutex_unlock(&dev->lock);
	if (ret)
		goto out;

	/*
	 * Probing the driver talks to the daemon: no lock is held, so a
	 * silent daemon (up to msg_timeout for its first message, then the
	 * device is dead and the rest fail at once) holds up only this
	 * attach.  attaching keeps detach and destroy away meanwhile.
	 */
	ret = vduse_shim_vdev_register(dev);
	if (!ret && READ_ONCE(dev->broken)) {
		/* The daemon did not answer while the driver probed. */
		struct vduse_shim_vdev *sv;

		mutex_lock(&dev->lock);
		sv = dev->vdev;
		dev->vdev = NULL;
		mutex_unlock(&dev->lock);
		vduse_shim_vdev_unregister(sv);
		flush_delayed_work(&dev->fail_work);
		ret = -EIO;
	}

	mutex_lock(&dev->lock);
	dev->attaching = false;
	if (!ret)
		atomic_long_inc(&vduse_shim_stats.attached);
	mutex_unlock(&dev->lock);
out:
	vduse_shim_dev_put(dev);
	return ret;
}

int vduse_shim_detach(const char *name)
{
	struct vduse_shim_vdev *sv = NULL;
	struct vduse_shim_dev *dev;
	bool connected = false;
	int ret = -ENODEV;

	dev = find_dev_get(name);
	if (dev) {
		mutex_lock(&dev->lock);
		sv = dev->vdev;
		if (dev->attaching) {
			/* Being attached or detached right now. */
			sv = NULL;
			ret = -EBUSY;
		} else if (sv) {
			/* Busy until the driver is gone: no destroy. */
			dev->vdev = NULL;
			dev->attaching = true;
		}
		connected = dev->connected;
		mutex_unlock(&dev->lock);
	}
	if (!sv) {
		if (dev)
			vduse_shim_dev_put(dev);
		return ret;
	}

	/*
	 * Removing the driver waits for its requests.  Without a daemon they
	 * are failed now; with one, after a timeout at most.
	 */
	if (!connected)
		vduse_shim_go_dead(dev, "detached without a daemon");
	else
		mod_delayed_work(shim_wq, &dev->dead_work,
				 (unsigned long)vduse_shim_msg_timeout * HZ);

	vduse_shim_vdev_unregister(sv);

	/* The driver is gone: nothing is left for these to time out. */
	cancel_delayed_work_sync(&dev->dead_work);
	cancel_delayed_work_sync(&dev->gone_work);
	flush_delayed_work(&dev->fail_work);
	mutex_lock(&dev->lock);
	dev->attaching = false;
	mutex_unlock(&dev->lock);
	atomic_long_dec(&vduse_shim_stats.attached);
	vduse_shim_dev_put(dev);
	return 0;
}

/* Call fn for every attached device, skipping the first @skip. */
int vduse_shim_walk_attached(long skip, void *arg,
			     int (*fn)(struct vduse_shim_dev *, void *))
{
	struct vduse_shim_dev *dev;
	int id, ret = 0;
	long n = 0;

	mutex_lock(&devs_lock);
	idr_for_each_entry(&devs_idr, dev, id) {
		if (!READ_ONCE(dev->vdev))
			continue;
		if (n++ < skip)
			continue;
		ret = fn(dev, arg);
		if (ret)
			break;
	}
	mutex_unlock(&devs_lock);
	return ret;
}

int vduse_shim_with_attached(const char *name,
			     int (*fn)(struct vduse_shim_dev *, void *),
			     void *arg)
{
	struct vduse_shim_dev *dev;
	int ret = -ENODEV;

	mutex_lock(&devs_lock);
	dev = find_dev_locked(name);
	if (dev && READ_ONCE(dev->vdev))
		ret = fn(dev, arg);
	mutex_unlock(&devs_lock);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* /dev/vduse/control                                                         */

static long ctrl_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case VDUSE_GET_API_VERSION: {
		u64 version = (unsigned long)file->private_data;

		return put_user(version, (u64 __user *)argp);
	}
	case VDUSE_SET_API_VERSION: {
		u64 version;

		if (get_user(version, (u64 __user *)argp))
			return -EFAULT;
		if (version > VDUSE_API_VERSION)
			return -EINVAL;
		file->private_data = (void *)(unsigned long)version;
		return 0;
	}
	case VDUSE_CREATE_DEV: {
		struct vduse_dev_config cfg;
		void *config;
		int ret;

		if (copy_from_user(&cfg, argp, sizeof(cfg)))
			return -EFAULT;
		if (!config_valid(&cfg))
			return -EINVAL;
		config = vmemdup_user(argp + sizeof(cfg), cfg.config_size);
		if (IS_ERR(config))
			return PTR_ERR(config);
		ret = create_dev(&cfg, config);
		if (ret)
			kvfree(config);
		return ret;
	}
	case VDUSE_DESTROY_DEV: {
		char name[VDUSE_NAME_MAX];

		if (copy_from_user(name, argp, sizeof(name)))
			return -EFAULT;
		if (strnlen(name, sizeof(name)) == sizeof(name))
			return -EINVAL;
		return destroy_dev(name);
	}
	default:
		return -ENOTTY;
	}
}

static int ctrl_open(struct inode *inode, struct file *file)
{
	file->private_data = (void *)(unsigned long)VDUSE_API_VERSION;
	return 0;
}

static const struct file_operations ctrl_fops = {
	.owner		= THIS_MODULE,
	.open		= ctrl_open,
	.unlocked_ioctl	= ctrl_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

static char *vduse_devnode(struct device *dev, umode_t *mode)
{
	return kasprintf(GFP_KERNEL, "vduse/%s", dev_name(dev));
}

int vduse_shim_dev_init(void)
{
	int ret;

	/*
	 * Failing a dead device's requests and deferred kicks are on the
	 * way of memory reclaim (writeback to the disk): a rescuer thread.
	 */
	shim_wq = alloc_workqueue("vduse-shim", WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!shim_wq)
		return -ENOMEM;

	vduse_class = class_create(THIS_MODULE, "vduse");
	if (IS_ERR(vduse_class)) {
		ret = PTR_ERR(vduse_class);
		goto err_wq;
	}
	vduse_class->devnode = vduse_devnode;

	ret = alloc_chrdev_region(&vduse_devt, 0, VDUSE_SHIM_MAX_DEVICES,
				  "vduse");
	if (ret)
		goto err_class;

	cdev_init(&ctrl_cdev, &ctrl_fops);
	ctrl_cdev.owner = THIS_MODULE;
	ret = cdev_add(&ctrl_cdev, vduse_devt, 1);
	if (ret)
		goto err_region;

	cdev_init(&dev_cdev, &dev_fops);
	dev_cdev.owner = THIS_MODULE;
	ret = cdev_add(&dev_cdev, MKDEV(MAJOR(vduse_devt), 1),
		       VDUSE_SHIM_MAX_DEVICES - 1);
	if (ret)
		goto err_ctrl_cdev;

	ctrl_device = device_create(vduse_class, NULL, vduse_devt, NULL,
				    "control");
	if (IS_ERR(ctrl_device)) {
		ret = PTR_ERR(ctrl_device);
		goto err_dev_cdev;
	}
	return 0;

err_dev_cdev:
	cdev_del(&dev_cdev);
err_ctrl_cdev:
	cdev_del(&ctrl_cdev);
err_region:
	unregister_chrdev_region(vduse_devt, VDUSE_SHIM_MAX_DEVICES);
err_class:
	class_destroy(vduse_class);
err_wq:
	destroy_workqueue(shim_wq);
	return ret;
}

/*
 * Unload: no file of ours is open (each holds a module reference), so no
 * daemon is connected.  Detach and destroy what is left.
 */
void vduse_shim_dev_exit(void)
{
	struct vduse_shim_dev *dev;
	int id;

	for (;;) {
		char name[VDUSE_NAME_MAX] = "";

		mutex_lock(&devs_lock);
		idr_for_each_entry(&devs_idr, dev, id) {
			if (dev->vdev) {
				strscpy(name, dev->name, sizeof(name));
				break;
			}
		}
		mutex_unlock(&devs_lock);
		if (!name[0])
			break;
		vduse_shim_detach(name);
	}

	mutex_lock(&devs_lock);
	idr_for_each_entry(&devs_idr, dev, id) {
		dev->destroying = true;
		destroy_dev_locked(dev);
	}
	mutex_unlock(&devs_lock);
	idr_destroy(&devs_idr);

	device_destroy(vduse_class, vduse_devt);
	cdev_del(&dev_cdev);
	cdev_del(&ctrl_cdev);
	unregister_chrdev_region(vduse_devt, VDUSE_SHIM_MAX_DEVICES);
	class_destroy(vduse_class);
	destroy_workqueue(shim_wq);
}
