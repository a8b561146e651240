// SPDX-License-Identifier: MIT
/*
 * fuzz-iotlb: the IOTLB cache (lib/iotlb.c) against a reference model.
 *
 * The input is a list of operations.  Some change what the fake kernel
 * maps (regions added and removed, each removal followed by the
 * invalidation a well-behaved kernel sends); the others translate through
 * the cache (lookup, ptr, iov, read) or invalidate ranges nothing changed.
 * The model is an array of the regions the kernel maps.  Every answer is
 * checked against it: the error (unmapped, wrong permission, split, too
 * many iovecs, wrap-around) and, on success, that every pointer returned is
 * the guest memory at that IOVA (a byte changed through the fake kernel's
 * view shows through the pointer) with the right length.  After each
 * operation the cache itself must be sorted, disjoint and hold only what
 * the kernel maps.  Pinned "elements" hold translations across all this:
 * each must stay the memory it was translated from until it is unpinned,
 * and with nothing pinned no retired mapping may stay mapped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "fake_kernel.h"
#include "fuzz_common.h"
#include "iotlb.h"
#include "libvduse.h"

#define MAX_REGIONS	32
#define MAX_OPS		128
#define BASE		0x100000ull
#define MAX_COPY	0x10000u
#define IOV_MAX_FZ	16

struct mregion {
	uint64_t start, last;
	unsigned int perm;
};

static struct {
	struct mregion r[MAX_REGIONS];
	unsigned int nr;
	unsigned int salt;
} model;

static uint8_t copy_buf[MAX_COPY];

/* The region holding @iova, NULL if none. */
static const struct mregion *model_find(uint64_t iova)
{
	unsigned int i;

	for (i = 0; i < model.nr; i++)
		if (model.r[i].start <= iova && iova <= model.r[i].last)
			return &model.r[i];
	return NULL;
}

static bool model_overlaps(uint64_t start, uint64_t last)
{
	unsigned int i;

	for (i = 0; i < model.nr; i++)
		if (model.r[i].start <= last && start <= model.r[i].last)
			return true;
	return false;
}

/* What a translation of @iova with @perm must fail with (0: none). */
static int model_lookup_err(uint64_t iova, unsigned int perm,
			    const struct mregion **out)
{
	const struct mregion *r = model_find(iova);

	*out = r;
	/* A region without permissions is one the kernel cannot map. */
	if (!r || !(r->perm & VDUSE_ACCESS_RW))
		return -EFAULT;
	if ((r->perm & perm) != perm)
		return -EACCES;
	return 0;
}

static bool wraps(uint64_t iova, uint64_t len)
{
	return len && iova + len - 1 < iova;
}

/* Bytes from @iova to the end of @r; 0 means 2^64. */
static uint64_t to_end(const struct mregion *r, uint64_t iova)
{
	return r->last - iova + 1;
}

static uint64_t min_len(uint64_t avail, uint64_t len)
{
	return avail && avail < len ? avail : len;
}

static uint64_t fuzz_addr(struct fz_in *in)
{
	uint8_t sel = fz_u8(in);

	switch (sel % 4) {
	case 0:
	case 1:
		return BASE + fz_u16(in);
	case 2:
		return UINT64_MAX - fz_u16(in);
	default:
		return fz_u64(in);
	}
}

static uint64_t fuzz_len(struct fz_in *in)
{
	uint8_t sel = fz_u8(in);

	if (sel & 0x80)
		return fz_u64(in);
	return fz_u16(in) >> (sel & 7);
}

static void fill_region(const struct mregion *r)
{
	uint8_t *v = fk_iova_ptr(r->start);

	FZ_CHECK(v, "fake kernel lost IOVA 0x%llx",
		 (unsigned long long)r->start);
	fz_fill(v, r->start, r->last - r->start + 1,
		(uint64_t)model.salt << 40);
}

static void op_add(struct fz_in *in)
{
	uint8_t sel = fz_u8(in);
	uint64_t size = 1 + (fz_u16(in) & 0x3fff);
	unsigned int perm = fz_u8(in) % 4;
	uint64_t iova;
	int ret, want;

	if (sel & 0x80) {
		iova = UINT64_MAX - size + 1 - (sel & 0x7f);
	} else {
		iova = BASE + ((uint64_t)(sel & 0x3f) << 10);
		if (sel & 0x40)
			iova += fz_u8(in);
	}
	want = model_overlaps(iova, iova + size - 1) ? -EEXIST : 0;
	if (!want && model.nr == MAX_REGIONS)
		return;
	ret = fk_region_add(iova, size, (uint8_t)perm);
	FZ_CHECK(ret == want, "fk_region_add(0x%llx, 0x%llx) = %d, want %d",
		 (unsigned long long)iova, (unsigned long long)size, ret,
		 want);
	if (ret)
		return;
	model.r[model.nr] = (struct mregion){ iova, iova + size - 1, perm };
	model.salt++;
	fill_region(&model.r[model.nr]);
	model.nr++;
}

static void model_del(uint64_t start, uint64_t last)
{
	unsigned int i;

	for (i = 0; i < model.nr;) {
		if (model.r[i].start <= last && start <= model.r[i].last)
			model.r[i] = model.r[--model.nr];
		else
			i++;
	}
}

static void fuzz_range(struct fz_in *in, uint64_t *start, uint64_t *last)
{
	uint8_t sel = fz_u8(in);

	if (sel < 0x80 && model.nr) {
		const struct mregion *r = &model.r[sel % model.nr];

		/* Exactly a region, or its first or last byte. */
		*start = (sel & 0x20) ? r->last : r->start;
		*last = (sel & 0x40) ? *start : r->last;
		if (*last < *start)
			*last = *start;
		return;
	}
	if (sel == 0xff) {
		*start = 0;
		*last = UINT64_MAX;
		return;
	}
	*start = fuzz_addr(in);
	*last = *start + fuzz_len(in);
	if (*last < *start)
		*last = UINT64_MAX;
}

static void op_del(struct fz_in *in, struct vduse_iotlb *t)
{
	uint64_t start, last;

	fuzz_range(in, &start, &last);
	fk_region_del(start, last);
	model_del(start, last);
	vduse_iotlb_invalidate(t, start, last);
}

/* A range the kernel did not change: a spurious invalidation. */
static void op_invalidate(struct fz_in *in, struct vduse_iotlb *t)
{
	uint64_t start, last;

	fuzz_range(in, &start, &last);
	vduse_iotlb_invalidate(t, start, last);
}

static unsigned int fuzz_perm(struct fz_in *in)
{
	return fz_u8(in) % 4;	/* none, READ, WRITE, both */
}

/* @p must be the guest bytes [iova, iova + len). */
static void check_ptr(const void *p, uint64_t iova, uint64_t len)
{
	uint8_t *view = fk_iova_ptr(iova);

	FZ_CHECK(view, "no view of IOVA 0x%llx", (unsigned long long)iova);
	FZ_CHECK(fz_alias((uint8_t *)p, view, len),
		 "pointer for IOVA 0x%llx (+0x%llx) is not that guest memory",
		 (unsigned long long)iova, (unsigned long long)len);
}

static void op_lookup(struct fz_in *in, struct vduse_iotlb *t)
{
	uint64_t iova = fuzz_addr(in), avail = 0;
	unsigned int perm = fuzz_perm(in);
	const struct mregion *r;
	void *p = NULL;
	int want = model_lookup_err(iova, perm, &r);
	int ret = vduse_iotlb_lookup(t, iova, perm, &p, &avail);

	FZ_CHECK(ret == want, "lookup(0x%llx, perm %u) = %d, want %d",
		 (unsigned long long)iova, perm, ret, want);
	if (ret)
		return;
	FZ_CHECK(avail == to_end(r, iova),
		 "lookup(0x%llx): %llu bytes left, want %llu",
		 (unsigned long long)iova, (unsigned long long)avail,
		 (unsigned long long)to_end(r, iova));
	check_ptr(p, iova, 1);
	check_ptr(p, iova, min_len(avail, MAX_COPY));
}

static void op_ptr(struct fz_in *in, struct vduse_iotlb *t)
{
	uint64_t iova = fuzz_addr(in), len = fuzz_len(in);
	unsigned int perm = fuzz_perm(in);
	const struct mregion *r = NULL;
	void *p = NULL;
	int want, ret;

	if (wraps(iova, len))
		want = -EFAULT;
	else
		want = model_lookup_err(iova, perm, &r);
	if (!want && to_end(r, iova) && to_end(r, iova) < len)
		want = -E2BIG;
	ret = vduse_iotlb_ptr(t, iova, len, perm, &p);
	FZ_CHECK(ret == want, "ptr(0x%llx, 0x%llx, perm %u) = %d, want %d",
		 (unsigned long long)iova, (unsigned long long)len, perm, ret,
		 want);
	if (!ret && len)
		check_ptr(p, iova, len);
}

static void op_iov(struct fz_in *in, struct vduse_iotlb *t)
{
	uint64_t iova = fuzz_addr(in), len = fuzz_len(in);
	unsigned int perm = fuzz_perm(in);
	unsigned int first = fz_u8(in) % 4;
	unsigned int max = first + fz_u8(in) % (IOV_MAX_FZ - 4);
	struct iovec iov[IOV_MAX_FZ];
	uint64_t expect_iova[IOV_MAX_FZ], cur = iova, left = len;
	unsigned int n = first, want_n = first, i;
	int want = 0, ret;

	memset(iov, 0, sizeof(iov));
	if (wraps(iova, len))
		want = -EFAULT;
	while (!want && left) {
		const struct mregion *r;
		uint64_t chunk;

		if (want_n >= max) {
			want = -ENOBUFS;
			break;
		}
		want = model_lookup_err(cur, perm, &r);
		if (want)
			break;
		chunk = min_len(to_end(r, cur), left);
		expect_iova[want_n++] = cur;
		cur += chunk;
		left -= chunk;
	}
	ret = vduse_iotlb_iov(t, iova, len, perm, iov, &n, max);
	FZ_CHECK(ret == want,
		 "iov(0x%llx, 0x%llx, perm %u, max %u) = %d, want %d",
		 (unsigned long long)iova, (unsigned long long)len, perm, max,
		 ret, want);
	FZ_CHECK(n <= max && n >= first, "iov: count %u outside [%u, %u]", n,
		 first, max);
	for (i = 0; i < first; i++)
		FZ_CHECK(!iov[i].iov_base && !iov[i].iov_len,
			 "iov: entry %u before the first was written", i);
	if (ret)
		return;
	FZ_CHECK(n == want_n, "iov: %u iovecs, want %u", n, want_n);
	cur = iova;
	for (i = first; i < n; i++) {
		uint64_t want_len = i + 1 < n ? expect_iova[i + 1] - cur :
				    iova + len - cur;

		FZ_CHECK(expect_iova[i] == cur, "iov: model out of step");
		FZ_CHECK(iov[i].iov_len == want_len,
			 "iov[%u]: %zu bytes, want %llu", i, iov[i].iov_len,
			 (unsigned long long)want_len);
		check_ptr(iov[i].iov_base, cur, want_len);
		cur += want_len;
	}
}

static void op_read(struct fz_in *in, struct vduse_iotlb *t)
{
	uint64_t iova = fuzz_addr(in), len = fuzz_len(in) % (MAX_COPY + 1);
	uint64_t cur = iova, left = len, done = 0;
	int want = 0, ret;

	if (wraps(iova, len))
		want = -EFAULT;
	while (!want && left) {
		const struct mregion *r;
		uint64_t chunk;

		want = model_lookup_err(cur, VDUSE_IOTLB_READ, &r);
		if (want)
			break;
		chunk = min_len(to_end(r, cur), left);
		cur += chunk;
		left -= chunk;
	}
	ret = vduse_iotlb_read(t, iova, copy_buf, len);
	FZ_CHECK(ret == want, "read(0x%llx, 0x%llx) = %d, want %d",
		 (unsigned long long)iova, (unsigned long long)len, ret, want);
	if (ret)
		return;
	/* The copy must be the guest bytes, region by region. */
	cur = iova;
	while (done < len) {
		const struct mregion *r = model_find(cur);
		uint64_t chunk = min_len(to_end(r, cur), len - done);
		uint8_t *view = fk_iova_ptr(cur);

		FZ_CHECK(!memcmp(copy_buf + done, view, chunk),
			 "read: bytes at IOVA 0x%llx differ",
			 (unsigned long long)cur);
		done += chunk;
		cur += chunk;
	}
}

/*
 * Elements: translations a popped element would hold, pinned as the queue
 * pins them.  Until unpinned, each must stay the guest memory it was
 * translated from, whatever was invalidated meanwhile.
 */
#define MAX_ELEMS	8
#define ELEM_HOLDS	4

struct hold {
	uint8_t *ptr;		/* the library's */
	uint8_t *view;		/* the fake kernel's, at translation time */
	uint64_t len;
};

static struct elem {
	unsigned int slot;
	unsigned int n;
	struct hold h[ELEM_HOLDS];
} elems[MAX_ELEMS];
static unsigned int nr_elems;

static void op_pin(struct fz_in *in, struct vduse_iotlb *t)
{
	struct elem *e = &elems[nr_elems];
	unsigned int i, want = 1 + fz_u8(in) % ELEM_HOLDS;
	uint64_t gen = t->gen;

	if (nr_elems == MAX_ELEMS)
		return;
	e->n = 0;
	for (i = 0; i < want; i++) {
		uint64_t iova = fuzz_addr(in), avail;
		void *p;

		if (vduse_iotlb_lookup(t, iova, VDUSE_IOTLB_READ, &p,
				       &avail))
			continue;
		e->h[e->n].ptr = p;
		e->h[e->n].view = fk_iova_ptr(iova);
		e->h[e->n].len = min_len(avail, 64);
		e->n++;
	}
	/* A lookup dropped a mapping: the queue would walk again. */
	if (t->gen != gen)
		return;
	e->slot = vduse_iotlb_pin(t);
	nr_elems++;
}

static void check_elems(void)
{
	unsigned int i, j;

	for (i = 0; i < nr_elems; i++)
		for (j = 0; j < elems[i].n; j++)
			FZ_CHECK(fz_alias(elems[i].h[j].ptr, elems[i].h[j].view,
					  elems[i].h[j].len),
				 "element %u: a held pointer (%u) no longer is its guest memory",
				 i, j);
}

static void op_unpin(struct fz_in *in, struct vduse_iotlb *t)
{
	unsigned int i = fz_u8(in);

	if (!nr_elems)
		return;
	i %= nr_elems;
	vduse_iotlb_unpin(t, elems[i].slot);
	elems[i] = elems[--nr_elems];
}

/* With nothing pinned, nothing retired may stay mapped. */
static void check_reclaim(struct vduse_iotlb *t)
{
	FZ_CHECK(vduse_iotlb_pinned(t) == nr_elems, "%u pinned, want %u",
		 vduse_iotlb_pinned(t), nr_elems);
	if (nr_elems)
		return;
	vduse_iotlb_reclaim(t);
	FZ_CHECK(fk_live_maps() == t->nr,
		 "%u mappings live with nothing pinned, %u cached",
		 fk_live_maps(), t->nr);
}

/* The cache is sorted, disjoint, and holds only live kernel regions. */
static void check_cache(const struct vduse_iotlb *t)
{
	unsigned int i;

	FZ_CHECK(t->nr <= t->cap, "cache: %u entries, capacity %u", t->nr,
		 t->cap);
	for (i = 0; i < t->nr; i++) {
		const struct vduse_iotlb_map *m = t->maps[i];
		const struct mregion *r = model_find(m->start);

		FZ_CHECK(m->start <= m->last, "cache[%u]: empty range", i);
		FZ_CHECK(i == 0 || t->maps[i - 1]->last < m->start,
			 "cache[%u]: not sorted or overlapping", i);
		FZ_CHECK(r && r->start == m->start && r->last == m->last,
			 "cache[%u]: [0x%llx, 0x%llx] is no kernel region", i,
			 (unsigned long long)m->start,
			 (unsigned long long)m->last);
		FZ_CHECK(m->perm == (r->perm & VDUSE_ACCESS_RW),
			 "cache[%u]: perm %u, kernel %u", i, m->perm,
			 r->perm);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct vduse_device_config cfg = {
		.size = sizeof(cfg),
		.name = "fuzz",
		.device_id = 2,
		.num_queues = 1,
		.queue_size = 16,
	};
	struct vduse_device *dev;
	struct vduse_iotlb t;
	unsigned int ops = 0;
	int ret;

	fk_setup();
	fz_log_reset();
	memset(&model, 0, sizeof(model));
	nr_elems = 0;
	ret = vduse_device_new(&cfg, &dev);
	FZ_CHECK(ret == 0, "vduse_device_new: %d", ret);
	vduse_iotlb_init(&t, vduse_device_fd(dev));

	vduse_iotlb_lock(&t);
	while (fz_more(&in) && ops++ < MAX_OPS) {
		switch (fz_u8(&in) % 10) {
		case 0:
			op_add(&in);
			break;
		case 1:
			op_del(&in, &t);
			break;
		case 2:
			op_invalidate(&in, &t);
			break;
		case 3:
			op_lookup(&in, &t);
			break;
		case 4:
			op_ptr(&in, &t);
			break;
		case 5:
		case 6:
			op_iov(&in, &t);
			break;
		case 7:
			op_read(&in, &t);
			break;
		case 8:
			op_pin(&in, &t);
			break;
		default:
			op_unpin(&in, &t);
			break;
		}
		check_cache(&t);
		check_elems();
		check_reclaim(&t);
	}
	while (nr_elems) {
		vduse_iotlb_unpin(&t, elems[0].slot);
		elems[0] = elems[--nr_elems];
		check_elems();
	}
	check_reclaim(&t);
	vduse_iotlb_unlock(&t);

	vduse_iotlb_destroy(&t);
	FZ_CHECK(fk_live_maps() == 0, "%u mappings left after destroy",
		 fk_live_maps());
	vduse_device_free(dev);
	FZ_CHECK(fk_live_fds() == 0, "%u fds left", fk_live_fds());
	FZ_CHECK(fk_bad_closes() == 0, "close of an fd never handed out");
	fk_teardown();
	return 0;
}
