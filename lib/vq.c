// SPDX-License-Identifier: LGPL-2.1-or-later
/* Virtqueue lifecycle: setup, start on DRIVER_OK, stop, kicks, accessors. */
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "internal.h"
#include "log.h"
#include "sys.h"
#include "vq_packed.h"

int vduse_vq_init(struct vduse_vq *vq, struct vduse_device *dev,
		  unsigned int index, unsigned int max_size, bool setup)
{
	struct vduse_vq_config cfg = { .index = index, .max_size = max_size };
	int ret;

	vq->dev = dev;
	vq->index = index;
	vq->max_size = max_size;
	vq->kick_fd = -1;
	vq->ilog = vduse_ilog_vq(dev, index);
	vduse_iotlb_init(&vq->iotlb, dev->dev_fd);
	vq->group = dev->queue_group ? dev->queue_group[index] : 0;
	vq->iotlb.fd2 = dev->num_as > 1;

	ret = vduse_sys->eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ret < 0) {
		vduse_err("%s: queue %u: eventfd: %s", dev->name, index,
			  strerror(-ret));
		return ret;
	}
	vq->kick_fd = ret;
	if (!setup)
		return 0;

	/* API 1: the group is the u32 at byte 8 (0 before: reserved). */
	memcpy((char *)&cfg + 8, &vq->group, sizeof(vq->group));
	ret = vduse_sys->ioctl(dev->dev_fd, VDUSE_VQ_SETUP, &cfg);
	if (ret < 0) {
		vduse_err("%s: queue %u: VDUSE_VQ_SETUP (max size %u): %s",
			  dev->name, index, max_size, strerror(-ret));
		return ret;
	}
	return 0;
}

static void free_slots(struct vduse_vq_fast *f)
{
	unsigned int i;

	for (i = 0; f->slots && i < f->nr_slots; i++)
		free(f->slots[i].big);
	free(f->slots);
	memset(f, 0, sizeof(*f));
}

static void free_ring_state(struct vduse_vq *vq)
{
	free_slots(&vq->fast);
	vduse_packed_free(vq);
	free(vq->inflight_map);
	free(vq->head_slot);
	free(vq->deferred);
	free(vq->iov);
	free(vq->indirect_buf);
	free(vq->replay);
	vq->replay = NULL;
	vq->nr_replay = 0;
	vq->replay_pos = 0;
	vq->inflight_map = NULL;
	vq->head_slot = NULL;
	vq->deferred = NULL;
	vq->nr_deferred = 0;
	vq->iov = NULL;
	vq->indirect_buf = NULL;
	vq->iov_cap = 0;
}

void vduse_vq_release(struct vduse_vq *vq)
{
	if (!vq->dev)
		return;
	vduse_vq_stop(vq);
	free_ring_state(vq);
	vduse_iotlb_destroy(&vq->iotlb);
	if (vq->kick_fd >= 0)
		vduse_sys->close(vq->kick_fd);
	vq->kick_fd = -1;
	vq->dev = NULL;
}

static int set_kickfd(struct vduse_vq *vq, int fd)
{
	struct vduse_vq_eventfd e = { .index = vq->index, .fd = fd };

	return vduse_sys->ioctl(vq->dev->dev_fd, VDUSE_VQ_SETUP_KICKFD, &e);
}

static int alloc_ring_state(struct vduse_vq *vq)
{
	size_t words = (vq->num + 63) / 64;

	free_ring_state(vq);
	vq->inflight_map = calloc(words, sizeof(uint64_t));
	vq->head_slot = calloc(vq->num, 1);
	vq->deferred = calloc(vq->num, sizeof(*vq->deferred));
	/* Each descriptor yields at least one iovec; more when it spans. */
	vq->iov_cap = 2 * vq->max_size + 16;
	vq->iov = calloc(vq->iov_cap, sizeof(*vq->iov));
	vq->indirect_buf = calloc(vq->max_size, sizeof(struct vring_desc));
	/* One element per head for vduse_vq_pop_batch(). */
	vq->fast.slots = calloc(vq->num, sizeof(*vq->fast.slots));
	vq->fast.nr_slots = vq->num;
	if (!vq->inflight_map || !vq->head_slot || !vq->deferred || !vq->iov ||
	    !vq->indirect_buf || !vq->fast.slots ||
	    (vq->packed && vduse_packed_alloc(vq) < 0)) {
		free_ring_state(vq);
		return -ENOMEM;
	}
	return 0;
}

/* Called on the control thread when the driver sets DRIVER_OK. */
int vduse_vq_start(struct vduse_vq *vq)
{
	struct vduse_device *dev = vq->dev;
	struct vduse_vq_info info = { .index = vq->index };
	bool behind = false, recover;
	int ret;

	if (vq->started)
		return 0;
	/* A thread left behind by the last stop must be gone first. */
	if (vq->left_behind && dev->hooks && dev->hooks->reap)
		dev->hooks->reap(dev->hooks_data, vq);
	ret = vduse_sys->ioctl(dev->dev_fd, VDUSE_VQ_GET_INFO, &info);
	if (ret < 0) {
		vduse_err("%s: queue %u: VDUSE_VQ_GET_INFO: %s", dev->name,
			  vq->index, strerror(-ret));
		return ret;
	}
	if (!info.ready && !vq->ready_msg) {
		if (dev->recovering && vq->ilog && vq->ilog->num) {
			vduse_warn("%s: queue %u is no longer ready: the requests its in-flight log held are dropped",
				   dev->name, vq->index);
			vduse_ilog_vq_stop(vq);
		}
		return 0;
	}
	recover = dev->recovering && vq->ilog && vq->ilog->num;
	vq->packed = dev->negotiated & (1ULL << VIRTIO_F_RING_PACKED);
	/* Packed rings may have any size; split ones a power of two. */
	if (info.num == 0 || info.num > vq->max_size ||
	    (!vq->packed && (info.num & (info.num - 1)))) {
		vduse_err("%s: queue %u: bad size %u (max %u)", dev->name,
			  vq->index, info.num, vq->max_size);
		return -EINVAL;
	}
	if (recover && (vq->ilog->num != info.num ||
			vq->ilog->desc_addr != info.desc_addr ||
			vq->ilog->avail_addr != info.driver_addr ||
			vq->ilog->used_addr != info.device_addr)) {
		vduse_err("%s: queue %u: the driver's ring (size %u, desc 0x%llx) is not the one in the in-flight log (size %u, desc 0x%llx): cannot recover",
			  dev->name, vq->index, info.num,
			  (unsigned long long)info.desc_addr, vq->ilog->num,
			  (unsigned long long)vq->ilog->desc_addr);
		return -ESTALE;
	}
	vq->num = info.num;
	vq->desc_addr = info.desc_addr;
	vq->avail_addr = info.driver_addr;
	vq->used_addr = info.device_addr;
	vq->last_avail_idx = info.split.avail_index;
	vq->event_idx = dev->negotiated & (1ULL << VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = dev->negotiated & (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
	vq->inflight = 0;
	vq->broken = false;
	vq->fail_err = 0;
	vq->irq_pending = false;

	ret = alloc_ring_state(vq);
	if (ret < 0)
		return ret;
	if (vq->packed) {
		const struct vduse_vq_state_packed *st = &info.packed;

		ret = vduse_packed_set_state(vq, st->last_avail_counter,
					     st->last_avail_idx,
					     st->last_used_counter,
					     st->last_used_idx);
		/* A recovery takes the positions from the log instead. */
		if (ret < 0 && !recover) {
			vduse_err("%s: queue %u: impossible packed ring state (avail %u wrap %u, used %u wrap %u, size %u)",
				  dev->name, vq->index, st->last_avail_idx,
				  st->last_avail_counter, st->last_used_idx,
				  st->last_used_counter, vq->num);
			return ret;
		}
	}
	/* A new ring: the old record is void. */
	if (!recover)
		vduse_ilog_vq_stop(vq);
	vduse_iotlb_lock(&vq->iotlb);
	ret = vduse_ring_map(vq);
	if (recover && ret == 0) {
		/* The used ring is needed now, to reconcile with the log. */
		ret = vduse_ilog_recover_vq(vq);
		if (ret == 0)
			vduse_ring_kicks_reset(vq);
		vduse_iotlb_unlock(&vq->iotlb);
		if (ret < 0)
			return ret;	/* logged */
		goto kick;
	} else if (recover) {
		/* A shortage too: recovery cannot wait for a later pop. */
	} else if (vduse_iotlb_transient(ret)) {
		/* Start anyway: the first pop or push maps them. */
		vduse_warn("%s: queue %u: rings not mapped yet: %s",
			   dev->name, vq->index, strerror(-ret));
		vq->rings_pending = true;
		ret = 0;
	} else if (ret == 0) {
		vduse_ring_init_used(vq);
	}
	vduse_iotlb_unlock(&vq->iotlb);
	if (ret < 0) {
		vduse_err("%s: queue %u: cannot map rings (desc 0x%llx avail 0x%llx used 0x%llx): %s",
			  dev->name, vq->index,
			  (unsigned long long)vq->desc_addr,
			  (unsigned long long)vq->avail_addr,
			  (unsigned long long)vq->used_addr, strerror(-ret));
		return ret;
	}

kick:
	ret = set_kickfd(vq, vq->kick_fd);
	if (ret < 0) {
		vduse_err("%s: queue %u: VDUSE_VQ_SETUP_KICKFD: %s",
			  dev->name, vq->index, strerror(-ret));
		return ret;
	}
	vq->started = true;
	vq->state_ours = true;
	vduse_dbg("%s: queue %u started: size %u avail %u used %u", dev->name,
		  vq->index, vq->num, vq->last_avail_idx, vq->used_idx);

	if (dev->hooks && dev->hooks->start) {
		ret = dev->hooks->start(dev->hooks_data, vq);
		if (ret < 0)
			goto fail;
	}
	if (dev->ops.queue_start) {
		ret = dev->ops.queue_start(dev, vq);
		if (ret < 0) {
			if (dev->hooks && dev->hooks->stop)
				behind = dev->hooks->stop(dev->hooks_data,
							  vq) > 0;
			goto fail;
		}
	}
	return 0;
fail:
	vduse_err("%s: queue %u: start refused by backend: %s", dev->name,
		  vq->index, strerror(-ret));
	set_kickfd(vq, VDUSE_EVENTFD_DEASSIGN);
	vduse_iotlb_lock(&vq->iotlb);
	vq->started = false;
	if (behind)
		vq->left_behind = true;
	else
		vduse_iotlb_unpin_all(&vq->iotlb);
	vduse_iotlb_unlock(&vq->iotlb);
	return ret;
}

void vduse_vq_stop(struct vduse_vq *vq)
{
	struct vduse_device *dev = vq->dev;
	bool behind = false;

	if (!vq->started)
		return;
	if (dev->hooks && dev->hooks->stop)
		behind = dev->hooks->stop(dev->hooks_data, vq) > 0;
	if (!behind && dev->ops.queue_stop)
		dev->ops.queue_stop(dev, vq);
	if (behind)
		vduse_warn("%s: queue %u stopped without its thread; its %u requests in flight keep their buffers mapped until it ends",
			   dev->name, vq->index, vq->inflight);
	else if (vq->inflight)
		vduse_warn("%s: queue %u stopped with %u requests in flight",
			   dev->name, vq->index, vq->inflight);
	set_kickfd(vq, VDUSE_EVENTFD_DEASSIGN);
	vduse_vq_kick_drain(vq);

	vduse_iotlb_lock(&vq->iotlb);
	if (vq->nr_deferred)
		vduse_warn("%s: queue %u stopped with %u completions it could not publish",
			   dev->name, vq->index, vq->nr_deferred);
	vq->nr_deferred = 0;
	vq->started = false;
	/* What it held was completed or abandoned. */
	vduse_ilog_vq_stop(vq);
	vq->rings_pending = false;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	vq->num = 0;
	vq->inflight = 0;
	vduse_iotlb_invalidate(&vq->iotlb, 0, UINT64_MAX);
	/*
	 * Once queue_stop returned the backend holds no element any more.
	 * A thread left behind still may: pops and pushes now fail (-EIO),
	 * and what its elements point at stays mapped until it has ended.
	 */
	if (behind)
		vq->left_behind = true;
	else
		vduse_iotlb_unpin_all(&vq->iotlb);
	vduse_iotlb_reclaim(&vq->iotlb);
	vduse_iotlb_unlock(&vq->iotlb);
	vduse_dbg("%s: queue %u stopped", dev->name, vq->index);
}

void vduse_vq_left_behind_gone(struct vduse_vq *vq)
{
	struct vduse_device *dev = vq->dev;

	vduse_iotlb_lock(&vq->iotlb);
	vq->left_behind = false;
	vduse_iotlb_unpin_all(&vq->iotlb);
	vduse_iotlb_unlock(&vq->iotlb);
	if (dev->ops.queue_stop)
		dev->ops.queue_stop(dev, vq);
	vduse_dbg("%s: queue %u: the thread left behind has ended", dev->name,
		  vq->index);
}

void vduse_vq_fail(struct vduse_vq *vq, int err, const char *fmt, ...)
{
	struct vduse_device *dev = vq->dev;
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (vq->broken)
		return;
	vq->broken = true;
	vq->fail_err = err < 0 ? err : -EIO;
	vduse_err("%s: queue %u is broken: %s", dev->name, vq->index, why);
}

int vduse_vq_take_failure(struct vduse_vq *vq)
{
	int err = vq->fail_err;

	vq->fail_err = 0;
	return err;
}

void vduse_vq_report_failure(struct vduse_vq *vq, int err)
{
	struct vduse_device *dev = vq->dev;

	if (err && dev->ops.queue_error)
		dev->ops.queue_error(dev, vq, err);
}

void vduse_vq_self_kick(struct vduse_vq *vq)
{
	uint64_t one = 1;
	ssize_t ret = vduse_sys->write(vq->kick_fd, &one, sizeof(one));

	/* -EAGAIN: the counter is full, so a wake-up is pending anyway. */
	if (ret < 0 && ret != -EAGAIN)
		vduse_err("%s: queue %u: cannot signal the kick fd: %s",
			  vq->dev->name, vq->index, strerror((int)-ret));
}

int vduse_vq_kick_fd(const struct vduse_vq *vq)
{
	return vq->kick_fd;
}

int vduse_vq_kick_drain(struct vduse_vq *vq)
{
	uint64_t v;
	ssize_t ret = vduse_sys->read(vq->kick_fd, &v, sizeof(v));

	if (ret == -EAGAIN || ret == sizeof(v))
		return 0;
	vduse_err("%s: queue %u: reading its kick fd: %s", vq->dev->name,
		  vq->index, ret < 0 ? strerror((int)-ret) : "short read");
	return ret < 0 ? (int)ret : -EIO;
}

struct vduse_device *vduse_vq_device(const struct vduse_vq *vq)
{
	return vq->dev;
}

unsigned int vduse_vq_index(const struct vduse_vq *vq)
{
	return vq->index;
}

unsigned int vduse_vq_size(const struct vduse_vq *vq)
{
	return vq->started ? vq->num : 0;
}

bool vduse_vq_started(const struct vduse_vq *vq)
{
	return vq->started;
}

bool vduse_vq_broken(const struct vduse_vq *vq)
{
	return vq->broken;
}

unsigned int vduse_vq_inflight(const struct vduse_vq *vq)
{
	return vq->inflight;
}

void vduse_vq_set_priv(struct vduse_vq *vq, void *priv)
{
	vq->priv = priv;
}

void *vduse_vq_priv(const struct vduse_vq *vq)
{
	return vq->priv;
}
