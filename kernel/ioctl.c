// SPDX-License-Identifier: GPL-2.0-only
/*
 * vduse_shim: the ioctls of /dev/vduse/$NAME, and the queues' kicks.
 *
 * VQ_SETUP, VQ_GET_INFO, VQ_SETUP_KICKFD, VQ_INJECT_IRQ, IOTLB_GET_FD,
 * DEV_GET_FEATURES, DEV_SET_CONFIG, DEV_INJECT_CONFIG_IRQ, as upstream VDUSE
 * at API version 0.  Every index from userspace is checked and then passed
 * through array_index_nospec().
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/nospec.h>
#include <linux/slab.h>
#include <linux/virtio_ring.h>
#include <uapi/linux/virtio_config.h>

#include "vduse_shim.h"

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

void vduse_shim_kick_work_fn(struct work_struct *work)
{
	vduse_shim_vq_kick(container_of(work, struct vduse_shim_vq, kick_work));
}

/* Where an eventfd may not be signalled (nested in another's wake-up). */
void vduse_shim_vq_kick_later(struct vduse_shim_vq *vq)
{
	queue_work(vduse_shim_wq, &vq->kick_work);
}

void vduse_shim_vq_clear_kickfd(struct vduse_shim_vq *vq)
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
		vduse_shim_vq_clear_kickfd(vq);
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
	return vduse_shim_vq_resume_index(vq, &info->split.avail_index);
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

long vduse_shim_dev_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
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
		    !vduse_shim_all_zero(cfg.reserved, sizeof(cfg.reserved)) ||
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
