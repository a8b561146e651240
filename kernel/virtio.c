// SPDX-License-Identifier: GPL-2.0-only
/*
 * vduse_shim: a virtio transport without a vDPA bus.
 *
 * On attach the shim registers a virtio device whose parent is the
 * /dev/vduse/$NAME class device.  That device's DMA ops are the IOVA domain,
 * so the rings (coherent) and the buffers (streaming, bounced) of the driver
 * all live in memory the daemon can mmap.  Status changes are a SET_STATUS
 * round trip to the daemon, notifications signal the kick eventfd and
 * interrupts come from VDUSE_VQ_INJECT_IRQ.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/dma-map-ops.h>
#include <linux/eventfd.h>
#include <linux/module.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "vduse_shim.h"

struct vduse_shim_vdev {
	struct virtio_device vdev;
	struct vduse_shim_dev *dev;
};

static struct vduse_shim_dev *to_shim(struct virtio_device *vdev)
{
	return container_of(vdev, struct vduse_shim_vdev, vdev)->dev;
}

static struct vduse_shim_domain *dma_domain(struct device *d)
{
	struct vduse_shim_dev *dev = dev_get_drvdata(d);

	return dev ? dev->domain : NULL;
}

/* ------------------------------------------------------------------------ */
/* DMA through the domain                                                     */

static dma_addr_t shim_map_page(struct device *d, struct page *page,
				unsigned long offset, size_t size,
				enum dma_data_direction dir,
				unsigned long attrs)
{
	struct vduse_shim_domain *domain = dma_domain(d);

	if (!domain)
		return DMA_MAPPING_ERROR;
	return vduse_shim_domain_map(domain, page_to_phys(page) + offset, size,
				     dir);
}

static void shim_unmap_page(struct device *d, dma_addr_t iova, size_t size,
			    enum dma_data_direction dir, unsigned long attrs)
{
	struct vduse_shim_domain *domain = dma_domain(d);

	if (domain)
		vduse_shim_domain_unmap(domain, iova, size, dir,
					!(attrs & DMA_ATTR_SKIP_CPU_SYNC));
}

static int shim_map_sg(struct device *d, struct scatterlist *sgl, int nents,
		       enum dma_data_direction dir, unsigned long attrs)
{
	struct scatterlist *sg;
	int i;

	for_each_sg(sgl, sg, nents, i) {
		sg->dma_address = shim_map_page(d, sg_page(sg), sg->offset,
						sg->length, dir, attrs);
		if (sg->dma_address == DMA_MAPPING_ERROR)
			goto err;
		sg_dma_len(sg) = sg->length;
	}
	return nents;
err:
	/* Nothing was transferred: copy nothing back into the buffers. */
	nents = i;
	for_each_sg(sgl, sg, nents, i)
		shim_unmap_page(d, sg->dma_address, sg_dma_len(sg), dir,
				attrs | DMA_ATTR_SKIP_CPU_SYNC);
	return -ENOMEM;
}

static void shim_unmap_sg(struct device *d, struct scatterlist *sgl,
			  int nents, enum dma_data_direction dir,
			  unsigned long attrs)
{
	struct scatterlist *sg;
	int i;

	for_each_sg(sgl, sg, nents, i)
		shim_unmap_page(d, sg->dma_address, sg_dma_len(sg), dir, attrs);
}

static void shim_sync_for_cpu(struct device *d, dma_addr_t iova, size_t size,
			      enum dma_data_direction dir)
{
	struct vduse_shim_domain *domain = dma_domain(d);

	if (domain && (dir == DMA_FROM_DEVICE || dir == DMA_BIDIRECTIONAL))
		vduse_shim_domain_sync(domain, iova, size, false);
}

static void shim_sync_for_device(struct device *d, dma_addr_t iova,
				 size_t size, enum dma_data_direction dir)
{
	struct vduse_shim_domain *domain = dma_domain(d);

	if (domain && (dir == DMA_TO_DEVICE || dir == DMA_BIDIRECTIONAL))
		vduse_shim_domain_sync(domain, iova, size, true);
}

static void *shim_alloc(struct device *d, size_t size, dma_addr_t *iova,
			gfp_t gfp, unsigned long attrs)
{
	struct vduse_shim_domain *domain = dma_domain(d);

	*iova = DMA_MAPPING_ERROR;
	if (!domain)
		return NULL;
	return vduse_shim_domain_alloc_coherent(domain, size, iova, gfp);
}

static void shim_free(struct device *d, size_t size, void *vaddr,
		      dma_addr_t iova, unsigned long attrs)
{
	struct vduse_shim_domain *domain = dma_domain(d);

	if (domain)
		vduse_shim_domain_free_coherent(domain, size, vaddr, iova);
}

static size_t shim_max_mapping_size(struct device *d)
{
	struct vduse_shim_domain *domain = dma_domain(d);

	/* Keep single mappings well below the bounce region. */
	return domain ? vduse_shim_domain_bounce_size(domain) / 4 : PAGE_SIZE;
}

const struct dma_map_ops vduse_shim_dma_ops = {
	.alloc			= shim_alloc,
	.free			= shim_free,
	.map_page		= shim_map_page,
	.unmap_page		= shim_unmap_page,
	.map_sg			= shim_map_sg,
	.unmap_sg		= shim_unmap_sg,
	.sync_single_for_cpu	= shim_sync_for_cpu,
	.sync_single_for_device	= shim_sync_for_device,
	.max_mapping_size	= shim_max_mapping_size,
};

/* ------------------------------------------------------------------------ */
/* virtio_config_ops                                                          */

static void shim_get(struct virtio_device *vdev, unsigned int offset,
		     void *buf, unsigned int len)
{
	struct vduse_shim_dev *dev = to_shim(vdev);
	unsigned long flags;

	memset(buf, 0, len);
	if (offset >= dev->config_size)
		return;
	len = min(len, dev->config_size - offset);
	spin_lock_irqsave(&dev->config_lock, flags);
	memcpy(buf, dev->config + offset, len);
	spin_unlock_irqrestore(&dev->config_lock, flags);
}

static void shim_set(struct virtio_device *vdev, unsigned int offset,
		     const void *buf, unsigned int len)
{
	/* The config space is read-only, as in upstream VDUSE. */
}

static u32 shim_generation(struct virtio_device *vdev)
{
	return READ_ONCE(to_shim(vdev)->generation);
}

static u8 shim_get_status(struct virtio_device *vdev)
{
	return READ_ONCE(to_shim(vdev)->status);
}

static void shim_set_status(struct virtio_device *vdev, u8 status)
{
	struct vduse_shim_dev *dev = to_shim(vdev);

	if (!vduse_shim_msg_set_status(dev, status))
		WRITE_ONCE(dev->status, status);
}

static void shim_reset(struct virtio_device *vdev)
{
	struct vduse_shim_dev *dev = to_shim(vdev);

	/* A daemon that does not answer does not stop the reset. */
	vduse_shim_msg_set_status(dev, 0);
	vduse_shim_dev_reset(dev);
}

static bool shim_notify(struct virtqueue *vq)
{
	struct vduse_shim_dev *dev = to_shim(vq->vdev);
	struct vduse_shim_vq *svq = &dev->vqs[vq->index];
	unsigned long flags;

	spin_lock_irqsave(&svq->shadow_lock, flags);
	vduse_shim_vq_shadow_sync(svq, false);
	spin_unlock_irqrestore(&svq->shadow_lock, flags);

	if (vduse_shim_dev_dead(dev)) {
		vduse_shim_dev_fail_inflight(dev);
		return true;
	}
	if (!eventfd_signal_allowed())
		vduse_shim_vq_kick_later(svq);
	else
		vduse_shim_vq_kick(svq);
	return true;
}

static void shim_del_vq(struct vduse_shim_dev *dev, struct vduse_shim_vq *svq)
{
	struct virtqueue *vq;
	unsigned long flags;
	u16 *fail_heads;
	s16 *inflight;

	spin_lock_irqsave(&svq->irq_lock, flags);
	vq = svq->vq;
	svq->vq = NULL;
	svq->ready = false;
	spin_unlock_irqrestore(&svq->irq_lock, flags);

	/* Waits for a fail pass walking the ring. */
	mutex_lock(&svq->fail_lock);
	spin_lock_irqsave(&svq->shadow_lock, flags);
	inflight = svq->inflight;
	svq->inflight = NULL;
	svq->desc_va = NULL;
	svq->avail_va = NULL;
	svq->used_va = NULL;
	svq->shadow_num = 0;
	spin_unlock_irqrestore(&svq->shadow_lock, flags);
	fail_heads = svq->fail_heads;
	svq->fail_heads = NULL;
	mutex_unlock(&svq->fail_lock);
	kfree(inflight);
	kfree(fail_heads);

	flush_work(&svq->kick_work);
	if (vq)
		vring_del_virtqueue(vq);
}

static void shim_del_vqs(struct virtio_device *vdev)
{
	struct vduse_shim_dev *dev = to_shim(vdev);
	u32 i;

	for (i = 0; i < dev->vq_num; i++)
		shim_del_vq(dev, &dev->vqs[i]);
}

static int shim_setup_vq(struct virtio_device *vdev, unsigned int index,
			 vq_callback_t *callback, const char *name, bool ctx,
			 struct virtqueue **out)
{
	struct vduse_shim_dev *dev = to_shim(vdev);
	struct vduse_shim_vq *svq = &dev->vqs[index];
	struct vduse_shim_domain *domain = dev->domain;
	struct virtqueue *vq;
	unsigned long flags;
	unsigned int num;
	u16 *fail_heads;
	s16 *inflight;

	/*
	 * The used ring on a page of its own, whatever vq_align says (the
	 * daemon learns the rings' addresses from VQ_GET_INFO), so that the
	 * pages before it, the driver's, are read-only to the daemon.
	 */
	vduse_shim_domain_expect_ring(domain, svq->num_max, PAGE_SIZE);
	vq = vring_create_virtqueue(index, svq->num_max, PAGE_SIZE,
				    vdev, true, true, ctx,
				    shim_notify, callback, name);
	vduse_shim_domain_expect_ring(domain, 0, 0);
	if (!vq)
		return -ENOMEM;
	num = virtqueue_get_vring_size(vq);
	inflight = kcalloc(num, sizeof(*inflight), GFP_KERNEL);
	fail_heads = kcalloc(num, sizeof(*fail_heads), GFP_KERNEL);
	if (!inflight || !fail_heads) {
		kfree(inflight);
		kfree(fail_heads);
		vring_del_virtqueue(vq);
		return -ENOMEM;
	}

	mutex_lock(&svq->fail_lock);
	spin_lock_irqsave(&svq->shadow_lock, flags);
	svq->vdev = vdev;
	svq->num = num;
	svq->desc_va = vduse_shim_domain_kaddr(domain,
					       virtqueue_get_desc_addr(vq),
					       num * sizeof(struct vring_desc));
	svq->avail_va = vduse_shim_domain_kaddr(domain,
						virtqueue_get_avail_addr(vq),
						struct_size(svq->avail_va,
							    ring, num));
	/* A dead device writes avail_event, after the used ring. */
	svq->used_va = vduse_shim_domain_kaddr(domain,
					       virtqueue_get_used_addr(vq),
					       struct_size(svq->used_va,
							   ring, num) +
					       sizeof(__virtio16));
	svq->shadow_num = num;
	svq->shadow_avail = 0;
	svq->shadow_used = 0;
	if (svq->desc_va && svq->avail_va && svq->used_va) {
		svq->inflight = inflight;
		svq->fail_heads = fail_heads;
		inflight = NULL;
		fail_heads = NULL;
	}
	spin_unlock_irqrestore(&svq->shadow_lock, flags);
	mutex_unlock(&svq->fail_lock);
	kfree(inflight);
	kfree(fail_heads);

	spin_lock_irqsave(&svq->irq_lock, flags);
	svq->vq = vq;
	svq->desc_addr = virtqueue_get_desc_addr(vq);
	svq->driver_addr = virtqueue_get_avail_addr(vq);
	svq->device_addr = virtqueue_get_used_addr(vq);
	svq->ready = true;
	spin_unlock_irqrestore(&svq->irq_lock, flags);

	*out = vq;
	return 0;
}

static int shim_find_vqs(struct virtio_device *vdev, unsigned int nvqs,
			 struct virtqueue *vqs[], vq_callback_t *callbacks[],
			 const char * const names[], const bool *ctx,
			 struct irq_affinity *desc)
{
	struct vduse_shim_dev *dev = to_shim(vdev);
	unsigned int i, queue = 0;
	int ret;

	if (nvqs > dev->vq_num)
		return -ENOENT;
	for (i = 0; i < nvqs; i++) {
		if (!names[i]) {
			vqs[i] = NULL;
			continue;
		}
		ret = shim_setup_vq(vdev, queue, callbacks[i], names[i],
				    ctx ? ctx[i] : false, &vqs[i]);
		if (ret) {
			shim_del_vqs(vdev);
			return ret;
		}
		queue++;
	}
	return 0;
}

static u64 shim_get_features(struct virtio_device *vdev)
{
	/* Split rings only: the shim follows them when the daemon dies. */
	return to_shim(vdev)->device_features & ~BIT_ULL(VIRTIO_F_RING_PACKED);
}

static int shim_finalize_features(struct virtio_device *vdev)
{
	struct vduse_shim_dev *dev = to_shim(vdev);

	vring_transport_features(vdev);
	/* Without it the driver would hand out physical addresses. */
	if (!__virtio_test_bit(vdev, VIRTIO_F_ACCESS_PLATFORM))
		return -ENODEV;
	dev->driver_features = vdev->features;
	return 0;
}

static const char *shim_bus_name(struct virtio_device *vdev)
{
	return VDUSE_SHIM_MGMTDEV_NAME;
}

static const struct virtio_config_ops shim_config_ops = {
	.get			= shim_get,
	.set			= shim_set,
	.generation		= shim_generation,
	.get_status		= shim_get_status,
	.set_status		= shim_set_status,
	.reset			= shim_reset,
	.find_vqs		= shim_find_vqs,
	.del_vqs		= shim_del_vqs,
	.get_features		= shim_get_features,
	.finalize_features	= shim_finalize_features,
	.bus_name		= shim_bus_name,
};

static void shim_vdev_release(struct device *d)
{
	struct virtio_device *vdev = dev_to_virtio(d);

	kfree(container_of(vdev, struct vduse_shim_vdev, vdev));
}

int vduse_shim_vdev_register(struct vduse_shim_dev *dev)
{
	struct vduse_shim_vdev *sv;
	int ret;

	sv = kzalloc(sizeof(*sv), GFP_KERNEL);
	if (!sv)
		return -ENOMEM;
	sv->dev = dev;
	sv->vdev.dev.parent = dev->dev;
	sv->vdev.dev.release = shim_vdev_release;
	sv->vdev.config = &shim_config_ops;
	sv->vdev.id.device = dev->device_id;
	sv->vdev.id.vendor = dev->vendor_id;

	ret = register_virtio_device(&sv->vdev);
	if (ret) {
		put_device(&sv->vdev.dev);
		return ret;
	}
	mutex_lock(&dev->lock);
	dev->vdev = sv;
	mutex_unlock(&dev->lock);
	return 0;
}

void vduse_shim_vdev_unregister(struct vduse_shim_vdev *sv)
{
	unregister_virtio_device(&sv->vdev);
}

/* Called with dev->lock. */
void vduse_shim_vdev_config_changed(struct vduse_shim_dev *dev)
{
	lockdep_assert_held(&dev->lock);
	if (dev->vdev)
		virtio_config_changed(&dev->vdev->vdev);
}
