// SPDX-License-Identifier: LGPL-2.1-or-later
/* Attach and detach on the vDPA bus: generic netlink family "vdpa". */
#include <errno.h>
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
