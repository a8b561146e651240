// SPDX-License-Identifier: LGPL-2.1-or-later
/* IOTLB cache: IOVA -> process address, filled on demand from the kernel. */
#include <errno.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <linux/vduse.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vduse_uapi.h"
#include "iotlb.h"
#include "log.h"
#include "sys.h"

void vduse_iotlb_init(struct vduse_iotlb *t, int dev_fd)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->dev_fd = dev_fd;
}

static void unmap_one(struct vduse_iotlb_map *m)
{
	int ret = 0;

	/* The backend's memory (a registered bounce region) stays. */
	if (m->mmap_len)
		ret = vduse_sys->munmap(m->mmap_addr, m->mmap_len);
	if (m->fd_umem)
		vduse_umem_fd_map(m->fd_umem, -1);
	if (ret < 0)
		vduse_warn("munmap of IOVA [0x%llx, 0x%llx] failed: %s",
			   (unsigned long long)m->start,
			   (unsigned long long)m->last, strerror(-ret));
	free(m);
}

static void unmap_list(struct vduse_iotlb_map **list)
{
	struct vduse_iotlb_map *m = *list, *next;

	for (; m; m = next) {
		next = m->next;
		unmap_one(m);
	}
	*list = NULL;
}

void vduse_iotlb_destroy(struct vduse_iotlb *t)
{
	unsigned int i;

	for (i = 0; i < t->nr; i++)
		unmap_one(t->maps[i]);
	unmap_list(&t->retired);
	unmap_list(&t->waiting);
	free(t->maps);
	t->maps = NULL;
	t->nr = t->cap = 0;
	pthread_mutex_destroy(&t->lock);
}

static void remove_range(struct vduse_iotlb *t, unsigned int from,
			 unsigned int to)
{
	unsigned int i;

	if (from >= to)
		return;
	for (i = from; i < to; i++) {
		t->maps[i]->next = t->retired;
		t->retired = t->maps[i];
	}
	memmove(&t->maps[from], &t->maps[to],
		(t->nr - to) * sizeof(t->maps[0]));
	t->nr -= to - from;
	t->gen++;
}

void vduse_iotlb_invalidate(struct vduse_iotlb *t, uint64_t start,
			    uint64_t last)
{
	unsigned int from = vduse_iotlb_find_slot(t, start), to = from;

	while (to < t->nr && t->maps[to]->start <= last)
		to++;
	remove_range(t, from, to);
}

unsigned int vduse_iotlb_pin(struct vduse_iotlb *t)
{
	t->pins[t->slot]++;
	return t->slot;
}

void vduse_iotlb_unpin(struct vduse_iotlb *t, unsigned int slot)
{
	if (t->pins[slot & 1])
		t->pins[slot & 1]--;
	vduse_iotlb_reclaim(t);
}

unsigned int vduse_iotlb_pinned(const struct vduse_iotlb *t)
{
	return t->pins[0] + t->pins[1];
}

void vduse_iotlb_unpin_all(struct vduse_iotlb *t)
{
	t->pins[0] = t->pins[1] = 0;
	vduse_iotlb_reclaim(t);
}

void vduse_iotlb_reclaim(struct vduse_iotlb *t)
{
	if (t->grace && t->pins[t->slot ^ 1] == 0) {
		unmap_list(&t->waiting);
		t->grace = false;
	}
	if (t->grace || !t->retired)
		return;
	if (t->pins[t->slot] == 0) {
		/* Nothing in flight can point into them. */
		unmap_list(&t->retired);
		return;
	}
	/* Wait for what is in flight now; count later pops apart. */
	t->waiting = t->retired;
	t->retired = NULL;
	t->slot ^= 1;
	t->grace = true;
}

bool vduse_iotlb_transient(int err)
{
	return err == -ENOMEM || err == -EAGAIN || err == -EMFILE ||
	       err == -ENFILE || err == -EINTR;
}

static int insert(struct vduse_iotlb *t, struct vduse_iotlb_map *m)
{
	unsigned int pos;

	if (t->nr == t->cap) {
		unsigned int cap = t->cap ? t->cap * 2 : 8;
		struct vduse_iotlb_map **maps;

		maps = realloc(t->maps, cap * sizeof(*maps));
		if (!maps)
			return -ENOMEM;
		t->maps = maps;
		t->cap = cap;
	}
	/* Whatever the cache still holds of this range is stale. */
	vduse_iotlb_invalidate(t, m->start, m->last);
	pos = vduse_iotlb_find_slot(t, m->start);
	memmove(&t->maps[pos + 1], &t->maps[pos],
		(t->nr - pos) * sizeof(t->maps[0]));
	t->maps[pos] = m;
	t->nr++;
	return 0;
}

static int prot_of(unsigned int perm)
{
	return ((perm & VDUSE_ACCESS_RO) ? PROT_READ : 0) |
	       ((perm & VDUSE_ACCESS_WO) ? PROT_WRITE : 0);
}

/*
 * IOTLB_GET_FD returns an fd without close-on-exec.  Until it has the flag,
 * fork() waits (an atfork handler takes this lock for writing), so that no
 * child of another thread inherits access to the device's memory.  A
 * posix_spawn() or vfork() runs no atfork handler: the window is then the
 * one between two system calls.
 */
static pthread_rwlock_t fork_lock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void)
{
	pthread_rwlock_wrlock(&fork_lock);
}

static void fork_done(void)
{
	pthread_rwlock_unlock(&fork_lock);
}

/*
 * In the child the write lock belongs to a thread id that is not its own:
 * glibc would take the unlock for a reader's and leave the lock broken
 * (the child's first IOTLB lookup then hangs).  Start it afresh.
 */
static void fork_child(void)
{
	pthread_rwlock_init(&fork_lock, NULL);
}

static void fork_register(void)
{
	pthread_atfork(fork_prepare, fork_done, fork_child);
}

static int get_fd(struct vduse_iotlb *t, struct vduse_iotlb_entry *e)
{
	int fd, ret;

	pthread_once(&fork_once, fork_register);
	pthread_rwlock_rdlock(&fork_lock);
	if (t->fd2) {
		struct vduse_lib_iotlb_entry2 e2 = {
			.start = e->start, .last = e->last, .asid = t->asid,
		};

		fd = vduse_sys->ioctl(t->dev_fd, VDUSE_IOTLB_GET_FD2, &e2);
		e->offset = e2.offset;
		e->start = e2.start;
		e->last = e2.last;
		e->perm = e2.perm;
	} else {
		fd = vduse_sys->ioctl(t->dev_fd, VDUSE_IOTLB_GET_FD, e);
	}
	if (fd >= 0) {
		ret = vduse_sys->set_cloexec(fd);
		if (ret < 0) {
			vduse_err("close-on-exec for an IOTLB fd: %s",
				  strerror(-ret));
			vduse_sys->close(fd);
			fd = ret;
		}
	}
	pthread_rwlock_unlock(&fork_lock);
	return fd;
}

/* Ask the kernel for the region holding @iova and map it. */
static int fill_fd(struct vduse_iotlb *t, uint64_t iova,
		   struct vduse_iotlb_map **out)
{
	/*
	 * Room for API 1's 80-byte entry (asid 0) after the 32 bytes of
	 * API 0's, should a kernel read or write that much at API 1.
	 */
	union {
		struct vduse_iotlb_entry e;
		struct vduse_lib_iotlb_entry2 e2;
	} u = { .e2 = { .start = iova, .last = iova } };
	struct vduse_iotlb_entry e;
	struct vduse_iotlb_map *m;
	uint64_t delta;
	long page = sysconf(_SC_PAGESIZE);
	int fd, ret;

	fd = get_fd(t, &u.e);
	e = u.e;
	if (fd < 0) {
		vduse_dbg("IOVA 0x%llx is not mapped: %s",
			  (unsigned long long)iova, strerror(-fd));
		return fd == -EINVAL ? -EFAULT : fd;
	}
	if (e.start > iova || e.last < iova || !(e.perm & VDUSE_ACCESS_RW)) {
		vduse_err("IOTLB_GET_FD for 0x%llx returned [0x%llx, 0x%llx] perm %u",
			  (unsigned long long)iova,
			  (unsigned long long)e.start,
			  (unsigned long long)e.last, e.perm);
		ret = -EFAULT;
		goto out;
	}
	delta = e.offset & (uint64_t)(page - 1);
	/* The mapping is last - start + 1 + delta bytes: may that wrap? */
	if (e.last - e.start > (uint64_t)SIZE_MAX - 1 - delta) {
		vduse_err("IOTLB_GET_FD for 0x%llx returned [0x%llx, 0x%llx] offset 0x%llx: too large to map",
			  (unsigned long long)iova,
			  (unsigned long long)e.start,
			  (unsigned long long)e.last,
			  (unsigned long long)e.offset);
		ret = -E2BIG;
		goto out;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		ret = -ENOMEM;
		goto out;
	}
	m->mmap_len = e.last - e.start + 1 + delta;
	ret = vduse_sys->mmap(m->mmap_len, prot_of(e.perm), fd,
			      e.offset - delta, &m->mmap_addr);
	if (ret < 0) {
		vduse_err("mmap of IOVA [0x%llx, 0x%llx] failed: %s",
			  (unsigned long long)e.start,
			  (unsigned long long)e.last, strerror(-ret));
		free(m);
		goto out;
	}
	m->base = (uint8_t *)m->mmap_addr + delta;
	m->start = e.start;
	m->last = e.last;
	m->perm = e.perm & VDUSE_ACCESS_RW;
	ret = insert(t, m);
	if (ret < 0) {
		unmap_one(m);
		goto out;
	}
	*out = m;
out:
	vduse_sys->close(fd);
	return ret;
}

/*
 * @iova lies in the bounce region backed by the backend's memory: 1 with
 * *out its mapping, 0 if it does not, or -errno.  u->lock held.
 */
static int fill_umem(struct vduse_iotlb *t, struct vduse_umem *u,
		     uint64_t iova, struct vduse_iotlb_map **out)
{
	struct vduse_iotlb_map *m;
	uint64_t start, last;
	uint8_t *base;
	int ret;

	if (!vduse_umem_lookup(u, iova, &start, &last, &base))
		return 0;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->start = start;
	m->last = last;
	m->base = base;
	m->perm = VDUSE_ACCESS_RW;
	ret = insert(t, m);
	if (ret < 0) {
		free(m);
		return ret;
	}
	*out = m;
	return 1;
}

static int fill(struct vduse_iotlb *t, uint64_t iova,
		struct vduse_iotlb_map **out)
{
	struct vduse_umem *u = t->asid == 0 ? t->umem : NULL;
	int ret;

	if (!u)
		return fill_fd(t, iova, out);
	/* No fd mapping may appear while another queue registers. */
	pthread_mutex_lock(&u->lock);
	ret = fill_umem(t, u, iova, out);
	if (ret == 0) {
		ret = fill_fd(t, iova, out);
		if (ret == 0 && (*out)->start == 0) {
			(*out)->fd_umem = u;
			vduse_umem_fd_map(u, 1);
		}
	} else if (ret > 0) {
		ret = 0;
	}
	pthread_mutex_unlock(&u->lock);
	return ret;
}

int vduse_iotlb_lookup(struct vduse_iotlb *t, uint64_t iova,
		       unsigned int perm, void **ptr, uint64_t *avail)
{
	struct vduse_iotlb_map *m = NULL;
	unsigned int pos = vduse_iotlb_find_slot(t, iova);
	int ret;

	if (pos < t->nr && t->maps[pos]->start <= iova) {
		m = t->maps[pos];
	} else {
		ret = fill(t, iova, &m);
		if (ret < 0)
			return ret;
	}
	if ((m->perm & perm) != perm)
		return -EACCES;
	*ptr = m->base + (iova - m->start);
	*avail = m->last - iova + 1;	/* 0 means the full 2^64 */
	return 0;
}

/* Does [iova, iova + len) run past the end of the IOVA space? */
static bool wraps(uint64_t iova, uint64_t len)
{
	return len && iova + len - 1 < iova;
}

/*
 * Map the next piece of [*iova, *iova + *len) that one region holds: its
 * address and size; *iova and *len move past it.
 */
static int next_chunk(struct vduse_iotlb *t, uint64_t *iova, uint64_t *len,
		      unsigned int perm, void **p, uint64_t *chunk)
{
	uint64_t avail;
	int ret = vduse_iotlb_lookup(t, *iova, perm, p, &avail);

	if (ret < 0)
		return ret;
	*chunk = (avail && avail < *len) ? avail : *len;
	*iova += *chunk;
	*len -= *chunk;
	return 0;
}

int vduse_iotlb_ptr(struct vduse_iotlb *t, uint64_t iova, uint64_t len,
		    unsigned int perm, void **ptr)
{
	uint64_t avail;
	int ret;

	if (wraps(iova, len))
		return -EFAULT;
	ret = vduse_iotlb_lookup(t, iova, perm, ptr, &avail);
	if (ret < 0)
		return ret;
	if (avail && avail < len)
		return -E2BIG;
	return 0;
}

int vduse_iotlb_iov(struct vduse_iotlb *t, uint64_t iova, uint64_t len,
		    unsigned int perm, struct iovec *iov, unsigned int *n,
		    unsigned int max)
{
	if (wraps(iova, len))
		return -EFAULT;
	while (len) {
		uint64_t chunk;
		void *p;
		int ret;

		if (*n >= max)
			return -ENOBUFS;
		ret = next_chunk(t, &iova, &len, perm, &p, &chunk);
		if (ret < 0)
			return ret;
		iov[*n].iov_base = p;
		iov[*n].iov_len = chunk;
		(*n)++;
	}
	return 0;
}

int vduse_iotlb_read(struct vduse_iotlb *t, uint64_t iova, void *dst,
		     uint64_t len)
{
	uint8_t *d = dst;

	if (wraps(iova, len))
		return -EFAULT;
	while (len) {
		uint64_t chunk;
		void *p;
		int ret;

		ret = next_chunk(t, &iova, &len, VDUSE_IOTLB_READ, &p, &chunk);
		if (ret < 0)
			return ret;
		memcpy(d, p, chunk);
		d += chunk;
	}
	return 0;
}
