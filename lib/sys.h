/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The thin layer through which the library reaches the kernel.  Every call
 * returns a non-negative value on success and -errno on failure.  Unit tests
 * replace the table with vduse_sys_set() to simulate the kernel.
 */
#ifndef VDUSE_LIB_SYS_H
#define VDUSE_LIB_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vduse_sys {
	int (*open)(const char *path, int flags);
	int (*close)(int fd);
	int (*ioctl)(int fd, unsigned long req, void *arg);
	ssize_t (*read)(int fd, void *buf, size_t len);
	ssize_t (*write)(int fd, const void *buf, size_t len);
	int (*mmap)(size_t len, int prot, int fd, uint64_t offset,
		    void **out);
	int (*munmap)(void *addr, size_t len);
	int (*eventfd)(unsigned int initval, int flags);
	/* Set FD_CLOEXEC on an fd the kernel handed out without it. */
	int (*set_cloexec)(int fd);
	/* vDPA bus over generic netlink */
	int (*vdpa_dev_add)(const char *name, const char *mgmtdev);
	int (*vdpa_dev_del)(const char *name);
	/*
	 * vDPA bus drivers through sysfs (/sys/bus/vdpa).  driver_loaded:
	 * 0, -ENOENT when @driver is not registered, -ENODEV when there is
	 * no vDPA bus.  dev_driver: the name of the driver bound to device
	 * @name into @buf (empty when none).  dev_bind: make @driver the
	 * device's driver_override, unbind its current driver and probe it
	 * again.  dev_vhost_minor: N of the device's vhost-vdpa-N, -ENOENT
	 * when it has none.
	 */
	int (*vdpa_driver_loaded)(const char *driver);
	int (*vdpa_dev_driver)(const char *name, char *buf, size_t len);
	int (*vdpa_dev_bind)(const char *name, const char *driver);
	int (*vdpa_dev_vhost_minor)(const char *name);
};

extern const struct vduse_sys *vduse_sys;

/* Replace the table (NULL restores the real one).  For tests only. */
void vduse_sys_set(const struct vduse_sys *sys);

/* The real netlink implementations (netlink.c). */
int vduse_nl_dev_add(const char *name, const char *mgmtdev);
int vduse_nl_dev_del(const char *name);
/* The real sysfs implementations (netlink.c). */
int vduse_bus_driver_loaded(const char *driver);
int vduse_bus_dev_driver(const char *name, char *buf, size_t len);
int vduse_bus_dev_bind(const char *name, const char *driver);
int vduse_bus_dev_vhost_minor(const char *name);

#endif
