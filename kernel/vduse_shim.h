/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vduse_shim: VDUSE for kernels built without CONFIG_VDPA.
 *
 * Internal declarations shared by the files of the module.
 */
#ifndef VDUSE_SHIM_H
#define VDUSE_SHIM_H

#include <linux/atomic.h>
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/dma-direction.h>
#include <linux/interval_tree.h>
#include <linux/iova.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/virtio.h>
#include <linux/wait.h>
#include <linux/virtio_ring.h>
#include <linux/workqueue.h>
#include <uapi/linux/vduse.h>

#define VDUSE_SHIM_MGMTDEV_NAME		"vduse"
#define VDUSE_SHIM_MAX_DEVICES		4096
#define VDUSE_SHIM_MAX_VQS		256
#define VDUSE_SHIM_MAX_VQ_SIZE		32768
/* Size of the coherent region that follows the bounce region. */
#define VDUSE_SHIM_COHERENT_SIZE	(128ULL << 20)
/*
 * Streaming mappings are allocated in units of one granule, smaller than a
 * page, so that small buffers (request headers, status bytes) share bounce
 * pages.  Each granule remembers its own original address.
 */
#define VDUSE_SHIM_GRANULE_SHIFT	10
#define VDUSE_SHIM_GRANULE		BIT(VDUSE_SHIM_GRANULE_SHIFT)

/* Live object counters, shown in debugfs and checked by the tests. */
struct vduse_shim_stats {
	atomic_long_t devices;
	atomic_long_t attached;
	atomic_long_t domains;
	atomic_long_t bounce_pages;
	atomic_long_t coherent_allocs;
	atomic_long_t stream_maps;
	atomic_long_t msgs_timed_out;
	atomic_long_t iotlb_updates;
	atomic_long_t reqs_failed_by_shim;
};

extern struct vduse_shim_stats vduse_shim_stats;
extern unsigned int vduse_shim_msg_timeout;
extern unsigned int vduse_shim_reconnect_timeout;
extern unsigned int vduse_shim_test_detach_delay_ms;
extern unsigned int vduse_shim_test_gone_delay_ms;
extern unsigned long vduse_shim_bounce_size;
/* Fail work, deferred kicks, timeouts; WQ_MEM_RECLAIM (device.c). */
extern struct workqueue_struct *vduse_shim_wq;

static inline bool vduse_shim_all_zero(const void *p, size_t len)
{
	return !memchr_inv(p, 0, len);
}

/* ---- IOVA domain (domain.c) ---- */

struct vduse_shim_domain;

typedef void (*vduse_shim_invalidate_t)(void *priv, u64 start, u64 last);
/* Called once, with interrupts possibly disabled, under the domain's lock. */
typedef void (*vduse_shim_broken_t)(void *priv);

struct vduse_shim_domain *vduse_shim_domain_create(u64 bounce_size,
						   vduse_shim_invalidate_t inv,
						   vduse_shim_broken_t broken,
						   void *priv);
void vduse_shim_domain_destroy(struct vduse_shim_domain *domain);
void vduse_shim_domain_detach_owner(struct vduse_shim_domain *domain);
struct file *vduse_shim_domain_open(struct vduse_shim_domain *domain);
u64 vduse_shim_domain_bounce_size(struct vduse_shim_domain *domain);
int vduse_shim_domain_lookup(struct vduse_shim_domain *domain,
			     struct vduse_iotlb_entry *entry);

dma_addr_t vduse_shim_domain_map(struct vduse_shim_domain *domain,
				 phys_addr_t pa, size_t size,
				 enum dma_data_direction dir);
void vduse_shim_domain_unmap(struct vduse_shim_domain *domain,
			     dma_addr_t iova, size_t size,
			     enum dma_data_direction dir, bool copy);
void vduse_shim_domain_sync(struct vduse_shim_domain *domain,
			    dma_addr_t iova, size_t size, bool for_device);
void vduse_shim_domain_expect_ring(struct vduse_shim_domain *domain,
				   unsigned int num, unsigned int align);
void *vduse_shim_domain_alloc_coherent(struct vduse_shim_domain *domain,
				       size_t size, dma_addr_t *iova,
				       gfp_t gfp);
void vduse_shim_domain_free_coherent(struct vduse_shim_domain *domain,
				     size_t size, void *vaddr,
				     dma_addr_t iova);
void *vduse_shim_domain_kaddr(struct vduse_shim_domain *domain, u64 iova,
			      size_t len);
void *vduse_shim_domain_bounce_kaddr(struct vduse_shim_domain *domain,
				     u64 iova, size_t len);
int vduse_shim_domain_selftest(char *buf, size_t len);
int vduse_shim_domain_init(void);
void vduse_shim_domain_exit(void);

/* ---- devices (device.c: lifecycle; message.c, ring.c, ioctl.c) ---- */

struct vduse_shim_vq {
	u32 index;
	u16 num_max;

	spinlock_t kick_lock;		/* kickfd, kicked */
	struct eventfd_ctx *kickfd;
	bool kicked;
	struct work_struct kick_work;

	spinlock_t irq_lock;		/* vq, ready, ring addresses */
	struct virtqueue *vq;
	bool ready;
	u32 num;
	u64 desc_addr;
	u64 driver_addr;
	u64 device_addr;

	/*
	 * Shadow of the split ring: per head, how many times the driver made
	 * it available minus how many times the daemon used it.  Lets the
	 * shim answer the requests of a dead daemon (device.c states the
	 * bounds).  Lock order: see struct vduse_shim_dev.  fail_lock keeps
	 * the ring pointers below valid while a dead device's chains are
	 * walked without a spinlock; changing them takes both.
	 */
	struct mutex fail_lock;		/* fail_heads; ring pointers stay */
	u16 *fail_heads;		/* heads a fail pass answers */
	spinlock_t shadow_lock;		/* everything below */
	struct virtio_device *vdev;
	struct vring_desc *desc_va;
	struct vring_avail *avail_va;
	struct vring_used *used_va;	/* with avail_event after the ring */
	s16 *inflight;
	u32 shadow_num;			/* ring size, fixed while it lives */
	u16 shadow_avail;
	u16 shadow_used;
};

struct vduse_shim_msg {
	struct vduse_dev_request req;
	struct vduse_dev_response resp;
	struct list_head list;
	struct completion done;
	bool completed;
};

struct vduse_shim_vdev;

/*
 * A device.  Its lifetime is the kref: the idr holds one reference from
 * CREATE_DEV to DESTROY_DEV, an open /dev/vduse/$NAME one, and attach and
 * detach one each while they run; the last put cancels the works and frees
 * it.  The works and the virtio device hold none: destroy is refused while
 * the device is attached, attaching or open, and the free cancels the works.
 *
 * Lock order, outermost first:
 *   devs_lock (device.c) > dev->lock >
 *   vq->fail_lock > vq->irq_lock > vq->shadow_lock > dev->msg_lock;
 *   vq->kick_lock and dev->config_lock nest inside any of them and take
 *   nothing.  Nothing that waits for the daemon (a message, a driver probe
 *   or removal) runs under dev->lock, devs_lock or a spinlock.
 */
struct vduse_shim_dev {
	char name[VDUSE_NAME_MAX];
	int minor;
	struct device *dev;		/* /dev/vduse/$NAME; DMA parent */
	struct kref ref;

	struct mutex lock;		/* connected, attaching, vdev, domain */
	bool connected;
	bool attaching;
	bool destroying;
	struct vduse_shim_vdev *vdev;
	struct vduse_shim_domain *domain;

	u32 device_id;
	u32 vendor_id;
	u64 device_features;
	u64 driver_features;
	u32 vq_num;
	u32 vq_align;
	struct vduse_shim_vq *vqs;

	spinlock_t config_lock;		/* config contents */
	u32 config_size;
	void *config;

	u8 status;
	u32 generation;

	spinlock_t msg_lock;		/* lists, msg_next, broken, dead */
	struct list_head send_list;
	struct list_head recv_list;
	u32 msg_next;
	bool broken;
	bool dead;
	wait_queue_head_t waitq;

	struct delayed_work dead_work;	/* detach: the driver did not let go */
	struct delayed_work gone_work;	/* no daemon reopened in time */
	struct delayed_work fail_work;	/* re-arms itself while dead */
};

/* device.c: control device, create, destroy, attach, detach, open, close */
int vduse_shim_dev_init(void);
void vduse_shim_dev_exit(void);
int vduse_shim_attach(const char *name);
int vduse_shim_detach(const char *name);
int vduse_shim_walk_attached(long skip, void *arg,
			     int (*fn)(struct vduse_shim_dev *, void *));
int vduse_shim_with_attached(const char *name,
			     int (*fn)(struct vduse_shim_dev *, void *),
			     void *arg);
u16 vduse_shim_dev_max_vq_size(struct vduse_shim_dev *dev);

void vduse_shim_dev_put(struct vduse_shim_dev *dev);

/* message.c: SET_STATUS and UPDATE_IOTLB round trips, read/write/poll */
int vduse_shim_msg_set_status(struct vduse_shim_dev *dev, u8 status);
int vduse_shim_msg_update_iotlb(struct vduse_shim_dev *dev, u64 start,
				u64 last);
void vduse_shim_msg_invalidate(void *priv, u64 start, u64 last);
void vduse_shim_msg_broken(void *priv);
void vduse_shim_go_dead(struct vduse_shim_dev *dev, const char *why);
ssize_t vduse_shim_dev_read_iter(struct kiocb *iocb, struct iov_iter *to);
ssize_t vduse_shim_dev_write_iter(struct kiocb *iocb, struct iov_iter *from);
__poll_t vduse_shim_dev_poll(struct file *file, poll_table *wait);

/* ring.c: the shadow of the rings, a dead device's answers */
void vduse_shim_vq_shadow_sync(struct vduse_shim_vq *vq, bool used_too);
bool vduse_shim_dev_dead(struct vduse_shim_dev *dev);
void vduse_shim_dev_fail_inflight(struct vduse_shim_dev *dev);
void vduse_shim_fail_work_fn(struct work_struct *work);
int vduse_shim_vq_resume_index(struct vduse_shim_vq *vq, u16 *index);

/* ioctl.c: the ioctls of /dev/vduse/$NAME, kicks, reset */
long vduse_shim_dev_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg);
void vduse_shim_dev_reset(struct vduse_shim_dev *dev);
void vduse_shim_vq_kick(struct vduse_shim_vq *vq);
void vduse_shim_vq_kick_later(struct vduse_shim_vq *vq);
void vduse_shim_kick_work_fn(struct work_struct *work);
void vduse_shim_vq_clear_kickfd(struct vduse_shim_vq *vq);

/* ---- virtio transport (virtio.c) ---- */

extern const struct dma_map_ops vduse_shim_dma_ops;
int vduse_shim_vdev_register(struct vduse_shim_dev *dev);
void vduse_shim_vdev_unregister(struct vduse_shim_vdev *sv);
void vduse_shim_vdev_config_changed(struct vduse_shim_dev *dev);

/* ---- generic netlink (netlink.c) ---- */

int vduse_shim_netlink_init(void);
void vduse_shim_netlink_exit(void);

#endif /* VDUSE_SHIM_H */
