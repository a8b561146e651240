// SPDX-License-Identifier: LGPL-2.1-or-later
/* Device lifecycle on /dev/vduse/control and /dev/vduse/$NAME. */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "sys.h"
#include "umem.h"
#include "vduse_uapi.h"

#define CONTROL_PATH	"/dev/vduse/control"
#define DEV_DIR		"/dev/vduse/"
#define DRIVER_NAME_MAX	64	/* a vDPA bus driver's name, NUL included */

/* Copy a caller-filled struct that starts with its own size. */
static int copy_sized(void *dst, size_t dst_size, const void *src,
		      const char *what)
{
	size_t size = *(const size_t *)src;

	if (size < sizeof(size_t)) {
		vduse_err("%s: .size is %zu, not sizeof(struct %s)", what,
			  size, what);
		return -EINVAL;
	}
	memset(dst, 0, dst_size);
	memcpy(dst, src, size < dst_size ? size : dst_size);
	*(size_t *)dst = dst_size;
	return 0;
}

static int check_config(const struct vduse_device_config *c)
{
	size_t len;

	if (!c->name || !(len = strlen(c->name)) || len >= VDUSE_NAME_MAX ||
	    strchr(c->name, '/') || !strcmp(c->name, ".") ||
	    !strcmp(c->name, "..") || !strcmp(c->name, "control")) {
		vduse_err("bad device name \"%s\"", c->name ? c->name : "");
		return -EINVAL;
	}
	if (c->num_queues == 0 || c->num_queues > VDUSE_LIB_MAX_QUEUES) {
		vduse_err("%s: bad number of queues %u", c->name,
			  c->num_queues);
		return -EINVAL;
	}
	if (c->queue_size == 0 || c->queue_size > VDUSE_LIB_MAX_QUEUE_SIZE ||
	    (c->queue_size & (c->queue_size - 1))) {
		vduse_err("%s: queue size %u is not a power of 2 up to %u",
			  c->name, c->queue_size, VDUSE_LIB_MAX_QUEUE_SIZE);
		return -EINVAL;
	}
	if (c->config_size && !c->config) {
		vduse_err("%s: config_size %u without config", c->name,
			  c->config_size);
		return -EINVAL;
	}
	if (c->config_size > 4096) {
		vduse_err("%s: config space of %u bytes is too large",
			  c->name, c->config_size);
		return -EINVAL;
	}
	if (c->log_id_size > VDUSE_LOG_ID_MAX ||
	    (c->log_id_size && !c->log_id)) {
		vduse_err("%s: log_id of %u bytes (at most %u, not NULL)",
			  c->name, c->log_id_size, VDUSE_LOG_ID_MAX);
		return -EINVAL;
	}
	if ((c->flags & VDUSE_DEVICE_F_LOG_FD) && c->log_path) {
		vduse_err("%s: both a log path and VDUSE_DEVICE_F_LOG_FD",
			  c->name);
		return -EINVAL;
	}
	if (c->num_groups > VDUSE_LIB_MAX_GROUPS ||
	    c->num_as > VDUSE_LIB_MAX_GROUPS) {
		vduse_err("%s: %u virtqueue groups, %u address spaces (at most %u)",
			  c->name, c->num_groups, c->num_as,
			  VDUSE_LIB_MAX_GROUPS);
		return -EINVAL;
	}
	for (uint32_t i = 0; c->queue_group && i < c->num_queues; i++) {
		if (c->queue_group[i] >= (c->num_groups ? c->num_groups : 1)) {
			vduse_err("%s: queue %u in group %u of %u", c->name, i,
				  c->queue_group[i],
				  c->num_groups ? c->num_groups : 1);
			return -EINVAL;
		}
	}
	return 0;
}

/* Groups and address spaces from a checked config. */
static int alloc_groups(struct vduse_device *dev,
			const struct vduse_device_config *c)
{
	dev->num_groups = c->num_groups ? c->num_groups : 1;
	dev->num_as = c->num_as ? c->num_as : 1;
	dev->group_asid = calloc(dev->num_groups, sizeof(*dev->group_asid));
	if (!dev->group_asid)
		return -ENOMEM;
	if (c->queue_group) {
		dev->queue_group = malloc(c->num_queues *
					  sizeof(*dev->queue_group));
		if (!dev->queue_group)
			return -ENOMEM;
		memcpy(dev->queue_group, c->queue_group,
		       c->num_queues * sizeof(*dev->queue_group));
	}
	return 0;
}

static bool has_log(const struct vduse_device_config *c)
{
	return c->log_path || (c->flags & VDUSE_DEVICE_F_LOG_FD);
}

static int open_control(void)
{
	int fd = vduse_sys->open(CONTROL_PATH, O_RDWR | O_CLOEXEC);

	if (fd == -ENOENT || fd == -ENODEV || fd == -ENXIO) {
		vduse_err("VDUSE is not loaded: %s does not exist (load the vduse module, or the vduse_shim module on kernels without VDUSE)",
			  CONTROL_PATH);
		return -ENODEV;
	}
	if (fd < 0)
		vduse_err("cannot open %s: %s", CONTROL_PATH, strerror(-fd));
	return fd;
}

/* The VDUSE features this library handles when the kernel offers them. */
#define HANDLED_VDUSE_FEATURES	((1ULL << VDUSE_F_QUEUE_READY) | \
				 (1ULL << VDUSE_F_SUSPEND))

/* "QUEUE_READY,SUSPEND" for a VDUSE feature mask, "none" for 0. */
static const char *vduse_features_str(uint64_t f, char *buf, size_t len)
{
	static const char *const names[] = {
		[VDUSE_F_QUEUE_READY] = "QUEUE_READY",
		[VDUSE_F_SUSPEND] = "SUSPEND",
	};
	size_t n = 0;
	unsigned int i;

	snprintf(buf, len, "none");
	for (i = 0; i < 64 && n < len; i++) {
		if (!(f & (1ULL << i)))
			continue;
		if (i < sizeof(names) / sizeof(names[0]) && names[i])
			n += (size_t)snprintf(buf + n, len - n, "%s%s",
					      n ? "," : "", names[i]);
		else
			n += (size_t)snprintf(buf + n, len - n, "%sbit%u",
					      n ? "," : "", i);
	}
	return buf;
}

/*
 * The highest API version both the kernel and this library speak (API 0
 * on a kernel that refuses more), then the VDUSE features both have.  A
 * kernel without VDUSE features refuses GET_FEATURES: none are used.
 */
static int negotiate_api(struct vduse_device *dev)
{
	uint64_t offered = 0, version, kfeat = 0, want;
	char have_s[64], want_s[64];
	int fd = dev->control_fd;
	int ret;

	ret = vduse_sys->ioctl(fd, VDUSE_GET_API_VERSION, &offered);
	if (ret < 0) {
		vduse_err("VDUSE_GET_API_VERSION: %s", strerror(-ret));
		return ret;
	}
	version = offered < VDUSE_LIB_API_MAX ? offered : VDUSE_LIB_API_MAX;
	ret = vduse_sys->ioctl(fd, VDUSE_SET_API_VERSION, &version);
	if (ret < 0 && version > 0) {
		vduse_warn("VDUSE_SET_API_VERSION %llu: %s; using API version 0",
			   (unsigned long long)version, strerror(-ret));
		version = 0;
		ret = vduse_sys->ioctl(fd, VDUSE_SET_API_VERSION, &version);
	}
	if (ret < 0) {
		vduse_err("VDUSE_SET_API_VERSION %llu: %s",
			  (unsigned long long)version, strerror(-ret));
		return ret;
	}
	dev->api_version = (unsigned int)version;
	if (version < VDUSE_API_VERSION_1 &&
	    (dev->num_groups > 1 || dev->num_as > 1)) {
		vduse_err("%s: %u virtqueue groups and %u address spaces need VDUSE API version 1 (the kernel has %llu)",
			  dev->name, dev->num_groups, dev->num_as,
			  (unsigned long long)offered);
		return -EOPNOTSUPP;
	}

	ret = vduse_sys->ioctl(fd, VDUSE_GET_FEATURES, &kfeat);
	if (ret < 0) {
		vduse_dbg("VDUSE_GET_FEATURES: %s: no VDUSE features",
			  strerror(-ret));
		kfeat = 0;
	}
	want = kfeat & HANDLED_VDUSE_FEATURES;
	if (want) {
		ret = vduse_sys->ioctl(fd, VDUSE_SET_FEATURES, &want);
		if (ret < 0) {
			vduse_warn("VDUSE_SET_FEATURES 0x%llx: %s; using none",
				   (unsigned long long)want, strerror(-ret));
			want = 0;
		}
	}
	dev->vduse_features = want;
	vduse_info("%s: VDUSE API version %u (kernel: %llu), VDUSE features %s (kernel: %s)",
		   dev->name, dev->api_version, (unsigned long long)offered,
		   vduse_features_str(want, want_s, sizeof(want_s)),
		   vduse_features_str(kfeat, have_s, sizeof(have_s)));
	return 0;
}

static int create_in_kernel(struct vduse_device *dev)
{
	struct vduse_dev_config *kc;
	int ret;

	kc = calloc(1, sizeof(*kc) + dev->config_size);
	if (!kc)
		return -ENOMEM;
	memcpy(kc->name, dev->name, strlen(dev->name) + 1);
	kc->vendor_id = dev->vendor_id;
	kc->device_id = dev->device_id;
	kc->features = dev->features;
	kc->vq_num = dev->num_queues;
	kc->vq_align = (uint32_t)sysconf(_SC_PAGESIZE);
	kc->config_size = dev->config_size;
	if (dev->api_version >= VDUSE_API_VERSION_1) {
		/* By default one group of every queue, in one space. */
		VDUSE_LIB_CONFIG_NGROUPS(kc) = dev->num_groups;
		VDUSE_LIB_CONFIG_NAS(kc) = dev->num_as;
	}
	if (dev->config_size)
		memcpy(kc->config, dev->config, dev->config_size);

	ret = vduse_sys->ioctl(dev->control_fd, VDUSE_CREATE_DEV, kc);
	if (ret == -EINVAL && dev->packed_auto) {
		/* A kernel that refuses packed rings: offer split only. */
		vduse_info("%s: VDUSE_CREATE_DEV refused VIRTIO_F_RING_PACKED; offering split rings only",
			   dev->name);
		dev->features &= ~(1ULL << VIRTIO_F_RING_PACKED);
		dev->packed_auto = false;
		kc->features = dev->features;
		ret = vduse_sys->ioctl(dev->control_fd, VDUSE_CREATE_DEV, kc);
	}
	free(kc);
	if (ret == -EEXIST)	/* not always a failure: see vduse_device_open() */
		vduse_info("a VDUSE device named %s exists already",
			   dev->name);
	else if (ret < 0)
		vduse_err("%s: VDUSE_CREATE_DEV (device id %u, features 0x%llx): %s",
			  dev->name, dev->device_id,
			  (unsigned long long)dev->features, strerror(-ret));
	else
		dev->created = true;
	return ret;
}

/*
 * A new node appears through devtmpfs or udev, possibly a little later:
 * @tries attempts 10 ms apart.
 */
static int open_dev_node(const char *name, int tries)
{
	char path[sizeof(DEV_DIR) + VDUSE_NAME_MAX];
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	int fd;

	snprintf(path, sizeof(path), DEV_DIR "%s", name);
	for (;;) {
		fd = vduse_sys->open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd != -ENOENT || --tries <= 0)
			break;
		nanosleep(&ts, NULL);
	}
	if (fd == -ENOENT && tries == 0)
		vduse_err("no VDUSE device named %s (%s does not exist)",
			  name, path);
	else if (fd == -EBUSY)
		vduse_err("cannot open %s: another process has it open", path);
	else if (fd < 0)
		vduse_err("cannot open %s: %s", path, strerror(-fd));
	return fd;
}

static int setup_queues(struct vduse_device *dev, bool setup)
{
	unsigned int i;
	int ret;

	dev->vqs = calloc(dev->num_queues, sizeof(*dev->vqs));
	if (!dev->vqs)
		return -ENOMEM;
	for (i = 0; i < dev->num_queues; i++) {
		ret = vduse_vq_init(&dev->vqs[i], dev, i, dev->queue_size,
				    setup);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* A device handle from a checked config; nothing asked of the kernel. */
static int device_alloc(const struct vduse_device_config *cfg,
			struct vduse_device_config *cp,
			struct vduse_device **out)
{
	struct vduse_device_config c;
	struct vduse_device *dev;
	int ret;

	if (!cfg || !out)
		return -EINVAL;
	*out = NULL;
	ret = copy_sized(&c, sizeof(c), cfg, "vduse_device_config");
	if (ret == 0)
		ret = check_config(&c);
	if (ret < 0)
		return ret;

	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		vduse_err("%s: out of memory", c.name);
		return -ENOMEM;
	}
	dev->control_fd = -1;
	dev->dev_fd = -1;
	dev->ilog.fd = -1;
	snprintf(dev->name, sizeof(dev->name), "%s", c.name);
	dev->device_id = c.device_id;
	dev->vendor_id = c.vendor_id;
	dev->features = c.features | (1ULL << VIRTIO_F_VERSION_1) |
			(1ULL << VIRTIO_F_ACCESS_PLATFORM);
	if (!(c.flags & VDUSE_DEVICE_F_NO_RING_FEATURES))
		dev->features |= (1ULL << VIRTIO_RING_F_INDIRECT_DESC) |
				 (1ULL << VIRTIO_RING_F_EVENT_IDX);
	if (!(c.flags & (VDUSE_DEVICE_F_NO_RING_FEATURES |
			 VDUSE_DEVICE_F_NO_PACKED)) &&
	    !(c.features & (1ULL << VIRTIO_F_RING_PACKED))) {
		dev->features |= 1ULL << VIRTIO_F_RING_PACKED;
		dev->packed_auto = true;
	}
	dev->num_queues = c.num_queues;
	dev->queue_size = c.queue_size;
	ret = alloc_groups(dev, &c);
	if (ret < 0)
		goto fail;
	dev->config_size = c.config_size;
	dev->opaque = c.opaque;
	if (c.ops) {
		ret = copy_sized(&dev->ops, sizeof(dev->ops), c.ops, "vduse_device_ops");
		if (ret < 0)
			goto fail;
	}
	if (c.config_size) {
		ret = -ENOMEM;
		dev->config = malloc(c.config_size);
		if (!dev->config)
			goto fail;
		memcpy(dev->config, c.config, c.config_size);
	}
	*cp = c;
	*out = dev;
	return 0;
fail:
	vduse_device_free(dev);
	return ret;
}

static int control_open(struct vduse_device *dev)
{
	int ret = open_control();

	if (ret < 0)
		return ret;
	dev->control_fd = ret;
	return negotiate_api(dev);
}

int vduse_device_new(const struct vduse_device_config *cfg,
		     struct vduse_device **out)
{
	struct vduse_device_config c;
	struct vduse_device *dev;
	int ret;

	if (!cfg || !out) {
		vduse_err("vduse_device_new/_open: %s is NULL",
			  cfg ? "out" : "cfg");
		return -EINVAL;
	}
	*out = NULL;
	ret = device_alloc(cfg, &c, &dev);
	if (ret < 0)
		return ret;
	ret = control_open(dev);
	if (ret < 0)
		goto fail;
	ret = create_in_kernel(dev);
	if (ret < 0)
		goto fail;
	/* After the create: a taken name must not truncate its log. */
	if (has_log(&c)) {
		ret = vduse_ilog_create(dev, &c);
		if (ret < 0)
			goto fail;
	}
	ret = open_dev_node(dev->name, 200);
	if (ret < 0)
		goto fail;
	dev->dev_fd = ret;
	ret = setup_queues(dev, true);
	if (ret < 0)
		goto fail;

	vduse_info("%s: created (device id %u, %u queues of up to %u%s)",
		   dev->name, dev->device_id, dev->num_queues,
		   dev->queue_size, dev->ilog.hdr ? ", in-flight log" : "");
	*out = dev;
	return 0;
fail:
	vduse_device_free(dev);
	return ret;
}

int vduse_device_open(const struct vduse_device_config *cfg,
		      struct vduse_device **out)
{
	struct vduse_device_config c;
	struct vduse_device *dev;
	int ret;

	if (!cfg || !out) {
		vduse_err("vduse_device_new/_open: %s is NULL",
			  cfg ? "out" : "cfg");
		return -EINVAL;
	}
	*out = NULL;
	ret = device_alloc(cfg, &c, &dev);
	if (ret < 0)
		return ret;
	if (!has_log(&c)) {
		vduse_err("%s: reconnecting needs the in-flight log (log_path or VDUSE_DEVICE_F_LOG_FD)",
			  dev->name);
		ret = -EINVAL;
		goto fail;
	}
	/* The log first: without it nothing in the kernel is touched. */
	ret = vduse_ilog_attach(dev, &c);
	if (ret < 0)
		goto fail;
	ret = control_open(dev);
	if (ret < 0)
		goto fail;
	ret = open_dev_node(dev->name, 1);
	if (ret < 0)
		goto fail;
	dev->dev_fd = ret;
	/* Ours now: vduse_device_free() destroys it. */
	dev->created = true;
	/* The kernel kept the queues' setup. */
	ret = setup_queues(dev, false);
	if (ret < 0)
		goto fail;
	dev->recover_pending = true;
	vduse_info("%s: reopened; recovering from its in-flight log",
		   dev->name);
	*out = dev;
	return 0;
fail:
	vduse_device_free(dev);
	return ret;
}

void vduse_device_stop_queues(struct vduse_device *dev)
{
	unsigned int i;

	/* So that the runner's queue threads stop in parallel. */
	if (dev->hooks && dev->hooks->stop_begin)
		dev->hooks->stop_begin(dev->hooks_data);
	for (i = 0; dev->vqs && i < dev->num_queues; i++)
		vduse_vq_stop(&dev->vqs[i]);
}

void vduse_device_free(struct vduse_device *dev)
{
	unsigned int i;
	int ret;

	if (!dev)
		return;
	if (dev->attached)
		vduse_warn("%s: freed while attached to the vDPA bus",
			   dev->name);
	vduse_device_stop_queues(dev);
	for (i = 0; dev->vqs && i < dev->num_queues; i++)
		vduse_vq_release(&dev->vqs[i]);
	vduse_ilog_close(dev);
	free(dev->vqs);
	/* After the queues' mappings are gone, before the fd closes. */
	vduse_umem_free(dev->umem);
	if (dev->dev_fd >= 0)
		vduse_sys->close(dev->dev_fd);
	if (dev->created) {
		ret = vduse_sys->ioctl(dev->control_fd, VDUSE_DESTROY_DEV,
				       dev->name);
		if (ret < 0)
			vduse_err("%s: VDUSE_DESTROY_DEV: %s%s", dev->name,
				  strerror(-ret),
				  ret == -EBUSY ? " (still attached?)" : "");
		else
			vduse_info("%s: destroyed", dev->name);
	}
	if (dev->control_fd >= 0)
		vduse_sys->close(dev->control_fd);
	free(dev->config);
	free(dev->group_asid);
	free(dev->queue_group);
	free(dev);
}

void vduse_device_forget(struct vduse_device *dev)
{
	if (!dev)
		return;
	vduse_ilog_close(dev);	/* no stop reaches the log */
	dev->created = false;
	dev->attached = false;
	vduse_device_free(dev);
}

int vduse_device_set_hooks(struct vduse_device *dev,
			   const struct vduse_queue_hooks *hooks, void *data)
{
	if (hooks && dev->hooks)
		return -EBUSY;
	dev->hooks = hooks;
	dev->hooks_data = data;
	return 0;
}

int vduse_device_attach(struct vduse_device *dev)
{
	int ret;

	if (!dev) {
		vduse_err("vduse_device_attach: dev is NULL");
		return -EINVAL;
	}
	if (dev->attached) {
		vduse_err("%s: already attached", dev->name);
		return -EALREADY;
	}
	ret = vduse_sys->vdpa_dev_add(dev->name, "vduse");
	if (ret == -EEXIST) {
		/* A reconnected device the driver still has. */
		vduse_info("%s: already attached", dev->name);
		dev->attached = true;
		return ret;
	}
	if (ret < 0) {
		vduse_err("%s: attaching to the vDPA bus failed: %s",
			  dev->name, strerror(-ret));
		return ret;
	}
	dev->attached = true;
	vduse_info("%s: attached", dev->name);
	return 0;
}

/* A driver name as the bus spells it: no path separators, no surprises. */
static bool valid_driver_name(const char *driver)
{
	size_t i, len = strlen(driver);

	if (!len || len >= DRIVER_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char c = driver[i];

		if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') &&
		    c != '_' && c != '-')
			return false;
	}
	return true;
}

/* Bound to @driver: vhost_vdpa has no bounce region for a umem. */
static void driver_bound(struct vduse_device *dev, const char *driver)
{
	if (strcmp(driver, VDUSE_DRIVER_VHOST))
		return;
	dev->vhost_bound = true;
	if (dev->umem)
		vduse_umem_off(dev->umem);
}

int vduse_device_attach_driver(struct vduse_device *dev, const char *driver)
{
	char cur[DRIVER_NAME_MAX];
	int ret;

	if (!dev) {
		vduse_err("vduse_device_attach_driver: dev is NULL");
		return -EINVAL;
	}
	if (!driver)
		return vduse_device_attach(dev);
	if (!valid_driver_name(driver)) {
		vduse_err("%s: \"%s\" is not a vDPA bus driver name", dev->name,
			  driver);
		return -EINVAL;
	}
	if (dev->attached) {
		vduse_err("%s: already attached", dev->name);
		return -EALREADY;
	}
	ret = vduse_sys->vdpa_driver_loaded(driver);
	if (ret == -ENODEV) {
		vduse_err("%s: there is no vDPA bus: load the vdpa and vduse modules",
			  dev->name);
		return -ENODEV;
	}
	if (ret < 0) {
		vduse_err("%s: the vDPA bus driver %s is not loaded (modprobe %s)",
			  dev->name, driver, driver);
		return -ENODEV;
	}
	ret = vduse_device_attach(dev);
	if (ret == -EEXIST) {
		/* Reconnected: the driver may have requests in flight. */
		if (vduse_sys->vdpa_dev_driver(dev->name, cur, sizeof(cur)) == 0) {
			if (strcmp(cur, driver))
				vduse_warn("%s: already attached to %s, not to %s",
					   dev->name, cur[0] ? cur : "no driver",
					   driver);
			driver_bound(dev, cur);
		}
		return ret;
	}
	if (ret < 0)
		return ret;
	ret = vduse_sys->vdpa_dev_driver(dev->name, cur, sizeof(cur));
	if (ret == 0 && !strcmp(cur, driver))
		goto bound;
	if (ret == 0)
		ret = vduse_sys->vdpa_dev_bind(dev->name, driver);
	if (ret == 0)
		ret = vduse_sys->vdpa_dev_driver(dev->name, cur, sizeof(cur));
	if (ret == 0 && strcmp(cur, driver))
		ret = -ENXIO;	/* probed, but the driver did not take it */
	if (ret < 0) {
		vduse_err("%s: binding to %s failed: %s", dev->name, driver,
			  strerror(-ret));
		vduse_device_detach(dev);
		return ret;
	}
bound:
	vduse_info("%s: bound to %s", dev->name, driver);
	driver_bound(dev, driver);
	return 0;
}

int vduse_device_vhost_node(const struct vduse_device *dev, char *buf,
			    size_t len)
{
	int minor, n;

	if (!dev || !buf) {
		vduse_err("vduse_device_vhost_node: %s is NULL",
			  dev ? "buf" : "dev");
		return -EINVAL;
	}
	minor = vduse_sys->vdpa_dev_vhost_minor(dev->name);
	if (minor == -ENOENT) {
		/* On the bus, but not through vhost_vdpa: an answer. */
		vduse_dbg("%s: no vhost-vdpa node", dev->name);
		return -ENODEV;
	}
	if (minor < 0) {
		vduse_err("%s: looking for its vhost-vdpa node: %s",
			  dev->name, strerror(-minor));
		return minor;
	}
	n = snprintf(buf, len, "/dev/vhost-vdpa-%d", minor);
	if (n < 0 || (size_t)n >= len) {
		vduse_err("%s: /dev/vhost-vdpa-%d needs %d bytes, not %zu",
			  dev->name, minor, n + 1, len);
		return -ERANGE;
	}
	return 0;
}

int vduse_device_detach(struct vduse_device *dev)
{
	int ret;

	if (!dev) {
		vduse_err("vduse_device_detach: dev is NULL");
		return -EINVAL;
	}
	ret = vduse_sys->vdpa_dev_del(dev->name);
	if (ret == -ENODEV) {
		/* Not on the bus: never attached, or already detached. */
		vduse_dbg("%s: not attached", dev->name);
		dev->attached = false;
		return ret;
	}
	if (ret < 0) {
		vduse_err("%s: detaching from the vDPA bus failed: %s",
			  dev->name, strerror(-ret));
		return ret;
	}
	dev->attached = false;
	vduse_info("%s: detached", dev->name);
	return 0;
}

int vduse_device_set_config(struct vduse_device *dev, uint32_t offset,
			    const void *buf, uint32_t len, bool notify)
{
	struct vduse_config_data *cd;
	int ret;

	if (!dev || (len && !buf)) {
		vduse_err("vduse_device_set_config: %s is NULL",
			  dev ? "buf" : "dev");
		return -EINVAL;
	}
	if (offset > dev->config_size || len > dev->config_size - offset) {
		vduse_err("%s: set_config of %u bytes at offset %u: the config space has %u",
			  dev->name, len, offset, dev->config_size);
		return -EINVAL;
	}
	cd = malloc(sizeof(*cd) + len);
	if (!cd) {
		vduse_err("%s: set_config: out of memory", dev->name);
		return -ENOMEM;
	}
	cd->offset = offset;
	cd->length = len;
	if (len)	/* buf may be NULL when len is 0 */
		memcpy(cd->buffer, buf, len);
	ret = vduse_sys->ioctl(dev->dev_fd, VDUSE_DEV_SET_CONFIG, cd);
	free(cd);
	if (ret < 0) {
		vduse_err("%s: VDUSE_DEV_SET_CONFIG: %s", dev->name,
			  strerror(-ret));
		return ret;
	}
	if (len)
		memcpy(dev->config + offset, buf, len);
	if (!notify)
		return 0;
	ret = vduse_sys->ioctl(dev->dev_fd, VDUSE_DEV_INJECT_CONFIG_IRQ, NULL);
	if (ret < 0)
		vduse_err("%s: VDUSE_DEV_INJECT_CONFIG_IRQ: %s", dev->name,
			  strerror(-ret));
	return ret < 0 ? ret : 0;
}

int vduse_device_fd(const struct vduse_device *dev)
{
	return dev->dev_fd;
}

const char *vduse_device_name(const struct vduse_device *dev)
{
	return dev->name;
}

void *vduse_device_opaque(const struct vduse_device *dev)
{
	return dev->opaque;
}

unsigned int vduse_device_num_queues(const struct vduse_device *dev)
{
	return dev->num_queues;
}

struct vduse_vq *vduse_device_vq(struct vduse_device *dev, unsigned int index)
{
	return index < dev->num_queues ? &dev->vqs[index] : NULL;
}

uint64_t vduse_device_features(const struct vduse_device *dev)
{
	/* Any thread: the control thread stores it atomically (message.c). */
	return __atomic_load_n(&dev->negotiated, __ATOMIC_RELAXED);
}

unsigned int vduse_device_api_version(const struct vduse_device *dev)
{
	return dev->api_version;
}

uint64_t vduse_device_vduse_features(const struct vduse_device *dev)
{
	return dev->vduse_features;
}

uint8_t vduse_device_status(const struct vduse_device *dev)
{
	return __atomic_load_n(&dev->status, __ATOMIC_RELAXED);
}
