// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The in-flight log (see inflight_log.h and docs/recovery.md): creating,
 * checking and closing the file, and reconciling it with the used ring
 * when a successor process reconnects.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "vq_packed.h"

#ifdef VDUSE_LIB_CRASH_POINTS
unsigned long vduse_crash_countdown;
unsigned long vduse_crash_points;

void vduse_crash_point(void)
{
	vduse_crash_points++;
	if (vduse_crash_countdown && --vduse_crash_countdown == 0)
		raise(SIGKILL);
}
#endif

#define ALIGN64(x)	(((x) + 63) & ~(size_t)63)

static size_t header_bytes(void)
{
	return ALIGN64(sizeof(struct vduse_ilog_header));
}

/* Per entry: the state, and for packed rings two descriptor copies. */
static size_t vq_stride(unsigned int queue_size)
{
	return ALIGN64(sizeof(struct vduse_ilog_vq) +
		       (2 * sizeof(uint64_t) +
			2 * sizeof(struct vduse_ilog_desc)) * queue_size);
}

static size_t file_bytes(const struct vduse_device *dev)
{
	return header_bytes() + vq_stride(dev->queue_size) * dev->num_queues;
}

/* FNV-1a: tells a changed config space from the logged one. */
static uint64_t config_hash(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	while (n--) {
		h ^= *b++;
		h *= 0x100000001b3ull;
	}
	return h;
}

static const char *where(const struct vduse_device_config *c)
{
	return c->flags & VDUSE_DEVICE_F_LOG_FD ? "the log fd" : c->log_path;
}

/* Open (or create) the file, lock it against a second user. */
static int open_file(struct vduse_device *dev,
		     const struct vduse_device_config *c, bool create)
{
	int fd, ret;

	if (c->flags & VDUSE_DEVICE_F_LOG_FD) {
		if (c->log_fd < 0) {
			vduse_err("%s: VDUSE_DEVICE_F_LOG_FD with fd %d",
				  dev->name, c->log_fd);
			return -EBADF;
		}
		fd = c->log_fd;
	} else {
		fd = open(c->log_path, O_RDWR | O_CLOEXEC |
			  (create ? O_CREAT : 0), 0600);
		if (fd < 0) {
			ret = -errno;
			if (ret == -ENOENT && !create)
				vduse_err("%s: no in-flight log at %s: cannot reconnect without it",
					  dev->name, c->log_path);
			else
				vduse_err("%s: in-flight log %s: %s",
					  dev->name, c->log_path,
					  strerror(-ret));
			return ret;
		}
		dev->ilog.fd = fd;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ret = -errno;
		vduse_err("%s: in-flight log %s: %s", dev->name, where(c),
			  ret == -EWOULDBLOCK ? "in use by another process" :
			  strerror(-ret));
		return ret == -EWOULDBLOCK ? -EBUSY : ret;
	}
	return fd;
}

static int map_file(struct vduse_device *dev, int fd, size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED) {
		int ret = -errno;

		vduse_err("%s: cannot map the in-flight log (%zu bytes): %s",
			  dev->name, size, strerror(-ret));
		return ret;
	}
	dev->ilog.hdr = p;
	dev->ilog.size = size;
	return 0;
}

int vduse_ilog_create(struct vduse_device *dev,
		      const struct vduse_device_config *c)
{
	size_t size = file_bytes(dev);
	struct vduse_ilog_header *h;
	int fd, ret;

	fd = open_file(dev, c, true);
	if (fd < 0)
		return fd;
	/* Truncating to 0 first zeroes whatever an older log held. */
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)size) < 0) {
		ret = -errno;
		vduse_err("%s: cannot size the in-flight log %s to %zu bytes: %s",
			  dev->name, where(c), size, strerror(-ret));
		return ret;
	}
	ret = map_file(dev, fd, size);
	if (ret < 0)
		return ret;
	h = dev->ilog.hdr;
	h->version = VDUSE_ILOG_VERSION;
	h->header_size = sizeof(*h);
	memcpy(h->name, dev->name, sizeof(h->name) < sizeof(dev->name) ?
	       sizeof(h->name) : sizeof(dev->name));
	h->device_id = dev->device_id;
	h->num_queues = dev->num_queues;
	h->queue_size = dev->queue_size;
	h->vq_stride = (uint32_t)vq_stride(dev->queue_size);
	h->features = dev->features;
	h->file_size = size;
	h->config_size = dev->config_size;
	h->config_hash = config_hash(dev->config, dev->config_size);
	h->id_size = c->log_id_size;
	if (c->log_id_size)
		memcpy(h->id, c->log_id, c->log_id_size);
	/* Last: a log cut short by a crash here has no magic. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	memcpy(h->magic, VDUSE_ILOG_MAGIC, sizeof(h->magic));
	return 0;
}

#define MISMATCH(what, fmt, logged, ours) do {				\
	vduse_err("%s: in-flight log %s: " what " " fmt " does not match " fmt, \
		  dev->name, where(c), logged, ours);			\
	return -EINVAL;							\
} while (0)

static int check_header(struct vduse_device *dev,
			const struct vduse_device_config *c,
			const struct vduse_ilog_header *h, size_t st_size)
{
	if (memcmp(h->magic, VDUSE_ILOG_MAGIC, sizeof(h->magic))) {
		vduse_err("%s: in-flight log %s: not a libvduse log (bad magic)",
			  dev->name, where(c));
		return -EINVAL;
	}
	if (h->version != VDUSE_ILOG_VERSION)
		MISMATCH("layout version", "%u", h->version,
			 VDUSE_ILOG_VERSION);
	if (h->header_size != sizeof(*h))
		MISMATCH("header size", "%u", h->header_size,
			 (unsigned int)sizeof(*h));
	if (strncmp(h->name, dev->name, sizeof(h->name))) {
		vduse_err("%s: in-flight log %s: device name \"%.*s\" does not match",
			  dev->name, where(c), (int)sizeof(h->name), h->name);
		return -EINVAL;
	}
	if (h->device_id != dev->device_id)
		MISMATCH("device id", "%u", h->device_id, dev->device_id);
	if (h->num_queues != dev->num_queues)
		MISMATCH("queue count", "%u", h->num_queues,
			 dev->num_queues);
	if (h->queue_size != dev->queue_size)
		MISMATCH("queue size", "%u", h->queue_size, dev->queue_size);
	if (h->vq_stride != vq_stride(dev->queue_size))
		MISMATCH("queue record size", "%u", h->vq_stride,
			 (unsigned int)vq_stride(dev->queue_size));
	/* Created where the kernel refused the packed rings we add. */
	if (dev->packed_auto &&
	    h->features == (dev->features & ~(1ULL << VIRTIO_F_RING_PACKED))) {
		dev->features = h->features;
		dev->packed_auto = false;
	}
	if (h->features != dev->features)
		MISMATCH("features", "0x%llx",
			 (unsigned long long)h->features,
			 (unsigned long long)dev->features);
	if (h->config_size != dev->config_size)
		MISMATCH("config space size", "%u", h->config_size,
			 dev->config_size);
	if (h->config_hash != config_hash(dev->config, dev->config_size)) {
		vduse_err("%s: in-flight log %s: the config space differs from the one the device was created with",
			  dev->name, where(c));
		return -EINVAL;
	}
	if (h->id_size != c->log_id_size ||
	    (c->log_id_size && memcmp(h->id, c->log_id, c->log_id_size))) {
		vduse_err("%s: in-flight log %s: the device was created for something else (its log_id differs)",
			  dev->name, where(c));
		return -EINVAL;
	}
	if (h->file_size != file_bytes(dev) || st_size != file_bytes(dev))
		MISMATCH("size", "%llu",
			 (unsigned long long)(h->file_size != file_bytes(dev) ?
					      h->file_size : st_size),
			 (unsigned long long)file_bytes(dev));
	return 0;
}

int vduse_ilog_attach(struct vduse_device *dev,
		      const struct vduse_device_config *c)
{
	struct stat st;
	size_t size;
	int fd, ret;

	fd = open_file(dev, c, false);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	size = (size_t)st.st_size;
	if (size < header_bytes()) {
		vduse_err("%s: in-flight log %s: %zu bytes, too short for a header",
			  dev->name, where(c), size);
		return -EINVAL;
	}
	ret = map_file(dev, fd, size);
	if (ret == 0)
		ret = check_header(dev, c, dev->ilog.hdr, size);
	return ret;
}

void vduse_ilog_close(struct vduse_device *dev)
{
	unsigned int i;

	for (i = 0; dev->vqs && i < dev->num_queues; i++)
		dev->vqs[i].ilog = NULL;
	if (dev->ilog.hdr)
		munmap(dev->ilog.hdr, dev->ilog.size);
	if (dev->ilog.fd >= 0)
		close(dev->ilog.fd);	/* drops the lock */
	dev->ilog.hdr = NULL;
	dev->ilog.fd = -1;
}

struct vduse_ilog_vq *vduse_ilog_vq(struct vduse_device *dev,
				    unsigned int index)
{
	if (!dev->ilog.hdr)
		return NULL;
	return (struct vduse_ilog_vq *)((uint8_t *)dev->ilog.hdr +
					header_bytes() +
					vq_stride(dev->queue_size) * index);
}

void vduse_ilog_vq_stop(struct vduse_vq *vq)
{
	struct vduse_ilog_vq *l = vq->ilog;

	if (!l)
		return;
	vduse_crash_point();
	__atomic_store_n(&l->num, 0, __ATOMIC_RELEASE);
}

void vduse_ilog_vq_start(struct vduse_vq *vq)
{
	struct vduse_ilog_vq *l = vq->ilog;
	unsigned int i;

	if (!l)
		return;
	/* Not started while its record is rewritten. */
	vduse_ilog_vq_stop(vq);
	for (i = 0; i < vq->max_size; i++)
		if (l->heads[i])
			vduse_ilog_free(l, i);
	l->desc_addr = vq->desc_addr;
	l->avail_addr = vq->avail_addr;
	l->used_addr = vq->used_addr;
	l->layout = vq->packed ? VDUSE_ILOG_PACKED : VDUSE_ILOG_SPLIT;
	if (vq->packed) {
		vduse_ilog_store(&l->avail_seq,
				 VDUSE_ILOG_AVAIL_SEQ(VDUSE_ILOG_POS(vq->last_avail_idx,
								     vq->pk->avail_wrap),
						      0));
		vq->pk->pops = 0;
		vduse_ilog_store16(&l->used_idx,
				   VDUSE_ILOG_POS(vq->used_idx,
						  vq->pk->used_wrap));
	} else {
		vduse_ilog_store(&l->avail_seq,
				 VDUSE_ILOG_AVAIL_SEQ(vq->last_avail_idx, 0));
		vduse_ilog_store16(&l->used_idx, vq->used_idx);
	}
	vduse_crash_point();
	__atomic_store_n(&l->num, vq->num, __ATOMIC_RELEASE);
}

/* The ring position of @pop among the num entries before @avail. */
static unsigned int age(uint16_t avail, uint16_t pop)
{
	return (uint16_t)(avail - pop);
}

static int corrupt(struct vduse_vq *vq, const char *why, unsigned int head,
		   uint64_t e)
{
	vduse_err("%s: queue %u: in-flight log is inconsistent: head %u (entry 0x%llx) %s",
		  vq->dev->name, vq->index, head, (unsigned long long)e, why);
	return -EINVAL;
}

static int recover_packed(struct vduse_vq *vq);

/* Heads or slots in flight, by pop number. */
struct by_seq {
	uint64_t seq;
	unsigned int slot;
};

static int cmp_seq(const void *a, const void *b)
{
	const struct by_seq *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int vduse_ilog_recover_vq(struct vduse_vq *vq)
{
	struct vduse_ilog_vq *l = vq->ilog;
	const uint64_t *seq = vduse_ilog_seq(l, vq->max_size);
	uint64_t pops = l->avail_seq >> 16;
	uint16_t avail = (uint16_t)l->avail_seq, used_log = l->used_idx;
	uint16_t used_ring;
	unsigned int n = vq->num, i, done = 0, nr = 0;
	bool advance = false;
	struct by_seq *order;

	if (l->layout != (vq->packed ? VDUSE_ILOG_PACKED : VDUSE_ILOG_SPLIT)) {
		vduse_err("%s: queue %u: the in-flight log recorded a %s ring, the driver negotiated a %s one: cannot recover",
			  vq->dev->name, vq->index,
			  l->layout == VDUSE_ILOG_PACKED ? "packed" :
			  l->layout == VDUSE_ILOG_SPLIT ? "split" : "unknown",
			  vq->packed ? "packed" : "split");
		return -EINVAL;
	}
	if (vq->packed)
		return recover_packed(vq);
	used_ring = le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
	/* Pass 1: check every entry, change nothing. */
	for (i = 0; i < vq->max_size; i++) {
		uint64_t e = l->heads[i];
		unsigned int st = (unsigned int)VDUSE_ILOG_STATE(e);

		if (st == VDUSE_ILOG_FREE && e == 0)
			continue;
		if (st != VDUSE_ILOG_INFLIGHT && st != VDUSE_ILOG_DONE)
			return corrupt(vq, "has an unknown state", i, e);
		if (i >= n)
			return corrupt(vq, "is outside the ring", i, e);
		if (seq[i] > pops)
			return corrupt(vq, "has a pop number from the future",
				       i, e);
		if (seq[i] == pops) {
			/* Killed before the avail index moved past it. */
			if (st != VDUSE_ILOG_INFLIGHT ||
			    VDUSE_ILOG_POP(e) != avail || advance)
				return corrupt(vq, "is a pop in progress that makes no sense",
					       i, e);
			advance = true;
		}
		if (st == VDUSE_ILOG_DONE) {
			uint16_t u = VDUSE_ILOG_USED(e);

			if (age(used_ring, u) > n && age(u, used_ring) >= n)
				return corrupt(vq, "was pushed far from the used index",
					       i, e);
			done++;
		}
	}
	if (age(used_ring, used_log) > done) {
		vduse_err("%s: queue %u: used index %u in the ring does not follow the in-flight log's %u",
			  vq->dev->name, vq->index, used_ring, used_log);
		return -EINVAL;
	}
	if (advance) {
		avail++;
		pops++;
	}

	order = malloc(n * sizeof(*order));
	vq->replay = malloc(n * sizeof(*vq->replay));
	if (!order || !vq->replay) {
		free(order);
		return -ENOMEM;
	}

	/* Pass 2: what stays in flight, oldest pop first; change nothing. */
	for (i = 0; i < n; i++) {
		uint64_t e = l->heads[i];
		unsigned int st = (unsigned int)VDUSE_ILOG_STATE(e);

		if (st == VDUSE_ILOG_DONE) {
			unsigned int a = age(used_ring, VDUSE_ILOG_USED(e));

			if (a >= 1 && a <= n)
				continue;	/* published */
		} else if (st != VDUSE_ILOG_INFLIGHT) {
			continue;
		}
		order[nr].seq = seq[i];
		order[nr++].slot = i;
	}
	qsort(order, nr, sizeof(*order), cmp_seq);
	for (i = 1; i < nr; i++) {
		if (order[i].seq == order[i - 1].seq) {
			unsigned int h = order[i].slot;

			free(order);
			return corrupt(vq, "shares its pop number with another",
				       h, l->heads[h]);
		}
	}

	/* Pass 3: published completions are done; the rest pop again. */
	for (i = 0; i < n; i++) {
		uint64_t e = l->heads[i];

		if (VDUSE_ILOG_STATE(e) != VDUSE_ILOG_DONE)
			continue;
		if (age(used_ring, VDUSE_ILOG_USED(e)) - 1u < n)
			vduse_ilog_free(l, i);
		else
			vduse_ilog_store(&l->heads[i],
					 VDUSE_ILOG_ENTRY(VDUSE_ILOG_INFLIGHT,
							  VDUSE_ILOG_POP(e), 0));
	}
	for (i = 0; i < nr; i++) {
		unsigned int h = order[i].slot;

		vq->inflight_map[h / 64] |= 1ULL << (h % 64);
		vq->replay[i] = (uint16_t)h;
	}
	free(order);
	vduse_ilog_store16(&l->used_idx, used_ring);
	if (advance)
		vduse_ilog_store(&l->avail_seq,
				 VDUSE_ILOG_AVAIL_SEQ(avail, pops));

	vq->nr_replay = nr;
	vq->replay_pos = 0;
	vq->last_avail_idx = avail;
	vq->used_idx = used_ring;
	vq->signalled_used = used_ring;
	/*
	 * The dead process may have published completions and died before
	 * it interrupted the driver, which then waits for ever: interrupt
	 * once (a spurious interrupt costs the driver a look at the ring).
	 */
	vq->irq_pending = true;
	vq->rings_pending = false;
	vduse_info("%s: queue %u recovered: avail %u used %u, %u requests to pop again",
		   vq->dev->name, vq->index, avail, used_ring, nr);
	return 0;
}

/*
 * Packed rings.  A position with its wrap counter as a count modulo
 * 2 num (wrap 1 first: both counters start at 1), and back.
 */
static unsigned int lin(uint16_t p, unsigned int n)
{
	return (p & 0x7fffu) + (p & 0x8000u ? 0 : n);
}

static uint16_t unlin(unsigned int x, unsigned int n)
{
	return x < n ? VDUSE_ILOG_POS(x, 1) : VDUSE_ILOG_POS(x - n, 0);
}

/* How far @to is ahead of @from, modulo 2 num. */
static unsigned int ahead(unsigned int from, unsigned int to, unsigned int n)
{
	return (to + 2 * n - from) % (2 * n);
}

/*
 * Count the ring descriptors of @slot's logged chain (1 for an indirect
 * buffer), marking its pool entries in @owner; 0 (and logged) when the
 * chain makes no sense.
 */
static unsigned int chain_length(struct vduse_vq *vq, unsigned int slot,
				 uint64_t e, uint16_t *owner)
{
	struct vduse_ilog_vq *l = vq->ilog;
	const struct vduse_ilog_desc *d =
		&vduse_ilog_first(l, vq->max_size)[slot];
	const struct vduse_ilog_desc *pool = vduse_ilog_pool(l, vq->max_size);
	unsigned int link = VDUSE_ILOG_LINK(e), count = 1;

	while (!(d->flags & VRING_DESC_F_INDIRECT) &&
	       (d->flags & VRING_DESC_F_NEXT)) {
		if (++count > vq->num) {
			corrupt(vq, "has a chain longer than the ring", slot, e);
			return 0;
		}
		if (link >= vq->num || owner[link]) {
			corrupt(vq, link >= vq->num ?
				"links a copy outside the pool" :
				"shares a copy with another", slot, e);
			return 0;
		}
		owner[link] = (uint16_t)(slot + 1);
		d = &pool[link];
		link = d->id;
	}
	if (link != VDUSE_ILOG_NONE) {
		corrupt(vq, "has more copies than its chain", slot, e);
		return 0;
	}
	return count;
}

/*
 * Was the used descriptor of DONE entry @e, at the log's next used
 * position, published?  Before the device's flags store the ring holds
 * there what the driver wrote in this lap, whose AVAIL/USED bits the entry
 * recorded; after it, AVAIL == USED == the used wrap counter; once the
 * driver has taken it and reused the position in the next lap, the
 * driver's new flags (AVAIL != the wrap counter).  Anything but the
 * recorded bits means the driver could see it.
 */
static bool published(struct vduse_vq *vq, uint64_t e)
{
	uint16_t u = VDUSE_ILOG_USED(e);
	uint16_t f = le16toh(__atomic_load_n(&vq->pk->desc[u & 0x7fffu].flags,
					     __ATOMIC_ACQUIRE));
	unsigned int bits = (f & (1u << VRING_PACKED_DESC_F_AVAIL) ? 1u : 0) |
			    (f & (1u << VRING_PACKED_DESC_F_USED) ? 2u : 0);

	if (bits == (u & 0x8000u ? 3u : 0))
		return true;
	return bits != VDUSE_ILOG_OLD(e);
}

static int recover_packed(struct vduse_vq *vq)
{
	struct vduse_ilog_vq *l = vq->ilog;
	struct vduse_packed *pk = vq->pk;
	const struct vduse_ilog_desc *first = vduse_ilog_first(l, vq->max_size);
	const uint64_t *seq = vduse_ilog_seq(l, vq->max_size);
	uint64_t as = l->avail_seq, pops = as >> 16;
	unsigned int n = vq->num, i, nr = 0, in_ring, held = 0;
	unsigned int avail, used, pending = UINT32_MAX;
	uint16_t *ndesc, *owner;
	uint8_t *gone, *pool_used;
	struct by_seq *order;
	bool moved;
	int ret = -EINVAL;

	if ((as & 0x7fffu) >= n || (l->used_idx & 0x7fffu) >= n) {
		vduse_err("%s: queue %u: in-flight log positions avail 0x%x used 0x%x are outside the ring (%u)",
			  vq->dev->name, vq->index, (unsigned int)(as & 0xffff),
			  l->used_idx, n);
		return -EINVAL;
	}
	avail = lin((uint16_t)as, n);
	used = lin(l->used_idx, n);
	ndesc = calloc(n, sizeof(*ndesc));
	owner = calloc(n, sizeof(*owner));
	gone = calloc(n, 1);
	pool_used = calloc(n, 1);
	order = calloc(n, sizeof(*order));
	vq->replay = malloc(n * sizeof(*vq->replay));
	if (!ndesc || !owner || !gone || !pool_used || !order || !vq->replay) {
		ret = -ENOMEM;
		goto out;
	}

	/* Pass 1: check every entry and measure its chain; change nothing. */
	for (i = 0; i < vq->max_size; i++) {
		uint64_t e = l->heads[i];
		unsigned int st = (unsigned int)VDUSE_ILOG_STATE(e);

		if (e == 0)
			continue;
		if (st != VDUSE_ILOG_INFLIGHT && st != VDUSE_ILOG_DONE) {
			corrupt(vq, "has an unknown state", i, e);
			goto out;
		}
		if (i >= n) {
			corrupt(vq, "is outside the ring", i, e);
			goto out;
		}
		if ((VDUSE_ILOG_POP(e) & 0x7fffu) >= n ||
		    (st == VDUSE_ILOG_DONE && (VDUSE_ILOG_USED(e) & 0x7fffu) >= n)) {
			corrupt(vq, "has a position outside the ring", i, e);
			goto out;
		}
		if (seq[i] > pops) {
			corrupt(vq, "has a pop number from the future", i, e);
			goto out;
		}
		ndesc[i] = (uint16_t)chain_length(vq, i, e, owner);
		if (!ndesc[i])
			goto out;
		if (seq[i] == pops) {
			/* Killed before the avail position moved past it. */
			if (st != VDUSE_ILOG_INFLIGHT ||
			    lin(VDUSE_ILOG_POP(e), n) != avail ||
			    pending != UINT32_MAX) {
				corrupt(vq, "is a pop in progress that makes no sense",
					i, e);
				goto out;
			}
			pending = i;
		}
	}
	if (pending != UINT32_MAX) {
		avail = (avail + ndesc[pending]) % (2 * n);
		pops++;
	}

	/*
	 * Pass 2: which completions the driver can see.  One at the used
	 * position is decided by the ring's flags (and moves the position
	 * on if it was published); those behind it were.
	 */
	do {
		moved = false;
		for (i = 0; i < n; i++) {
			uint64_t e = l->heads[i];

			if (VDUSE_ILOG_STATE(e) != VDUSE_ILOG_DONE || gone[i] ||
			    lin(VDUSE_ILOG_USED(e), n) != used ||
			    !published(vq, e))
				continue;
			gone[i] = 1;
			used = (used + ndesc[i]) % (2 * n);
			moved = true;
		}
	} while (moved);
	for (i = 0; i < n; i++) {
		uint64_t e = l->heads[i];
		unsigned int a;

		if (VDUSE_ILOG_STATE(e) != VDUSE_ILOG_DONE || gone[i])
			continue;
		a = ahead(lin(VDUSE_ILOG_USED(e), n), used, n);
		if (a == 0)
			continue;	/* not published: in flight */
		if (a > n) {
			corrupt(vq, "was pushed ahead of the used position", i,
				e);
			goto out;
		}
		gone[i] = 1;
	}
	in_ring = ahead(used, avail, n);
	if (in_ring > n) {
		vduse_err("%s: queue %u: in-flight log: the used position 0x%x is ahead of the avail position 0x%x",
			  vq->dev->name, vq->index, unlin(used, n),
			  unlin(avail, n));
		goto out;
	}

	/* Pass 3: the buffers still in flight, oldest pop first. */
	for (i = 0; i < n; i++) {
		uint64_t e = l->heads[i];

		if (VDUSE_ILOG_STATE(e) == VDUSE_ILOG_FREE || gone[i])
			continue;
		held += ndesc[i];
		order[nr].seq = seq[i];
		order[nr++].slot = i;
	}
	if (held > in_ring) {
		vduse_err("%s: queue %u: in-flight log: %u descriptors in flight, %u between the used and avail positions",
			  vq->dev->name, vq->index, held, in_ring);
		goto out;
	}
	qsort(order, nr, sizeof(*order), cmp_seq);
	for (i = 0; i < nr; i++) {
		unsigned int s = order[i].slot;

		if (i && order[i].seq == order[i - 1].seq) {
			corrupt(vq, "shares its pop number with another", s,
				l->heads[s]);
			goto out;
		}
		if (vduse_packed_recovered(vq, s, first[s].id, ndesc[s],
					   VDUSE_ILOG_LINK(l->heads[s])) < 0) {
			corrupt(vq, "has a buffer id in flight twice", s,
				l->heads[s]);
			goto out;
		}
		vq->replay[i] = (uint16_t)s;
	}
	for (i = 0; i < n; i++)
		pool_used[i] = owner[i] && !gone[owner[i] - 1u];

	/*
	 * The log's positions first: a successor killed after them sees
	 * the published completions behind its used position, and decides
	 * the one at it from the ring again.
	 */
	vduse_ilog_store16(&l->used_idx, unlin(used, n));
	vduse_ilog_store(&l->avail_seq, VDUSE_ILOG_AVAIL_SEQ(unlin(avail, n),
							    pops));
	for (i = 0; i < n; i++) {
		uint64_t e = l->heads[i];

		if (gone[i])
			vduse_ilog_free(l, i);
		else if (VDUSE_ILOG_STATE(e) == VDUSE_ILOG_DONE)
			vduse_ilog_store(&l->heads[i],
					 VDUSE_ILOG_PENTRY(VDUSE_ILOG_INFLIGHT,
							   VDUSE_ILOG_POP(e), 0,
							   0, VDUSE_ILOG_LINK(e)));
	}
	vduse_packed_recovered_end(vq, pool_used);
	pk->pops = pops;
	vq->last_avail_idx = (uint16_t)(avail % n);
	pk->avail_wrap = avail < n;
	vq->used_idx = (uint16_t)(used % n);
	pk->used_wrap = used < n;
	pk->in_ring = in_ring;
	pk->signalled = pk->used_total;
	vq->nr_replay = nr;
	vq->replay_pos = 0;
	/* As for split rings: the dead process may not have interrupted. */
	vq->irq_pending = true;
	vq->rings_pending = false;
	vduse_info("%s: queue %u recovered: packed avail %u wrap %u used %u wrap %u, %u requests to pop again",
		   vq->dev->name, vq->index, vq->last_avail_idx,
		   pk->avail_wrap, vq->used_idx, pk->used_wrap, nr);
	ret = 0;
out:
	free(ndesc);
	free(owner);
	free(gone);
	free(pool_used);
	free(order);
	return ret;
}
