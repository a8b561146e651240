// SPDX-License-Identifier: MIT
/* vduse-blk --umem (see blk_umem.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "blk_log.h"
#include "blk_umem.h"

#define BLK_UMEM_DEFAULT	(64ull << 20)	/* the kernel's default */
#define BLK_UMEM_HUGE		(2ull << 20)

/* /sys/class/vduse/NAME/bounce_size, or the kernel's default. */
static unsigned long long blk_bounce_size(const char *name)
{
	unsigned long long v = 0;
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/vduse/%s/bounce_size", name);
	f = fopen(path, "re");
	if (!f || fscanf(f, "%llu", &v) != 1 || !v) {
		blk_dbg("--umem: cannot read %s (%s): assuming %llu bytes",
			path, f ? "not a number" : strerror(errno),
			BLK_UMEM_DEFAULT);
		v = BLK_UMEM_DEFAULT;
	}
	if (f)
		fclose(f);
	return v;
}

/*
 * The kernel pins the pages against RLIMIT_MEMLOCK: raise the soft limit
 * up to the hard one if that is enough, else say what will happen.
 */
static void blk_umem_memlock(unsigned long long need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= need)
		return;
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
			blk_dbg("--umem: RLIMIT_MEMLOCK raised to its hard limit");
			return;
		}
	}
	blk_info("--umem: RLIMIT_MEMLOCK (%llu bytes) is below the bounce region's %llu: the kernel will refuse to pin it and the device will use its own bounce pages (raise it with ulimit -l)",
		 (unsigned long long)rl.rlim_cur, need);
}

int blk_umem_set(const char *name, struct vduse_device *dev,
		 struct blk_umem *m)
{
	unsigned long long size = blk_bounce_size(name);
	int ret;

	*m = (struct blk_umem){ 0 };
	m->len = (size + BLK_UMEM_HUGE - 1) & ~(BLK_UMEM_HUGE - 1);
	m->addr = mmap(NULL, m->len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (m->addr != MAP_FAILED) {
		m->huge = true;
	} else {
		blk_dbg("--umem: no hugepages (%s): normal pages",
			strerror(errno));
		m->len = size;
		m->addr = mmap(NULL, m->len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m->addr == MAP_FAILED) {
			ret = -errno;
			m->addr = NULL;
			blk_err("--umem: cannot map %llu bytes: %s", size,
				strerror(-ret));
			return ret;
		}
	}
	blk_dbg("--umem: %llu bytes of %s pages for the bounce region of %s",
		size, m->huge ? "huge" : "normal", name);
	blk_umem_memlock(size);
	ret = vduse_device_set_umem(dev, m->addr, m->len);
	if (ret < 0) {
		blk_err("--umem: %s", strerror(-ret));
		blk_umem_free(m);
	}
	return ret;
}

void blk_umem_free(struct blk_umem *m)
{
	if (m->addr)
		munmap(m->addr, m->len);
	m->addr = NULL;
}
