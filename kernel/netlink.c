// SPDX-License-Identifier: GPL-2.0-only
/*
 * vduse_shim: the "vdpa" generic netlink family.
 *
 * Without a vDPA bus nobody else registers the family, so the shim does, with
 * one management device, "vduse".  Enough of it for libvduse and iproute2's
 * vdpa tool: DEV_NEW and DEV_DEL attach and detach, MGMTDEV_GET and DEV_GET
 * describe.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <net/genetlink.h>
#include <uapi/linux/vdpa.h>
#include <uapi/linux/virtio_config.h>
#include <uapi/linux/virtio_ids.h>

#include "vduse_shim.h"

static struct genl_family shim_genl_family;

static const struct nla_policy shim_nl_policy[VDPA_ATTR_MAX + 1] = {
	[VDPA_ATTR_MGMTDEV_BUS_NAME]	= { .type = NLA_STRING },
	[VDPA_ATTR_MGMTDEV_DEV_NAME]	= { .type = NLA_STRING },
	[VDPA_ATTR_DEV_NAME]		= { .type = NLA_STRING },
	[VDPA_ATTR_DEV_NET_CFG_MACADDR]	= { .type = NLA_BINARY },
	[VDPA_ATTR_DEV_NET_CFG_MAX_VQP]	= { .type = NLA_U16 },
	[VDPA_ATTR_DEV_NET_CFG_MTU]	= { .type = NLA_U16 },
	[VDPA_ATTR_DEV_FEATURES]	= { .type = NLA_U64 },
};

/* Is the management device named by the request ours? */
static int check_mgmtdev(struct genl_info *info)
{
	struct nlattr *bus = info->attrs[VDPA_ATTR_MGMTDEV_BUS_NAME];
	struct nlattr *name = info->attrs[VDPA_ATTR_MGMTDEV_DEV_NAME];

	if (bus) {
		NL_SET_ERR_MSG_MOD(info->extack, "the vduse mgmtdev has no bus");
		return -ENODEV;
	}
	if (name && nla_strcmp(name, VDUSE_SHIM_MGMTDEV_NAME)) {
		NL_SET_ERR_MSG_MOD(info->extack, "unknown management device");
		return -ENODEV;
	}
	return 0;
}

static int get_dev_name(struct genl_info *info, char *buf, size_t len)
{
	struct nlattr *attr = info->attrs[VDPA_ATTR_DEV_NAME];

	if (!attr) {
		NL_SET_ERR_MSG_MOD(info->extack, "device name missing");
		return -EINVAL;
	}
	if (nla_strscpy(buf, attr, len) < 0) {
		NL_SET_ERR_MSG_MOD(info->extack, "device name too long");
		return -EINVAL;
	}
	return 0;
}

static int mgmtdev_fill(struct sk_buff *msg, u32 portid, u32 seq, int flags)
{
	void *hdr;

	hdr = genlmsg_put(msg, portid, seq, &shim_genl_family, flags,
			  VDPA_CMD_MGMTDEV_NEW);
	if (!hdr)
		return -EMSGSIZE;
	if (nla_put_string(msg, VDPA_ATTR_MGMTDEV_DEV_NAME,
			   VDUSE_SHIM_MGMTDEV_NAME) ||
	    nla_put_u64_64bit(msg, VDPA_ATTR_MGMTDEV_SUPPORTED_CLASSES,
			      BIT_ULL(VIRTIO_ID_BLOCK), VDPA_ATTR_UNSPEC) ||
	    nla_put_u32(msg, VDPA_ATTR_DEV_MGMTDEV_MAX_VQS,
			VDUSE_SHIM_MAX_VQS)) {
		genlmsg_cancel(msg, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	return 0;
}

static int shim_nl_mgmtdev_get_doit(struct sk_buff *skb,
				    struct genl_info *info)
{
	struct sk_buff *msg;
	int ret;

	ret = check_mgmtdev(info);
	if (ret)
		return ret;
	msg = nlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	ret = mgmtdev_fill(msg, info->snd_portid, info->snd_seq, 0);
	if (ret) {
		nlmsg_free(msg);
		return ret;
	}
	return genlmsg_reply(msg, info);
}

static int shim_nl_mgmtdev_get_dumpit(struct sk_buff *skb,
				      struct netlink_callback *cb)
{
	if (cb->args[0])
		return 0;
	if (mgmtdev_fill(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			 NLM_F_MULTI))
		return skb->len ? skb->len : -EMSGSIZE;
	cb->args[0] = 1;
	return skb->len;
}

static int shim_nl_dev_new_doit(struct sk_buff *skb, struct genl_info *info)
{
	char name[VDUSE_NAME_MAX];
	int ret;

	if (!info->attrs[VDPA_ATTR_MGMTDEV_DEV_NAME]) {
		NL_SET_ERR_MSG_MOD(info->extack, "mgmtdev name missing");
		return -EINVAL;
	}
	ret = check_mgmtdev(info);
	if (ret)
		return ret;
	ret = get_dev_name(info, name, sizeof(name));
	if (ret)
		return ret;
	if (info->attrs[VDPA_ATTR_DEV_NET_CFG_MACADDR] ||
	    info->attrs[VDPA_ATTR_DEV_NET_CFG_MAX_VQP] ||
	    info->attrs[VDPA_ATTR_DEV_NET_CFG_MTU] ||
	    info->attrs[VDPA_ATTR_DEV_FEATURES]) {
		NL_SET_ERR_MSG_MOD(info->extack,
				   "vduse devices take no provisioning attributes");
		return -EOPNOTSUPP;
	}

	ret = vduse_shim_attach(name);
	if (ret == -ENODEV)
		NL_SET_ERR_MSG_MOD(info->extack, "no such VDUSE device");
	else if (ret == -EEXIST)
		NL_SET_ERR_MSG_MOD(info->extack, "device already attached");
	else if (ret == -EINVAL)
		NL_SET_ERR_MSG_MOD(info->extack, "virtqueues not set up");
	return ret == -ENODEV ? -EINVAL : ret;
}

static int shim_nl_dev_del_doit(struct sk_buff *skb, struct genl_info *info)
{
	char name[VDUSE_NAME_MAX];
	int ret;

	ret = get_dev_name(info, name, sizeof(name));
	if (ret)
		return ret;
	ret = vduse_shim_detach(name);
	if (ret == -ENODEV)
		NL_SET_ERR_MSG_MOD(info->extack, "device not attached");
	else if (ret == -EBUSY)
		NL_SET_ERR_MSG_MOD(info->extack,
				   "device being attached or detached");
	return ret;
}

struct dev_fill_arg {
	struct sk_buff *msg;
	u32 portid;
	u32 seq;
	int flags;
	long done;
};

static int dev_fill(struct vduse_shim_dev *dev, void *data)
{
	struct dev_fill_arg *arg = data;
	struct sk_buff *msg = arg->msg;
	void *hdr;

	hdr = genlmsg_put(msg, arg->portid, arg->seq, &shim_genl_family,
			  arg->flags, VDPA_CMD_DEV_NEW);
	if (!hdr)
		return -EMSGSIZE;
	if (nla_put_string(msg, VDPA_ATTR_DEV_NAME, dev->name) ||
	    nla_put_string(msg, VDPA_ATTR_MGMTDEV_DEV_NAME,
			   VDUSE_SHIM_MGMTDEV_NAME) ||
	    nla_put_u32(msg, VDPA_ATTR_DEV_ID, dev->device_id) ||
	    nla_put_u32(msg, VDPA_ATTR_DEV_VENDOR_ID, dev->vendor_id) ||
	    nla_put_u32(msg, VDPA_ATTR_DEV_MAX_VQS, dev->vq_num) ||
	    nla_put_u16(msg, VDPA_ATTR_DEV_MAX_VQ_SIZE,
			vduse_shim_dev_max_vq_size(dev)) ||
	    nla_put_u16(msg, VDPA_ATTR_DEV_MIN_VQ_SIZE, 1)) {
		genlmsg_cancel(msg, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(msg, hdr);
	arg->done++;
	return 0;
}

static int shim_nl_dev_get_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct dev_fill_arg arg = {
		.portid = info->snd_portid,
		.seq = info->snd_seq,
	};
	char name[VDUSE_NAME_MAX];
	int ret;

	ret = get_dev_name(info, name, sizeof(name));
	if (ret)
		return ret;
	arg.msg = nlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!arg.msg)
		return -ENOMEM;
	ret = vduse_shim_with_attached(name, dev_fill, &arg);
	if (ret) {
		nlmsg_free(arg.msg);
		if (ret == -ENODEV)
			NL_SET_ERR_MSG_MOD(info->extack, "device not found");
		return ret;
	}
	return genlmsg_reply(arg.msg, info);
}

static int shim_nl_dev_get_dumpit(struct sk_buff *skb,
				  struct netlink_callback *cb)
{
	struct dev_fill_arg arg = {
		.msg = skb,
		.portid = NETLINK_CB(cb->skb).portid,
		.seq = cb->nlh->nlmsg_seq,
		.flags = NLM_F_MULTI,
	};
	int ret;

	ret = vduse_shim_walk_attached(cb->args[0], &arg, dev_fill);
	cb->args[0] += arg.done;
	if (ret && !arg.done && !skb->len)
		return ret;
	return skb->len;
}

static const struct genl_ops shim_nl_ops[] = {
	{
		.cmd = VDPA_CMD_MGMTDEV_GET,
		.validate = GENL_DONT_VALIDATE_STRICT | GENL_DONT_VALIDATE_DUMP,
		.doit = shim_nl_mgmtdev_get_doit,
		.dumpit = shim_nl_mgmtdev_get_dumpit,
	},
	{
		.cmd = VDPA_CMD_DEV_NEW,
		.validate = GENL_DONT_VALIDATE_STRICT | GENL_DONT_VALIDATE_DUMP,
		.doit = shim_nl_dev_new_doit,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = VDPA_CMD_DEV_DEL,
		.validate = GENL_DONT_VALIDATE_STRICT | GENL_DONT_VALIDATE_DUMP,
		.doit = shim_nl_dev_del_doit,
		.flags = GENL_ADMIN_PERM,
	},
	{
		.cmd = VDPA_CMD_DEV_GET,
		.validate = GENL_DONT_VALIDATE_STRICT | GENL_DONT_VALIDATE_DUMP,
		.doit = shim_nl_dev_get_doit,
		.dumpit = shim_nl_dev_get_dumpit,
	},
};

static struct genl_family shim_genl_family __ro_after_init = {
	.name		= VDPA_GENL_NAME,
	.version	= VDPA_GENL_VERSION,
	.maxattr	= VDPA_ATTR_MAX,
	.policy		= shim_nl_policy,
	.netnsok	= false,
	.parallel_ops	= true,
	.module		= THIS_MODULE,
	.ops		= shim_nl_ops,
	.n_ops		= ARRAY_SIZE(shim_nl_ops),
	.resv_start_op	= VDPA_CMD_DEV_VSTATS_GET + 1,
};

int vduse_shim_netlink_init(void)
{
	return genl_register_family(&shim_genl_family);
}

void vduse_shim_netlink_exit(void)
{
	genl_unregister_family(&shim_genl_family);
}
