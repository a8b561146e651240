// SPDX-License-Identifier: MIT
/* A simulated VDUSE kernel for the unit tests (see fake_kernel.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vduse_uapi.h"
#include "fake_kernel.h"
#include "sys.h"

#define FK_MEM_SIZE	(64u << 20)
#define FK_MAX_FD	4096
#define FK_MAX_VDPA_DRIVERS	4
#define FK_MAX_DEVS	4
#define FK_MAX_MSGS	256
#define FK_MAX_RESPS	1024
#define FK_MAX_IOCTL_FAILS 8

enum fd_kind { FD_NONE, FD_CONTROL, FD_DEV, FD_EVENT, FD_IOTLB };

struct region {
	uint64_t iova, size, off;
	uint8_t perm;
	uint32_t asid;		/* address space (API 1), 0 by default */
	bool bounce;		/* the bounce region (fk_bounce_map()) */
};

struct live_map {
	void *addr;
	size_t len;
	uint64_t start, last;	/* IOVA range of the region it maps */
};

struct fail {
	bool armed;
	int err;
	unsigned int skip;
	unsigned long req;
};

struct fk_queue {
	uint32_t max_size;
	uint32_t group;		/* from VQ_SETUP (API 1) */
	struct vduse_vq_info info;
	int kickfd;
	unsigned int kickfd_calls;
	unsigned int irqs;
};

static struct {
	pthread_mutex_t lock;
	bool installed;

	int memfd;
	uint8_t *mem;
	uint64_t mem_next;
	struct region *regions;
	unsigned int nr_regions, cap_regions;
	struct live_map *maps;
	unsigned int nr_maps, cap_maps;

	unsigned char fd_kind[FK_MAX_FD];
	unsigned int live_fds, bad_closes;

	unsigned int calls[FK_NR_OPS];
	struct fail fail[FK_NR_OPS];
	struct fail ioctl_fail[FK_MAX_IOCTL_FAILS];
	struct { unsigned long req; unsigned int n; } ioctl_count[64];

	bool control_missing;
	char devs[FK_MAX_DEVS][VDUSE_NAME_MAX];
	int dev_fd[FK_MAX_DEVS];	/* its open node, -1: none */
	struct vduse_dev_config *created;
	unsigned int destroyed;
	uint64_t api_version;
	uint64_t features;
	/* The uAPI the kernel offers: API version, VDUSE features. */
	uint64_t api_offered;
	bool have_vduse_features;
	uint64_t vduse_offered, vduse_set;
	uint64_t getfd2_asids;	/* bit n: IOTLB_GET_FD2 asked in space n */
	unsigned int config_irqs;
	bool have_set_config;
	uint32_t set_config_offset, set_config_length;
	uint8_t set_config_buf[256];
	struct fk_queue queues[FK_MAX_QUEUES];

	int msg_fd;
	struct vduse_dev_request msgs[FK_MAX_MSGS];
	unsigned int msg_head, msg_tail;
	uint32_t next_request_id;
	struct vduse_dev_response resps[FK_MAX_RESPS];
	unsigned int nr_resps;

	unsigned int vdpa_added, vdpa_deleted;
	char vdpa_name[VDUSE_NAME_MAX], vdpa_mgmtdev[64];
	/* The vDPA bus: drivers in registration order, one device on it. */
	bool vdpa_no_bus;
	char vdpa_drivers[FK_MAX_VDPA_DRIVERS][32];
	unsigned int nr_vdpa_drivers;
	bool vdpa_on_bus;
	char vdpa_bound[32], vdpa_override[32];
	int vhost_minor, next_vhost_minor;
	bool vdpa_refuse;
	unsigned int vdpa_binds;

	/*
	 * REG_UMEM as the kernel has it: the registered memory (NULL: none),
	 * RLIMIT_MEMLOCK (0: unlimited), registrations made while an mmap of
	 * the bounce region was live (its pages would now be stale).
	 */
	bool no_umem_ioctls;
	uint8_t *umem;
	uint64_t umem_size;
	uint64_t memlock;
	unsigned int umem_stale;

	unsigned int leaky_fds;
	bool getfd_forced;
	struct vduse_iotlb_entry getfd_answer;
} fk = { .lock = PTHREAD_MUTEX_INITIALIZER };

#define LOCK()		pthread_mutex_lock(&fk.lock)
#define UNLOCK()	pthread_mutex_unlock(&fk.lock)

/* Locked.  Counts the call and returns the injected error, if due. */
static int due(enum fk_op op)
{
	struct fail *f = &fk.fail[op];

	fk.calls[op]++;
	if (!f->armed)
		return 0;
	if (f->skip) {
		f->skip--;
		return 0;
	}
	f->armed = false;
	return f->err;
}

static int ioctl_due(unsigned long req)
{
	unsigned int i;

	for (i = 0; i < 64; i++) {
		if (fk.ioctl_count[i].req == req || !fk.ioctl_count[i].req) {
			fk.ioctl_count[i].req = req;
			fk.ioctl_count[i].n++;
			break;
		}
	}
	for (i = 0; i < FK_MAX_IOCTL_FAILS; i++) {
		struct fail *f = &fk.ioctl_fail[i];

		if (!f->armed || f->req != req)
			continue;
		if (f->skip) {
			f->skip--;
			return 0;
		}
		f->armed = false;
		return f->err;
	}
	return 0;
}

static int track(int fd, enum fd_kind kind)
{
	if (fd < 0)
		return -errno;
	if (fd >= FK_MAX_FD) {
		close(fd);
		return -EMFILE;
	}
	fk.fd_kind[fd] = kind;
	fk.live_fds++;
	return fd;
}

static enum fd_kind kind_of(int fd)
{
	return fd >= 0 && fd < FK_MAX_FD ? fk.fd_kind[fd] : FD_NONE;
}

static int find_dev(const char *name)
{
	int i;

	for (i = 0; i < FK_MAX_DEVS; i++)
		if (fk.devs[i][0] && !strcmp(fk.devs[i], name))
			return i;
	return -1;
}

/* ---- the vduse_sys table ---- */

static int fk_open(const char *path, int flags)
{
	int ret;

	LOCK();
	ret = due(FK_OPEN);
	if (ret)
		goto out;
	if (!(flags & O_CLOEXEC)) {
		ret = -EINVAL;	/* the library must open everything O_CLOEXEC */
		goto out;
	}
	if (!strcmp(path, "/dev/vduse/control")) {
		ret = fk.control_missing ? -ENOENT :
		      track(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), FD_CONTROL);
	} else if (!strncmp(path, "/dev/vduse/", 11) &&
		   find_dev(path + 11) >= 0) {
		int i = find_dev(path + 11);

		/* Like the kernel: one opener at a time. */
		if (fk.dev_fd[i] >= 0) {
			ret = -EBUSY;
			goto out;
		}
		ret = track(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), FD_DEV);
		if (ret >= 0) {
			fk.dev_fd[i] = ret;
			fk.msg_fd = ret;
			if (fk.msg_head != fk.msg_tail) {
				uint64_t one = 1;

				if (write(ret, &one, sizeof(one)) < 0)
					abort();
			}
		}
	} else {
		ret = -ENOENT;
	}
out:
	UNLOCK();
	return ret;
}

static struct region *bounce_region(void)
{
	for (unsigned int i = 0; i < fk.nr_regions; i++)
		if (fk.regions[i].bounce)
			return &fk.regions[i];
	return NULL;
}

/* Locked.  Deregister: the kernel copies the pages back (in use or not). */
static int umem_release(void)
{
	struct region *b = bounce_region();

	if (!fk.umem)
		return -ENOENT;
	if (b)
		memcpy(fk.mem + b->off, fk.umem, b->size);
	fk.umem = NULL;
	fk.umem_size = 0;
	return 0;
}

/* VDUSE_IOTLB_REG_UMEM, DEREG_UMEM and GET_INFO, with the kernel's rules. */
static bool zero(const uint32_t *r, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (r[i])
			return false;
	return true;
}

static int umem_ioctl(unsigned long req, void *arg)
{
	struct region *b = bounce_region();
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	if (fk.no_umem_ioctls)
		return -ENOTTY;
	if (req == VDUSE_LIB_IOTLB_GET_INFO) {
		struct vduse_lib_iova_info *info = arg;

		if (info->start > info->last || !zero(info->reserved, 5) ||
		    (fk.api_version < 1 && info->asid))
			return -EINVAL;
		for (unsigned int i = 0; i < fk.nr_regions; i++) {
			struct region *r = &fk.regions[i];

			if (r->asid == info->asid && r->iova <= info->last &&
			    info->start <= r->iova + r->size - 1) {
				info->start = r->iova;
				info->last = r->iova + r->size - 1;
				info->capability = r->bounce ?
					VDUSE_LIB_IOVA_CAP_UMEM : 0;
				return 0;
			}
		}
		return -EINVAL;
	}
	struct vduse_lib_iova_umem *u = arg;

	if (!zero(u->reserved, 5) || (fk.api_version < 1 && u->asid))
		return -EINVAL;
	if (req == VDUSE_LIB_IOTLB_DEREG_UMEM) {
		if (!fk.umem)
			return -ENOENT;
		if (!b || u->iova != 0 || u->size != b->size)
			return -EINVAL;
		return umem_release();
	}
	if (!b || u->size != b->size || u->iova != 0 || (u->uaddr & (page - 1)))
		return -EINVAL;
	if (fk.umem)
		return -EEXIST;
	if (fk.memlock && u->size > fk.memlock)
		return -ENOMEM;
	/* Pages of the bounce region a process mapped are stale from now. */
	for (unsigned int i = 0; i < fk.nr_maps; i++)
		if (fk.maps[i].start == b->iova && fk.maps[i].last ==
		    b->iova + b->size - 1)
			fk.umem_stale++;
	fk.umem = (uint8_t *)(uintptr_t)u->uaddr;
	fk.umem_size = u->size;
	memcpy(fk.umem, fk.mem + b->off, b->size);
	return 0;
}

static int fk_close(int fd)
{
	int ret;

	LOCK();
	ret = due(FK_CLOSE);
	if (kind_of(fd) == FD_NONE) {
		fk.bad_closes++;
		ret = -EBADF;
	} else {
		/* Like the kernel, close releases the fd even when it fails. */
		if (kind_of(fd) == FD_DEV)
			umem_release();
		close(fd);
		fk.fd_kind[fd] = FD_NONE;
		fk.live_fds--;
		if (fk.msg_fd == fd)
			fk.msg_fd = -1;
		for (int i = 0; i < FK_MAX_DEVS; i++)
			if (fk.dev_fd[i] == fd)
				fk.dev_fd[i] = -1;
	}
	UNLOCK();
	return ret;
}

static int get_fd_as(struct vduse_iotlb_entry *e, uint32_t asid)
{
	unsigned int i;

	if (fk.getfd_forced) {
		*e = fk.getfd_answer;
		return track(fcntl(fk.memfd, F_DUPFD, 0), FD_IOTLB);
	}

	for (i = 0; i < fk.nr_regions; i++) {
		struct region *r = &fk.regions[i];

		if (r->asid == asid && r->iova <= e->last &&
		    e->start <= r->iova + r->size - 1) {
			e->start = r->iova;
			e->last = r->iova + r->size - 1;
			e->offset = r->off;
			e->perm = r->perm;
			/* Like the kernel: without close-on-exec. */
			return track(fcntl(fk.memfd, F_DUPFD, 0), FD_IOTLB);
		}
	}
	return -EINVAL;
}

static int get_fd(struct vduse_iotlb_entry *e)
{
	return get_fd_as(e, 0);
}

/* As 7.3: the first 32 bytes are GET_FD's entry, then the asid. */
static int get_fd2(struct vduse_lib_iotlb_entry2 *e2)
{
	struct vduse_iotlb_entry e = { .start = e2->start, .last = e2->last };
	int ret;

	if (fk.api_version < 1 || e2->asid >= 64)
		return -EINVAL;
	fk.getfd2_asids |= 1ULL << e2->asid;
	ret = get_fd_as(&e, e2->asid);
	e2->offset = e.offset;
	e2->start = e.start;
	e2->last = e.last;
	e2->perm = e.perm;
	return ret;
}

static int control_ioctl(unsigned long req, void *arg)
{
	int i;

	switch (req) {
	case VDUSE_GET_API_VERSION:
		*(uint64_t *)arg = fk.api_offered;
		return 0;
	case VDUSE_SET_API_VERSION:
		if (*(uint64_t *)arg > fk.api_offered)
			return -EINVAL;
		fk.api_version = *(uint64_t *)arg;
		return 0;
	case VDUSE_GET_FEATURES:
		if (!fk.have_vduse_features)
			return -EINVAL;	/* as before 7.3: unknown ioctl */
		*(uint64_t *)arg = fk.vduse_offered;
		return 0;
	case VDUSE_SET_FEATURES:
		if (!fk.have_vduse_features)
			return -EINVAL;
		if (*(uint64_t *)arg & ~fk.vduse_offered)
			return -EINVAL;
		fk.vduse_set = *(uint64_t *)arg;
		return 0;
	case VDUSE_CREATE_DEV: {
		const struct vduse_dev_config *c = arg;
		size_t sz = sizeof(*c) + c->config_size;
		uint32_t ngroups = VDUSE_LIB_CONFIG_NGROUPS(c);
		uint32_t nas = VDUSE_LIB_CONFIG_NAS(c);

		/* As 7.3: both at least 1 from API 1, 0 before. */
		if (fk.api_version >= 1 ? !ngroups || !nas : ngroups || nas)
			return -EINVAL;
		if (find_dev(c->name) >= 0)
			return -EEXIST;
		for (i = 0; i < FK_MAX_DEVS && fk.devs[i][0]; i++)
			;
		if (i == FK_MAX_DEVS)
			return -ENOSPC;
		free(fk.created);
		fk.created = malloc(sz);
		if (!fk.created)
			return -ENOMEM;
		memcpy(fk.created, c, sz);
		memcpy(fk.devs[i], c->name, VDUSE_NAME_MAX);
		fk.devs[i][VDUSE_NAME_MAX - 1] = 0;
		fk.dev_fd[i] = -1;
		return 0;
	}
	case VDUSE_DESTROY_DEV:
		i = find_dev(arg);
		if (i < 0)
			return -EINVAL;
		fk.devs[i][0] = 0;
		fk.destroyed++;
		return 0;
	default:
		return -ENOTTY;
	}
}

static int dev_ioctl(unsigned long req, void *arg)
{
	switch (req) {
	case VDUSE_VQ_SETUP: {
		const struct vduse_vq_config *c = arg;

		if (c->index >= FK_MAX_QUEUES || !c->max_size)
			return -EINVAL;
		fk.queues[c->index].max_size = c->max_size;
		memcpy(&fk.queues[c->index].group, (const char *)c + 8,
		       sizeof(uint32_t));
		return 0;
	}
	case VDUSE_VQ_GET_INFO: {
		struct vduse_vq_info *info = arg;
		uint32_t index = info->index;

		if (index >= FK_MAX_QUEUES)
			return -EINVAL;
		*info = fk.queues[index].info;
		info->index = index;
		return 0;
	}
	case VDUSE_VQ_SETUP_KICKFD: {
		const struct vduse_vq_eventfd *e = arg;

		if (e->index >= FK_MAX_QUEUES)
			return -EINVAL;
		if (e->fd >= 0 && kind_of(e->fd) != FD_EVENT)
			return -EBADF;
		fk.queues[e->index].kickfd = e->fd;
		fk.queues[e->index].kickfd_calls++;
		return 0;
	}
	case VDUSE_VQ_INJECT_IRQ: {
		uint32_t index = *(uint32_t *)arg;

		if (index >= FK_MAX_QUEUES)
			return -EINVAL;
		fk.queues[index].irqs++;
		return 0;
	}
	case VDUSE_DEV_GET_FEATURES:
		*(uint64_t *)arg = fk.features;
		return 0;
	case VDUSE_DEV_SET_CONFIG: {
		const struct vduse_config_data *cd = arg;

		if (!fk.created || cd->offset > fk.created->config_size ||
		    cd->length > fk.created->config_size - cd->offset)
			return -EINVAL;
		fk.have_set_config = true;
		fk.set_config_offset = cd->offset;
		fk.set_config_length = cd->length;
		memcpy(fk.set_config_buf, cd->buffer,
		       cd->length < 256 ? cd->length : 256);
		return 0;
	}
	case VDUSE_DEV_INJECT_CONFIG_IRQ:
		fk.config_irqs++;
		return 0;
	case VDUSE_IOTLB_GET_FD:
		return get_fd(arg);
	case VDUSE_IOTLB_GET_FD2:
		return get_fd2(arg);
	case VDUSE_LIB_IOTLB_REG_UMEM:
	case VDUSE_LIB_IOTLB_DEREG_UMEM:
	case VDUSE_LIB_IOTLB_GET_INFO:
		return umem_ioctl(req, arg);
	default:
		return -ENOTTY;
	}
}

static int fk_ioctl(int fd, unsigned long req, void *arg)
{
	int ret;

	LOCK();
	ret = due(FK_IOCTL);
	if (!ret)
		ret = ioctl_due(req);
	if (!ret) {
		switch (kind_of(fd)) {
		case FD_CONTROL:
			ret = control_ioctl(req, arg);
			break;
		case FD_DEV:
			ret = dev_ioctl(req, arg);
			break;
		case FD_NONE:
			ret = -EBADF;
			break;
		default:
			ret = -ENOTTY;
			break;
		}
	}
	UNLOCK();
	return ret;
}

static ssize_t fk_read(int fd, void *buf, size_t len)
{
	ssize_t ret;

	LOCK();
	ret = due(FK_READ);
	if (ret)
		goto out;
	switch (kind_of(fd)) {
	case FD_DEV:
		if (fk.msg_head == fk.msg_tail) {
			uint64_t v;

			/* Empty: no longer readable. */
			if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				abort();
			ret = -EAGAIN;
			break;
		}
		if (len > sizeof(fk.msgs[0]))
			len = sizeof(fk.msgs[0]);
		memcpy(buf, &fk.msgs[fk.msg_head++ % FK_MAX_MSGS], len);
		ret = (ssize_t)len;
		break;
	case FD_EVENT:
		ret = read(fd, buf, len);
		if (ret < 0)
			ret = -errno;
		break;
	case FD_NONE:
		ret = -EBADF;
		break;
	default:
		ret = -EINVAL;
		break;
	}
out:
	UNLOCK();
	return ret;
}

static ssize_t fk_write(int fd, const void *buf, size_t len)
{
	ssize_t ret;

	LOCK();
	ret = due(FK_WRITE);
	if (ret)
		goto out;
	switch (kind_of(fd)) {
	case FD_DEV:
		if (len != sizeof(struct vduse_dev_response)) {
			ret = -EINVAL;
			break;
		}
		if (fk.nr_resps < FK_MAX_RESPS)
			memcpy(&fk.resps[fk.nr_resps++], buf, len);
		ret = (ssize_t)len;
		break;
	case FD_EVENT:
		ret = write(fd, buf, len);
		if (ret < 0)
			ret = -errno;
		break;
	case FD_NONE:
		ret = -EBADF;
		break;
	default:
		ret = -EINVAL;
		break;
	}
out:
	UNLOCK();
	return ret;
}

static int fk_mmap(size_t len, int prot, int fd, uint64_t offset, void **out)
{
	struct live_map m = { 0 };
	unsigned int i;
	int ret;

	LOCK();
	ret = due(FK_MMAP);
	if (ret)
		goto out;
	if (kind_of(fd) != FD_IOTLB || offset > FK_MEM_SIZE ||
	    len > FK_MEM_SIZE - offset) {
		ret = -EINVAL;
		goto out;
	}
	if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC)) {
		fk.leaky_fds++;	/* a fork + exec would have inherited it */
		ret = -EINVAL;
		goto out;
	}
	m.addr = mmap(NULL, len, prot, MAP_SHARED, fd, (off_t)offset);
	if (m.addr == MAP_FAILED) {
		ret = -errno;
		goto out;
	}
	m.len = len;
	m.start = 1;
	m.last = 0;
	for (i = 0; i < fk.nr_regions; i++) {
		struct region *r = &fk.regions[i];

		if (r->off <= offset && offset < r->off + r->size) {
			m.start = r->iova;
			m.last = r->iova + r->size - 1;
			break;
		}
	}
	if (fk.nr_maps == fk.cap_maps) {
		unsigned int cap = fk.cap_maps ? fk.cap_maps * 2 : 64;
		struct live_map *maps = realloc(fk.maps, cap * sizeof(*maps));

		if (!maps) {
			munmap(m.addr, len);
			ret = -ENOMEM;
			goto out;
		}
		fk.maps = maps;
		fk.cap_maps = cap;
	}
	fk.maps[fk.nr_maps++] = m;
	*out = m.addr;
out:
	UNLOCK();
	return ret;
}

static int fk_munmap(void *addr, size_t len)
{
	unsigned int i;
	int ret;

	LOCK();
	ret = due(FK_MUNMAP);
	for (i = 0; i < fk.nr_maps; i++) {
		if (fk.maps[i].addr == addr && fk.maps[i].len == len)
			break;
	}
	if (i == fk.nr_maps) {
		ret = -EINVAL;	/* not something we mapped */
	} else {
		munmap(addr, len);
		fk.maps[i] = fk.maps[--fk.nr_maps];
	}
	UNLOCK();
	return ret;
}

static int fk_eventfd(unsigned int initval, int flags)
{
	int ret;

	LOCK();
	ret = due(FK_EVENTFD);
	if (!ret && !(flags & EFD_CLOEXEC))
		ret = -EINVAL;
	if (!ret)
		ret = track(eventfd(initval, flags), FD_EVENT);
	UNLOCK();
	return ret;
}

/* Locked.  Bind the device like the bus: the override, else the first
 * driver registered; vhost_vdpa gives it the next vhost-vdpa-N. */
static void vdpa_probe(void)
{
	unsigned int i;

	fk.vdpa_bound[0] = '\0';
	fk.vhost_minor = -1;
	for (i = 0; i < fk.nr_vdpa_drivers && !fk.vdpa_refuse; i++) {
		const char *d = fk.vdpa_drivers[i];

		if (fk.vdpa_override[0] && strcmp(d, fk.vdpa_override))
			continue;
		snprintf(fk.vdpa_bound, sizeof(fk.vdpa_bound), "%s", d);
		if (!strcmp(d, "vhost_vdpa"))
			fk.vhost_minor = fk.next_vhost_minor++;
		break;
	}
}

static int fk_vdpa_driver_loaded(const char *driver)
{
	unsigned int i;
	int ret = -ENOENT;

	LOCK();
	if (fk.vdpa_no_bus)
		ret = -ENODEV;
	for (i = 0; i < fk.nr_vdpa_drivers && ret == -ENOENT; i++)
		if (!strcmp(fk.vdpa_drivers[i], driver))
			ret = 0;
	UNLOCK();
	return ret;
}

static int fk_vdpa_dev_driver(const char *name, char *buf, size_t len)
{
	int ret = 0;

	LOCK();
	if (!fk.vdpa_on_bus || strcmp(name, fk.vdpa_name))
		ret = -ENODEV;
	else if (strlen(fk.vdpa_bound) >= len)
		ret = -ERANGE;
	else
		strcpy(buf, fk.vdpa_bound);
	UNLOCK();
	return ret;
}

static int fk_vdpa_dev_bind(const char *name, const char *driver)
{
	int ret;

	LOCK();
	ret = due(FK_DEV_BIND);
	if (!ret && (!fk.vdpa_on_bus || strcmp(name, fk.vdpa_name)))
		ret = -ENODEV;
	if (!ret) {
		fk.vdpa_binds++;
		snprintf(fk.vdpa_override, sizeof(fk.vdpa_override), "%s",
			 driver);
		vdpa_probe();
	}
	UNLOCK();
	return ret;
}

static int fk_vdpa_dev_vhost_minor(const char *name)
{
	int ret;

	LOCK();
	if (!fk.vdpa_on_bus || strcmp(name, fk.vdpa_name))
		ret = -ENODEV;
	else
		ret = fk.vhost_minor >= 0 ? fk.vhost_minor : -ENOENT;
	UNLOCK();
	return ret;
}

static int fk_vdpa_dev_add(const char *name, const char *mgmtdev)
{
	int ret;

	LOCK();
	ret = due(FK_DEV_ADD);
	if (!ret) {
		fk.vdpa_added++;
		fk.vdpa_on_bus = true;
		fk.vdpa_override[0] = '\0';
		vdpa_probe();
		snprintf(fk.vdpa_name, sizeof(fk.vdpa_name), "%s", name);
		snprintf(fk.vdpa_mgmtdev, sizeof(fk.vdpa_mgmtdev), "%s",
			 mgmtdev ? mgmtdev : "");
	}
	UNLOCK();
	return ret;
}

static int fk_vdpa_dev_del(const char *name)
{
	int ret;

	LOCK();
	ret = due(FK_DEV_DEL);
	if (!ret) {
		fk.vdpa_deleted++;
		fk.vdpa_on_bus = false;
		fk.vdpa_bound[0] = '\0';
		fk.vhost_minor = -1;
		snprintf(fk.vdpa_name, sizeof(fk.vdpa_name), "%s", name);
	}
	UNLOCK();
	return ret;
}

static int fk_set_cloexec(int fd)
{
	int ret = 0;

	LOCK();
	if (kind_of(fd) == FD_NONE)
		ret = -EBADF;
	else if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		ret = -errno;
	UNLOCK();
	return ret;
}

static const struct vduse_sys fk_sys = {
	.open = fk_open,
	.close = fk_close,
	.ioctl = fk_ioctl,
	.read = fk_read,
	.write = fk_write,
	.mmap = fk_mmap,
	.munmap = fk_munmap,
	.eventfd = fk_eventfd,
	.set_cloexec = fk_set_cloexec,
	.vdpa_dev_add = fk_vdpa_dev_add,
	.vdpa_dev_del = fk_vdpa_dev_del,
	.vdpa_driver_loaded = fk_vdpa_driver_loaded,
	.vdpa_dev_driver = fk_vdpa_dev_driver,
	.vdpa_dev_bind = fk_vdpa_dev_bind,
	.vdpa_dev_vhost_minor = fk_vdpa_dev_vhost_minor,
};

/* ---- test-side controls ---- */

static void cleanup(void)
{
	unsigned int i;

	for (i = 0; i < fk.nr_maps; i++)
		munmap(fk.maps[i].addr, fk.maps[i].len);
	for (i = 0; i < FK_MAX_FD; i++)
		if (fk.fd_kind[i] != FD_NONE)
			close((int)i);
	if (fk.mem)
		munmap(fk.mem, FK_MEM_SIZE);
	if (fk.memfd >= 0)
		close(fk.memfd);
	free(fk.maps);
	free(fk.regions);
	free(fk.created);
}

void fk_setup(void)
{
	unsigned int i;

	LOCK();
	if (fk.installed)
		cleanup();
	memset((char *)&fk + sizeof(fk.lock), 0, sizeof(fk) - sizeof(fk.lock));
	fk.memfd = memfd_create("fake-guest-memory", MFD_CLOEXEC);
	if (fk.memfd < 0 || ftruncate(fk.memfd, FK_MEM_SIZE) < 0)
		abort();
	fk.mem = mmap(NULL, FK_MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		      fk.memfd, 0);
	if (fk.mem == MAP_FAILED)
		abort();
	fk.msg_fd = -1;
	fk.next_request_id = 1;
	fk.vhost_minor = -1;
	for (i = 0; i < FK_MAX_QUEUES; i++)
		fk.queues[i].kickfd = -2;
	fk.installed = true;
	UNLOCK();
	vduse_sys_set(&fk_sys);
}

void fk_teardown(void)
{
	vduse_sys_set(NULL);
	LOCK();
	if (fk.installed)
		cleanup();
	fk.installed = false;
	fk.mem = NULL;
	fk.memfd = -1;
	fk.maps = NULL;
	fk.regions = NULL;
	fk.created = NULL;
	UNLOCK();
}

void fk_fail(enum fk_op op, int err, unsigned int skip)
{
	LOCK();
	fk.fail[op] = (struct fail){ .armed = true, .err = err, .skip = skip };
	UNLOCK();
}

void fk_fail_ioctl(unsigned long req, int err, unsigned int skip)
{
	unsigned int i;

	LOCK();
	for (i = 0; i < FK_MAX_IOCTL_FAILS; i++) {
		if (!fk.ioctl_fail[i].armed) {
			fk.ioctl_fail[i] = (struct fail){ .armed = true,
				.err = err, .skip = skip, .req = req };
			break;
		}
	}
	UNLOCK();
	if (i == FK_MAX_IOCTL_FAILS)
		abort();
}

void fk_set_control_missing(bool missing)
{
	LOCK();
	fk.control_missing = missing;
	UNLOCK();
}

#define GETTER(type, name, expr)	\
type name(void)				\
{					\
	type v;				\
	LOCK();				\
	v = (expr);			\
	UNLOCK();			\
	return v;			\
}

GETTER(unsigned int, fk_live_fds, fk.live_fds)
GETTER(unsigned int, fk_bad_closes, fk.bad_closes)
GETTER(unsigned int, fk_live_maps, fk.nr_maps)
GETTER(unsigned int, fk_destroyed, fk.destroyed)
GETTER(uint64_t, fk_api_version_set, fk.api_version)
GETTER(unsigned int, fk_config_irqs, fk.config_irqs)
GETTER(unsigned int, fk_pending_msgs, fk.msg_tail - fk.msg_head)
GETTER(unsigned int, fk_vdpa_added, fk.vdpa_added)
GETTER(unsigned int, fk_vdpa_deleted, fk.vdpa_deleted)
GETTER(unsigned int, fk_leaky_fds, fk.leaky_fds)

unsigned int fk_calls(enum fk_op op)
{
	unsigned int v;

	LOCK();
	v = fk.calls[op];
	UNLOCK();
	return v;
}

unsigned int fk_ioctl_calls(unsigned long req)
{
	unsigned int i, v = 0;

	LOCK();
	for (i = 0; i < 64; i++)
		if (fk.ioctl_count[i].req == req)
			v = fk.ioctl_count[i].n;
	UNLOCK();
	return v;
}

unsigned int fk_live_maps_in(uint64_t start, uint64_t last)
{
	unsigned int i, n = 0;

	LOCK();
	for (i = 0; i < fk.nr_maps; i++)
		if (fk.maps[i].start <= last && start <= fk.maps[i].last)
			n++;
	UNLOCK();
	return n;
}

bool fk_dev_exists(const char *name)
{
	bool v;

	LOCK();
	v = find_dev(name) >= 0;
	UNLOCK();
	return v;
}

const struct vduse_dev_config *fk_created_config(void)
{
	return fk.created;
}

void fk_set_features(uint64_t features)
{
	LOCK();
	fk.features = features;
	UNLOCK();
}

void fk_set_uapi(uint64_t api_version, bool have_features, uint64_t offered)
{
	LOCK();
	fk.api_offered = api_version;
	fk.have_vduse_features = have_features;
	fk.vduse_offered = offered;
	UNLOCK();
}

uint64_t fk_getfd2_asids(void)
{
	return fk.getfd2_asids;
}

uint64_t fk_vduse_features_set(void)
{
	uint64_t v;

	LOCK();
	v = fk.vduse_set;
	UNLOCK();
	return v;
}

bool fk_last_set_config(uint32_t *offset, uint32_t *length, void *buf,
			size_t cap)
{
	bool v;

	LOCK();
	v = fk.have_set_config;
	*offset = fk.set_config_offset;
	*length = fk.set_config_length;
	memcpy(buf, fk.set_config_buf, cap < 256 ? cap : 256);
	UNLOCK();
	return v;
}

void fk_set_vq_info(unsigned int index, uint32_t num, uint64_t desc,
		    uint64_t driver, uint64_t device, uint16_t avail_index,
		    bool ready)
{
	struct vduse_vq_info *info = &fk.queues[index].info;

	LOCK();
	memset(info, 0, sizeof(*info));
	info->index = index;
	info->num = num;
	info->desc_addr = desc;
	info->driver_addr = driver;
	info->device_addr = device;
	info->split.avail_index = avail_index;
	info->ready = ready;
	UNLOCK();
}

void fk_set_vq_packed(unsigned int index, bool avail_wrap, uint16_t avail_idx,
		      bool used_wrap, uint16_t used_idx)
{
	struct vduse_vq_state_packed *p = &fk.queues[index].info.packed;

	LOCK();
	p->last_avail_counter = avail_wrap;
	p->last_avail_idx = avail_idx;
	p->last_used_counter = used_wrap;
	p->last_used_idx = used_idx;
	UNLOCK();
}

#define QGETTER(type, name, field)		\
type name(unsigned int index)			\
{						\
	type v;					\
	LOCK();					\
	v = fk.queues[index].field;		\
	UNLOCK();				\
	return v;				\
}

QGETTER(uint32_t, fk_vq_max_size, max_size)
QGETTER(uint32_t, fk_vq_group, group)
QGETTER(int, fk_vq_kickfd, kickfd)
QGETTER(unsigned int, fk_vq_kickfd_calls, kickfd_calls)
QGETTER(unsigned int, fk_vq_irqs, irqs)

uint32_t fk_push_msg(struct vduse_dev_request *req)
{
	uint64_t one = 1;
	uint32_t id;

	LOCK();
	if (fk.msg_tail - fk.msg_head == FK_MAX_MSGS)
		abort();
	id = fk.next_request_id++;
	req->request_id = id;
	fk.msgs[fk.msg_tail++ % FK_MAX_MSGS] = *req;
	if (fk.msg_fd >= 0 && write(fk.msg_fd, &one, sizeof(one)) < 0)
		abort();
	UNLOCK();
	return id;
}

bool fk_response(uint32_t id, struct vduse_dev_response *resp)
{
	unsigned int i;
	bool found = false;

	LOCK();
	for (i = fk.nr_resps; i-- > 0;) {
		if (fk.resps[i].request_id == id) {
			*resp = fk.resps[i];
			found = true;
			break;
		}
	}
	UNLOCK();
	return found;
}

const char *fk_vdpa_last_name(void)
{
	return fk.vdpa_name;
}

const char *fk_vdpa_last_mgmtdev(void)
{
	return fk.vdpa_mgmtdev;
}

void fk_vdpa_load_driver(const char *driver)
{
	LOCK();
	if (fk.nr_vdpa_drivers < FK_MAX_VDPA_DRIVERS)
		snprintf(fk.vdpa_drivers[fk.nr_vdpa_drivers++],
			 sizeof(fk.vdpa_drivers[0]), "%s", driver);
	UNLOCK();
}

void fk_vdpa_set_no_bus(bool no_bus)
{
	LOCK();
	fk.vdpa_no_bus = no_bus;
	UNLOCK();
}

void fk_vdpa_set_refuse(bool refuse)
{
	LOCK();
	fk.vdpa_refuse = refuse;
	UNLOCK();
}

void fk_vdpa_put_on_bus(const char *name, const char *driver)
{
	LOCK();
	fk.vdpa_on_bus = true;
	snprintf(fk.vdpa_name, sizeof(fk.vdpa_name), "%s", name);
	snprintf(fk.vdpa_override, sizeof(fk.vdpa_override), "%s", driver);
	vdpa_probe();
	UNLOCK();
}

const char *fk_vdpa_bound(void)
{
	return fk.vdpa_bound;
}

bool fk_vdpa_on_bus(void)
{
	return fk.vdpa_on_bus;
}

unsigned int fk_vdpa_binds(void)
{
	return fk.vdpa_binds;
}

int fk_region_add(uint64_t iova, uint64_t size, uint8_t perm)
{
	return fk_region_add_as(0, iova, size, perm);
}

int fk_region_add_as(uint32_t asid, uint64_t iova, uint64_t size,
		     uint8_t perm)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t span = (size + page - 1) & ~(page - 1);
	unsigned int i;
	int ret = 0;

	LOCK();
	for (i = 0; i < fk.nr_regions; i++) {
		struct region *r = &fk.regions[i];

		if (r->asid == asid && r->iova <= iova + size - 1 &&
		    iova <= r->iova + r->size - 1)
			ret = -EEXIST;
	}
	/* A guard page between regions: IOVA neighbours are not neighbours
	 * in memory, so a read across a region end would be noticed. */
	if (!ret && (!size || fk.mem_next + span + page > FK_MEM_SIZE))
		ret = -ENOSPC;
	if (!ret && fk.nr_regions == fk.cap_regions) {
		unsigned int cap = fk.cap_regions ? fk.cap_regions * 2 : 64;
		struct region *r = realloc(fk.regions, cap * sizeof(*r));

		if (!r)
			ret = -ENOMEM;
		else {
			fk.regions = r;
			fk.cap_regions = cap;
		}
	}
	if (!ret) {
		fk.regions[fk.nr_regions++] = (struct region){
			.iova = iova, .size = size, .off = fk.mem_next,
			.perm = perm, .asid = asid };
		fk.mem_next += span + page;
	}
	UNLOCK();
	return ret;
}

void fk_region_del(uint64_t start, uint64_t last)
{
	unsigned int i;

	LOCK();
	for (i = 0; i < fk.nr_regions;) {
		struct region *r = &fk.regions[i];

		if (r->iova <= last && start <= r->iova + r->size - 1)
			fk.regions[i] = fk.regions[--fk.nr_regions];
		else
			i++;
	}
	UNLOCK();
}

void *fk_iova_ptr(uint64_t iova)
{
	unsigned int i;
	void *p = NULL;

	LOCK();
	for (i = 0; i < fk.nr_regions; i++) {
		struct region *r = &fk.regions[i];

		if (!r->asid && r->iova <= iova && iova - r->iova < r->size) {
			/* Registered: the kernel bounces into the umem. */
			if (r->bounce && fk.umem)
				p = fk.umem + (iova - r->iova);
			else
				p = fk.mem + r->off + (iova - r->iova);
			break;
		}
	}
	UNLOCK();
	return p;
}

void fk_force_getfd(const struct vduse_iotlb_entry *answer)
{
	LOCK();
	fk.getfd_forced = answer != NULL;
	if (answer)
		fk.getfd_answer = *answer;
	UNLOCK();
}

int fk_bounce_map(uint64_t size)
{
	int ret = 0;

	LOCK();
	if (!bounce_region()) {
		UNLOCK();
		ret = fk_region_add(0, size, VDUSE_ACCESS_RW);
		LOCK();
		if (!ret)
			fk.regions[fk.nr_regions - 1].bounce = true;
	}
	UNLOCK();
	return ret;
}

void fk_bounce_reset(void)
{
	LOCK();
	for (unsigned int i = 0; i < fk.nr_regions; i++) {
		if (fk.regions[i].bounce) {
			fk.regions[i] = fk.regions[--fk.nr_regions];
			break;
		}
	}
	UNLOCK();
}

void fk_set_umem_ioctls(bool have)
{
	fk.no_umem_ioctls = !have;
}

void fk_set_memlock(uint64_t bytes)
{
	fk.memlock = bytes;
}

void *fk_umem(void)
{
	return fk.umem;
}

unsigned int fk_umem_stale(void)
{
	return fk.umem_stale;
}
