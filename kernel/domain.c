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

/* The selftest's view of a domain, as a daemon would have it. */
struct selftest {
	struct vduse_shim_domain *domain;
	unsigned long uaddr;		/* an mmap of the whole bounce region */
	size_t size;
	u8 *page;			/* PAGE_SIZE of scratch */
	char *buf;
	size_t len;
	size_t off;
};

static void st_report(struct selftest *st, const char *what, bool ok)
{
	st->off += scnprintf(st->buf + st->off, st->len - st->off, "%s: %s\n",
			     what, ok ? "ok" : "FAIL");
}

/* The daemon writes @c over [iova, iova + n) of the bounce region. */
static bool st_dev_fill(struct selftest *st, u64 iova, size_t n, u8 c)
{
	while (n) {
		size_t k = min_t(size_t, n, PAGE_SIZE);

		memset(st->page, c, k);
		if (copy_to_user((void __user *)(st->uaddr + iova), st->page,
				 k))
			return false;
		iova += k;
		n -= k;
	}
	return true;
}

/* The daemon reads [iova, iova + n) and finds only @c there. */
static bool st_dev_sees(struct selftest *st, u64 iova, size_t n, u8 c)
{
	if (n > PAGE_SIZE ||
	    copy_from_user(st->page, (void __user *)(st->uaddr + iova), n))
		return false;
	return !memchr_inv(st->page, c, n);
}

/*
 * A reader's buffer gets only what the device wrote: a FROM_DEVICE mapping
 * starts zeroed in the bounce pages, whatever earlier requests left there,
 * and the daemon never sees the buffer's old contents.
 */
static int st_stale(struct selftest *st)
{
	const size_t n = 3000;
	bool ok_dev, ok_none, ok_half;
	dma_addr_t iova;
	u8 *r;

	r = kmalloc(n, GFP_KERNEL);
	if (!r)
		return -ENOMEM;

	/* Earlier requests left their data in every bounce page. */
	if (!st_dev_fill(st, 0, st->size, 0x33))
		goto fault;

	/* The device completes the read without writing anything. */
	memset(r, 0x77, n);
	iova = vduse_shim_domain_map(st->domain, virt_to_phys(r), n,
				     DMA_FROM_DEVICE);
	if (iova == DMA_MAPPING_ERROR)
		goto nomem;
	ok_dev = st_dev_sees(st, iova, n, 0);
	vduse_shim_domain_unmap(st->domain, iova, n, DMA_FROM_DEVICE, true);
	ok_none = !memchr_inv(r, 0, n);

	/* It writes the first half only. */
	if (!st_dev_fill(st, 0, st->size, 0x33))
		goto fault;
	memset(r, 0x77, n);
	iova = vduse_shim_domain_map(st->domain, virt_to_phys(r), n,
				     DMA_FROM_DEVICE);
	if (iova == DMA_MAPPING_ERROR)
		goto nomem;
	ok_half = st_dev_fill(st, iova, n / 2, 0x44);
	vduse_shim_domain_unmap(st->domain, iova, n, DMA_FROM_DEVICE, true);
	ok_half &= !memchr_inv(r, 0x44, n / 2) &&
		   !memchr_inv(r + n / 2, 0, n - n / 2);
	kfree(r);

	st_report(st, "stale-bounce-daemon-sees-zeros", ok_dev);
	st_report(st, "stale-bounce-reader-unwritten", ok_none);
	st_report(st, "stale-bounce-reader-half-written", ok_half);
	return 0;
fault:
	kfree(r);
	return -EFAULT;
nomem:
	kfree(r);
	return -ENOMEM;
}

/*
 * An unmap or a sync must match a live mapping: anything else is refused,
 * copies nothing and frees nothing, and the mapping it missed still works.
 */
static int st_refuse(struct selftest *st)
{
	const size_t n = 3000, guard = 64, g = VDUSE_SHIM_GRANULE;
	static const struct {
		const char *what;
		long diova;
		long dsize;
		enum dma_data_direction dir;
	} bad[] = {
		{ "unmap-size+1", 0, 1, DMA_FROM_DEVICE },
		{ "unmap-size-1", 0, -1, DMA_FROM_DEVICE },
		{ "unmap-iova+1", 1, -1, DMA_FROM_DEVICE },
		{ "unmap-iova+granule", g, -g, DMA_FROM_DEVICE },
		{ "unmap-iova-granule", -g, g, DMA_FROM_DEVICE },
		{ "unmap-to-device", 0, 0, DMA_TO_DEVICE },
		{ "unmap-bidirectional", 0, 0, DMA_BIDIRECTIONAL },
	};
	char what[64];
	dma_addr_t iova, i2, i3;
	bool ok;
	u8 *t;
	int i;

	t = kmalloc(n + guard, GFP_KERNEL);
	if (!t)
		return -ENOMEM;
	memset(t, 0x5c, n + guard);
	iova = vduse_shim_domain_map(st->domain, virt_to_phys(t), n,
				     DMA_FROM_DEVICE);
	if (iova == DMA_MAPPING_ERROR) {
		kfree(t);
		return -ENOMEM;
	}
	/* The daemon writes past the end too, within the last granule. */
	ok = st_dev_fill(st, iova, n + guard, 0xee);

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		vduse_shim_domain_unmap(st->domain, iova + bad[i].diova,
					n + bad[i].dsize, bad[i].dir, true);
		snprintf(what, sizeof(what), "refuse-%s", bad[i].what);
		st_report(st, what, ok && !memchr_inv(t, 0x5c, n + guard));
	}
	/* A sync past the recorded length, or inside the mapping. */
	vduse_shim_domain_sync(st->domain, iova, n + 1, false);
	st_report(st, "refuse-sync-size+1", !memchr_inv(t, 0x5c, n + guard));
	vduse_shim_domain_sync(st->domain, iova + g, n - g, false);
	st_report(st, "refuse-sync-iova+granule",
		  !memchr_inv(t, 0x5c, n + guard));
	/* ...and a sync of the mapping itself, which copies n bytes. */
	vduse_shim_domain_sync(st->domain, iova, n, false);
	st_report(st, "sync-exact", !memchr_inv(t, 0xee, n) &&
		  !memchr_inv(t + n, 0x5c, guard));

	/* The exact unmap still works after all that. */
	memset(t, 0x5c, n + guard);
	vduse_shim_domain_unmap(st->domain, iova, n, DMA_FROM_DEVICE, true);
	st_report(st, "unmap-exact-after-refusals",
		  !memchr_inv(t, 0xee, n) && !memchr_inv(t + n, 0x5c, guard));

	/*
	 * Unmapping it again frees nothing: were the IOVA range freed twice,
	 * the allocator would hand it out to two mappings at once.
	 */
	memset(t, 0x5c, n + guard);
	vduse_shim_domain_unmap(st->domain, iova, n, DMA_FROM_DEVICE, true);
	st_report(st, "refuse-unmap-twice", !memchr_inv(t, 0x5c, n + guard));
	i2 = vduse_shim_domain_map(st->domain, virt_to_phys(t), n,
				   DMA_FROM_DEVICE);
	i3 = vduse_shim_domain_map(st->domain, virt_to_phys(t), n,
				   DMA_FROM_DEVICE);
	st_report(st, "refuse-unmap-twice-no-double-free",
		  i2 != DMA_MAPPING_ERROR && i3 != DMA_MAPPING_ERROR &&
		  i2 != i3);
	if (i3 != DMA_MAPPING_ERROR)
		vduse_shim_domain_unmap(st->domain, i3, n, DMA_FROM_DEVICE, true);
	if (i2 != DMA_MAPPING_ERROR && i2 != i3)
		vduse_shim_domain_unmap(st->domain, i2, n, DMA_FROM_DEVICE, true);
	kfree(t);
	return 0;
}

/*
 * A ring's driver areas are read-only to the daemon and its used ring is
 * not: a write to the descriptor table (page not mapped yet) and to the
 * last byte of the avail ring (page mapped for reading first) faults and
 * changes nothing; one to the first byte of the used ring goes through;
 * IOTLB_GET_FD reports the two parts as two regions.
 */
static int st_ring(struct selftest *st)
{
	const unsigned int num = 256;
	const size_t rsize = vring_size(num, PAGE_SIZE);
	const size_t used = ALIGN(sizeof(struct vring_desc) * num +
				  sizeof(__virtio16) * (3 + num), PAGE_SIZE);
	struct vduse_iotlb_entry e;
	struct file *file;
	unsigned long ua;
	dma_addr_t iova;
	u8 *va, x = 0;
	bool ok;

	vduse_shim_domain_expect_ring(st->domain, num, PAGE_SIZE);
	va = vduse_shim_domain_alloc_coherent(st->domain, rsize, &iova,
					      GFP_KERNEL);
	vduse_shim_domain_expect_ring(st->domain, 0, 0);
	if (!va)
		return -ENOMEM;
	file = vduse_shim_domain_open(st->domain);
	if (IS_ERR(file)) {
		vduse_shim_domain_free_coherent(st->domain, rsize, va, iova);
		return PTR_ERR(file);
	}
	ua = vm_mmap(file, 0, PAGE_ALIGN(rsize), PROT_READ | PROT_WRITE,
		     MAP_SHARED, iova);
	fput(file);
	if (IS_ERR_VALUE(ua)) {
		vduse_shim_domain_free_coherent(st->domain, rsize, va, iova);
		return (int)ua;
	}

	x = 0x77;
	st_report(st, "ring-desc-write-refused",
		  copy_to_user((void __user *)ua, &x, 1) && !va[0]);
	ok = !copy_from_user(&x, (void __user *)(ua + used - 1), 1);
	x = 0x77;
	st_report(st, "ring-avail-write-refused",
		  ok && copy_to_user((void __user *)(ua + used - 1), &x, 1) &&
		  !va[used - 1]);
	ok = !copy_from_user(&x, (void __user *)(ua + used), 1);
	x = 0x77;
	st_report(st, "ring-used-writable",
		  ok && !copy_to_user((void __user *)(ua + used), &x, 1) &&
		  va[used] == 0x77);

	e = (struct vduse_iotlb_entry){ .start = iova + 1, .last = iova + 1 };
	ok = !vduse_shim_domain_lookup(st->domain, &e) && e.start == iova &&
	     e.offset == iova && e.last == iova + used - 1 &&
	     e.perm == VDUSE_ACCESS_RO;
	e = (struct vduse_iotlb_entry){ .start = iova + used,
					.last = iova + used };
	ok = ok && !vduse_shim_domain_lookup(st->domain, &e) &&
	     e.start == iova + used && e.offset == iova + used &&
	     e.last == iova + PAGE_ALIGN(rsize) - 1 &&
	     e.perm == VDUSE_ACCESS_RW;
	st_report(st, "ring-iotlb-ro-then-rw", ok);

	vm_munmap(ua, PAGE_ALIGN(rsize));
	vduse_shim_domain_free_coherent(st->domain, rsize, va, iova);
	return 0;
}

/* The owner's "device broken" callback: count the calls (refuse() locks). */
static void st_broken(void *priv)
{
	++*(int *)priv;
}

/*
 * Check, from debugfs, looking at the domain the way the daemon does:
 * through an mmap of the domain file in the reading process.  A bounce page
 * reads as zeros before any data was bounced into it; two mappings sharing
 * a bounce page each get their own data back when the "device" writes
 * through the mapping; a reader sees only what the device wrote; an unmap
 * or sync that matches no live mapping is refused; a ring's driver areas
 * refuse the daemon's writes and its used ring takes them.
 */
int vduse_shim_domain_selftest(char *buf, size_t len)
{
	const size_t size = 1 << 20, n = 200;
	struct vduse_shim_domain *domain;
	bool zero = true, shared, ok_a = false, ok_b = false;
	u8 *a = NULL, *b = NULL, *page = NULL;
	struct page *dirty[64];
	struct selftest st;
	unsigned long uaddr;
	int broken = 0;
	struct file *file;
	dma_addr_t ia, ib;
	size_t off = 0;
	int i, ret = 0;

	domain = vduse_shim_domain_create(size, NULL, st_broken, &broken);
	if (IS_ERR(domain))
		return PTR_ERR(domain);
	file = vduse_shim_domain_open(domain);
	if (IS_ERR(file)) {
		ret = PTR_ERR(file);
		goto out_domain;
	}
	uaddr = vm_mmap(file, 0, size, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	fput(file);
	if (IS_ERR_VALUE(uaddr)) {
		ret = (int)uaddr;
		goto out_domain;
	}
	a = kmalloc(n, GFP_KERNEL);
	b = kmalloc(n, GFP_KERNEL);
	page = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!a || !b || !page) {
		ret = -ENOMEM;
		goto out;
	}

	/*
	 * A page the daemon faults in first must be all zeros.  Recently freed
	 * pages come back first: leave some dirty ones behind, so that this
	 * fails if bounce pages were not zeroed (when the kernel does not zero
	 * every allocation anyway, init_on_alloc=0).
	 */
	for (i = 0; i < ARRAY_SIZE(dirty); i++) {
		dirty[i] = alloc_page(GFP_KERNEL);
		if (dirty[i])
			memset(page_address(dirty[i]), 0xa5, PAGE_SIZE);
	}
	for (i = 0; i < ARRAY_SIZE(dirty); i++)
		if (dirty[i])
			__free_page(dirty[i]);
	memset(page, 0x5a, PAGE_SIZE);
	if (copy_from_user(page, (void __user *)(uaddr + 5 * PAGE_SIZE),
			   PAGE_SIZE)) {
		ret = -EFAULT;
		goto out;
	}
	for (i = 0; i < PAGE_SIZE; i++)
		zero &= !page[i];
	off += scnprintf(buf + off, len - off,
			 "bounce-page-zeroed: %s (init_on_alloc %s)\n",
			 zero ? "ok" : "FAIL",
			 want_init_on_alloc(GFP_KERNEL) ? "on" : "off");

	/* Two small mappings land in one bounce page. */
	memset(a, 0xaa, n);
	memset(b, 0xbb, n);
	ia = vduse_shim_domain_map(domain, virt_to_phys(a), n,
				   DMA_BIDIRECTIONAL);
	ib = vduse_shim_domain_map(domain, virt_to_phys(b), n,
				   DMA_BIDIRECTIONAL);
	if (ia == DMA_MAPPING_ERROR || ib == DMA_MAPPING_ERROR) {
		ret = -ENOMEM;
		goto out;
	}
	shared = (ia >> PAGE_SHIFT) == (ib >> PAGE_SHIFT);

	/* The daemon sees each buffer at its IOVA... */
	if (!copy_from_user(page, (void __user *)(uaddr + ia), n))
		ok_a = !memchr_inv(page, 0xaa, n);
	if (!copy_from_user(page, (void __user *)(uaddr + ib), n))
		ok_b = !memchr_inv(page, 0xbb, n);
	/* ...and answers into it. */
	memset(page, 0x11, n);
	ok_a &= !copy_to_user((void __user *)(uaddr + ia), page, n);
	memset(page, 0x22, n);
	ok_b &= !copy_to_user((void __user *)(uaddr + ib), page, n);

	vduse_shim_domain_unmap(domain, ib, n, DMA_BIDIRECTIONAL, true);
	vduse_shim_domain_unmap(domain, ia, n, DMA_BIDIRECTIONAL, true);
	ok_a &= !memchr_inv(a, 0x11, n);
	ok_b &= !memchr_inv(b, 0x22, n);
	off += scnprintf(buf + off, len - off,
			 "shared-page: %s (iova %#llx and %#llx)\n",
			 shared ? "yes" : "no", (u64)ia, (u64)ib);
	off += scnprintf(buf + off, len - off, "shared-page-data: %s\n",
			 shared && ok_a && ok_b ? "ok" : "FAIL");

	st = (struct selftest){ .domain = domain, .uaddr = uaddr,
				.size = size, .page = page, .buf = buf,
				.len = len, .off = off };
	ret = st_stale(&st);
	if (!ret)
		ret = st_refuse(&st);
	if (!ret)
		ret = st_ring(&st);
	if (!ret) {
		st.off += scnprintf(buf + st.off, len - st.off,
				    "refused-broken-callback: %d\n", broken);
		ret = st.off;
	}
out:
	kfree(page);
	kfree(a);
	kfree(b);
	vm_munmap(uaddr, size);
out_domain:
	vduse_shim_domain_destroy(domain);
	return ret;
}

int vduse_shim_domain_init(void)
{
	return iova_cache_get();
}

void vduse_shim_domain_exit(void)
{
	iova_cache_put();
}
