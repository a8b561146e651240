// SPDX-License-Identifier: GPL-2.0-only
/*
 * vduse_shim: the MMU-based IOVA domain.
 *
 * The IOVA space of a device has two parts:
 *
 *   [0, bounce_size)                 bounce region, for streaming mappings
 *   [bounce_size, bounce_size + 128M) coherent region, for dma_alloc_coherent
 *
 * Userspace gets the domain as anon-inode files (one per IOTLB_GET_FD, each
 * holding a reference on the domain and on the module); it mmaps them and
 * the mmap offset is the IOVA.  The device's own reference pins neither, so
 * the module can unload once no process holds a domain file.  The pages are
 * supplied on fault: bounce pages for the bounce region, the pages of the
 * coherent allocation for the coherent region.
 *
 * Streaming mappings never expose the caller's buffer: data is copied to a
 * bounce page on map and sync-for-device, and back on unmap and
 * sync-for-cpu.  Mappings are allocated in granules smaller than a page and
 * every granule records its own original address, so two mappings sharing a
 * bounce page each bounce to and from their own buffer.  Bounce pages are
 * zeroed when allocated and live as long as the domain, so the bounce
 * region's contents never change under a userspace mapping.  When a
 * coherent allocation that userspace looked up is freed, its owner is told
 * (UPDATE_IOTLB) before the IOVA range goes back to the allocator.
 *
 * The (iova, size, dir) of an unmap is not trusted: virtio_ring finds the
 * descriptors of a chain by following NEXT flags in the ring, which the
 * daemon writes, so it can make the driver unmap an IOVA twice or one that
 * belongs to another request.  Every live streaming mapping is recorded at
 * its first granule (length and direction, in maps[]), and an unmap or sync
 * that does not match a live mapping is refused: it copies nothing and frees
 * nothing, and the owner is told once (the device is then broken).  An
 * unmap claims its record with cmpxchg, so two unmaps of one mapping cannot
 * both free it.  Copies never go past the recorded length.
 *
 * The driver areas of a ring (descriptor table and avail ring) are read-only
 * to userspace: a device only reads them, and a daemon that rewrote them
 * could hide requests from the driver and from the shim (avail->idx moved
 * past the ring) or make the driver's own chain walks run away (NEXT flags).
 * The shim says which coherent allocation is a ring, and how many queue
 * entries it holds, before virtio_ring allocates it (domain_expect_ring), so
 * the allocation is read-only up to the used ring (on a page of its own)
 * from the moment userspace can see it.  IOTLB_GET_FD reports the two parts
 * as two regions (VDUSE_ACCESS_RO, then RW), and the mapping refuses writes
 * to the first part with SIGBUS: a write fault on a page not mapped yet, and
 * a write to a page mapped for reading (page_mkwrite: the mapping is
 * write-notified, so every page starts read-only in the page tables).
 *
 * A FROM_DEVICE mapping starts zeroed in the bounce pages, so a reader gets
 * zeros where the device wrote nothing, never what earlier requests left in
 * the page; the reader's buffer is not copied in (the daemon must not see
 * its old contents).
 *
 * Locks: domain->lock (coherent tree, owner callbacks, broken) nests outside
 * the owner's locks taken by its callbacks (vduse_shim_dev.msg_lock).  It is
 * taken with interrupts disabled only by refuse(), which unmaps can reach
 * from under virtqueue locks; nothing takes it in interrupt context.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/kref.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "vduse_shim.h"

#define NO_ORIG		((phys_addr_t)-1)
/* Streaming sizes below this many granules are rounded to a power of two
 * so that the IOVA allocator's per-CPU caches serve them.
 */
#define STREAM_CACHED_GRANULES	32

/*
 * maps[g] for the first granule g of a live streaming mapping: its length
 * and direction; 0 for every other granule.  A mapping is at most half the
 * bounce region (at most 512 MiB), so the length fits below the direction.
 */
#define MAP_DIR_SHIFT	30
#define MAP_LEN_MASK	(BIT(MAP_DIR_SHIFT) - 1)

struct vduse_shim_domain {
	struct kref kref;
	u64 bounce_size;
	u64 iova_last;
	struct iova_domain stream_iovad;
	struct iova_domain coherent_iovad;
	struct page **bounce_pages;	/* one per page of the bounce region */
	phys_addr_t *orig;		/* one per granule of the bounce region */
	u32 *maps;			/* one per granule, see MAP_DIR_SHIFT */

	spinlock_t lock;		/* coherent, inv, broken_fn, priv, broken */
	struct rb_root_cached coherent;
	vduse_shim_invalidate_t inv;
	vduse_shim_broken_t broken_fn;
	void *priv;
	bool broken;

	/* The next ring's entries and alignment (domain_expect_ring); 0: none. */
	unsigned int ring_num;
	unsigned int ring_align;

	/* put_iova_domain() only after iova_domain_init_rcaches() worked. */
	bool stream_rcaches;
	bool coherent_rcaches;
};

struct vduse_shim_coherent {
	struct interval_tree_node node;	/* IOVA range */
	void *vaddr;
	size_t size;
	size_t ro_len;			/* bytes userspace may only read */
	bool exposed;			/* returned by IOTLB_GET_FD */
};

static struct vduse_shim_coherent *to_coherent(struct interval_tree_node *n)
{
	return container_of(n, struct vduse_shim_coherent, node);
}

static unsigned long stream_granules(size_t size)
{
	unsigned long n = DIV_ROUND_UP(size, VDUSE_SHIM_GRANULE);

	if (n < STREAM_CACHED_GRANULES)
		n = roundup_pow_of_two(n);
	return n;
}

static unsigned long stream_limit_pfn(struct vduse_shim_domain *domain)
{
	return (domain->bounce_size >> VDUSE_SHIM_GRANULE_SHIFT) - 1;
}

/* Make sure bounce pages back [iova, iova + size). */
static int bounce_populate(struct vduse_shim_domain *domain, u64 iova,
			   size_t size, gfp_t gfp)
{
	unsigned long i = iova >> PAGE_SHIFT;
	unsigned long last = (iova + size - 1) >> PAGE_SHIFT;

	for (; i <= last; i++) {
		struct page *page;

		if (READ_ONCE(domain->bounce_pages[i]))
			continue;
		/* Zeroed: userspace must never see stale kernel memory. */
		page = alloc_page(gfp | __GFP_ZERO | __GFP_NOWARN |
				  __GFP_ACCOUNT);
		if (!page)
			return -ENOMEM;
		if (cmpxchg(&domain->bounce_pages[i], NULL, page))
			__free_page(page);
		else
			atomic_long_inc(&vduse_shim_stats.bounce_pages);
	}
	return 0;
}

static void copy_orig(phys_addr_t orig, void *bounce, size_t len,
		      bool to_bounce)
{
	while (len) {
		unsigned int off = offset_in_page(orig);
		size_t n = min_t(size_t, len, PAGE_SIZE - off);
		void *va = kmap_local_page(pfn_to_page(PHYS_PFN(orig)));

		if (to_bounce)
			memcpy(bounce, va + off, n);
		else
			memcpy(va + off, bounce, n);
		kunmap_local(va);
		orig += n;
		bounce += n;
		len -= n;
	}
}

/* Copy between the original buffers and the bounce pages of a range. */
static void bounce_range(struct vduse_shim_domain *domain, u64 iova,
			 size_t size, bool to_bounce)
{
	while (size) {
		unsigned long g = iova >> VDUSE_SHIM_GRANULE_SHIFT;
		unsigned int goff = iova & (VDUSE_SHIM_GRANULE - 1);
		size_t n = min_t(size_t, size, VDUSE_SHIM_GRANULE - goff);
		struct page *page;
		phys_addr_t orig;

		page = READ_ONCE(domain->bounce_pages[iova >> PAGE_SHIFT]);
		orig = domain->orig[g];
		if (WARN_ON_ONCE(!page || orig == NO_ORIG))
			return;
		copy_orig(orig + goff, page_address(page) + offset_in_page(iova),
			  n, to_bounce);
		iova += n;
		size -= n;
	}
}

/* Zero the bounce pages of a range (populated). */
static void bounce_zero(struct vduse_shim_domain *domain, u64 iova,
			size_t size)
{
	while (size) {
		unsigned int off = offset_in_page(iova);
		size_t n = min_t(size_t, size, PAGE_SIZE - off);
		struct page *page;

		page = READ_ONCE(domain->bounce_pages[iova >> PAGE_SHIFT]);
		memset(page_address(page) + off, 0, n);
		iova += n;
		size -= n;
	}
}

static u32 map_record(size_t size, enum dma_data_direction dir)
{
	return (u32)size | (u32)dir << MAP_DIR_SHIFT;
}

static size_t map_len(u32 rec)
{
	return rec & MAP_LEN_MASK;
}

static enum dma_data_direction map_dir(u32 rec)
{
	return rec >> MAP_DIR_SHIFT;
}

/*
 * The record of the live mapping that starts at @iova, or 0.  Acquire: the
 * mapping's orig[] and bounce data are visible once its record is.
 */
static u32 map_lookup(struct vduse_shim_domain *domain, u64 iova)
{
	if (iova >= domain->bounce_size || (iova & (VDUSE_SHIM_GRANULE - 1)))
		return 0;
	return smp_load_acquire(&domain->maps[iova >> VDUSE_SHIM_GRANULE_SHIFT]);
}

/*
 * An unmap or a sync that matches no live mapping: the driver was made to
 * use an IOVA it no longer owns (or never did).  Warn once, and tell the
 * owner, which breaks the device.
 */
static void refuse(struct vduse_shim_domain *domain, const char *op,
		   u64 iova, size_t size, int dir)
{
	unsigned long flags;

	spin_lock_irqsave(&domain->lock, flags);
	if (!domain->broken) {
		domain->broken = true;
		pr_warn("%s of iova %#llx size %zu dir %d matches no live mapping: refused, device broken\n",
			op, iova, size, dir);
		if (domain->broken_fn)
			domain->broken_fn(domain->priv);
	}
	spin_unlock_irqrestore(&domain->lock, flags);
}

dma_addr_t vduse_shim_domain_map(struct vduse_shim_domain *domain,
				 phys_addr_t pa, size_t size,
				 enum dma_data_direction dir)
{
	unsigned long n, pfn, i;
	u64 iova;

	if (!size || size > domain->bounce_size / 2 || size > MAP_LEN_MASK ||
	    !valid_dma_direction(dir))
		return DMA_MAPPING_ERROR;

	n = stream_granules(size);
	pfn = alloc_iova_fast(&domain->stream_iovad, n,
			      stream_limit_pfn(domain), true);
	if (!pfn)
		return DMA_MAPPING_ERROR;
	iova = (u64)pfn << VDUSE_SHIM_GRANULE_SHIFT;

	if (bounce_populate(domain, iova, size, GFP_ATOMIC)) {
		free_iova_fast(&domain->stream_iovad, pfn, n);
		return DMA_MAPPING_ERROR;
	}
	for (i = 0; i < DIV_ROUND_UP(size, VDUSE_SHIM_GRANULE); i++)
		domain->orig[pfn + i] = pa + i * VDUSE_SHIM_GRANULE;

	if (dir == DMA_TO_DEVICE || dir == DMA_BIDIRECTIONAL)
		bounce_range(domain, iova, size, true);
	else
		bounce_zero(domain, iova, size);
	atomic_long_inc(&vduse_shim_stats.stream_maps);
	/* Live from here on: pairs with map_lookup(). */
	smp_store_release(&domain->maps[pfn], map_record(size, dir));
	return iova;
}

/* @copy: copy the device's data back (false when a map_sg failed). */
void vduse_shim_domain_unmap(struct vduse_shim_domain *domain,
			     dma_addr_t iova, size_t size,
			     enum dma_data_direction dir, bool copy)
{
	unsigned long pfn = iova >> VDUSE_SHIM_GRANULE_SHIFT;
	unsigned long i;
	u32 rec;

	/* Exactly a live mapping, and only one unmap may claim it. */
	rec = map_lookup(domain, iova);
	if (!rec || map_len(rec) != size || map_dir(rec) != dir ||
	    cmpxchg(&domain->maps[pfn], rec, 0) != rec) {
		refuse(domain, "unmap", iova, size, dir);
		return;
	}

	if (copy && (dir == DMA_FROM_DEVICE || dir == DMA_BIDIRECTIONAL))
		bounce_range(domain, iova, size, false);
	for (i = 0; i < DIV_ROUND_UP(size, VDUSE_SHIM_GRANULE); i++)
		domain->orig[pfn + i] = NO_ORIG;
	free_iova_fast(&domain->stream_iovad, pfn, stream_granules(size));
	atomic_long_dec(&vduse_shim_stats.stream_maps);
}

/*
 * A sync starts at a live mapping, in a direction the mapping allows, and
 * covers at most its length (the DMA API allows less).
 */
void vduse_shim_domain_sync(struct vduse_shim_domain *domain,
			    dma_addr_t iova, size_t size, bool for_device)
{
	u32 rec = map_lookup(domain, iova);
	enum dma_data_direction need;

	need = for_device ? DMA_TO_DEVICE : DMA_FROM_DEVICE;
	if (!rec || !size || size > map_len(rec) ||
	    (map_dir(rec) != need && map_dir(rec) != DMA_BIDIRECTIONAL)) {
		refuse(domain, for_device ? "sync for device" : "sync for cpu",
		       iova, size, need);
		return;
	}
	bounce_range(domain, iova, size, for_device);
}

/*
 * The shim is about to create a ring of at most @num entries, its used ring
 * aligned to @align: the coherent allocation of a ring's size that follows
 * is that ring.  @num 0 ends this.
 */
void vduse_shim_domain_expect_ring(struct vduse_shim_domain *domain,
				   unsigned int num, unsigned int align)
{
	spin_lock(&domain->lock);
	domain->ring_num = num;
	domain->ring_align = align;
	spin_unlock(&domain->lock);
}

/*
 * The read-only part of an allocation of @size bytes: the whole pages
 * before the used ring when it is the expected ring.  virtio_ring (6.1)
 * allocates vring_size(n, align) bytes, halving n from the queue size
 * while the allocation fails.
 */
static size_t ring_ro_len(struct vduse_shim_domain *domain, size_t size)
{
	unsigned int n, num, align;

	spin_lock(&domain->lock);
	num = domain->ring_num;
	align = domain->ring_align;
	spin_unlock(&domain->lock);
	for (n = num; n; n /= 2) {
		if (vring_size(n, align) == size)
			return round_down(ALIGN(sizeof(struct vring_desc) * n +
						sizeof(__virtio16) * (3 + n),
						align), PAGE_SIZE);
	}
	return 0;
}

void *vduse_shim_domain_alloc_coherent(struct vduse_shim_domain *domain,
				       size_t size, dma_addr_t *iova,
				       gfp_t gfp)
{
	size_t ro_len = ring_ro_len(domain, size);
	struct vduse_shim_coherent *c;
	unsigned long pfn, n;

	*iova = DMA_MAPPING_ERROR;
	size = PAGE_ALIGN(size);
	if (!size || size > VDUSE_SHIM_COHERENT_SIZE / 2)
		return NULL;
	n = size >> PAGE_SHIFT;

	c = kzalloc(sizeof(*c), gfp);
	if (!c)
		return NULL;
	c->size = size;
	c->ro_len = ro_len;
	c->vaddr = alloc_pages_exact(size, gfp | __GFP_ZERO);
	if (!c->vaddr)
		goto err_free;
	pfn = alloc_iova_fast(&domain->coherent_iovad, n,
			      domain->iova_last >> PAGE_SHIFT, true);
	if (!pfn)
		goto err_pages;

	c->node.start = (u64)pfn << PAGE_SHIFT;
	c->node.last = c->node.start + size - 1;
	spin_lock(&domain->lock);
	interval_tree_insert(&c->node, &domain->coherent);
	spin_unlock(&domain->lock);

	atomic_long_inc(&vduse_shim_stats.coherent_allocs);
	*iova = c->node.start;
	return c->vaddr;

err_pages:
	free_pages_exact(c->vaddr, size);
err_free:
	kfree(c);
	return NULL;
}

void vduse_shim_domain_free_coherent(struct vduse_shim_domain *domain,
				     size_t size, void *vaddr,
				     dma_addr_t iova)
{
	struct interval_tree_node *node;
	struct vduse_shim_coherent *c = NULL;
	vduse_shim_invalidate_t inv = NULL;
	void *priv = NULL;

	spin_lock(&domain->lock);
	node = interval_tree_iter_first(&domain->coherent, iova, iova);
	if (node && node->start == iova) {
		c = to_coherent(node);
		interval_tree_remove(node, &domain->coherent);
		if (c->exposed) {
			inv = domain->inv;
			priv = domain->priv;
		}
	}
	spin_unlock(&domain->lock);
	if (WARN_ON_ONCE(!c || c->vaddr != vaddr))
		return;

	/*
	 * Userspace may have this range mapped: tell it before the range can
	 * be handed out again.  Its existing mapping keeps a reference on the
	 * old pages, so it can never see memory reused by the kernel.
	 */
	if (inv)
		inv(priv, c->node.start, c->node.last);

	free_pages_exact(c->vaddr, c->size);
	free_iova_fast(&domain->coherent_iovad, iova >> PAGE_SHIFT,
		       c->size >> PAGE_SHIFT);
	kfree(c);
	atomic_long_dec(&vduse_shim_stats.coherent_allocs);
}

/* Kernel address of a coherent range; NULL unless it lies in one allocation. */
void *vduse_shim_domain_kaddr(struct vduse_shim_domain *domain, u64 iova,
			      size_t len)
{
	struct interval_tree_node *node;
	void *va = NULL;

	if (!len || iova + len - 1 < iova)
		return NULL;
	spin_lock(&domain->lock);
	node = interval_tree_iter_first(&domain->coherent, iova, iova);
	if (node && iova + len - 1 <= node->last)
		va = to_coherent(node)->vaddr + (iova - node->start);
	spin_unlock(&domain->lock);
	return va;
}

/* Kernel address of a bounce range; NULL unless it lies in one bounce page. */
void *vduse_shim_domain_bounce_kaddr(struct vduse_shim_domain *domain,
				     u64 iova, size_t len)
{
	struct page *page;

	if (!len || iova >= domain->bounce_size ||
	    offset_in_page(iova) + len > PAGE_SIZE)
		return NULL;
	page = READ_ONCE(domain->bounce_pages[iova >> PAGE_SHIFT]);
	return page ? page_address(page) + offset_in_page(iova) : NULL;
}

int vduse_shim_domain_lookup(struct vduse_shim_domain *domain,
			     struct vduse_iotlb_entry *entry)
{
	struct interval_tree_node *node;
	int ret = -EINVAL;

	if (entry->start > entry->last)
		return -EINVAL;

	if (entry->start < domain->bounce_size) {
		entry->offset = 0;
		entry->start = 0;
		entry->last = domain->bounce_size - 1;
		entry->perm = VDUSE_ACCESS_RW;
		return 0;
	}

	spin_lock(&domain->lock);
	node = interval_tree_iter_first(&domain->coherent, entry->start,
					entry->last);
	if (node) {
		struct vduse_shim_coherent *c = to_coherent(node);
		u64 rw = node->start + c->ro_len;

		c->exposed = true;
		/* A ring: its driver areas, then its used ring. */
		if (c->ro_len && entry->start < rw) {
			entry->start = node->start;
			entry->last = rw - 1;
			entry->perm = VDUSE_ACCESS_RO;
		} else {
			entry->start = c->ro_len ? rw : node->start;
			entry->last = node->last;
			entry->perm = VDUSE_ACCESS_RW;
		}
		entry->offset = entry->start;
		ret = 0;
	}
	spin_unlock(&domain->lock);
	return ret;
}

/* May userspace write the page at @iova (a ring's driver areas: no)? */
static bool domain_writable(struct vduse_shim_domain *domain, u64 iova)
{
	struct interval_tree_node *node;
	bool ok = true;

	if (iova < domain->bounce_size)
		return true;
	spin_lock(&domain->lock);
	node = interval_tree_iter_first(&domain->coherent, iova, iova);
	if (node && iova - node->start < to_coherent(node)->ro_len)
		ok = false;
	spin_unlock(&domain->lock);
	return ok;
}

static vm_fault_t domain_fault(struct vm_fault *vmf)
{
	struct vduse_shim_domain *domain = vmf->vma->vm_private_data;
	u64 iova = (u64)vmf->pgoff << PAGE_SHIFT;
	struct page *page = NULL;

	if ((vmf->flags & FAULT_FLAG_WRITE) && !domain_writable(domain, iova))
		return VM_FAULT_SIGBUS;

	if (iova < domain->bounce_size) {
		if (bounce_populate(domain, iova, PAGE_SIZE, GFP_KERNEL))
			return VM_FAULT_OOM;
		page = READ_ONCE(domain->bounce_pages[iova >> PAGE_SHIFT]);
		get_page(page);
	} else {
		struct interval_tree_node *node;

		spin_lock(&domain->lock);
		node = interval_tree_iter_first(&domain->coherent, iova, iova);
		if (node) {
			page = virt_to_page(to_coherent(node)->vaddr +
					    (iova - node->start));
			get_page(page);
		}
		spin_unlock(&domain->lock);
	}
	if (!page)
		return VM_FAULT_SIGBUS;
	vmf->page = page;
	return 0;
}

/*
 * A write to a page mapped for reading.  Having this makes the mapping
 * write-notified: pages are mapped read-only first, whatever the mmap's
 * protection, and come here before they become writable.  The page is
 * returned locked, as do_page_mkwrite() wants (our pages have no mapping).
 */
static vm_fault_t domain_page_mkwrite(struct vm_fault *vmf)
{
	struct vduse_shim_domain *domain = vmf->vma->vm_private_data;

	if (!domain_writable(domain, (u64)vmf->pgoff << PAGE_SHIFT))
		return VM_FAULT_SIGBUS;
	lock_page(vmf->page);
	return VM_FAULT_LOCKED;
}

static const struct vm_operations_struct domain_vm_ops = {
	.fault = domain_fault,
	.page_mkwrite = domain_page_mkwrite,
};

static int domain_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct vduse_shim_domain *domain = file->private_data;
	unsigned long pages = (domain->iova_last + 1) >> PAGE_SHIFT;

	/* The mapping must lie inside the IOVA space: offset is the IOVA. */
	if (vma->vm_pgoff > pages || vma_pages(vma) > pages - vma->vm_pgoff)
		return -EINVAL;
	vma->vm_flags |= VM_DONTDUMP | VM_DONTEXPAND;
	vma->vm_private_data = domain;
	vma->vm_ops = &domain_vm_ops;
	return 0;
}

static void domain_free(struct vduse_shim_domain *domain)
{
	unsigned long i, npages = domain->bounce_size >> PAGE_SHIFT;
	unsigned long ngran = domain->bounce_size >> VDUSE_SHIM_GRANULE_SHIFT;

	for (i = 0; domain->bounce_pages && i < npages; i++) {
		if (domain->bounce_pages[i]) {
			__free_page(domain->bounce_pages[i]);
			atomic_long_dec(&vduse_shim_stats.bounce_pages);
		}
	}
	/* Mappings whose unmap was refused, or never came. */
	for (i = 0; domain->maps && i < ngran; i++)
		if (domain->maps[i])
			atomic_long_dec(&vduse_shim_stats.stream_maps);
	WARN_ON(!RB_EMPTY_ROOT(&domain->coherent.rb_root));
	/*
	 * In 6.1 a failed iova_domain_init_rcaches() frees the rcaches but
	 * leaves the pointer, which put_iova_domain() would free again; an
	 * iova_domain that never allocated anything needs no put.
	 */
	if (domain->stream_rcaches)
		put_iova_domain(&domain->stream_iovad);
	if (domain->coherent_rcaches)
		put_iova_domain(&domain->coherent_iovad);
	kvfree(domain->maps);
	kvfree(domain->orig);
	kvfree(domain->bounce_pages);
	kfree(domain);
	atomic_long_dec(&vduse_shim_stats.domains);
}

static void domain_kref_release(struct kref *kref)
{
	domain_free(container_of(kref, struct vduse_shim_domain, kref));
}

static int domain_release(struct inode *inode, struct file *file)
{
	struct vduse_shim_domain *domain = file->private_data;

	kref_put(&domain->kref, domain_kref_release);
	return 0;
}

static const struct file_operations domain_fops = {
	.owner = THIS_MODULE,
	.mmap = domain_mmap,
	.release = domain_release,
	.llseek = noop_llseek,
};

struct vduse_shim_domain *vduse_shim_domain_create(u64 bounce_size,
						   vduse_shim_invalidate_t inv,
						   vduse_shim_broken_t broken,
						   void *priv)
{
	unsigned long npages = bounce_size >> PAGE_SHIFT;
	unsigned long ngran = bounce_size >> VDUSE_SHIM_GRANULE_SHIFT;
	struct vduse_shim_domain *domain;
	unsigned long i;

	if (!bounce_size || !PAGE_ALIGNED(bounce_size))
		return ERR_PTR(-EINVAL);

	domain = kzalloc(sizeof(*domain), GFP_KERNEL);
	if (!domain)
		return ERR_PTR(-ENOMEM);
	atomic_long_inc(&vduse_shim_stats.domains);
	domain->bounce_size = bounce_size;
	domain->iova_last = bounce_size + VDUSE_SHIM_COHERENT_SIZE - 1;
	domain->coherent = RB_ROOT_CACHED;
	kref_init(&domain->kref);
	domain->inv = inv;
	domain->broken_fn = broken;
	domain->priv = priv;
	spin_lock_init(&domain->lock);

	init_iova_domain(&domain->stream_iovad, VDUSE_SHIM_GRANULE, 1);
	init_iova_domain(&domain->coherent_iovad, PAGE_SIZE, npages);
	domain->bounce_pages = kvcalloc(npages, sizeof(struct page *),
					GFP_KERNEL);
	domain->orig = kvmalloc_array(ngran, sizeof(phys_addr_t), GFP_KERNEL);
	domain->maps = kvcalloc(ngran, sizeof(u32), GFP_KERNEL);
	if (!domain->bounce_pages || !domain->orig || !domain->maps)
		goto err;
	if (iova_domain_init_rcaches(&domain->stream_iovad))
		goto err;
	domain->stream_rcaches = true;
	if (iova_domain_init_rcaches(&domain->coherent_iovad))
		goto err;
	domain->coherent_rcaches = true;
	for (i = 0; i < ngran; i++)
		domain->orig[i] = NO_ORIG;
	return domain;

err:
	domain_free(domain);
	return ERR_PTR(-ENOMEM);
}

/* The owner goes away: no more invalidation callbacks. */
void vduse_shim_domain_detach_owner(struct vduse_shim_domain *domain)
{
	unsigned long flags;

	spin_lock_irqsave(&domain->lock, flags);
	domain->inv = NULL;
	domain->broken_fn = NULL;
	domain->priv = NULL;
	spin_unlock_irqrestore(&domain->lock, flags);
}

/* Drop the owner's reference; userspace's files may keep it alive. */
void vduse_shim_domain_destroy(struct vduse_shim_domain *domain)
{
	vduse_shim_domain_detach_owner(domain);
	kref_put(&domain->kref, domain_kref_release);
}

/* A new file for userspace to mmap the domain with. */
struct file *vduse_shim_domain_open(struct vduse_shim_domain *domain)
{
	struct file *file;

	kref_get(&domain->kref);
	file = anon_inode_getfile("[vduse-domain]", &domain_fops, domain,
				  O_RDWR);
	if (IS_ERR(file))
		kref_put(&domain->kref, domain_kref_release);
	return file;
}

u64 vduse_shim_domain_bounce_size(struct vduse_shim_domain *domain)
{
	return domain->bounce_size;
}

int vduse_shim_domain_init(void)
{
	return iova_cache_get();
}

void vduse_shim_domain_exit(void)
{
	iova_cache_put();
}
