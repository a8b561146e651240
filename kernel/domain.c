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
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/kref.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "vduse_shim.h"

#define NO_ORIG		((phys_addr_t)-1)
/* Streaming sizes below this many granules are rounded to a power of two
 * so that the IOVA allocator's per-CPU caches serve them.
 */
#define STREAM_CACHED_GRANULES	32

struct vduse_shim_domain {
	struct kref kref;
	u64 bounce_size;
	u64 iova_last;
	struct iova_domain stream_iovad;
	struct iova_domain coherent_iovad;
	struct page **bounce_pages;	/* one per page of the bounce region */
	phys_addr_t *orig;		/* one per granule of the bounce region */

	spinlock_t lock;		/* coherent, inv, priv */
	struct rb_root_cached coherent;
	vduse_shim_invalidate_t inv;
	void *priv;
};

struct vduse_shim_coherent {
	struct interval_tree_node node;	/* IOVA range */
	void *vaddr;
	size_t size;
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
		page = alloc_page(gfp | __GFP_ZERO | __GFP_NOWARN);
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

static bool stream_range_ok(struct vduse_shim_domain *domain, u64 iova,
			    size_t size)
{
	return size && iova < domain->bounce_size &&
	       size <= domain->bounce_size - iova;
}

dma_addr_t vduse_shim_domain_map(struct vduse_shim_domain *domain,
				 phys_addr_t pa, size_t size,
				 enum dma_data_direction dir)
{
	unsigned long n, pfn, i;
	u64 iova;

	if (!size || size > domain->bounce_size / 2)
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
	atomic_long_inc(&vduse_shim_stats.stream_maps);
	return iova;
}

void vduse_shim_domain_unmap(struct vduse_shim_domain *domain,
			     dma_addr_t iova, size_t size,
			     enum dma_data_direction dir)
{
	unsigned long pfn = iova >> VDUSE_SHIM_GRANULE_SHIFT;
	unsigned long i;

	if (WARN_ON_ONCE(!stream_range_ok(domain, iova, size) ||
			 (iova & (VDUSE_SHIM_GRANULE - 1))))
		return;

	if (dir == DMA_FROM_DEVICE || dir == DMA_BIDIRECTIONAL)
		bounce_range(domain, iova, size, false);
	for (i = 0; i < DIV_ROUND_UP(size, VDUSE_SHIM_GRANULE); i++)
		domain->orig[pfn + i] = NO_ORIG;
	free_iova_fast(&domain->stream_iovad, pfn, stream_granules(size));
	atomic_long_dec(&vduse_shim_stats.stream_maps);
}

void vduse_shim_domain_sync(struct vduse_shim_domain *domain,
			    dma_addr_t iova, size_t size, bool for_device)
{
	if (WARN_ON_ONCE(!stream_range_ok(domain, iova, size)))
		return;
	bounce_range(domain, iova, size, for_device);
}

void *vduse_shim_domain_alloc_coherent(struct vduse_shim_domain *domain,
				       size_t size, dma_addr_t *iova,
				       gfp_t gfp)
{
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
		to_coherent(node)->exposed = true;
		entry->offset = node->start;
		entry->start = node->start;
		entry->last = node->last;
		entry->perm = VDUSE_ACCESS_RW;
		ret = 0;
	}
	spin_unlock(&domain->lock);
	return ret;
}

static vm_fault_t domain_fault(struct vm_fault *vmf)
{
	struct vduse_shim_domain *domain = vmf->vma->vm_private_data;
	u64 iova = (u64)vmf->pgoff << PAGE_SHIFT;
	struct page *page = NULL;

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

static const struct vm_operations_struct domain_vm_ops = {
	.fault = domain_fault,
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

	for (i = 0; i < npages; i++) {
		if (domain->bounce_pages[i]) {
			__free_page(domain->bounce_pages[i]);
			atomic_long_dec(&vduse_shim_stats.bounce_pages);
		}
	}
	WARN_ON(!RB_EMPTY_ROOT(&domain->coherent.rb_root));
	put_iova_domain(&domain->stream_iovad);
	put_iova_domain(&domain->coherent_iovad);
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
	domain->priv = priv;
	spin_lock_init(&domain->lock);

	init_iova_domain(&domain->stream_iovad, VDUSE_SHIM_GRANULE, 1);
	init_iova_domain(&domain->coherent_iovad, PAGE_SIZE, npages);
	domain->bounce_pages = kvcalloc(npages, sizeof(struct page *),
					GFP_KERNEL);
	domain->orig = kvmalloc_array(ngran, sizeof(phys_addr_t), GFP_KERNEL);
	if (!domain->bounce_pages || !domain->orig ||
	    iova_domain_init_rcaches(&domain->stream_iovad) ||
	    iova_domain_init_rcaches(&domain->coherent_iovad))
		goto err;
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
	spin_lock(&domain->lock);
	domain->inv = NULL;
	domain->priv = NULL;
	spin_unlock(&domain->lock);
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

/*
 * Check, from debugfs, the two properties the RFC got wrong, looking at the
 * domain the way the daemon does: through an mmap of the domain file in the
 * reading process.  A bounce page reads as zeros before any data was bounced
 * into it, and two mappings sharing a bounce page each get their own data
 * back when the "device" writes through the mapping.
 */
int vduse_shim_domain_selftest(char *buf, size_t len)
{
	const size_t size = 1 << 20, n = 200;
	struct vduse_shim_domain *domain;
	bool zero = true, shared, ok_a = false, ok_b = false;
	u8 *a = NULL, *b = NULL, *page = NULL;
	struct page *dirty[64];
	unsigned long uaddr;
	struct file *file;
	dma_addr_t ia, ib;
	size_t off = 0;
	int i, ret = 0;

	domain = vduse_shim_domain_create(size, NULL, NULL);
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

	vduse_shim_domain_unmap(domain, ib, n, DMA_BIDIRECTIONAL);
	vduse_shim_domain_unmap(domain, ia, n, DMA_BIDIRECTIONAL);
	ok_a &= !memchr_inv(a, 0x11, n);
	ok_b &= !memchr_inv(b, 0x22, n);
	off += scnprintf(buf + off, len - off,
			 "shared-page: %s (iova %#llx and %#llx)\n",
			 shared ? "yes" : "no", (u64)ia, (u64)ib);
	off += scnprintf(buf + off, len - off, "shared-page-data: %s\n",
			 shared && ok_a && ok_b ? "ok" : "FAIL");
	ret = off;
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
