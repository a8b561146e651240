// SPDX-License-Identifier: MIT
/*
 * Host-side benchmark of the data path: no VM, no VDUSE.  The library runs
 * against the unit tests' simulated kernel (tests/unit/fake_kernel.c) and a
 * minimal driver written here, which fills the split ring directly.  Each
 * request is a virtio-blk style 4 KiB read: a 16-byte readable header, a
 * 4096-byte writable buffer and a 1-byte writable status, as a direct
 * chain of three descriptors or one indirect descriptor.
 *
 * One round: the driver makes @batch requests available (one avail->idx
 * store) and asks for an interrupt at the next used entry (EVENT_IDX, as
 * Linux does); the device side pops them all, completes them and decides
 * once whether to interrupt; the driver reaps the used entries.
 *
 * The device side of a round runs in dp_round() (never inlined), so that
 * `valgrind --tool=callgrind --toggle-collect=dp_round` counts exactly the
 * library's pop, push and notify work (bench/hostbench.sh does this); the
 * warm-up rounds run through warm_round() and are not counted.  Injecting
 * the interrupt is a counter here (VDUSE_VQ_INJECT_IRQ never reaches the
 * simulated kernel), so the figures are the library's own cost, without
 * the system call a real device pays per interrupt.
 *
 * -a single: vduse_vq_pop() until -EAGAIN, vduse_vq_push() and free() each,
 * one vduse_vq_notify() (the backend's request is the element plus 64
 * bytes); -a batch: vduse_vq_pop_batch() with room for 64, one
 * vduse_vq_push_batch() with VDUSE_VQ_PUSH_NOTIFY.
 *
 * Usage: vduse-hostbench [-a single|batch] [-l direct|indirect] [-b N]
 *                        [-n requests] [-r repetitions] [-L] [-p]
 * With no -a/-l/-b every combination is run (batch sizes 1 and 32).
 * -L: with an in-flight log (a memfd), as a recovering backend would run.
 * -p: a packed ring (VIRTIO_F_RING_PACKED) instead of a split one: the
 * driver writes each request's descriptors at its avail position (the
 * first one's flags last), asks for an interrupt at its next used
 * position (DESC, as Linux does with EVENT_IDX) and reads used
 * descriptors back.  Not with -L (a logged device stays split).
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "libvduse.h"
#include "sim_driver.h"
#include "sim_packed.h"
#include "sys.h"

#define QSIZE		256u
#define RING_IOVA	0x100000ull	/* desc, avail, used: 64 KiB */
#define RING_SIZE	0x10000ull
#define TABLE_IOVA	0x200000ull	/* indirect tables, 64 B each */
#define TABLE_SIZE	0x10000ull
#define HDR_IOVA	0x300000ull	/* headers (16 B) and status (1 B) */
#define HDR_SIZE	0x10000ull
#define DATA_IOVA	0x400000ull	/* 4 KiB data buffers */
#define DATA_SIZE	(QSIZE * 4096ull)
#define REQ_LEN		4096u
#define MAX_BATCH	256u
/* What a backend keeps next to the element (iocb, tag, ...). */
#define BACKEND_BYTES	64u

enum api { API_SINGLE, API_BATCH, API_NR };
enum layout { DIRECT, INDIRECT, LAYOUT_NR };

static const char *const api_names[] = { "single", "batch" };
static const char *const layout_names[] = { "direct", "indirect" };

struct backend_req {
	struct vduse_vq_elem elem;
	uint8_t state[BACKEND_BYTES];
};

/* The driver: ring pointers into guest memory and a list of free heads. */
struct driver {
	unsigned int num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx, last_used;
	uint16_t free_heads[QSIZE];
	unsigned int nr_free;
};

static struct driver drv;

/* The packed-ring driver: buffer ids 0..nr_ids-1, each a fixed request. */
struct pdriver {
	struct vring_packed_desc *desc;
	struct vring_packed_desc_event *driver_ev;
	uint16_t next_avail, next_used;
	bool avail_wrap, used_wrap;
	enum layout layout;
	uint16_t free_ids[QSIZE];
	unsigned int nr_free;
};

static struct pdriver pdrv;
static bool packed;
static struct sim_pvq pvq;
static struct vduse_vq *vq;
static enum api cur_api;
static unsigned long irqs;

static const struct vduse_sys *fake_sys;
static struct vduse_sys bench_sys;

static int bench_ioctl(int fd, unsigned long req, void *arg)
{
	if (req == VDUSE_VQ_INJECT_IRQ) {
		irqs++;
		return 0;
	}
	return fake_sys->ioctl(fd, req, arg);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "vduse-hostbench: %s: %s\n", what, strerror(-err));
	exit(1);
}

static void *gp(uint64_t iova)
{
	void *p = fk_iova_ptr(iova);

	if (!p)
		die("guest address", -EFAULT);
	return p;
}

static void put_desc(struct vring_desc *d, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	d->addr = htole64(addr);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

/*
 * Lay out every request once: the driver only moves heads through the
 * avail and used rings afterwards, as a driver with a fixed pool would.
 */
static void driver_init(struct sim_vq *s, enum layout layout)
{
	unsigned int i, heads;

	drv.num = s->num;
	drv.desc = gp(s->desc);
	drv.avail = gp(s->avail);
	drv.used = gp(s->used);
	drv.avail_idx = drv.last_used = 0;
	heads = layout == DIRECT ? s->num / 3 : s->num;
	for (i = 0; i < heads; i++) {
		uint64_t hdr = HDR_IOVA + 32ull * i;
		uint64_t data = DATA_IOVA + 4096ull * i;
		struct vring_desc *d;
		unsigned int h;

		if (layout == DIRECT) {
			h = 3 * i;
			d = &drv.desc[h];
			put_desc(&d[0], hdr, 16, VRING_DESC_F_NEXT, h + 1);
			put_desc(&d[1], data, REQ_LEN,
				 VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, h + 2);
			put_desc(&d[2], hdr + 16, 1, VRING_DESC_F_WRITE, 0);
		} else {
			uint64_t table = TABLE_IOVA + 64ull * i;

			h = i;
			d = gp(table);
			put_desc(&d[0], hdr, 16, VRING_DESC_F_NEXT, 1);
			put_desc(&d[1], data, REQ_LEN,
				 VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
			put_desc(&d[2], hdr + 16, 1, VRING_DESC_F_WRITE, 0);
			put_desc(&drv.desc[h], table, 48,
				 VRING_DESC_F_INDIRECT, 0);
		}
		drv.free_heads[i] = (uint16_t)h;
	}
	drv.nr_free = heads;
}

static uint16_t *used_event(void)
{
	return &drv.avail->ring[drv.num];
}

/* Make @n requests available and ask for an interrupt at the next used. */
static void driver_submit(unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint16_t h = drv.free_heads[--drv.nr_free];

		drv.avail->ring[(uint16_t)(drv.avail_idx + i) % drv.num] =
			htole16(h);
	}
	drv.avail_idx += n;
	__atomic_store_n(used_event(), htole16(drv.last_used),
			 __ATOMIC_RELAXED);
	__atomic_store_n(&drv.avail->idx, htole16(drv.avail_idx),
			 __ATOMIC_RELEASE);
}

static unsigned int driver_reap(void)
{
	uint16_t idx = le16toh(__atomic_load_n(&drv.used->idx,
						__ATOMIC_ACQUIRE));
	unsigned int n = 0;

	while (drv.last_used != idx) {
		struct vring_used_elem *u =
			&drv.used->ring[drv.last_used % drv.num];

		if (le32toh(u->len) != REQ_LEN + 1)
			die("used length", -EINVAL);
		drv.free_heads[drv.nr_free++] = (uint16_t)le32toh(u->id);
		drv.last_used++;
		n++;
	}
	return n;
}

#define PF_AVAIL	(1u << VRING_PACKED_DESC_F_AVAIL)
#define PF_USED		(1u << VRING_PACKED_DESC_F_USED)

static void pdriver_init(struct sim_pvq *s, enum layout layout)
{
	unsigned int i, ids = layout == DIRECT ? s->num / 3 : s->num;

	pdrv.desc = gp(s->desc);
	pdrv.driver_ev = gp(s->driver);
	pdrv.next_avail = pdrv.next_used = 0;
	pdrv.avail_wrap = pdrv.used_wrap = true;
	pdrv.layout = layout;
	for (i = 0; i < ids; i++) {
		uint64_t hdr = HDR_IOVA + 32ull * i;
		uint64_t data = DATA_IOVA + 4096ull * i;

		if (layout == INDIRECT) {
			struct vring_packed_desc *t = gp(TABLE_IOVA + 64ull * i);

			t[0] = (struct vring_packed_desc){ htole64(hdr), htole32(16), 0, 0 };
			t[1] = (struct vring_packed_desc){ htole64(data), htole32(REQ_LEN), 0,
							   htole16(VRING_DESC_F_WRITE) };
			t[2] = (struct vring_packed_desc){ htole64(hdr + 16), htole32(1), 0,
							   htole16(VRING_DESC_F_WRITE) };
		}
		pdrv.free_ids[i] = (uint16_t)i;
	}
	pdrv.nr_free = ids;
}

/* Write one descriptor at the avail position; returns its flags. */
static uint16_t pdriver_put(uint16_t id, uint64_t addr, uint32_t len,
			    uint16_t flags, bool first)
{
	struct vring_packed_desc *d = &pdrv.desc[pdrv.next_avail];

	flags |= pdrv.avail_wrap ? PF_AVAIL : PF_USED;
	d->addr = htole64(addr);
	d->len = htole32(len);
	d->id = htole16(id);
	if (!first)
		d->flags = htole16(flags);
	if (++pdrv.next_avail == drv.num) {
		pdrv.next_avail = 0;
		pdrv.avail_wrap = !pdrv.avail_wrap;
	}
	return flags;
}

static void pdriver_submit(unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint16_t id = pdrv.free_ids[--pdrv.nr_free];
		uint64_t hdr = HDR_IOVA + 32ull * id;
		uint16_t head = pdrv.next_avail, f;

		if (pdrv.layout == DIRECT) {
			f = pdriver_put(id, hdr, 16, VRING_DESC_F_NEXT, true);
			pdriver_put(id, DATA_IOVA + 4096ull * id, REQ_LEN,
				    VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, false);
			pdriver_put(id, hdr + 16, 1, VRING_DESC_F_WRITE, false);
		} else {
			f = pdriver_put(id, TABLE_IOVA + 64ull * id, 48,
					VRING_DESC_F_INDIRECT, true);
		}
		__atomic_store_n(&pdrv.desc[head].flags, htole16(f),
				 __ATOMIC_RELEASE);
	}
	pdrv.driver_ev->off_wrap = htole16(pdrv.next_used |
		(pdrv.used_wrap ? 1u << VRING_PACKED_EVENT_F_WRAP_CTR : 0));
	__atomic_store_n(&pdrv.driver_ev->flags,
			 htole16(VRING_PACKED_EVENT_FLAG_DESC), __ATOMIC_RELEASE);
}

static unsigned int pdriver_reap(void)
{
	unsigned int n = 0;

	for (;;) {
		struct vring_packed_desc *d = &pdrv.desc[pdrv.next_used];
		uint16_t f = le16toh(__atomic_load_n(&d->flags, __ATOMIC_ACQUIRE));
		uint16_t id;

		if (!(f & PF_AVAIL) != !(f & PF_USED) ||
		    !(f & PF_USED) != !pdrv.used_wrap)
			return n;
		if (le32toh(d->len) != REQ_LEN + 1)
			die("used length", -EINVAL);
		id = le16toh(d->id);
		pdrv.free_ids[pdrv.nr_free++] = id;
		pdrv.next_used += pdrv.layout == DIRECT ? 3 : 1;
		if (pdrv.next_used >= drv.num) {
			pdrv.next_used -= drv.num;
			pdrv.used_wrap = !pdrv.used_wrap;
		}
		n++;
	}
}

/* The device side of one round: everything available, popped and pushed. */
static inline void round_single(void)
{
	struct vduse_vq_elem *elems[MAX_BATCH];
	unsigned int n = 0, i;
	int ret;

	for (;;) {
		void *p;

		ret = vduse_vq_pop(vq, sizeof(struct backend_req), &p);
		if (ret == -EAGAIN)
			break;
		if (ret < 0)
			die("pop", ret);
		elems[n++] = p;
	}
	for (i = 0; i < n; i++) {
		ret = vduse_vq_push(vq, elems[i], REQ_LEN + 1);
		if (ret < 0)
			die("push", ret);
		free(elems[i]);
	}
	ret = vduse_vq_notify(vq);
	if (ret < 0)
		die("notify", ret);
}

/* The batch API: pop with room for BATCH_ROOM, one push with notify. */
#define BATCH_ROOM	64u

static inline void round_batch(void)
{
	struct vduse_vq_elem *elems[MAX_BATCH];
	uint32_t lens[MAX_BATCH];
	unsigned int n = 0, i;
	int ret;

	for (;;) {
		unsigned int room = MAX_BATCH - n < BATCH_ROOM ?
				    MAX_BATCH - n : BATCH_ROOM;

		ret = vduse_vq_pop_batch(vq, elems + n, room);
		if (ret == -EAGAIN)
			break;
		if (ret < 0)
			die("pop_batch", ret);
		n += (unsigned int)ret;
		if ((unsigned int)ret < room)
			break;	/* the ring was empty */
	}
	for (i = 0; i < n; i++)
		lens[i] = REQ_LEN + 1;
	ret = vduse_vq_push_batch(vq, elems, lens, n, VDUSE_VQ_PUSH_NOTIFY);
	if (ret < 0)
		die("push_batch", ret);
}

static inline void round_device(void)
{
	if (cur_api == API_SINGLE)
		round_single();
	else
		round_batch();
}

__attribute__((noinline)) void dp_round(void);
__attribute__((noinline)) void warm_round(void);

void dp_round(void)
{
	round_device();
	__asm__ volatile("" ::: "memory");
}

/* Not identical to dp_round(), or the compiler may fold the two into one
 * function and callgrind would count the warm-up too. */
static volatile unsigned long warm_rounds;

void warm_round(void)
{
	round_device();
	warm_rounds++;
}

static int log_fd = -1;

static void setup(enum layout layout, bool with_log)
{
	struct vduse_device_config c = {
		.size = sizeof(c),
		.name = "bench",
		.device_id = 2,
		.vendor_id = 0x1af4,
		.num_queues = 1,
		.queue_size = QSIZE,
	};
	uint64_t features = (1ull << VIRTIO_F_VERSION_1) |
			    (1ull << VIRTIO_F_ACCESS_PLATFORM) |
			    (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
			    (1ull << VIRTIO_RING_F_EVENT_IDX) |
			    (packed ? 1ull << VIRTIO_F_RING_PACKED : 0);
	struct vduse_device *dev;
	struct sim_vq s;
	int ret;

	fk_setup();
	fake_sys = vduse_sys;
	bench_sys = *fake_sys;
	bench_sys.ioctl = bench_ioctl;
	vduse_sys_set(&bench_sys);
	if ((ret = fk_region_add(RING_IOVA, RING_SIZE, VDUSE_ACCESS_RW)) ||
	    (ret = fk_region_add(TABLE_IOVA, TABLE_SIZE, VDUSE_ACCESS_RW)) ||
	    (ret = fk_region_add(HDR_IOVA, HDR_SIZE, VDUSE_ACCESS_RW)) ||
	    (ret = fk_region_add(DATA_IOVA, DATA_SIZE, VDUSE_ACCESS_RW)))
		die("region", ret);
	if (with_log) {
		log_fd = memfd_create("bench-log", MFD_CLOEXEC);
		if (log_fd < 0)
			die("memfd", -errno);
		c.flags |= VDUSE_DEVICE_F_LOG_FD;
		c.log_fd = log_fd;
	}
	ret = vduse_device_new(&c, &dev);
	if (ret < 0)
		die("vduse_device_new", ret);
	if (packed)
		sim_pvq_init(&pvq, 0, QSIZE, RING_IOVA);
	else
		sim_vq_init_at(&s, 0, QSIZE, RING_IOVA, 0);
	if (sim_driver_ok(dev, features) != VDUSE_REQ_RESULT_OK)
		die("DRIVER_OK", -EIO);
	vq = vduse_device_vq(dev, 0);
	if (!vduse_vq_started(vq))
		die("queue start", -EIO);
	drv.num = QSIZE;
	if (packed)
		pdriver_init(&pvq, layout);
	else
		driver_init(&s, layout);
}

static void teardown(void)
{
	vduse_device_free(vduse_vq_device(vq));
	vq = NULL;
	fk_teardown();
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
}

static void run_rounds(unsigned long requests, unsigned int batch,
		       void (*fn)(void))
{
	unsigned long done = 0;

	while (done < requests) {
		unsigned int n = requests - done < batch ?
				 (unsigned int)(requests - done) : batch;

		if (packed)
			pdriver_submit(n);
		else
			driver_submit(n);
		fn();
		if ((packed ? pdriver_reap() : driver_reap()) != n)
			die("requests lost", -EIO);
		done += n;
	}
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void run_case(enum api api, enum layout layout, unsigned int batch,
		     unsigned long requests, unsigned int reps, bool with_log)
{
	double ns[16];
	unsigned int r;
	unsigned long irq_count;

	cur_api = api;
	setup(layout, with_log);
	if (batch > (packed ? pdrv.nr_free : drv.nr_free))
		die("batch larger than the ring holds", -EINVAL);
	/* Map everything and warm the caches: two passes over the ring. */
	run_rounds(2 * QSIZE, batch, warm_round);
	irqs = 0;
	for (r = 0; r < reps; r++) {
		double t0 = now_ns();

		run_rounds(requests, batch, dp_round);
		ns[r] = (now_ns() - t0) / (double)requests;
	}
	irq_count = irqs;
	teardown();
	qsort(ns, reps, sizeof(ns[0]), cmp_double);
	printf("%-7s %-6s %-9s %5u %4s %10lu %9.1f %9.1f %9.3f\n",
	       api_names[api], packed ? "packed" : "split",
	       layout_names[layout], batch, with_log ? "yes" : "no", requests,
	       ns[reps / 2], ns[0],
	       (double)irq_count / ((double)requests * reps));
	fflush(stdout);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: vduse-hostbench [-a single|batch] [-l direct|indirect] [-b N] [-n requests] [-r reps] [-L] [-p]\n");
	exit(2);
}

static int lookup(const char *const *names, unsigned int nr, const char *s)
{
	unsigned int i;

	for (i = 0; i < nr; i++)
		if (!strcmp(names[i], s))
			return (int)i;
	usage();
	return -1;
}

int main(int argc, char **argv)
{
	static const unsigned int batches[] = { 1, 32 };
	unsigned long requests = 1000000;
	unsigned int reps = 5, batch = 0, a, l, b;
	int api = -1, layout = -1, opt;
	bool with_log = false;

	while ((opt = getopt(argc, argv, "a:l:b:n:r:Lp")) != -1) {
		switch (opt) {
		case 'a':
			api = lookup(api_names, API_NR, optarg);
			break;
		case 'l':
			layout = lookup(layout_names, LAYOUT_NR, optarg);
			break;
		case 'b':
			batch = (unsigned int)strtoul(optarg, NULL, 0);
			if (!batch || batch > MAX_BATCH)
				usage();
			break;
		case 'n':
			requests = strtoul(optarg, NULL, 0);
			if (!requests)
				usage();
			break;
		case 'r':
			reps = (unsigned int)strtoul(optarg, NULL, 0);
			if (!reps || reps > 16)
				usage();
			break;
		case 'L':
			with_log = true;
			break;
		case 'p':
			packed = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || (packed && with_log))
		usage();
	vduse_log_set_handler(NULL, NULL);
	printf("# %s 4 KiB requests, queue size %u; ns/request: median and best of %u runs\n",
	       "virtio-blk style", QSIZE, reps);
	printf("%-7s %-6s %-9s %5s %4s %10s %9s %9s %9s\n", "api", "ring",
	       "layout", "batch", "log", "requests", "ns/req", "best",
	       "irq/req");
	for (a = 0; a < API_NR; a++) {
		if (api >= 0 && a != (unsigned int)api)
			continue;
		for (l = 0; l < LAYOUT_NR; l++) {
			if (layout >= 0 && l != (unsigned int)layout)
				continue;
			for (b = 0; b < 2; b++) {
				unsigned int n = batch ? batch : batches[b];

				if (batch && b)
					break;
				run_case(a, l, n, requests, reps, with_log);
			}
		}
	}
	return 0;
}
