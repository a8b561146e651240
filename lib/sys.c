// SPDX-License-Identifier: LGPL-2.1-or-later
/* The real system calls behind struct vduse_sys. */
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sys.h"

static int sys_open(const char *path, int flags)
{
	int fd = open(path, flags);

	return fd < 0 ? -errno : fd;
}

static int sys_close(int fd)
{
	return close(fd) < 0 ? -errno : 0;
}

static int sys_ioctl(int fd, unsigned long req, void *arg)
{
	int ret = ioctl(fd, req, arg);

	return ret < 0 ? -errno : ret;
}

static ssize_t sys_read(int fd, void *buf, size_t len)
{
	ssize_t ret = read(fd, buf, len);

	return ret < 0 ? -errno : ret;
}

static ssize_t sys_write(int fd, const void *buf, size_t len)
{
	ssize_t ret = write(fd, buf, len);

	return ret < 0 ? -errno : ret;
}

static int sys_mmap(size_t len, int prot, int fd, uint64_t offset, void **out)
{
	void *p = mmap(NULL, len, prot, MAP_SHARED, fd, (off_t)offset);

	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

static int sys_munmap(void *addr, size_t len)
{
	return munmap(addr, len) < 0 ? -errno : 0;
}

static int sys_eventfd(unsigned int initval, int flags)
{
	int fd = eventfd(initval, flags);

	return fd < 0 ? -errno : fd;
}

static int sys_set_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

static const struct vduse_sys sys_real = {
	.open = sys_open,
	.close = sys_close,
	.ioctl = sys_ioctl,
	.read = sys_read,
	.write = sys_write,
	.mmap = sys_mmap,
	.munmap = sys_munmap,
	.eventfd = sys_eventfd,
	.set_cloexec = sys_set_cloexec,
	.vdpa_dev_add = vduse_nl_dev_add,
	.vdpa_dev_del = vduse_nl_dev_del,
	.vdpa_driver_loaded = vduse_bus_driver_loaded,
	.vdpa_dev_driver = vduse_bus_dev_driver,
	.vdpa_dev_bind = vduse_bus_dev_bind,
	.vdpa_dev_vhost_minor = vduse_bus_dev_vhost_minor,
};

const struct vduse_sys *vduse_sys = &sys_real;

void vduse_sys_set(const struct vduse_sys *sys)
{
	vduse_sys = sys ? sys : &sys_real;
}
