// SPDX-License-Identifier: GPL-2.0-only
/*
 * vduse_shim: VDUSE for kernels built without CONFIG_VDPA.
 *
 * Provides /dev/vduse/control, /dev/vduse/$NAME and the "vdpa" generic
 * netlink family with the upstream VDUSE uAPI (API version 0), so that VDUSE
 * daemons run unchanged, and attaches their devices straight to the kernel's
 * virtio bus.  See docs/kernel-shim.md.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/seq_file.h>
#include <linux/sizes.h>
#include <linux/slab.h>

#include "vduse_shim.h"

#define BOUNCE_SIZE_MIN		SZ_1M
#define BOUNCE_SIZE_MAX		SZ_1G

struct vduse_shim_stats vduse_shim_stats;

unsigned int vduse_shim_msg_timeout = 30;
unsigned int vduse_shim_reconnect_timeout = 30;
unsigned long vduse_shim_bounce_size = 64UL << 20;
unsigned int vduse_shim_test_detach_delay_ms;
unsigned int vduse_shim_test_gone_delay_ms;

static int timeout_set(const char *val, const struct kernel_param *kp)
{
	unsigned int t;
	int ret;

	ret = kstrtouint(val, 0, &t);
	if (ret)
		return ret;
	if (!t || t > 3600)
		return -EINVAL;
	WRITE_ONCE(vduse_shim_msg_timeout, t);
	return 0;
}

static const struct kernel_param_ops timeout_ops = {
	.set = timeout_set,
	.get = param_get_uint,
};
module_param_cb(msg_timeout, &timeout_ops, &vduse_shim_msg_timeout, 0644);
MODULE_PARM_DESC(msg_timeout,
		 "Seconds the daemon has to answer a message (1-3600, default 30)");

static int reconnect_set(const char *val, const struct kernel_param *kp)
{
	unsigned int t;
	int ret;

	ret = kstrtouint(val, 0, &t);
	if (ret)
		return ret;
	if (t > 3600)
		return -EINVAL;
	WRITE_ONCE(vduse_shim_reconnect_timeout, t);
	return 0;
}

static const struct kernel_param_ops reconnect_ops = {
	.set = reconnect_set,
	.get = param_get_uint,
};
module_param_cb(reconnect_timeout, &reconnect_ops,
		&vduse_shim_reconnect_timeout, 0644);
MODULE_PARM_DESC(reconnect_timeout,
		 "Seconds a new daemon has to reopen an attached device whose daemon closed it, before its requests fail (0-3600, default 30)");

/*
 * For tests only: widens the window in which a detach has let its device go
 * (another caller may destroy it) but still uses it, so that a test can
 * land a DESTROY_DEV there (tests/vm/shim/robust.sh, detach-destroy).
 */
module_param_named(test_detach_delay_ms, vduse_shim_test_detach_delay_ms,
		   uint, 0644);
MODULE_PARM_DESC(test_detach_delay_ms,
		 "For tests only: milliseconds a detach sleeps after it lets its device go, before its last use of it (0-10000, default 0)");

/*
 * For tests only: widens the window between reconnect_timeout's timer
 * firing and the device's death, so that a test can land a reopen there
 * (tests/vm/shim/robust.sh, reopen-race).
 */
module_param_named(test_gone_delay_ms, vduse_shim_test_gone_delay_ms,
		   uint, 0644);
MODULE_PARM_DESC(test_gone_delay_ms,
		 "For tests only: milliseconds the reconnect_timeout work sleeps before it checks for a new daemon (0-10000, default 0)");

static int bounce_set(const char *val, const struct kernel_param *kp)
{
	unsigned long size;
	char *end;

	size = memparse(val, &end);
	if (end == val || (*end && *end != '\n'))
		return -EINVAL;
	if (size < BOUNCE_SIZE_MIN || size > BOUNCE_SIZE_MAX)
		return -EINVAL;
	WRITE_ONCE(vduse_shim_bounce_size, PAGE_ALIGN(size));
	return 0;
}

static const struct kernel_param_ops bounce_ops = {
	.set = bounce_set,
	.get = param_get_ulong,
};
module_param_cb(bounce_size, &bounce_ops, &vduse_shim_bounce_size, 0644);
MODULE_PARM_DESC(bounce_size,
		 "Bounce region per device, bytes, K/M/G suffix (1M-1G, default 64M); applies to devices attached later");

static struct dentry *debug_dir;

static int stats_show(struct seq_file *m, void *v)
{
	struct vduse_shim_stats *s = &vduse_shim_stats;

	seq_printf(m, "devices %ld\n", atomic_long_read(&s->devices));
	seq_printf(m, "attached %ld\n", atomic_long_read(&s->attached));
	seq_printf(m, "domains %ld\n", atomic_long_read(&s->domains));
	seq_printf(m, "bounce_pages %ld\n",
		   atomic_long_read(&s->bounce_pages));
	seq_printf(m, "coherent_allocs %ld\n",
		   atomic_long_read(&s->coherent_allocs));
	seq_printf(m, "stream_maps %ld\n", atomic_long_read(&s->stream_maps));
	seq_printf(m, "msgs_timed_out %ld\n",
		   atomic_long_read(&s->msgs_timed_out));
	seq_printf(m, "iotlb_updates %ld\n",
		   atomic_long_read(&s->iotlb_updates));
	seq_printf(m, "reqs_failed_by_shim %ld\n",
		   atomic_long_read(&s->reqs_failed_by_shim));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(stats);

static ssize_t selftest_read(struct file *file, char __user *ubuf,
			     size_t count, loff_t *ppos)
{
	char *buf;
	int len;
	ssize_t ret;

	buf = kzalloc(PAGE_SIZE, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	len = vduse_shim_domain_selftest(buf, PAGE_SIZE);
	if (len < 0)
		ret = len;
	else
		ret = simple_read_from_buffer(ubuf, count, ppos, buf, len);
	kfree(buf);
	return ret;
}

static const struct file_operations selftest_fops = {
	.owner = THIS_MODULE,
	.read = selftest_read,
	.llseek = default_llseek,
};

static int __init vduse_shim_init(void)
{
	int ret;

	/*
	 * The family name is unique: if it is taken, this kernel has vDPA
	 * (and so most likely its own VDUSE), and two providers must not mix.
	 */
	ret = vduse_shim_netlink_init();
	if (ret == -EEXIST) {
		pr_err("the \"vdpa\" netlink family already exists: this kernel has vDPA; use its vduse module instead of the shim\n");
		return ret;
	}
	if (ret)
		return ret;

	ret = vduse_shim_domain_init();
	if (ret)
		goto err_netlink;

	ret = vduse_shim_dev_init();
	if (ret) {
		if (ret == -EEXIST)
			pr_err("a \"vduse\" device class already exists: VDUSE is already provided\n");
		goto err_domain;
	}

	debug_dir = debugfs_create_dir(KBUILD_MODNAME, NULL);
	debugfs_create_file("stats", 0444, debug_dir, NULL, &stats_fops);
	debugfs_create_file("selftest", 0400, debug_dir, NULL, &selftest_fops);

	pr_info("VDUSE API %d on /dev/vduse/control, bounce %lu KiB, timeout %u s, reconnect %u s\n",
		VDUSE_API_VERSION, vduse_shim_bounce_size >> 10,
		vduse_shim_msg_timeout, vduse_shim_reconnect_timeout);
	return 0;

err_domain:
	vduse_shim_domain_exit();
err_netlink:
	vduse_shim_netlink_exit();
	return ret;
}
module_init(vduse_shim_init);

static void __exit vduse_shim_exit(void)
{
	debugfs_remove_recursive(debug_dir);
	/* No new attach can come in once the family is gone. */
	vduse_shim_netlink_exit();
	vduse_shim_dev_exit();
	vduse_shim_domain_exit();
}
module_exit(vduse_shim_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("VDUSE shim for kernels without vDPA: userspace virtio-blk devices with a bounce-buffer IOVA domain");
MODULE_AUTHOR("libvduse authors");
MODULE_VERSION("0.1.0");
