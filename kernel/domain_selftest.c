// SPDX-License-Identifier: GPL-2.0-only
/*
 * vduse_shim: the domain's selftest (debugfs "selftest", run by the VM
 * suite): a private domain is mapped the way a daemon maps one, and the
 * bounce region's promises are checked through the public domain calls
 * only: bounce data starts zeroed, unmaps and syncs that match no live
 * mapping are refused (copying and freeing nothing, the owner told once),
 * and a ring's driver areas are read-only to userspace while its used ring
 * is writable.  See domain.c for what those promises are.
 */
#include <linux/file.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "vduse_shim.h"

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
