// SPDX-License-Identifier: MIT
/*
 * fuzz-split-ring: a split virtqueue whose descriptor table, available ring
 * and indirect tables are fuzz input, popped and pushed through the public
 * API against the fake kernel.
 *
 * Input: a header (features, ring size, alignment, start index), the
 * descriptor table, the available ring, a block of indirect descriptors,
 * then operations: pop, push, notify, and driver-side changes (publish more,
 * rewrite a descriptor or a ring entry, interrupt suppression, a push of an
 * id not in flight, GET_VQ_STATE).
 *
 * A reference model walks each chain the way the virtio spec and the
 * library's documented checks say (index range, loop bound, indirect rules,
 * readable after writable, permissions, wrap-around, unmapped bytes).  A
 * chain the model accepts must pop with exactly the buffers the model found
 * (each iovec byte is the guest byte at that IOVA); one it rejects must
 * break the queue (-EIO, one queue_error call, nothing popped).  No head is
 * popped while in flight, every push of a popped element succeeds and
 * appears in the used ring as pushed, a push of anything else is refused,
 * notify interrupts exactly when the driver asked, and everything is
 * released when the device is freed.
 */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>

#include "fake_kernel.h"
#include "fuzz_common.h"
#include "libvduse.h"
#include "sim_driver.h"

#define QSIZE_MAX	256u
#define MAX_OPS		256
#define IND_DESCS	64u

/* Guest memory (IOVA): rings, indirect tables, three adjacent data
 * regions with different permissions, a hole, and the top of the space. */
#define RING		0x10000ull
#define RING_SIZE	0x3000ull
#define DESC_AT		RING
#define AVAIL_AT	(RING + 0x1000)
#define USED_AT		(RING + 0x2000)
#define IND		0x20000ull
#define IND_SIZE	0x1000ull
#define DATA_RW		0x30000ull
#define DATA_RO		0x31000ull
#define DATA_WO		0x32000ull
#define DATA_SIZE	0x1000ull
#define HOLE		0x40000ull
#define TOP		0xfffffffffffff000ull
#define TOP_SIZE	0x1000ull

static const struct fz_region regions[] = {
	{ RING, RING_SIZE, VDUSE_ACCESS_RW },
	{ IND, IND_SIZE, VDUSE_ACCESS_RW },
	{ DATA_RW, DATA_SIZE, VDUSE_ACCESS_RW },
	{ DATA_RO, DATA_SIZE, VDUSE_ACCESS_RO },
	{ DATA_WO, DATA_SIZE, VDUSE_ACCESS_WO },
	{ TOP, TOP_SIZE, VDUSE_ACCESS_RW },
};
#define NR_REGIONS	(sizeof(regions) / sizeof(regions[0]))

/* What the model expects of one pop. */
struct expect {
	int ret;		/* 0, -EAGAIN or -EIO */
	unsigned int head;
	bool either;		/* too many pieces: the library may refuse */
	unsigned int nout, nin;
	struct fz_seg out[2 * 512 + 16], in[2 * 512 + 16];
};

static struct {
	struct vduse_device *dev;
	struct vduse_vq *vq;
	struct sim_vq s;
	bool started, broken;
	bool event_idx, indirect;
	unsigned int num;
	uint16_t last_avail, used_idx, signalled;
	struct vduse_vq_elem *inflight[QSIZE_MAX];	/* by head */
	unsigned int nr_inflight;
	unsigned int errors;	/* queue_error calls */
	struct expect ex;
	uint8_t table[IND_DESCS * 16 * 4];	/* model's indirect copy */
} st;

static void on_error(struct vduse_device *dev, struct vduse_vq *vq, int err)
{
	FZ_CHECK(vq == st.vq, "queue_error for another queue");
	FZ_CHECK(err < 0, "queue_error with %d", err);
	st.errors++;
}

static const struct vduse_device_ops ops = {
	.size = sizeof(ops),
	.queue_error = on_error,
};

static int pieces(uint64_t iova, uint64_t len, unsigned int perm,
		  struct fz_seg *out, unsigned int room)
{
	const struct fz_memory m = { regions, NR_REGIONS, NULL };

	return fz_pieces(&m, iova, len, perm, out, room);
}

static void read_guest(uint64_t iova, void *dst, uint64_t len)
{
	const struct fz_memory m = { regions, NR_REGIONS, NULL };

	fz_read_guest(&m, iova, dst, len);
}

static uint16_t rd16(uint64_t iova)
{
	uint16_t v;

	memcpy(&v, fk_iova_ptr(iova), 2);
	return le16toh(v);
}

static void wr16(uint64_t iova, uint16_t v)
{
	v = htole16(v);
	memcpy(fk_iova_ptr(iova), &v, 2);
}

/* The model's walk of the chain at @head (spec rules, library limits). */
static bool model_walk(unsigned int head, struct expect *ex)
{
	const uint8_t *table = fk_iova_ptr(st.s.desc);
	unsigned int size = st.num, idx = head, seen = 0, total = 0;
	bool in_ind = false, have_in = false;

	ex->nout = ex->nin = 0;
	for (;;) {
		struct vring_desc d;
		uint16_t flags;
		uint64_t addr;
		uint32_t len;
		bool write;
		int n;

		if (idx >= size || ++seen > size)
			return false;
		memcpy(&d, table + 16 * idx, sizeof(d));
		flags = le16toh(d.flags);
		addr = le64toh(d.addr);
		len = le32toh(d.len);
		if (flags & VRING_DESC_F_INDIRECT) {
			if (in_ind || !st.indirect ||
			    (flags & VRING_DESC_F_NEXT))
				return false;
			if (!len || len % 16 || len / 16 > QSIZE_MAX)
				return false;
			if (pieces(addr, len, VDUSE_ACCESS_RO, NULL, 0) < 0)
				return false;
			read_guest(addr, st.table, len);
			table = st.table;
			size = len / 16;
			idx = 0;
			seen = 0;
			in_ind = true;
			continue;
		}
		write = flags & VRING_DESC_F_WRITE;
		if (!write && have_in)
			return false;
		if (write)
			n = pieces(addr, len, VDUSE_ACCESS_WO, ex->in + ex->nin,
				   2 * 512 + 16 - ex->nin);
		else
			n = pieces(addr, len, VDUSE_ACCESS_RO,
				   ex->out + ex->nout, 2 * 512 + 16 - ex->nout);
		if (n < 0)
			return false;
		total += n;
		if (total > 2 * 512 + 16)
			return false;	/* beyond any sane scratch size */
		if (write) {
			ex->nin += n;
			have_in |= n > 0;
		} else {
			ex->nout += n;
		}
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		idx = le16toh(d.next);
	}
	/* The library gathers at most 2 * queue_size + 16 iovecs. */
	ex->either = total > 2 * QSIZE_MAX;
	return true;
}

static void model_pop(struct expect *ex)
{
	uint16_t avail;

	ex->either = false;
	if (!st.started || st.broken) {
		ex->ret = -EIO;
		return;
	}
	avail = rd16(st.s.avail + 2);
	if ((uint16_t)(avail - st.last_avail) > st.num) {
		ex->ret = -EIO;
		return;
	}
	if (avail == st.last_avail) {
		ex->ret = -EAGAIN;
		return;
	}
	ex->head = rd16(st.s.avail + 4 + 2 * (st.last_avail % st.num));
	if (ex->head >= st.num || st.inflight[ex->head]) {
		ex->ret = -EIO;
		return;
	}
	ex->ret = model_walk(ex->head, ex) ? 0 : -EIO;
}

static void op_pop(struct fz_in *in)
{
	struct expect *ex = &st.ex;
	size_t extra = fz_u8(in), sz = sizeof(struct vduse_vq_elem) + extra;
	unsigned int errors = st.errors, k;
	struct vduse_vq_elem *elem = NULL;
	void *p = NULL;
	int ret;

	model_pop(ex);
	ret = vduse_vq_pop(st.vq, sz, &p);
	if (ex->either && ret == -EIO)
		ex->ret = -EIO;
	FZ_CHECK(ret == ex->ret, "pop = %d, model says %d (head %u)", ret,
		 ex->ret, ex->head);
	if (ret == -EAGAIN) {
		FZ_CHECK(!p, "pop: element with -EAGAIN");
		if (st.event_idx)
			FZ_CHECK(sim_avail_event(&st.s) == st.last_avail,
				 "empty ring: avail_event %u, want %u",
				 sim_avail_event(&st.s), st.last_avail);
		return;
	}
	if (ret == -EIO) {
		if (st.started && !st.broken) {
			st.broken = true;
			FZ_CHECK(st.errors == errors + 1,
				 "queue broke with %u queue_error calls",
				 st.errors - errors);
		}
		FZ_CHECK(vduse_vq_broken(st.vq) || !st.started,
			 "pop -EIO but the queue is not broken");
		return;
	}
	FZ_CHECK(st.errors == errors, "queue_error on a good pop");
	elem = p;
	FZ_CHECK(elem->id == ex->head, "popped id %u, want head %u", elem->id,
		 ex->head);
	for (k = sizeof(*elem); k < sz; k++)
		FZ_CHECK(((uint8_t *)elem)[k] == 0, "caller bytes not zeroed");
	memset((uint8_t *)elem + sizeof(*elem), 0xa5, extra);
	fz_check_sg(elem->out_sg, elem->out_num, ex->out, ex->nout, "out");
	fz_check_sg(elem->in_sg, elem->in_num, ex->in, ex->nin, "in");
	st.inflight[elem->id] = elem;
	st.nr_inflight++;
	st.last_avail++;
	FZ_CHECK(vduse_vq_inflight(st.vq) == st.nr_inflight,
		 "library counts %u in flight, model %u",
		 vduse_vq_inflight(st.vq), st.nr_inflight);
	if (st.event_idx)
		FZ_CHECK(sim_avail_event(&st.s) == st.last_avail,
			 "avail_event %u after pop, want %u",
			 sim_avail_event(&st.s), st.last_avail);
}

static void push_one(unsigned int head, uint32_t len)
{
	struct vduse_vq_elem *elem = st.inflight[head];
	uint32_t id, ulen;
	int ret;

	ret = vduse_vq_push(st.vq, elem, len);
	FZ_CHECK(ret == 0, "push of popped head %u = %d", head, ret);
	st.inflight[head] = NULL;
	st.nr_inflight--;
	free(elem);
	st.used_idx++;
	FZ_CHECK(sim_used_idx(&st.s) == st.used_idx, "used idx %u, want %u",
		 sim_used_idx(&st.s), st.used_idx);
	FZ_CHECK(sim_get_used(&st.s, &id, &ulen), "no used entry");
	FZ_CHECK(id == head && ulen == len,
		 "used entry (%u, %u), pushed (%u, %u)", id, ulen, head, len);
}

static void op_push(struct fz_in *in)
{
	unsigned int k = fz_u8(in), h;
	uint32_t len = fz_u16(in);

	if (!st.nr_inflight)
		return;
	k %= st.nr_inflight;
	for (h = 0; h < QSIZE_MAX; h++)
		if (st.inflight[h] && !k--)
			break;
	push_one(h, len);
}

static void op_bogus_push(struct fz_in *in)
{
	struct vduse_vq_elem fake = { .id = fz_u16(in) };
	int ret;

	if (fake.id < QSIZE_MAX && st.inflight[fake.id])
		return;
	ret = vduse_vq_push(st.vq, &fake, 1);
	FZ_CHECK(ret == (st.started ? -EINVAL : -EIO),
		 "push of id %u not in flight = %d", fake.id, ret);
	FZ_CHECK(sim_used_idx(&st.s) == st.used_idx,
		 "a refused push moved the used index");
}

static void op_notify(void)
{
	uint16_t old = st.signalled, now = st.used_idx;
	unsigned int irqs = fk_vq_irqs(0);
	int want, ret;

	st.signalled = now;
	if (old == now)
		want = 0;
	else if (!st.event_idx)
		want = !(rd16(st.s.avail) & VRING_AVAIL_F_NO_INTERRUPT);
	else
		want = vring_need_event(rd16(st.s.avail + 4 + 2 * st.num),
					now, old);
	ret = vduse_vq_notify(st.vq);
	FZ_CHECK(ret == want, "notify = %d, want %d (used %u, was %u)", ret,
		 want, now, old);
	FZ_CHECK(fk_vq_irqs(0) == irqs + (unsigned int)want,
		 "notify %d but %u interrupts", ret, fk_vq_irqs(0) - irqs);
}

static void set_desc_from(struct fz_in *in, uint64_t at)
{
	static const uint64_t base[8] = {
		DATA_RW, DATA_RO, DATA_WO, IND, RING, TOP, HOLE, 0,
	};
	uint8_t sel = fz_u8(in), flags = fz_u8(in);
	uint16_t next = fz_u16(in), off = fz_u16(in), len16 = fz_u16(in);
	struct vring_desc d;
	uint64_t addr;
	uint32_t len = len16;

	if ((sel & 7) == 7)
		addr = UINT64_MAX - off;
	else
		addr = base[sel & 7] + off;
	if (sel & 0x80)
		len |= 0xffff0000u;
	if (sel & 0x40)	/* whole descriptors, as tables need */
		len &= ~15u;
	d.addr = htole64(addr);
	d.len = htole32(len);
	d.flags = htole16(flags);
	d.next = htole16(next);
	memcpy(fk_iova_ptr(at), &d, sizeof(d));
}

static void op_gvs(void)
{
	uint16_t idx = 0;
	int ret = sim_get_vq_state(st.dev, 0, &idx);

	FZ_CHECK(ret == VDUSE_REQ_RESULT_OK, "GET_VQ_STATE = %d", ret);
	if (st.started)
		FZ_CHECK(idx == st.last_avail, "GET_VQ_STATE %u, model %u",
			 idx, st.last_avail);
}

static void fill_data(void)
{
	unsigned int i;

	for (i = 2; i < NR_REGIONS; i++)
		fz_fill(fk_iova_ptr(regions[i].start), regions[i].start,
			regions[i].size, 0);
}

/* Header, rings and tables from the input; returns false to skip. */
static bool setup(struct fz_in *in)
{
	struct vduse_device_config cfg = {
		.size = sizeof(cfg),
		.name = "fuzz",
		.device_id = 2,
		.num_queues = 1,
		.queue_size = QSIZE_MAX,
		.ops = &ops,
	};
	uint64_t features = (1ull << VIRTIO_F_VERSION_1) |
			    (1ull << VIRTIO_F_ACCESS_PLATFORM);
	uint8_t f = fz_u8(in), sizesel = fz_u8(in);
	uint16_t start = fz_u16(in);
	uint64_t desc = DESC_AT, avail = AVAIL_AT, used = USED_AT;
	unsigned int i, num;
	bool aligned, good_num;
	int ret;

	for (i = 0; i < NR_REGIONS; i++)
		FZ_CHECK(!fk_region_add(regions[i].start, regions[i].size,
					(uint8_t)regions[i].perm),
			 "region %u", i);
	fill_data();
	ret = vduse_device_new(&cfg, &st.dev);
	FZ_CHECK(ret == 0, "vduse_device_new = %d", ret);
	st.vq = vduse_device_vq(st.dev, 0);

	st.event_idx = f & 1;
	st.indirect = f & 2;
	if (st.event_idx)
		features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	if (st.indirect)
		features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	/* Misaligned rings (bits 2-4) and sizes the library must refuse. */
	desc += (f & 4) ? 8 : 0;
	avail += (f & 8) ? 1 : 0;
	used += (f & 16) ? 2 : 0;
	aligned = !(f & 28);
	num = (f & 32) ? sizesel * 2u : 1u << (sizesel % 9);
	good_num = num && num <= QSIZE_MAX && !(num & (num - 1));
	st.num = num;

	if (aligned && good_num) {
		sim_vq_init(&st.s, 0, num, desc, avail, used, start);
	} else {
		memset(&st.s, 0, sizeof(st.s));
		fk_set_vq_info(0, num, desc, avail, used, start, true);
	}
	if (aligned && good_num) {
		for (i = 0; i < num; i++)
			set_desc_from(in, desc + 16 * i);
		for (i = 0; i < num; i++)
			wr16(avail + 4 + 2 * i, fz_u16(in));
		for (i = 0; i < IND_DESCS; i++)
			set_desc_from(in, IND + 16 * i);
		sim_set_avail_idx(&st.s, (uint16_t)(start + fz_u8(in)));
	}
	ret = sim_driver_ok(st.dev, features);
	FZ_CHECK(ret == VDUSE_REQ_RESULT_OK || !(aligned && good_num),
		 "DRIVER_OK = %d", ret);
	st.started = vduse_vq_started(st.vq);
	FZ_CHECK(st.started == (aligned && good_num),
		 "queue started %d, num %u aligned %d", st.started, num,
		 aligned);
	st.last_avail = start;
	st.used_idx = start;
	st.signalled = start;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	unsigned int ops_done = 0, h;

	fk_setup();
	fz_log_reset();
	memset(&st, 0, offsetof(typeof(st), ex));
	setup(&in);

	while (fz_more(&in) && ops_done++ < MAX_OPS) {
		uint8_t op = fz_u8(&in);

		if (!st.started) {
			op_pop(&in);
			continue;
		}
		switch (op % 10) {
		case 0:
		case 1:
			op_pop(&in);
			break;
		case 2:
			op_push(&in);
			break;
		case 3:
			op_notify();
			break;
		case 4:
			sim_set_avail_idx(&st.s,
					  (uint16_t)(rd16(st.s.avail + 2) +
						     fz_u8(&in) % 4));
			break;
		case 5:
			set_desc_from(&in, st.s.desc + 16 * (fz_u16(&in) %
							    st.num));
			break;
		case 6:
			wr16(st.s.avail + 4 + 2 * (fz_u16(&in) % st.num),
			     fz_u16(&in));
			break;
		case 7:
			sim_set_avail_flags(&st.s, fz_u8(&in) & 1);
			sim_set_used_event(&st.s, fz_u16(&in));
			break;
		case 8:
			op_bogus_push(&in);
			break;
		default:
			op_gvs();
			break;
		}
	}

	/* Every popped element is pushed, and each push succeeds. */
	for (h = 0; h < QSIZE_MAX; h++)
		if (st.inflight[h])
			push_one(h, 0);
	if (st.started)
		FZ_CHECK(vduse_vq_inflight(st.vq) == 0, "%u still in flight",
			 vduse_vq_inflight(st.vq));
	fz_free_device(st.dev);
	return 0;
}
