// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Attach and detach on the vDPA bus: generic netlink family "vdpa".  And
 * the bus's drivers through sysfs (/sys/bus/vdpa, see the kernel's
 * Documentation/ABI/testing/sysfs-bus-vdpa): which driver a device has,
 * driver_override + unbind + drivers_probe to give it another one, and the
 * vhost-vdpa-N child device vhost_vdpa creates.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/vdpa.h>
#include <netlink/errno.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <string.h>

#include "log.h"
#include "sys.h"

/* libnl reports its own codes; bring the common ones back to errno. */
static int nl_to_errno(int err)
{
	switch (-err) {
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_PERM:
		return -EPERM;
	case NLE_EXIST:
		return -EEXIST;
	case NLE_INVAL:
		return -EINVAL;
	case NLE_BUSY:
		return -EBUSY;
	case NLE_OPNOTSUPP:
		return -EOPNOTSUPP;
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	case NLE_NODEV:
		return -ENODEV;
	case NLE_AGAIN:
		return -EAGAIN;
	default:
		return -EIO;
	}
}

static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	*(int *)arg = e->error;
	return NL_STOP;
}

static int vdpa_cmd(int cmd, const char *name, const char *mgmtdev)
{
	struct nl_sock *sk;
	struct nl_msg *msg = NULL;
	int family, ret, kerr = 0;

	sk = nl_socket_alloc();
	if (!sk)
		return -ENOMEM;
	ret = genl_connect(sk);
	if (ret < 0) {
		vduse_err("generic netlink: %s", nl_geterror(ret));
		ret = nl_to_errno(ret);
		goto out;
	}
	family = genl_ctrl_resolve(sk, VDPA_GENL_NAME);
	if (family < 0) {
		vduse_err("the \"%s\" generic netlink family is missing: load the vdpa and vduse modules (or vduse_shim)",
			  VDPA_GENL_NAME);
		ret = -ENODEV;
		goto out;
	}
	msg = nlmsg_alloc();
	if (!msg) {
		ret = -ENOMEM;
		goto out;
	}
	ret = -EMSGSIZE;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0,
			 NLM_F_REQUEST | NLM_F_ACK, cmd, VDPA_GENL_VERSION))
		goto out;
	if (mgmtdev && nla_put_string(msg, VDPA_ATTR_MGMTDEV_DEV_NAME, mgmtdev))
		goto out;
	if (nla_put_string(msg, VDPA_ATTR_DEV_NAME, name))
		goto out;

	nl_socket_modify_err_cb(sk, NL_CB_CUSTOM, on_error, &kerr);
	ret = nl_send_auto(sk, msg);
	if (ret >= 0)
		ret = nl_wait_for_ack(sk);
	if (kerr)
		ret = kerr;		/* the kernel's own -errno */
	else if (ret < 0)
		ret = nl_to_errno(ret);
	else
		ret = 0;
out:
	nlmsg_free(msg);
	nl_socket_free(sk);
	return ret;
}

int vduse_nl_dev_add(const char *name, const char *mgmtdev)
{
	return vdpa_cmd(VDPA_CMD_DEV_NEW, name, mgmtdev);
}

int vduse_nl_dev_del(const char *name)
{
	return vdpa_cmd(VDPA_CMD_DEV_DEL, name, NULL);
}

#define VDPA_SYSFS "/sys/bus/vdpa"

/* Write @val to the sysfs attribute @path in one write. */
static int sysfs_write(const char *path, const char *val)
{
	size_t len = strlen(val);
	ssize_t n;
	int fd, ret = 0;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, val, len);
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != len)
		ret = -EIO;
	close(fd);
	return ret;
}

int vduse_bus_driver_loaded(const char *driver)
{
	char path[PATH_MAX];
	struct stat st;

	if (stat(VDPA_SYSFS, &st) < 0)
		return -ENODEV;
	snprintf(path, sizeof(path), VDPA_SYSFS "/drivers/%s", driver);
	if (stat(path, &st) < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	return 0;
}

int vduse_bus_dev_driver(const char *name, char *buf, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	const char *base;
	ssize_t n;

	if (!len)
		return -EINVAL;
	buf[0] = '\0';
	snprintf(path, sizeof(path), VDPA_SYSFS "/devices/%s/driver", name);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0) {
		if (errno != ENOENT)
			return -errno;
		/* No driver link: unbound, unless the device is not there. */
		snprintf(path, sizeof(path), VDPA_SYSFS "/devices/%s", name);
		return access(path, F_OK) < 0 ? -ENODEV : 0;
	}
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= len)
		return -ERANGE;
	strcpy(buf, base);
	return 0;
}

int vduse_bus_dev_bind(const char *name, const char *driver)
{
	char path[PATH_MAX], cur[256];
	int ret;

	snprintf(path, sizeof(path), VDPA_SYSFS "/devices/%s/driver_override",
		 name);
	ret = sysfs_write(path, driver);
	if (ret < 0)
		return ret;
	ret = vduse_bus_dev_driver(name, cur, sizeof(cur));
	if (ret < 0)
		return ret;
	if (cur[0]) {
		snprintf(path, sizeof(path), VDPA_SYSFS "/drivers/%s/unbind",
			 cur);
		ret = sysfs_write(path, name);
		if (ret < 0)
			return ret;
	}
	return sysfs_write(VDPA_SYSFS "/drivers_probe", name);
}

int vduse_bus_dev_vhost_minor(const char *name)
{
	char path[PATH_MAX];
	struct dirent *de;
	int minor = -ENOENT;
	DIR *d;

	snprintf(path, sizeof(path), VDPA_SYSFS "/devices/%s", name);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? -ENODEV : -errno;
	while ((de = readdir(d))) {
		char *end;
		long n;

		if (strncmp(de->d_name, "vhost-vdpa-", 11))
			continue;
		n = strtol(de->d_name + 11, &end, 10);
		if (end != de->d_name + 11 && !*end && n >= 0 && n <= INT_MAX) {
			minor = (int)n;
			break;
		}
	}
	closedir(d);
	return minor;
}
