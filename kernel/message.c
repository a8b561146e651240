// SPDX-License-Identifier: GPL-2.0-only
/*
 * vduse_shim: the message protocol of /dev/vduse/$NAME.
 *
 * Control messages (SET_STATUS, UPDATE_IOTLB) go to the daemon through
 * read(2) and come back through write(2).  Every one of them has a timeout
 * (msg_timeout) after which the device is broken and dead: pending and new
 * messages fail, and the driver's requests are failed by the ring code
 * (ring.c).  Messages a daemon read but did not answer go back on the send
 * list when it closes the device, for the next opener.
 *
 * Locks: dev->msg_lock (a spinlock, never taken from interrupts) guards the
 * lists, msg_next, broken and dead; it nests inside every other lock of the
 * device (see struct vduse_shim_dev).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/uio.h>

#include "vduse_shim.h"

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
	mod_delayed_work(vduse_shim_wq, &dev->fail_work, 0);
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

void vduse_shim_msg_invalidate(void *priv, u64 start, u64 last)
{
	if (!vduse_shim_msg_update_iotlb(priv, start, last))
		atomic_long_inc(&vduse_shim_stats.iotlb_updates);
}

/* The domain refused an unmap or sync: the daemon rewrote the ring. */
void vduse_shim_msg_broken(void *priv)
{
	vduse_shim_go_dead(priv, "DMA unmap of a mapping that is not live");
}

ssize_t vduse_shim_dev_read_iter(struct kiocb *iocb, struct iov_iter *to)
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

ssize_t vduse_shim_dev_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct vduse_shim_dev *dev = iocb->ki_filp->private_data;
	struct vduse_dev_response resp;
	struct vduse_shim_msg *msg, *found = NULL;

	if (iov_iter_count(from) != sizeof(resp))
		return -EINVAL;
	if (copy_from_iter(&resp, sizeof(resp), from) != sizeof(resp))
		return -EFAULT;
	if (!vduse_shim_all_zero(resp.reserved, sizeof(resp.reserved)))
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

__poll_t vduse_shim_dev_poll(struct file *file, poll_table *wait)
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
