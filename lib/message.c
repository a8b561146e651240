// SPDX-License-Identifier: LGPL-2.1-or-later
/* Messages from the kernel on /dev/vduse/$NAME and the device status. */
#include <errno.h>
#include <linux/virtio_config.h>
#include <string.h>

#include "internal.h"
#include "log.h"
#include "vq_packed.h"
#include "sys.h"
#include "vduse_uapi.h"

static void read_features(struct vduse_device *dev)
{
	uint64_t features = 0;
	int ret;

	ret = vduse_sys->ioctl(dev->dev_fd, VDUSE_DEV_GET_FEATURES, &features);
	if (ret < 0) {
		vduse_err("%s: VDUSE_DEV_GET_FEATURES: %s", dev->name,
			  strerror(-ret));
		return;
	}
	__atomic_store_n(&dev->negotiated, features, __ATOMIC_RELAXED);
	vduse_dbg("%s: negotiated features 0x%llx", dev->name,
		  (unsigned long long)features);
}

static void start_queues(struct vduse_device *dev)
{
	unsigned int i;

	for (i = 0; i < dev->num_queues; i++)
		vduse_vq_start(&dev->vqs[i]);
}

#define ANY_ASID	UINT32_MAX

/* [start, last] of address space @asid (ANY_ASID: of all) changed. */
static void update_iotlb(struct vduse_device *dev, uint32_t asid,
			 uint64_t start, uint64_t last)
{
	unsigned int i;

	vduse_dbg("%s: UPDATE_IOTLB [0x%llx, 0x%llx] address space %d",
		  dev->name, (unsigned long long)start,
		  (unsigned long long)last, (int)asid);
	for (i = 0; i < dev->num_queues; i++) {
		struct vduse_iotlb *t = &dev->vqs[i].iotlb;

		vduse_iotlb_lock(t);
		/* What in-flight elements use stays mapped until pushed. */
		if (asid == ANY_ASID || t->asid == asid) {
			vduse_iotlb_invalidate(t, start, last);
			vduse_iotlb_reclaim(t);
		}
		vduse_iotlb_unlock(t);
	}
}

/*
 * API 1: the driver puts a virtqueue group in an address space.  The
 * group's queues forget what they mapped from the old one (what in-flight
 * elements use stays mapped until pushed) and look up in the new one.
 */
static void set_group_asid(struct vduse_device *dev,
			   const struct vduse_dev_request *req,
			   struct vduse_dev_response *resp)
{
	struct vduse_lib_vq_group_asid g;
	unsigned int i;

	memcpy(&g, &req->vq_state, sizeof(g));	/* the payload's start */
	if (g.group >= dev->num_groups || g.asid >= dev->num_as) {
		vduse_err("%s: SET_VQ_GROUP_ASID: group %u of %u, address space %u of %u",
			  dev->name, g.group, dev->num_groups, g.asid,
			  dev->num_as);
		resp->result = VDUSE_REQ_RESULT_FAILED;
		return;
	}
	vduse_dbg("%s: group %u in address space %u", dev->name, g.group,
		  g.asid);
	dev->group_asid[g.group] = g.asid;
	for (i = 0; i < dev->num_queues; i++) {
		struct vduse_iotlb *t = &dev->vqs[i].iotlb;

		if (dev->vqs[i].group != g.group)
			continue;
		vduse_iotlb_lock(t);
		if (t->asid != g.asid) {
			vduse_iotlb_invalidate(t, 0, UINT64_MAX);
			vduse_iotlb_reclaim(t);
			t->asid = g.asid;
		}
		vduse_iotlb_unlock(t);
	}
}

static void reset(struct vduse_device *dev)
{
	unsigned int i;

	vduse_device_stop_queues(dev);
	/* Queues that failed to start may still hold mappings. */
	update_iotlb(dev, ANY_ASID, 0, UINT64_MAX);
	for (i = 0; i < dev->num_queues; i++) {
		dev->vqs[i].broken = false;	/* stopped: no thread uses it */
		dev->vqs[i].ready_msg = false;
		dev->vqs[i].state_ours = false;
		/* The kernel puts every group back in address space 0. */
		vduse_iotlb_lock(&dev->vqs[i].iotlb);
		dev->vqs[i].iotlb.asid = 0;
		vduse_iotlb_unlock(&dev->vqs[i].iotlb);
	}
	for (i = 0; i < dev->num_groups; i++)
		dev->group_asid[i] = 0;
	/* The kernel drops the bounce region after our answer. */
	vduse_umem_reset(dev->umem);
	dev->suspended = false;
	__atomic_store_n(&dev->negotiated, 0, __ATOMIC_RELAXED);
	if (dev->ops.reset)
		dev->ops.reset(dev);
	vduse_dbg("%s: reset", dev->name);
}

void vduse_device_set_status(struct vduse_device *dev, uint8_t status)
{
	uint8_t old = dev->status;

	vduse_dbg("%s: status 0x%x -> 0x%x", dev->name, old, status);
	if (status == 0) {
		reset(dev);
	} else {
		if ((status & VIRTIO_CONFIG_S_FEATURES_OK) &&
		    !(old & VIRTIO_CONFIG_S_FEATURES_OK))
			read_features(dev);
		if (!(status & VIRTIO_CONFIG_S_DRIVER_OK) &&
		    (old & VIRTIO_CONFIG_S_DRIVER_OK))
			vduse_device_stop_queues(dev);
	}
	__atomic_store_n(&dev->status, status, __ATOMIC_RELAXED);
	if (status & VIRTIO_CONFIG_S_DRIVER_OK &&
	    !(old & VIRTIO_CONFIG_S_DRIVER_OK) && !dev->suspended)
		start_queues(dev);
	if (dev->ops.status_changed)
		dev->ops.status_changed(dev, status);
}

/*
 * The first process() after vduse_device_open(): is the driver live?  No
 * message says so (the kernel does not repeat SET_STATUS for a new
 * opener): a queue the driver made ready says it.  A SET_STATUS the dead
 * process read but did not answer comes again, and finds the status
 * already set.
 */
static void recover(struct vduse_device *dev)
{
	uint8_t status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			 VIRTIO_CONFIG_S_FEATURES_OK |
			 VIRTIO_CONFIG_S_DRIVER_OK;
	unsigned int i, ready = 0;
	int ret;

	dev->recover_pending = false;
	for (i = 0; i < dev->num_queues; i++) {
		struct vduse_vq_info info = { .index = i };

		ret = vduse_sys->ioctl(dev->dev_fd, VDUSE_VQ_GET_INFO, &info);
		if (ret < 0) {
			vduse_err("%s: queue %u: VDUSE_VQ_GET_INFO: %s",
				  dev->name, i, strerror(-ret));
			continue;
		}
		ready += info.ready != 0;
	}
	if (!ready) {
		/* Reset or never started: nothing logged can be completed. */
		for (i = 0; i < dev->num_queues; i++) {
			if (!dev->vqs[i].ilog || !dev->vqs[i].ilog->num)
				continue;
			vduse_warn("%s: queue %u is not ready: the requests its in-flight log held are dropped",
				   dev->name, i);
			vduse_ilog_vq_stop(&dev->vqs[i]);
		}
		vduse_info("%s: the driver is not live: waiting for it",
			   dev->name);
		return;
	}
	read_features(dev);
	__atomic_store_n(&dev->status, status, __ATOMIC_RELAXED);
	dev->recovering = true;
	start_queues(dev);
	dev->recovering = false;
	/* The interrupt vduse_ilog_recover_vq() left pending. */
	for (i = 0; i < dev->num_queues; i++)
		if (vduse_vq_started(&dev->vqs[i]))
			vduse_vq_notify(&dev->vqs[i]);
	vduse_info("%s: reconnected to a live driver (%u queues ready)",
		   dev->name, ready);
	if (dev->ops.status_changed)
		dev->ops.status_changed(dev, status);
}

static void get_vq_state(struct vduse_device *dev,
			 const struct vduse_dev_request *req,
			 struct vduse_dev_response *resp)
{
	uint32_t index = req->vq_state.index;
	struct vduse_vq *vq;

	if (index >= dev->num_queues) {
		vduse_err("%s: GET_VQ_STATE for queue %u of %u", dev->name,
			  index, dev->num_queues);
		resp->result = VDUSE_REQ_RESULT_FAILED;
		return;
	}
	vq = &dev->vqs[index];
	resp->vq_state.index = index;
	if (!vq->state_ours) {
		/*
		 * Not started since the last reset: our indices are an older
		 * ring's, the kernel's are what the driver set (vhost-vdpa's
		 * SET_VRING_BASE) or the start of a fresh ring.
		 */
		struct vduse_vq_info info = { .index = index };
		int ret = vduse_sys->ioctl(dev->dev_fd, VDUSE_VQ_GET_INFO,
					   &info);

		if (ret < 0) {
			vduse_err("%s: GET_VQ_STATE: VDUSE_VQ_GET_INFO of queue %u: %s",
				  dev->name, index, strerror(-ret));
			resp->result = VDUSE_REQ_RESULT_FAILED;
			return;
		}
		memcpy(&resp->vq_state.packed, &info.packed,
		       sizeof(info.packed));
		return;
	}
	vduse_iotlb_lock(&vq->iotlb);
	if (vq->packed && vq->pk) {
		struct vduse_vq_state_packed *p = &resp->vq_state.packed;

		p->last_avail_counter = vq->pk->avail_wrap;
		p->last_avail_idx = vq->last_avail_idx;
		p->last_used_counter = vq->pk->used_wrap;
		p->last_used_idx = vq->used_idx;
	} else {
		resp->vq_state.split.avail_index = vq->last_avail_idx;
	}
	vduse_iotlb_unlock(&vq->iotlb);
}

static bool have_vduse_feature(const struct vduse_device *dev,
			       unsigned int bit)
{
	return dev->vduse_features & (1ULL << bit);
}

/*
 * VDUSE_F_QUEUE_READY: the driver enables or disables one queue.  Before
 * DRIVER_OK this is only recorded (the queue starts with the others); after
 * it, the queue starts or stops now.
 */
static void set_vq_ready(struct vduse_device *dev,
			 const struct vduse_dev_request *req,
			 struct vduse_dev_response *resp)
{
	struct vduse_lib_vq_ready r;
	struct vduse_vq *vq;

	memcpy(&r, &req->vq_state, sizeof(r));	/* the payload's start */
	if (r.num >= dev->num_queues) {
		vduse_err("%s: SET_VQ_READY for queue %u of %u", dev->name,
			  r.num, dev->num_queues);
		resp->result = VDUSE_REQ_RESULT_FAILED;
		return;
	}
	vq = &dev->vqs[r.num];
	vq->ready_msg = r.ready != 0;
	vduse_dbg("%s: queue %u: SET_VQ_READY %u", dev->name, r.num, r.ready);
	if (dev->suspended || !(dev->status & VIRTIO_CONFIG_S_DRIVER_OK))
		return;
	if (vq->ready_msg)
		vduse_vq_start(vq);
	else
		vduse_vq_stop(vq);
}

/*
 * VDUSE_F_SUSPEND: stop processing.  Every queue stops (its backend finishes
 * or abandons what it holds in queue_stop), so that GET_VQ_STATE then says
 * where each one stopped; nothing starts again until a reset.
 */
static void suspend(struct vduse_device *dev)
{
	vduse_info("%s: suspended", dev->name);
	vduse_device_stop_queues(dev);
	dev->suspended = true;
	if (dev->ops.suspend)
		dev->ops.suspend(dev);
}

static void handle(struct vduse_device *dev,
		   const struct vduse_dev_request *req,
		   struct vduse_dev_response *resp)
{
	resp->request_id = req->request_id;
	resp->result = VDUSE_REQ_RESULT_OK;

	switch (req->type) {
	case VDUSE_GET_VQ_STATE:
		get_vq_state(dev, req, resp);
		break;
	case VDUSE_SET_STATUS:
		vduse_device_set_status(dev, req->s.status);
		break;
	case VDUSE_UPDATE_IOTLB: {
		uint32_t asid = ANY_ASID;

		if (req->iova.start > req->iova.last) {
			vduse_err("%s: UPDATE_IOTLB of an empty range [0x%llx, 0x%llx]",
				  dev->name, (unsigned long long)req->iova.start,
				  (unsigned long long)req->iova.last);
			resp->result = VDUSE_REQ_RESULT_FAILED;
			break;
		}
		/* API 1: the address space follows start and last. */
		if (dev->api_version >= VDUSE_API_VERSION_1)
			memcpy(&asid, (const char *)&req->iova + 16,
			       sizeof(asid));
		update_iotlb(dev, asid, req->iova.start, req->iova.last);
		break;
	}
	case VDUSE_LIB_REQ_SET_VQ_GROUP_ASID:
		if (dev->api_version < VDUSE_API_VERSION_1)
			goto unknown;
		set_group_asid(dev, req, resp);
		break;
	case VDUSE_LIB_REQ_SET_VQ_READY:
		if (!have_vduse_feature(dev, VDUSE_F_QUEUE_READY))
			goto unknown;
		set_vq_ready(dev, req, resp);
		break;
	case VDUSE_LIB_REQ_SUSPEND:
		if (!have_vduse_feature(dev, VDUSE_F_SUSPEND))
			goto unknown;
		suspend(dev);
		break;
	default:
unknown:
		vduse_warn("%s: unknown request type %u", dev->name,
			   req->type);
		resp->result = VDUSE_REQ_RESULT_FAILED;
		break;
	}
}

int vduse_device_process(struct vduse_device *dev)
{
	int handled = 0;

	if (!dev) {
		vduse_err("vduse_device_process: dev is NULL");
		return -EINVAL;
	}
	if (dev->recover_pending)
		recover(dev);
	for (;;) {
		struct vduse_dev_request req;
		struct vduse_dev_response resp;
		ssize_t ret;

		ret = vduse_sys->read(dev->dev_fd, &req, sizeof(req));
		if (ret == -EAGAIN)
			return handled;
		if (ret == -EINTR)
			continue;
		if (ret < 0) {
			vduse_err("%s: reading a message: %s", dev->name,
				  strerror((int)-ret));
			return (int)ret;
		}
		if (ret != sizeof(req)) {
			vduse_err("%s: short message (%zd bytes)", dev->name,
				  ret);
			return -EIO;
		}
		memset(&resp, 0, sizeof(resp));
		handle(dev, &req, &resp);
		ret = vduse_sys->write(dev->dev_fd, &resp, sizeof(resp));
		if (ret == -ENOENT) {
			/* The kernel gave up waiting for this answer. */
			vduse_warn("%s: request %u timed out before it was answered",
				   dev->name, req.request_id);
		} else if (ret < 0) {
			vduse_err("%s: answering request %u: %s", dev->name,
				  req.request_id, strerror((int)-ret));
			return (int)ret;
		}
		handled++;
	}
}
