// SPDX-License-Identifier: MIT
/*
 * fuzz-packed-ring: a packed virtqueue (VIRTIO_F_RING_PACKED) whose
 * descriptor ring, driver event area and indirect tables are fuzz input,
 * popped and pushed through the public API (single and batch) against the
 * fake kernel.
 *
 * Input: a header (features, misalignments, ring size, the ring state
 * VQ_GET_INFO reports, what is left in flight at the end), the whole
 * descriptor ring, a block of indirect descriptors, the driver's first
 * position, then operations: pop, pop a batch, push one, push a batch
 * (with a duplicate or a stranger in it, or the interrupt decision),
 * notify, the driver adding a buffer, a raw descriptor rewrite, the
 * driver's event area, kicks off and on, GET_VQ_STATE, a push of an id not
 * in flight, the driver's position moved, the kernel moving a region to
 * other memory or taking one away (with the UPDATE_IOTLB it owes) and
 * bringing it back, the driver resetting the device with elements in
 * flight and starting it again.  gen-corpus.py spells the format out byte
 * by byte; FUZZ_TRACE=1 in the environment prints each operation.
 *
 * A reference model, written from the virtio spec's packed-ring rules and
 * the checks lib/vq_packed.c documents, decides every answer:
 *  - a buffer is available when its first descriptor's AVAIL bit equals
 *    the avail wrap counter and its USED bit differs;
 *  - one made available while the ring is full (num descriptors popped
 *    and not used) is refused;
 *  - a chain runs through NEXT over consecutive positions (wrapping) and
 *    may not be longer than the free part of the ring; its buffer id is
 *    its last descriptor's, and one already in flight is refused;
 *  - an indirect descriptor (negotiated, without NEXT) holds a table of
 *    16-byte descriptors, len a non-zero multiple of 16 and at most the
 *    queue's max size entries, none of them indirect; its table is walked
 *    whole;
 *  - readable after writable, unmapped bytes, a missing permission and a
 *    range that wraps are refused.
 * A chain the model accepts must pop with exactly the buffers it found
 * (each iovec byte is the guest byte at that IOVA); one it rejects must
 * break the queue (-EIO, one queue_error call, nothing popped).  Pushes in
 * any order appear as used descriptors at the used position with the
 * buffer id, length and wrap bits, the position moving on by the
 * descriptors the buffer took; notify interrupts exactly as the driver's
 * event area asks (DISABLE, ENABLE, DESC with EVENT_IDX); kicks off and on
 * write the device's area; GET_VQ_STATE answers the model's positions and
 * wrap counters; the library writes nothing else in the ring or the event
 * areas; an element's iovecs stay readable until it is pushed, whatever
 * was remapped or unmapped; everything is released when the device is
 * freed.
 */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_kernel.h"
#include "fuzz_common.h"
#include "libvduse.h"
#include "sim_packed.h"

#define QSIZE_MAX	256u	/* the device's queue_size: max ring, table */
#define MAX_OPS		100	/* keeps descriptors used between notifies
				 * far below 2^15 (see op_notify) */
#define IND_DESCS	64u
#define MAX_BATCH	64u

#define F_AVAIL		(1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED		(1u << VRING_PACKED_DESC_F_USED)

/* Guest memory (IOVA): the ring and both event areas, indirect tables,
 * three adjacent data regions with different permissions, a hole, and
 * the top of the space. */
#define RING		0x10000ull
#define RING_SIZE	0x2000ull
#define DESC_AT		RING
#define DRIVER_AT	(RING + 0x1000)
#define DEVICE_AT	(RING + 0x1010)
/* An event area: off_wrap, then flags. */
#define DRIVER_FLAGS	(DRIVER_AT + 2)
#define DEVICE_FLAGS	(DEVICE_AT + 2)
#define IND		0x20000ull
#define IND_SIZE	0x1000ull
#define DATA_RW		0x30000ull
#define DATA_RO		0x31000ull
#define DATA_WO		0x32000ull
#define DATA_SIZE	0x1000ull
#define HOLE		0x40000ull
#define TOP		0xfffffffffffff000ull
#define TOP_SIZE	0x1000ull

/* The iovecs a pop may gather: 2 * queue_size + 16 (lib/vq.c). */
#define IOV_CAP		(2 * QSIZE_MAX + 16)
#define SEG_ROOM	(2 * IOV_CAP)

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
	bool either;		/* near the iovec cap: the library may refuse */
	uint16_t bufid;		/* the buffer id (last descriptor's) */
	unsigned int ndesc;	/* ring descriptors it takes */
	unsigned int nout, nin;
	struct fz_seg out[SEG_ROOM], in[SEG_ROOM];
};

/* A popped element, by its element id (a slot below the ring size). */
struct held {
	struct vduse_vq_elem *elem;
	bool mine;		/* from vduse_vq_pop(): free after the push */
	uint16_t bufid;
	unsigned int ndesc;
};

static struct {
	struct vduse_device *dev;
	struct vduse_vq *vq;
	bool started, broken;
	bool event_idx, indirect;
	bool kicks_off;		/* the device area says DISABLE */
	unsigned int num;
	/*
	 * Ring positions as counts modulo 2 * num: idx while the wrap
	 * counter is 1, num + idx while it is 0 (both start at 1).
	 */
	unsigned int avail_lin, used_lin, drv_lin;
	unsigned int in_ring;	/* descriptors popped and not used */
	unsigned int moved;	/* descriptors used since the last decision */
	struct held held[QSIZE_MAX];
	unsigned int nr_held;
	unsigned int errors;	/* queue_error calls */
	unsigned int stops;	/* queue_stop calls */
	uint64_t features;
	uint8_t bufids[65536 / 8];	/* in flight, by buffer id */
	struct expect ex;
	uint8_t table[QSIZE_MAX * 16];	/* the model's indirect copy */
	/*
	 * What the ring region (descriptors and both event areas) should
	 * hold: what the driver wrote, the used descriptors' id, len and
	 * flags, the device area's flags.  The library writes nothing else.
	 */
	uint8_t shadow[RING_SIZE];
	bool unmapped[NR_REGIONS];	/* taken away by the kernel */
	uint8_t saved[NR_REGIONS][0x2000];	/* their bytes meanwhile */
} st;

static void on_error(struct vduse_device *dev, struct vduse_vq *vq, int err)
{
	(void)dev;
	FZ_CHECK(vq == st.vq, "queue_error for another queue");
	FZ_CHECK(err < 0, "queue_error with %d", err);
	st.errors++;
}

/* FUZZ_TRACE in the environment: print each operation. */
static int trace = -1;

static void on_stop(struct vduse_device *dev, struct vduse_vq *vq)
{
	(void)dev;
	FZ_CHECK(vq == st.vq, "queue_stop for another queue");
	st.stops++;
}

static const struct vduse_device_ops ops = {
	.size = sizeof(ops),
	.queue_error = on_error,
	.queue_stop = on_stop,
};

/* Position and wrap counter of a ring count. */
static unsigned int lin_idx(unsigned int lin)
{
	return lin < st.num ? lin : lin - st.num;
}

static bool lin_wrap(unsigned int lin)
{
	return lin < st.num;
}

static unsigned int lin_add(unsigned int lin, unsigned int n)
{
	return (lin + n) % (2 * st.num);
}

static bool bufid_busy(uint16_t id)
{
	return st.bufids[id / 8] & (1u << (id % 8));
}

static void bufid_set(uint16_t id, bool busy)
{
	if (busy)
		st.bufids[id / 8] |= (uint8_t)(1u << (id % 8));
	else
		st.bufids[id / 8] &= (uint8_t)~(1u << (id % 8));
}

static int pieces(uint64_t iova, uint64_t len, unsigned int perm,
		  struct fz_seg *out, unsigned int room)
{
	const struct fz_memory m = { regions, NR_REGIONS, st.unmapped };

	return fz_pieces(&m, iova, len, perm, out, room);
}

static void read_guest(uint64_t iova, void *dst, uint64_t len)
{
	const struct fz_memory m = { regions, NR_REGIONS, st.unmapped };

	fz_read_guest(&m, iova, dst, len);
}

static uint16_t rd16(uint64_t iova)
{
	uint16_t v;

	memcpy(&v, fk_iova_ptr(iova), 2);
	return le16toh(v);
}

/* The driver (or the model for the library) writes guest memory. */
static void guest_write(uint64_t iova, const void *p, size_t n, bool guest)
{
	if (guest)
		memcpy(fk_iova_ptr(iova), p, n);
	if (iova - RING < RING_SIZE)
		memcpy(st.shadow + (iova - RING), p, n);
}

static void wr16(uint64_t iova, uint16_t v)
{
	v = htole16(v);
	guest_write(iova, &v, 2, true);
}

/* The ring region holds what the driver and the model say. */
static void check_ring_region(void)
{
	const uint8_t *ring = fk_iova_ptr(RING);
	size_t i;

	if (!memcmp(ring, st.shadow, RING_SIZE))
		return;
	for (i = 0; ring[i] == st.shadow[i]; i++)
		;
	FZ_CHECK(0, "ring region byte 0x%zx (%s) is 0x%02x, want 0x%02x", i,
		 i < 0x1000 ? "descriptors" : i < 0x1010 ? "driver area" :
		 "device area", ring[i], st.shadow[i]);
}

static struct vring_packed_desc ring_desc(unsigned int idx)
{
	struct vring_packed_desc d;

	memcpy(&d, fk_iova_ptr(DESC_AT + 16ull * idx), sizeof(d));
	return d;
}

/* Does the descriptor at the avail position make a buffer available? */
static bool model_head_available(void)
{
	uint16_t flags = le16toh(ring_desc(lin_idx(st.avail_lin)).flags);
	bool w = lin_wrap(st.avail_lin);

	return !!(flags & F_AVAIL) == w && !!(flags & F_USED) != w;
}

/* Add one buffer's pieces to @ex; false: the chain is refused. */
static bool model_buffer(struct expect *ex, uint64_t addr, uint32_t len,
			 bool write, unsigned int *total)
{
	int n;

	/* Readable after a writable one that gave an iovec. */
	if (!write && ex->nin)
		return false;
	if (write)
		n = pieces(addr, len, VDUSE_ACCESS_WO, ex->in + ex->nin,
			   SEG_ROOM - ex->nin);
	else
		n = pieces(addr, len, VDUSE_ACCESS_RO, ex->out + ex->nout,
			   SEG_ROOM - ex->nout);
	if (n < 0)
		return false;
	*total += (unsigned int)n;
	if (*total > SEG_ROOM)
		return false;	/* beyond what the library can gather */
	if (write)
		ex->nin += (unsigned int)n;
	else
		ex->nout += (unsigned int)n;
	return true;
}

/* An indirect table of @len bytes at @addr; false: refused. */
static bool model_table(struct expect *ex, uint64_t addr, uint32_t len,
			unsigned int *total)
{
	unsigned int i, n = len / 16;

	if (!st.indirect || !len || len % 16 || n > QSIZE_MAX)
		return false;
	if (pieces(addr, len, VDUSE_ACCESS_RO, NULL, 0) < 0)
		return false;
	read_guest(addr, st.table, len);
	for (i = 0; i < n; i++) {
		struct vring_packed_desc d;
		uint16_t flags;

		memcpy(&d, st.table + 16 * i, sizeof(d));
		flags = le16toh(d.flags);
		if (flags & VRING_DESC_F_INDIRECT)
			return false;
		if (!model_buffer(ex, le64toh(d.addr), le32toh(d.len),
				  flags & VRING_DESC_F_WRITE, total))
			return false;
	}
	return true;
}

/* The model's walk of the buffer at the avail position. */
static bool model_walk(struct expect *ex)
{
	unsigned int idx = lin_idx(st.avail_lin), room = st.num - st.in_ring;
	unsigned int total = 0;

	ex->nout = ex->nin = 0;
	ex->ndesc = 0;
	for (;;) {
		struct vring_packed_desc d;
		uint16_t flags;

		if (++ex->ndesc > room)
			return false;
		d = ring_desc(idx);
		idx = idx + 1 == st.num ? 0 : idx + 1;
		flags = le16toh(d.flags);
		ex->bufid = le16toh(d.id);
		if (flags & VRING_DESC_F_INDIRECT) {
			if (flags & VRING_DESC_F_NEXT)
				return false;
			if (!model_table(ex, le64toh(d.addr), le32toh(d.len),
					 &total))
				return false;
			break;
		}
		if (!model_buffer(ex, le64toh(d.addr), le32toh(d.len),
				  flags & VRING_DESC_F_WRITE, &total))
			return false;
		if (!(flags & VRING_DESC_F_NEXT))
			break;
	}
	if (bufid_busy(ex->bufid))
		return false;
	/* At most IOV_CAP iovecs; the library's count may differ from
	 * the pieces' near that limit. */
	ex->either = total > 2 * QSIZE_MAX;
	return true;
}

static void model_pop(struct expect *ex)
{
	ex->either = false;
	if (!st.started || st.broken) {
		ex->ret = -EIO;
		return;
	}
	if (!model_head_available()) {
		ex->ret = -EAGAIN;
		return;
	}
	if (st.in_ring >= st.num) {	/* available while the ring is full */
		ex->ret = -EIO;
		return;
	}
	ex->ret = model_walk(ex) ? 0 : -EIO;
}

/* A popped element matches the model's walk: take it into flight. */
static void accept(struct vduse_vq_elem *elem, bool mine)
{
	const struct expect *ex = &st.ex;
	struct held *h;

	FZ_CHECK(elem->id < st.num, "element id %u, ring size %u", elem->id,
		 st.num);
	h = &st.held[elem->id];
	FZ_CHECK(!h->elem, "element id %u handed out twice", elem->id);
	fz_check_sg(elem->out_sg, elem->out_num, ex->out, ex->nout, "out");
	fz_check_sg(elem->in_sg, elem->in_num, ex->in, ex->nin, "in");
	h->elem = elem;
	h->mine = mine;
	h->bufid = ex->bufid;
	h->ndesc = ex->ndesc;
	st.nr_held++;
	bufid_set(ex->bufid, true);
	st.in_ring += ex->ndesc;
	st.avail_lin = lin_add(st.avail_lin, ex->ndesc);
}

/* The queue broke (-EIO from a call that found a malformed chain). */
static void broke(unsigned int errors_before)
{
	if (st.started && !st.broken) {
		st.broken = true;
		FZ_CHECK(st.errors == errors_before + 1,
			 "queue broke with %u queue_error calls",
			 st.errors - errors_before);
	}
	FZ_CHECK(vduse_vq_broken(st.vq) || !st.started,
		 "-EIO but the queue is not broken");
}

static void check_inflight(void)
{
	if (st.started)
		FZ_CHECK(vduse_vq_inflight(st.vq) == st.nr_held,
			 "library counts %u in flight, model %u",
			 vduse_vq_inflight(st.vq), st.nr_held);
}

static void op_pop(struct fz_in *in)
{
	struct expect *ex = &st.ex;
	size_t extra = fz_u8(in), sz = sizeof(struct vduse_vq_elem) + extra;
	unsigned int errors = st.errors, k;
	struct vduse_vq_elem *elem;
	void *p = NULL;
	int ret;

	model_pop(ex);
	ret = vduse_vq_pop(st.vq, sz, &p);
	if (trace)
		fprintf(stderr, "  pop = %d, model %d\n", ret, ex->ret);
	if (ex->either && ret == -EIO)
		ex->ret = -EIO;
	FZ_CHECK(ret == ex->ret, "pop = %d, model says %d (at %u, bufid %u)",
		 ret, ex->ret, st.avail_lin, ex->bufid);
	if (ret == -EAGAIN) {
		FZ_CHECK(!p, "pop: element with -EAGAIN");
		return;
	}
	if (ret == -EIO) {
		broke(errors);
		return;
	}
	FZ_CHECK(st.errors == errors, "queue_error on a good pop");
	elem = p;
	for (k = sizeof(*elem); k < sz; k++)
		FZ_CHECK(((uint8_t *)elem)[k] == 0, "caller bytes not zeroed");
	memset((uint8_t *)elem + sizeof(*elem), 0xa5, extra);
	accept(elem, true);
	check_inflight();
}

static void op_pop_batch(struct fz_in *in)
{
	struct vduse_vq_elem *elems[MAX_BATCH];
	unsigned int max = 1 + fz_u8(in) % MAX_BATCH, errors = st.errors, i;
	struct expect *ex = &st.ex;
	int ret, n;

	ret = vduse_vq_pop_batch(st.vq, elems, max);
	if (trace)
		fprintf(stderr, "  pop_batch(%u) = %d\n", max, ret);
	n = ret > 0 ? ret : 0;
	FZ_CHECK(ret != 0 && ret <= (int)max, "pop_batch(%u) = %d", max, ret);
	for (i = 0; i < max; i++) {
		model_pop(ex);
		if ((int)i == n && ex->either && vduse_vq_broken(st.vq))
			ex->ret = -EIO;
		if (ex->ret == 0 && (int)i < n) {
			accept(elems[i], false);
			continue;
		}
		FZ_CHECK((int)i == n,
			 "pop_batch gave %d elements, the model's %uth is %d",
			 n, i, ex->ret);
		if (ex->ret == -EAGAIN) {
			FZ_CHECK(n || ret == -EAGAIN,
				 "pop_batch on an empty ring = %d", ret);
			FZ_CHECK(st.errors == errors,
				 "queue_error on an empty ring");
		} else {
			FZ_CHECK(ex->ret == -EIO,
				 "pop_batch stopped at %u, model says %d", i,
				 ex->ret);
			FZ_CHECK(n || ret == -EIO, "pop_batch = %d, want -EIO",
				 ret);
			broke(errors);
			check_inflight();
			return;
		}
		break;
	}
	FZ_CHECK(st.errors == errors, "queue_error on a good batch");
	check_inflight();
}

/* The used descriptor the library wrote for @h at ring count @lin. */
static void check_used(unsigned int lin, const struct held *h, uint32_t len)
{
	struct vring_packed_desc d = ring_desc(lin_idx(lin));
	uint16_t flags = le16toh(d.flags);
	uint16_t want = lin_wrap(lin) ? F_AVAIL | F_USED : 0;

	FZ_CHECK(le16toh(d.id) == h->bufid && le32toh(d.len) == len,
		 "used descriptor at %u: id %u len %u, pushed id %u len %u",
		 lin_idx(lin), le16toh(d.id), le32toh(d.len), h->bufid, len);
	FZ_CHECK((flags & (F_AVAIL | F_USED)) == want,
		 "used descriptor at %u: flags 0x%x, wrap %d", lin_idx(lin),
		 flags, lin_wrap(lin));
}

/* The model's side of a push of @slot that the library took. */
static void model_used(unsigned int slot, uint32_t len)
{
	struct held *h = &st.held[slot];

	check_used(st.used_lin, h, len);
	{
		struct vring_packed_desc u = ring_desc(lin_idx(st.used_lin));
		uint64_t at = DESC_AT + 16ull * lin_idx(st.used_lin);

		/* The library's id, len and (checked) flags: not its addr. */
		u.id = htole16(h->bufid);
		u.len = htole32(len);
		guest_write(at + offsetof(struct vring_packed_desc, len),
			    &u.len, 4, false);
		guest_write(at + offsetof(struct vring_packed_desc, id),
			    &u.id, 2, false);
		guest_write(at + offsetof(struct vring_packed_desc, flags),
			    &u.flags, 2, false);
	}
	st.used_lin = lin_add(st.used_lin, h->ndesc);
	st.in_ring -= h->ndesc;
	st.moved += h->ndesc;
	bufid_set(h->bufid, false);
	if (h->mine)
		free(h->elem);
	h->elem = NULL;
	st.nr_held--;
}

/* The @k-th element in flight (modulo their number), by slot. */
static unsigned int pick(unsigned int k, const bool *taken)
{
	unsigned int free_ones = 0, s;

	for (s = 0; s < st.num; s++)
		if (st.held[s].elem && !(taken && taken[s]))
			free_ones++;
	k %= free_ones;
	for (s = 0; s < st.num; s++)
		if (st.held[s].elem && !(taken && taken[s]) && !k--)
			break;
	return s;
}

/*
 * An element's iovecs stay mapped until it is pushed, whatever the kernel
 * remapped or took away meanwhile: read the first and last byte of each
 * (ASan reports a read of memory the library unmapped).
 */
static void touch(const struct vduse_vq_elem *elem)
{
	unsigned int i, n = elem->out_num + elem->in_num;
	uint8_t sum = 0;

	for (i = 0; i < n; i++) {
		const volatile uint8_t *b = elem->out_sg[i].iov_base;
		size_t len = elem->out_sg[i].iov_len;

		if (len)
			sum += (uint8_t)(b[0] + b[len - 1]);
	}
	__asm__ volatile("" : : "r"(sum));
}

static void push_one(unsigned int slot, uint32_t len)
{
	int ret;

	touch(st.held[slot].elem);
	ret = vduse_vq_push(st.vq, st.held[slot].elem, len);

	FZ_CHECK(ret == 0, "push of element %u = %d", slot, ret);
	model_used(slot, len);
	check_inflight();
}

static void op_push(struct fz_in *in)
{
	unsigned int k = fz_u8(in);
	uint32_t len = fz_u32(in);

	if (st.nr_held)
		push_one(pick(k, NULL), len);
}

/*
 * Does the driver want an interrupt for the @moved descriptors used since
 * the last decision?  Its event area: DISABLE, ENABLE, or (EVENT_IDX) the
 * position and wrap counter of the descriptor whose use it waits for.
 */
static int model_interrupt(void)
{
	uint16_t flags = rd16(DRIVER_FLAGS), off_wrap = rd16(DRIVER_AT);
	long now, event, off = off_wrap & 0x7fff;

	if (!st.moved)
		return 0;
	if (flags == VRING_PACKED_EVENT_FLAG_DISABLE)
		return 0;
	/* ENABLE, DESC without EVENT_IDX or a reserved value: interrupt. */
	if (flags != VRING_PACKED_EVENT_FLAG_DESC || !st.event_idx)
		return 1;
	/*
	 * The event's lap: the used position's when the wrap counters match,
	 * the one before otherwise.  Counting positions from the start of
	 * the previous lap, was it among the @moved just used?  (MAX_OPS
	 * keeps @moved below 2^15: the library counts in 16 bits.)
	 */
	now = (long)lin_idx(st.used_lin) + st.num;
	event = off + ((!!(off_wrap & 0x8000) == lin_wrap(st.used_lin)) ?
		       (long)st.num : 0);
	return event < now && event >= now - (long)st.moved;
}

static void op_notify(void)
{
	unsigned int irqs = fk_vq_irqs(0);
	int want = model_interrupt(), ret;

	st.moved = 0;
	ret = vduse_vq_notify(st.vq);
	if (trace)
		fprintf(stderr, "  notify = %d\n", ret);
	FZ_CHECK(ret == want, "notify = %d, want %d", ret, want);
	FZ_CHECK(fk_vq_irqs(0) == irqs + (unsigned int)want,
		 "notify %d but %u interrupts", ret, fk_vq_irqs(0) - irqs);
}

static void op_push_batch(struct fz_in *in)
{
	struct vduse_vq_elem *elems[QSIZE_MAX + 1];
	uint32_t lens[QSIZE_MAX + 1];
	unsigned int slots[QSIZE_MAX];
	bool taken[QSIZE_MAX] = { false };
	uint8_t how = fz_u8(in);
	unsigned int n = fz_u8(in), i, irqs = fk_vq_irqs(0);
	unsigned int flags = how & 1 ? VDUSE_VQ_PUSH_NOTIFY : 0;
	struct vduse_vq_elem stranger = { 0 };
	struct vring_packed_desc before = ring_desc(lin_idx(st.used_lin));
	bool bad = false;
	int ret, want = 0;

	n = st.nr_held ? n % (st.nr_held + 1) : 0;
	for (i = 0; i < n; i++) {
		slots[i] = pick(fz_u8(in), taken);
		taken[slots[i]] = true;
		elems[i] = st.held[slots[i]].elem;
		touch(elems[i]);
		lens[i] = fz_u32(in);
	}
	if ((how & 2) && n) {		/* one of them twice */
		elems[n] = elems[fz_u8(in) % n];
		lens[n++] = 0;
		bad = true;
	} else if (how & 4) {		/* an id not in flight */
		stranger.id = fz_u16(in);
		if (stranger.id >= st.num || !st.held[stranger.id].elem) {
			elems[n] = &stranger;
			lens[n++] = 0;
			bad = true;
		}
	}
	if (how & 8)
		flags |= 1u << (1 + fz_u8(in) % 31);	/* unknown */
	ret = vduse_vq_push_batch(st.vq, elems, lens, n, flags);
	if (bad || (flags & ~VDUSE_VQ_PUSH_NOTIFY)) {
		struct vring_packed_desc after =
			ring_desc(lin_idx(st.used_lin));

		FZ_CHECK(ret == -EINVAL, "push_batch with a bad element = %d",
			 ret);
		FZ_CHECK(!memcmp(&before, &after, sizeof(before)),
			 "a refused push_batch wrote a used descriptor");
		FZ_CHECK(fk_vq_irqs(0) == irqs, "refused push_batch: irq");
		check_inflight();
		return;
	}
	for (i = 0; i < n; i++)
		model_used(slots[i], lens[i]);
	if (flags & VDUSE_VQ_PUSH_NOTIFY) {
		want = model_interrupt();
		st.moved = 0;
	}
	FZ_CHECK(ret == want, "push_batch of %u (flags %u) = %d, want %d", n,
		 flags, ret, want);
	FZ_CHECK(fk_vq_irqs(0) == irqs + (unsigned int)want,
		 "push_batch %d but %u interrupts", ret, fk_vq_irqs(0) - irqs);
	check_inflight();
}

static void op_bogus_push(struct fz_in *in)
{
	struct vduse_vq_elem fake = { .id = fz_u16(in) };
	struct vring_packed_desc before = ring_desc(lin_idx(st.used_lin));
	struct vring_packed_desc after;
	int ret;

	if (fake.id < st.num && st.held[fake.id].elem)
		return;
	ret = vduse_vq_push(st.vq, &fake, 1);
	FZ_CHECK(ret == -EINVAL, "push of id %u not in flight = %d", fake.id,
		 ret);
	after = ring_desc(lin_idx(st.used_lin));
	FZ_CHECK(!memcmp(&before, &after, sizeof(before)),
		 "a refused push wrote a used descriptor");
}

/*
 * Descriptor flags from a fuzz byte: NEXT, WRITE, INDIRECT as given; the
 * AVAIL/USED pair made available for wrap counter @wrap, for the other
 * one, made to look used, or raw; reserved bits on request.
 */
static uint16_t desc_flags(uint8_t fl, bool wrap)
{
	uint16_t f = fl & 7;

	switch ((fl >> 3) & 3) {
	case 0:
		f |= wrap ? F_AVAIL : F_USED;
		break;
	case 1:
		f |= wrap ? F_USED : F_AVAIL;
		break;
	case 2:
		f |= wrap ? F_AVAIL | F_USED : 0;
		break;
	default:
		f |= (fl & 0x20 ? F_AVAIL : 0) | (fl & 0x40 ? F_USED : 0);
		break;
	}
	if (fl & 0x80)
		f |= 0x4008;	/* reserved bits: ignored */
	return f;
}

/* A descriptor from the input at IOVA @at, flags made by desc_flags(). */
static void set_desc_from(struct fz_in *in, uint64_t at, bool wrap,
			  uint16_t more_flags)
{
	static const uint64_t base[8] = {
		DATA_RW, DATA_RO, DATA_WO, IND, RING, TOP, HOLE, 0,
	};
	uint8_t sel = fz_u8(in), fl = fz_u8(in);
	uint16_t id = fz_u16(in), off = fz_u16(in), len16 = fz_u16(in);
	struct vring_packed_desc d;
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
	d.id = htole16(id);
	d.flags = htole16(desc_flags(fl, wrap) | more_flags);
	guest_write(at, &d, sizeof(d), true);
}

/* The driver adds a buffer of 1 to 8 descriptors at its position. */
static void op_add(struct fz_in *in)
{
	unsigned int n = 1 + fz_u8(in) % 8, i;

	for (i = 0; i < n; i++) {
		unsigned int lin = st.drv_lin;

		set_desc_from(in, DESC_AT + 16ull * lin_idx(lin),
			      lin_wrap(lin),
			      i + 1 < n ? VRING_DESC_F_NEXT : 0);
		st.drv_lin = lin_add(lin, 1);
	}
}

static void op_set_desc(struct fz_in *in)
{
	unsigned int idx = fz_u16(in) % st.num;
	bool wrap = fz_u8(in) & 1;

	set_desc_from(in, DESC_AT + 16ull * idx, wrap, 0);
}

static void op_driver_event(struct fz_in *in)
{
	uint8_t sel = fz_u8(in);
	uint16_t off_wrap = fz_u16(in), flags = sel & 3;

	if (sel & 0x80)
		flags = fz_u16(in);
	if (sel & 0x40)	/* a position in the ring */
		off_wrap = (uint16_t)((off_wrap & 0x8000) |
				      ((off_wrap & 0x7fff) % st.num));
	wr16(DRIVER_AT, off_wrap);
	wr16(DRIVER_FLAGS, flags);
}

static void op_kicks(struct fz_in *in)
{
	bool on = fz_u8(in) & 1;
	int ret, want;

	if (on) {
		want = st.broken ? -EIO : model_head_available();
		ret = vduse_vq_enable_kicks(st.vq);
	} else {
		want = st.broken ? -EIO : 0;
		ret = vduse_vq_disable_kicks(st.vq);
	}
	FZ_CHECK(ret == want, "%s kicks = %d, want %d",
		 on ? "enable" : "disable", ret, want);
	if (!st.broken) {
		uint16_t v = htole16(on ? VRING_PACKED_EVENT_FLAG_ENABLE :
				     VRING_PACKED_EVENT_FLAG_DISABLE);

		st.kicks_off = !on;
		guest_write(DEVICE_FLAGS, &v, 2, false);
	}
}

static void op_gvs(void)
{
	struct vduse_vq_state_packed s = { 0 };
	int ret = sim_get_vq_state_packed(st.dev, 0, &s);

	FZ_CHECK(ret == VDUSE_REQ_RESULT_OK, "GET_VQ_STATE = %d", ret);
	if (!st.started)
		return;
	FZ_CHECK(s.last_avail_idx == lin_idx(st.avail_lin) &&
		 s.last_avail_counter == lin_wrap(st.avail_lin) &&
		 s.last_used_idx == lin_idx(st.used_lin) &&
		 s.last_used_counter == lin_wrap(st.used_lin),
		 "GET_VQ_STATE avail %u/%u used %u/%u, model %u/%u %u/%u",
		 s.last_avail_idx, s.last_avail_counter, s.last_used_idx,
		 s.last_used_counter, lin_idx(st.avail_lin),
		 lin_wrap(st.avail_lin), lin_idx(st.used_lin),
		 lin_wrap(st.used_lin));
}

/*
 * The driver resets the device with elements in flight (they are
 * abandoned: queue_stop, pushes fail) and starts it again, from the state
 * GET_VQ_STATE gave (as after a suspend) or from a fresh ring.  What was
 * popped and not used stays off limits to the ring's capacity.
 */
static void op_restart(struct fz_in *in)
{
	uint8_t how = fz_u8(in);
	struct vduse_vq_state_packed s = { 0 };
	unsigned int stops = st.stops, errors = st.errors, slot;
	uint16_t on = htole16(VRING_PACKED_EVENT_FLAG_ENABLE);
	int ret;

	ret = sim_get_vq_state_packed(st.dev, 0, &s);
	FZ_CHECK(ret == VDUSE_REQ_RESULT_OK, "GET_VQ_STATE = %d", ret);
	ret = sim_set_status(st.dev, 0);
	FZ_CHECK(ret == VDUSE_REQ_RESULT_OK, "reset = %d", ret);
	FZ_CHECK(st.stops == stops + 1 && !vduse_vq_started(st.vq),
		 "reset: %u queue_stop calls, started %d", st.stops - stops,
		 vduse_vq_started(st.vq));
	for (slot = 0; slot < QSIZE_MAX; slot++) {
		struct held *h = &st.held[slot];

		if (!h->elem)
			continue;
		if (h->mine) {
			ret = vduse_vq_push(st.vq, h->elem, 0);
			FZ_CHECK(ret == -EIO, "push after the reset = %d", ret);
			free(h->elem);
		}
		h->elem = NULL;
	}
	st.nr_held = 0;
	memset(st.bufids, 0, sizeof(st.bufids));
	fk_set_vq_info(0, st.num, DESC_AT, DRIVER_AT, DEVICE_AT, 0, true);
	if (how & 1) {
		fk_set_vq_packed(0, true, 0, true, 0);
		st.avail_lin = st.used_lin = st.in_ring = 0;
	} else {
		fk_set_vq_packed(0, s.last_avail_counter, s.last_avail_idx,
				 s.last_used_counter, s.last_used_idx);
	}
	ret = sim_driver_ok(st.dev, st.features);
	FZ_CHECK(ret == VDUSE_REQ_RESULT_OK && vduse_vq_started(st.vq),
		 "restart = %d, started %d", ret, vduse_vq_started(st.vq));
	FZ_CHECK(st.errors == errors, "queue_error at a restart");
	st.broken = false;
	st.kicks_off = false;
	st.moved = 0;
	st.drv_lin = st.avail_lin;
	guest_write(DEVICE_FLAGS, &on, 2, false);
	check_inflight();
	op_gvs();
}

static void op_resync(struct fz_in *in)
{
	uint8_t v = fz_u8(in);

	st.drv_lin = lin_add(v & 0x80 ? st.used_lin : st.avail_lin, v % 4);
}

/* The invalidation the kernel owes after changing region @r. */
static void owe_iotlb(unsigned int r, bool whole)
{
	uint64_t start = regions[r].start;
	uint64_t last = start + regions[r].size - 1;
	int ret;

	if (whole) {		/* as vhost-vdpa does */
		start = 0;
		last = UINT64_MAX;
	}
	ret = sim_update_iotlb(st.dev, start, last);
	FZ_CHECK(ret == VDUSE_REQ_RESULT_OK, "UPDATE_IOTLB = %d", ret);
}

/* The kernel moves region @r to other memory, its bytes intact. */
static void op_remap(struct fz_in *in)
{
	unsigned int r = fz_u8(in) % NR_REGIONS;
	bool whole = fz_u8(in) & 1;
	const struct fz_region *m = &regions[r];

	if (st.unmapped[r])
		return;
	memcpy(st.saved[r], fk_iova_ptr(m->start), m->size);
	fk_region_del(m->start, m->start);
	FZ_CHECK(!fk_region_add(m->start, m->size, (uint8_t)m->perm),
		 "remap region %u", r);
	memcpy(fk_iova_ptr(m->start), st.saved[r], m->size);
	owe_iotlb(r, whole);
}

/* The kernel takes a region other than the ring's away, or brings it
 * back as it was. */
static void op_unmap(struct fz_in *in)
{
	unsigned int r = 1 + fz_u8(in) % (NR_REGIONS - 1);
	bool whole = fz_u8(in) & 1;
	const struct fz_region *m = &regions[r];

	if (!st.unmapped[r]) {
		memcpy(st.saved[r], fk_iova_ptr(m->start), m->size);
		fk_region_del(m->start, m->start);
		st.unmapped[r] = true;
		owe_iotlb(r, whole);
	} else {
		FZ_CHECK(!fk_region_add(m->start, m->size, (uint8_t)m->perm),
			 "map region %u", r);
		memcpy(fk_iova_ptr(m->start), st.saved[r], m->size);
		st.unmapped[r] = false;
	}
}

static void fill_data(void)
{
	unsigned int i;

	for (i = 2; i < NR_REGIONS; i++)
		fz_fill(fk_iova_ptr(regions[i].start), regions[i].start,
			regions[i].size, 0);
}

/* Header, ring and tables from the input. */
static void setup(struct fz_in *in, bool *leave)
{
	struct vduse_device_config cfg = {
		.size = sizeof(cfg),
		.name = "fuzzp",
		.device_id = 2,
		.num_queues = 1,
		.queue_size = QSIZE_MAX,
		.ops = &ops,
	};
	uint64_t features = (1ull << VIRTIO_F_VERSION_1) |
			    (1ull << VIRTIO_F_ACCESS_PLATFORM) |
			    (1ull << VIRTIO_F_RING_PACKED);
	uint8_t f = fz_u8(in), sf = fz_u8(in);
	unsigned int num = fz_u16(in) % (QSIZE_MAX + 4), i;
	uint16_t a = fz_u16(in), b = fz_u16(in);
	uint64_t desc = DESC_AT, driver = DRIVER_AT, device = DEVICE_AT;
	bool aw = sf & 1, uw = sf & 2, good;
	uint16_t ai = a, ui = b;
	int ret;

	for (i = 0; i < NR_REGIONS; i++)
		FZ_CHECK(!fk_region_add(regions[i].start, regions[i].size,
					(uint8_t)regions[i].perm),
			 "region %u", i);
	fill_data();
	memset(fk_iova_ptr(RING), 0, RING_SIZE);
	memset(st.shadow, 0, RING_SIZE);	/* ENABLE in both areas */
	memset(st.unmapped, 0, sizeof(st.unmapped));
	ret = vduse_device_new(&cfg, &st.dev);
	FZ_CHECK(ret == 0, "vduse_device_new = %d", ret);
	st.vq = vduse_device_vq(st.dev, 0);

	st.event_idx = f & 1;
	st.indirect = f & 2;
	if (st.event_idx)
		features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	if (st.indirect)
		features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	/* Misaligned areas (bits 2-4), which the library must refuse. */
	desc += (f & 4) ? 8 : 0;
	driver += (f & 8) ? 2 : 0;
	device += (f & 16) ? 2 : 0;
	*leave = f & 32;
	st.num = num;
	good = !(f & 28) && num >= 1 && num <= QSIZE_MAX;

	/*
	 * The ring state: derived from the input so that it is possible
	 * (used at most a ring behind avail), or raw (sf bit 2).
	 */
	if (num && !(sf & 4)) {
		unsigned int alin = (a % num) + (aw ? 0 : num);
		unsigned int ulin = (alin + 2 * num - b % (num + 1)) %
				    (2 * num);

		ai = (uint16_t)(a % num);
		ui = (uint16_t)(ulin < num ? ulin : ulin - num);
		uw = ulin < num;
	}
	if (num && ai < num && ui < num) {
		st.avail_lin = ai + (aw ? 0 : num);
		st.used_lin = ui + (uw ? 0 : num);
		st.in_ring = (st.avail_lin + 2 * num - st.used_lin) %
			     (2 * num);
		good = good && st.in_ring <= num;
	} else {
		good = false;
	}
	fk_set_vq_info(0, num, desc, driver, device, 0, true);
	fk_set_vq_packed(0, aw, ai, uw, ui);
	if (good) {
		/* Each position made available for the lap avail reaches
		 * it in (or not, as the input says). */
		for (i = 0; i < num; i++)
			set_desc_from(in, DESC_AT + 16ull * i,
				      i >= ai ? aw : !aw, 0);
		for (i = 0; i < IND_DESCS; i++)
			set_desc_from(in, IND + 16ull * i, false, 0);
		st.drv_lin = lin_add(st.avail_lin, fz_u8(in) % (num + 1));
	}
	st.features = features;
	ret = sim_driver_ok(st.dev, features);
	FZ_CHECK(ret == VDUSE_REQ_RESULT_OK || !good, "DRIVER_OK = %d", ret);
	st.started = vduse_vq_started(st.vq);
	FZ_CHECK(st.started == good,
		 "queue started %d, num %u flags 0x%x state %u/%u %u/%u",
		 st.started, num, f, ai, aw, ui, uw);
	if (st.started)
		FZ_CHECK(vduse_vq_size(st.vq) == num, "size %u, ring %u",
			 vduse_vq_size(st.vq), num);
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	unsigned int ops_done = 0, s;
	bool leave = false;

	if (trace < 0)
		trace = getenv("FUZZ_TRACE") != NULL;
	fk_setup();
	fz_log_reset();
	memset(&st, 0, offsetof(typeof(st), ex));
	setup(&in, &leave);
	check_ring_region();

	while (fz_more(&in) && ops_done++ < MAX_OPS) {
		uint8_t op = fz_u8(&in);

		if (trace)
			fprintf(stderr, "op %u: %u (avail %u used %u in_ring %u held %u%s)\n",
				ops_done, op % 17, st.avail_lin, st.used_lin,
				st.in_ring, st.nr_held,
				st.broken ? ", broken" : "");
		if (!st.started) {
			op_pop(&in);
			continue;
		}
		switch (op % 17) {
		case 0:
		case 1:
			op_pop(&in);
			break;
		case 2:
			op_pop_batch(&in);
			break;
		case 3:
			op_push(&in);
			break;
		case 4:
			op_push_batch(&in);
			break;
		case 5:
			op_notify();
			break;
		case 6:
		case 7:
			op_add(&in);
			break;
		case 8:
			op_set_desc(&in);
			break;
		case 9:
			op_driver_event(&in);
			break;
		case 10:
			op_kicks(&in);
			break;
		case 11:
			op_gvs();
			break;
		case 12:
			op_bogus_push(&in);
			break;
		case 13:
			op_resync(&in);
			break;
		case 14:
			op_remap(&in);
			break;
		case 15:
			op_unmap(&in);
			break;
		default:
			op_restart(&in);
			break;
		}
		if (st.started)
			FZ_CHECK(rd16(DEVICE_FLAGS) ==
				 (st.kicks_off ? VRING_PACKED_EVENT_FLAG_DISABLE :
				  VRING_PACKED_EVENT_FLAG_ENABLE),
				 "device event flags 0x%x, kicks %s",
				 rd16(DEVICE_FLAGS), st.kicks_off ? "off" : "on");
		check_ring_region();
	}

	/* Every popped element is pushed (unless the input leaves them in
	 * flight for the device's free), and each push succeeds. */
	for (s = 0; s < QSIZE_MAX; s++) {
		if (!st.held[s].elem)
			continue;
		if (!leave) {
			push_one(s, 0);
		} else {
			if (st.held[s].mine)
				free(st.held[s].elem);
			st.held[s].elem = NULL;
			st.nr_held--;
		}
	}
	if (st.started && !leave)
		FZ_CHECK(vduse_vq_inflight(st.vq) == 0, "%u still in flight",
			 vduse_vq_inflight(st.vq));
	check_ring_region();
	fz_free_device(st.dev);
	return 0;
}
