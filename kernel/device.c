// SPDX-License-Identifier: GPL-2.0-only
/*
 * vduse_shim: /dev/vduse/control and the life of a device.
 *
 * The uAPI is that of upstream VDUSE at API version 0 (<linux/vduse.h>).
 * This file creates and destroys devices (/dev/vduse/control), attaches them
 * to the virtio bus and detaches them (netlink.c calls in), and opens and
 * closes /dev/vduse/$NAME: a daemon that closes an attached device has a
 * successor reopen it within reconnect_timeout, or the device is "dead" and
 * the shim fails the requests the driver still has in flight itself
 * (ring.c), so that detaching never waits on userspace.  The message
 * protocol is in message.c, the ioctls of /dev/vduse/$NAME in ioctl.c.
 *
 * Locks (the whole order is at struct vduse_shim_dev): devs_lock guards the
 * idr and names, and is taken before a device's lock; no lock of this file
 * is held across anything that waits for the daemon.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ctype.h>
#include <linux/delay.h>
#include <linux/dma-map-ops.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/module.h>
#include <linux/slab.h>
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
struct workqueue_struct *vduse_shim_wq;

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
	unsigned int delay = READ_ONCE(vduse_shim_test_gone_delay_ms);

	/* The timer has fired: test_gone_delay_ms widens the reopen race. */
	if (delay)
		msleep(min(delay, 10000U));
	mutex_lock(&dev->lock);
	if (!dev->connected && (dev->vdev || dev->attaching))
		vduse_shim_go_dead(dev, "no daemon reopened it within reconnect_timeout");
	mutex_unlock(&dev->lock);
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

		vduse_shim_vq_clear_kickfd(vq);
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
		mod_delayed_work(vduse_shim_wq, &dev->gone_work,
				 (unsigned long)READ_ONCE(vduse_shim_reconnect_timeout) * HZ);
	mutex_unlock(&dev->lock);
	vduse_shim_dev_put(dev);
	return 0;
}

static const struct file_operations dev_fops = {
	.owner		= THIS_MODULE,
	.open		= dev_open,
	.release	= dev_release,
	.read_iter	= vduse_shim_dev_read_iter,
	.write_iter	= vduse_shim_dev_write_iter,
	.poll		= vduse_shim_dev_poll,
	.unlocked_ioctl	= vduse_shim_dev_ioctl,
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
			vduse_shim_vq_clear_kickfd(&dev->vqs[i]);
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
	if (!vduse_shim_all_zero(cfg->reserved, sizeof(cfg->reserved)))
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
	INIT_DELAYED_WORK(&dev->fail_work, vduse_shim_fail_work_fn);
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
		INIT_WORK(&vq->kick_work, vduse_shim_kick_work_fn);
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
						  vduse_shim_msg_invalidate,
						  vduse_shim_msg_broken, dev);
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
	unsigned int delay;

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
		mod_delayed_work(vduse_shim_wq, &dev->dead_work,
				 (unsigned long)vduse_shim_msg_timeout * HZ);

	vduse_shim_vdev_unregister(sv);

	/* The driver is gone: nothing is left for these to time out. */
	cancel_delayed_work_sync(&dev->dead_work);
	cancel_delayed_work_sync(&dev->gone_work);
	flush_delayed_work(&dev->fail_work);
	mutex_lock(&dev->lock);
	dev->attaching = false;
	mutex_unlock(&dev->lock);
	/*
	 * From here a DESTROY_DEV may drop the idr's reference: this one
	 * keeps the device.  test_detach_delay_ms widens the window.
	 */
	delay = READ_ONCE(vduse_shim_test_detach_delay_ms);
	if (delay)
		msleep(min(delay, 10000U));
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
	vduse_shim_wq = alloc_workqueue("vduse-shim", WQ_UNBOUND | WQ_MEM_RECLAIM, 0);
	if (!vduse_shim_wq)
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
	destroy_workqueue(vduse_shim_wq);
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
	destroy_workqueue(vduse_shim_wq);
}
