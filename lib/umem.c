// SPDX-License-Identifier: LGPL-2.1-or-later
/* The backend's memory behind the bounce region (see umem.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "internal.h"
#include "vduse_uapi.h"
#include "log.h"
#include "sys.h"
#include "umem.h"

int vduse_umem_new(int dev_fd, const char *name, void *addr, size_t size,
		   struct vduse_umem **out)
{
	struct vduse_umem *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	pthread_mutex_init(&u->lock, NULL);
	u->dev_fd = dev_fd;
	u->name = name;
	u->addr = addr;
	u->size = size;
	u->state = VDUSE_UMEM_IDLE;
	*out = u;
	return 0;
}

/* The kernel lacks the ioctl (ENOTTY; EOPNOTSUPP from the 6.1 shim). */
static bool unsupported(int err)
{
	return err == -ENOTTY || err == -EOPNOTSUPP || err == -ENOSYS;
}

static int umem_ioctl(struct vduse_umem *u, unsigned long req)
{
	struct vduse_lib_iova_umem m = {
		.uaddr = (uintptr_t)u->addr, .iova = 0, .size = u->bounce_size,
	};

	return vduse_sys->ioctl(u->dev_fd, req, &m);
}

static void deregister(struct vduse_umem *u, const char *why)
{
	int ret = umem_ioctl(u, VDUSE_LIB_IOTLB_DEREG_UMEM);

	if (ret < 0 && ret != -ENOENT)
		vduse_warn("%s: VDUSE_IOTLB_DEREG_UMEM (%s): %s", u->name, why,
			   strerror(-ret));
	else
		vduse_dbg("%s: bounce region deregistered (%s)", u->name, why);
}

void vduse_umem_free(struct vduse_umem *u)
{
	if (!u)
		return;
	if (u->state == VDUSE_UMEM_REGISTERED)
		deregister(u, "device freed");
	pthread_mutex_destroy(&u->lock);
	free(u);
}

void vduse_umem_reset(struct vduse_umem *u)
{
	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	if (u->state == VDUSE_UMEM_REGISTERED)
		deregister(u, "reset");
	/* The kernel drops the bounce region: the next one may register. */
	if (u->state == VDUSE_UMEM_REGISTERED ||
	    u->state == VDUSE_UMEM_FALLBACK)
		u->state = VDUSE_UMEM_IDLE;
	pthread_mutex_unlock(&u->lock);
}

static void refused(struct vduse_umem *u, int err)
{
	struct rlimit rl = { 0 };

	u->state = VDUSE_UMEM_FALLBACK;
	if (err != -ENOMEM) {
		vduse_warn("%s: VDUSE_IOTLB_REG_UMEM of %llu bytes: %s; the bounce region stays the kernel's (mapped from its fd)",
			   u->name, (unsigned long long)u->bounce_size,
			   strerror(-err));
		return;
	}
	getrlimit(RLIMIT_MEMLOCK, &rl);
	vduse_warn("%s: VDUSE_IOTLB_REG_UMEM of %llu bytes: %s: the pages to pin exceed RLIMIT_MEMLOCK (%llu bytes%s) or memory ran short; the bounce region stays the kernel's (mapped from its fd)",
		   u->name, (unsigned long long)u->bounce_size, strerror(-err),
		   (unsigned long long)rl.rlim_cur,
		   rl.rlim_cur == RLIM_INFINITY ? ", unlimited" : "");
}

/* The bounce region [0, bounce_size - 1] exists now: register it.  Locked. */
static void try_register(struct vduse_umem *u)
{
	int ret;

	if (u->size < u->bounce_size) {
		vduse_err("%s: the memory for the bounce region has %zu bytes, the region %llu: not registered (see /sys/class/vduse/%s/bounce_size)",
			  u->name, u->size,
			  (unsigned long long)u->bounce_size, u->name);
		u->state = VDUSE_UMEM_TOO_SMALL;
		return;
	}
	if (__atomic_load_n(&u->fd_maps, __ATOMIC_RELAXED)) {
		/* Those pages would go stale: wait until they are unmapped. */
		vduse_dbg("%s: the bounce region is still mapped from the kernel's fd: not registered yet",
			  u->name);
		return;
	}
	ret = umem_ioctl(u, VDUSE_LIB_IOTLB_REG_UMEM);
	if (ret == -EEXIST) {
		/*
		 * Registered already: a registration that outlived a reset
		 * the library did not see (one that timed out, or a vdpa dev
		 * del/add).  It may be other memory: replace it.
		 */
		vduse_warn("%s: a registration of the bounce region was left over: replacing it",
			   u->name);
		deregister(u, "left over");
		ret = umem_ioctl(u, VDUSE_LIB_IOTLB_REG_UMEM);
	}
	if (ret == 0) {
		u->state = VDUSE_UMEM_REGISTERED;
		vduse_info("%s: bounce region [0x0, 0x%llx] registered (VDUSE_IOTLB_REG_UMEM): the backend's memory at %p backs it",
			   u->name, (unsigned long long)u->bounce_size - 1,
			   (void *)u->addr);
	} else if (unsupported(ret)) {
		u->state = VDUSE_UMEM_UNSUPPORTED;
		vduse_info("%s: the kernel has no VDUSE_IOTLB_REG_UMEM (%s): the bounce region stays the kernel's",
			   u->name, strerror(-ret));
	} else if (ret == -EINVAL) {
		/* The region went away meanwhile (a reset): try next time. */
		vduse_dbg("%s: VDUSE_IOTLB_REG_UMEM: %s: trying again later",
			  u->name, strerror(-ret));
	} else {
		refused(u, ret);
	}
}

void vduse_umem_off(struct vduse_umem *u)
{
	pthread_mutex_lock(&u->lock);
	if (u->state == VDUSE_UMEM_REGISTERED)
		deregister(u, "bound to vhost_vdpa");
	u->state = VDUSE_UMEM_OFF;
	pthread_mutex_unlock(&u->lock);
	vduse_info("%s: bound to vhost_vdpa: its memory is a consumer's, the backend's memory will not back it",
		   u->name);
}

int vduse_umem_lookup(struct vduse_umem *u, uint64_t iova, uint64_t *start,
		      uint64_t *last, uint8_t **base)
{
	struct vduse_lib_iova_info info = { .start = iova, .last = iova };
	int ret;

	if (u->state != VDUSE_UMEM_IDLE && u->state != VDUSE_UMEM_REGISTERED)
		return 0;
	ret = vduse_sys->ioctl(u->dev_fd, VDUSE_LIB_IOTLB_GET_INFO, &info);
	if (unsupported(ret)) {
		u->state = VDUSE_UMEM_UNSUPPORTED;
		vduse_info("%s: the kernel has no VDUSE_IOTLB_GET_INFO (%s): the bounce region stays the kernel's",
			   u->name, strerror(-ret));
		return 0;
	}
	/* EINVAL: nothing there (yet); the fd path says what it is. */
	if (ret < 0 || !(info.capability & VDUSE_LIB_IOVA_CAP_UMEM))
		return 0;
	if (info.start != 0 || info.last < iova || info.last == UINT64_MAX) {
		vduse_err("%s: IOTLB_GET_INFO for 0x%llx returned [0x%llx, 0x%llx] as the bounce region",
			  u->name, (unsigned long long)iova,
			  (unsigned long long)info.start,
			  (unsigned long long)info.last);
		return 0;
	}
	if (u->state == VDUSE_UMEM_REGISTERED &&
	    info.last + 1 != u->bounce_size) {
		/* Cannot happen while the device exists: be safe. */
		vduse_err("%s: the bounce region changed size under its registration",
			  u->name);
		return 0;
	}
	u->bounce_size = info.last + 1;
	if (u->state == VDUSE_UMEM_IDLE)
		try_register(u);
	if (u->state != VDUSE_UMEM_REGISTERED)
		return 0;
	*start = 0;
	*last = info.last;
	*base = u->addr;
	return 1;
}

int vduse_device_set_umem(struct vduse_device *dev, void *addr, size_t size)
{
	long page = sysconf(_SC_PAGESIZE);
	struct vduse_umem *u;
	unsigned int i;
	int ret;

	if (!dev || !addr || !size || ((uintptr_t)addr & (uintptr_t)(page - 1))) {
		vduse_err("vduse_device_set_umem: %s",
			  !dev ? "dev is NULL" : !addr || !size ?
			  "no memory" : "addr is not page aligned");
		return -EINVAL;
	}
	if (dev->vhost_bound) {
		vduse_err("%s: vduse_device_set_umem: bound to vhost_vdpa, which has no bounce region",
			  dev->name);
		return -EINVAL;
	}
	if (dev->umem) {
		vduse_err("%s: vduse_device_set_umem: set already", dev->name);
		return -EBUSY;
	}
	for (i = 0; i < dev->num_queues; i++) {
		if (vduse_vq_started(&dev->vqs[i])) {
			vduse_err("%s: vduse_device_set_umem: queue %u has started: call it before the driver starts",
				  dev->name, i);
			return -EBUSY;
		}
	}
	ret = vduse_umem_new(dev->dev_fd, dev->name, addr, size, &u);
	if (ret < 0) {
		vduse_err("%s: vduse_device_set_umem: %s", dev->name,
			  strerror(-ret));
		return ret;
	}
	dev->umem = u;
	for (i = 0; i < dev->num_queues; i++) {
		vduse_iotlb_lock(&dev->vqs[i].iotlb);
		dev->vqs[i].iotlb.umem = u;
		vduse_iotlb_unlock(&dev->vqs[i].iotlb);
	}
	vduse_info("%s: %zu bytes at %p will back the bounce region once the driver maps it",
		   dev->name, size, addr);
	return 0;
}
