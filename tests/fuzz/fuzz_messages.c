// SPDX-License-Identifier: MIT
/*
 * fuzz-messages: the kernel's message stream against a device with two
 * queues, interleaved with the data path.
 *
 * Operations from the input: SET_STATUS with any status byte (the driver
 * lays out fresh rings before it sets DRIVER_OK; a queue may be left not
 * ready, or its queue_start callback may refuse), GET_VQ_STATE and
 * UPDATE_IOTLB with fuzzed fields and unknown message types (answered at
 * once or left queued for a later batch), the kernel remapping a region to
 * new memory or unmapping and mapping it again (each followed by the
 * UPDATE_IOTLB it owes), and on each queue: the driver adding chains,
 * pop, push and notify.
 *
 * Checked: every message gets one answer with its id and the right result;
 * GET_VQ_STATE reports the model's available index; queues start and stop
 * when the status says so, queue_stop running once per started queue; a pop
 * returns the chains in the order published, each iovec being the guest
 * memory of its buffer, or breaks the queue only when a buffer is unmapped;
 * a popped element's iovecs stay that memory, whatever the kernel remapped
 * meanwhile, until it is pushed or its queue stops; every push of a popped
 * element succeeds and shows in the used ring; nothing leaks at the end.
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

#define NQ		2
#define QSIZE		16u
#define MAX_OPS		256
#define MAX_BUFS	3
#define NEEDS_RESET	0x40

/* Guest regions: one per ring set, two data regions. */
enum { R_RING0, R_RING1, R_DATA_A, R_DATA_B, NR_REGIONS };

static const struct {
	uint64_t start, size;
} layout[NR_REGIONS] = {
	{ 0x10000, 0x2000 },
	{ 0x20000, 0x2000 },
	{ 0x30000, 0x2000 },
	{ 0x40000, 0x2000 },
};

/* A buffer the driver published and the memory it had then. */
struct buf {
	uint64_t iova;
	uint32_t len;
	bool write;
};

struct chain {
	uint16_t head;
	unsigned int n;
	struct buf b[MAX_BUFS];
};

/* One popped element: its iovecs and the guest bytes they must stay. */
struct held {
	struct vduse_vq_elem *elem;
	uint16_t head;
	unsigned int ndesc;
	unsigned int n;
	uint8_t *view[2 * MAX_BUFS];	/* fake kernel's view at pop time */
};

struct mq {
	struct vduse_vq *vq;
	struct sim_vq s;
	bool ready, refuse;
	bool started, broken;
	uint16_t last_avail, used_idx;
	struct chain pend[QSIZE];	/* published, not popped (FIFO) */
	unsigned int pend_head, nr_pend;
	uint32_t busy;		/* descriptors published or in flight */
	struct held held[QSIZE];
	unsigned int nr_held;
	unsigned int stops;
};

static struct {
	struct vduse_device *dev;
	uint8_t status;
	bool mapped[NR_REGIONS];
	struct mq q[NQ];
	/* Messages queued and not yet processed, and their expected results. */
	uint32_t ids[64];
	int want[64];
	int gvs[64];		/* GET_VQ_STATE of this queue, or -1 */
	unsigned int nr_queued;
} st;

static struct mq *mq_of(struct vduse_vq *vq)
{
	unsigned int i;

	for (i = 0; i < NQ; i++)
		if (st.q[i].vq == vq)
			return &st.q[i];
	fz_fail(__FILE__, __LINE__, "mq_of", "callback for an unknown queue");
}

/* Every held element's iovecs are still the guest memory they were. */
static void check_held(const struct mq *m)
{
	unsigned int i, j, k;

	for (i = 0; i < m->nr_held; i++) {
		const struct held *h = &m->held[i];
		const struct vduse_vq_elem *e = h->elem;

		for (j = 0, k = 0; j < e->out_num + e->in_num; j++, k++) {
			const struct iovec *iov = &e->out_sg[j];

			FZ_CHECK(fz_alias(iov->iov_base, h->view[k],
					  iov->iov_len),
				 "queue %u: element %u iovec %u is no longer its guest memory",
				 vduse_vq_index(m->vq), e->id, j);
		}
	}
}

static void drop_held(struct mq *m)
{
	unsigned int i;

	for (i = 0; i < m->nr_held; i++)
		free(m->held[i].elem);
	m->nr_held = 0;
}

static int cb_start(struct vduse_device *dev, struct vduse_vq *vq)
{
	struct mq *m = mq_of(vq);

	return m->refuse ? -EIO : 0;
}

static void cb_stop(struct vduse_device *dev, struct vduse_vq *vq)
{
	struct mq *m = mq_of(vq);

	/* The backend abandons what it holds; until now it stays valid. */
	check_held(m);
	drop_held(m);
	m->stops++;
}

static void cb_error(struct vduse_device *dev, struct vduse_vq *vq, int err)
{
	FZ_CHECK(err < 0, "queue_error with %d", err);
	mq_of(vq)->broken = true;
}

static const struct vduse_device_ops ops = {
	.size = sizeof(ops),
	.queue_start = cb_start,
	.queue_stop = cb_stop,
	.queue_error = cb_error,
};

static void fill(unsigned int r)
{
	fz_fill(fk_iova_ptr(layout[r].start), layout[r].start,
		layout[r].size, 0);
}

/* Answer everything queued and check each answer. */
static void process(void)
{
	unsigned int i, n = st.nr_queued;
	int ret;

	if (!n)
		return;
	st.nr_queued = 0;
	ret = vduse_device_process(st.dev);
	FZ_CHECK(ret == (int)n, "process handled %d of %u messages", ret, n);
	for (i = 0; i < n; i++) {
		struct vduse_dev_response resp;

		FZ_CHECK(fk_response(st.ids[i], &resp),
			 "no answer to request %u", st.ids[i]);
		FZ_CHECK((int)resp.result == st.want[i],
			 "request %u: result %u, want %d", st.ids[i],
			 resp.result, st.want[i]);
		/* Answered now, so with the index as it is now. */
		if (st.gvs[i] >= 0 && st.q[st.gvs[i]].started)
			FZ_CHECK(resp.vq_state.split.avail_index ==
				 st.q[st.gvs[i]].last_avail,
				 "GET_VQ_STATE: avail %u, want %u",
				 resp.vq_state.split.avail_index,
				 st.q[st.gvs[i]].last_avail);
	}
}

static void queue_msg(struct vduse_dev_request *req, int want, int gvs)
{
	if (st.nr_queued == 64)
		process();
	st.ids[st.nr_queued] = fk_push_msg(req);
	st.want[st.nr_queued] = want;
	st.gvs[st.nr_queued] = gvs;
	st.nr_queued++;
}

static void send_iotlb(uint64_t start, uint64_t last)
{
	struct vduse_dev_request req = { .type = VDUSE_UPDATE_IOTLB };

	req.iova.start = start;
	req.iova.last = last;
	queue_msg(&req, start <= last ? VDUSE_REQ_RESULT_OK :
		  VDUSE_REQ_RESULT_FAILED, -1);
}

/* The invalidation a kernel owes after changing region @r. */
static void owe_iotlb(struct fz_in *in, unsigned int r)
{
	uint8_t how = fz_u8(in);
	uint64_t start = layout[r].start, last = start + layout[r].size - 1;

	if (how & 1) {		/* vhost-vdpa: the whole space */
		start = 0;
		last = UINT64_MAX;
	} else {		/* a superset, or exactly the region */
		start -= how & 0x70;
		last += (how >> 1) & 7;
	}
	send_iotlb(start, last);
	process();
}

static void op_status(struct fz_in *in)
{
	struct vduse_dev_request req = { .type = VDUSE_SET_STATUS };
	uint8_t status = fz_u8(in), flags = fz_u8(in);
	uint16_t start[NQ] = { fz_u16(in), fz_u16(in) };
	bool going = (status & VIRTIO_CONFIG_S_DRIVER_OK) &&
		     !(st.status & VIRTIO_CONFIG_S_DRIVER_OK);
	unsigned int i, stops[NQ];
	bool was[NQ];

	process();
	for (i = 0; i < NQ; i++) {
		struct mq *m = &st.q[i];

		was[i] = m->started;
		stops[i] = m->stops;
		if (!going)
			continue;
		/* The driver lays out fresh rings before DRIVER_OK. */
		m->ready = !(flags & (1u << i));
		m->refuse = flags & (4u << i);
		sim_vq_init_at(&m->s, i, QSIZE, layout[i].start, start[i]);
		if (!m->ready)
			fk_set_vq_info(i, QSIZE, m->s.desc, m->s.avail,
				       m->s.used, m->s.avail_idx, false);
	}
	req.s.status = status;
	queue_msg(&req, VDUSE_REQ_RESULT_OK, -1);
	process();
	st.status = status;
	FZ_CHECK((vduse_device_status(st.dev) & ~NEEDS_RESET) ==
		 (status & ~NEEDS_RESET), "status 0x%x, driver set 0x%x",
		 vduse_device_status(st.dev), status);
	for (i = 0; i < NQ; i++) {
		struct mq *m = &st.q[i];
		bool now = vduse_vq_started(m->vq), want = was[i];

		if (!(status & VIRTIO_CONFIG_S_DRIVER_OK))
			want = false;
		else if (going)
			want = m->ready && !m->refuse;
		FZ_CHECK(now == want,
			 "status 0x%x: queue %u started %d, want %d", status,
			 i, now, want);
		FZ_CHECK(m->stops == stops[i] + (was[i] && !now),
			 "queue %u: %u queue_stop calls, was started %d",
			 i, m->stops - stops[i], was[i]);
		m->started = now;
		if (was[i] && !now)
			FZ_CHECK(!m->nr_held, "elements held after stop");
		if (!was[i] && now) {
			m->broken = false;
			m->last_avail = m->used_idx = m->s.avail_idx;
			m->pend_head = m->nr_pend = 0;
			m->busy = 0;
		}
	}
}

static void op_gvs(struct fz_in *in)
{
	struct vduse_dev_request req = { .type = VDUSE_GET_VQ_STATE };
	uint8_t sel = fz_u8(in);
	uint32_t index = (sel & 0x80) ? fz_u32(in) : sel % 4u;
	bool ok = index < NQ;

	req.vq_state.index = index;
	queue_msg(&req, ok ? VDUSE_REQ_RESULT_OK : VDUSE_REQ_RESULT_FAILED,
		  ok ? (int)index : -1);
	if (sel & 0x40)
		process();
}

static void op_spurious(struct fz_in *in)
{
	uint8_t sel = fz_u8(in);
	struct vduse_dev_request req = { 0 };

	if (sel & 0x80) {	/* a type the library does not know */
		req.type = 3 + fz_u8(in);
		queue_msg(&req, VDUSE_REQ_RESULT_FAILED, -1);
	} else {
		uint64_t start = fz_u64(in);

		send_iotlb(start, (sel & 1) ? fz_u64(in) :
			   start + fz_u16(in));
	}
	if (sel & 0x40)
		process();
}

static void op_remap(struct fz_in *in)
{
	unsigned int r = fz_u8(in) % NR_REGIONS;
	uint64_t size = layout[r].size;
	uint8_t *old, *now;

	if (!st.mapped[r])
		return;
	process();
	old = fk_iova_ptr(layout[r].start);
	fk_region_del(layout[r].start, layout[r].start);
	FZ_CHECK(!fk_region_add(layout[r].start, size, VDUSE_ACCESS_RW),
		 "remap");
	now = fk_iova_ptr(layout[r].start);
	memcpy(now, old, size);	/* the driver's memory moves, intact */
	owe_iotlb(in, r);
}

static void op_unmap(struct fz_in *in)
{
	unsigned int r = R_DATA_A + fz_u8(in) % 2;

	process();
	if (st.mapped[r]) {
		fk_region_del(layout[r].start, layout[r].start);
		st.mapped[r] = false;
		owe_iotlb(in, r);
	} else {
		FZ_CHECK(!fk_region_add(layout[r].start, layout[r].size,
					VDUSE_ACCESS_RW), "map");
		fill(r);
		st.mapped[r] = true;
	}
}

static void op_add(struct fz_in *in, struct mq *m)
{
	struct chain *c = &m->pend[(m->pend_head + m->nr_pend) % QSIZE];
	struct sim_buf sb[MAX_BUFS];
	unsigned int i, n = 1 + fz_u8(in) % MAX_BUFS;
	bool writing = false;

	if (!m->started)
		return;
	/* A driver reuses no descriptor that is still the device's. */
	for (i = 0; i < n; i++)
		if (m->busy & (1u << ((m->s.next_desc + i) % QSIZE)))
			return;
	for (i = 0; i < n; i++) {
		uint8_t sel = fz_u8(in);
		unsigned int r = R_DATA_A + (sel & 1);
		uint32_t len = 1 + fz_u8(in) * 8u;
		uint64_t off = fz_u16(in) % (layout[r].size - len + 1);

		writing |= sel & 2;	/* readable ones first */
		sb[i] = (struct sim_buf){ layout[r].start + off, len, writing };
		c->b[i] = (struct buf){ sb[i].addr, len, writing };
	}
	c->n = n;
	c->head = sim_add_chain(&m->s, sb, n);
	sim_publish(&m->s, c->head);
	m->nr_pend++;
	for (i = 0; i < n; i++)
		m->busy |= 1u << ((c->head + i) % QSIZE);
}

static void op_pop(struct mq *m)
{
	struct chain *c = &m->pend[m->pend_head];
	struct held *h;
	struct vduse_vq_elem *e;
	unsigned int i, j, k;
	bool mapped = true;
	void *p = NULL;
	int ret, want;

	for (i = 0; m->nr_pend && i < c->n; i++) {
		unsigned int r = c->b[i].iova < layout[R_DATA_B].start ?
				 R_DATA_A : R_DATA_B;

		mapped &= st.mapped[r];
	}
	if (!m->started || m->broken)
		want = -EIO;
	else if (!m->nr_pend)
		want = -EAGAIN;
	else
		want = mapped ? 0 : -EIO;
	ret = vduse_vq_pop(m->vq, sizeof(*e), &p);
	FZ_CHECK(ret == want, "queue %u: pop = %d, want %d",
		 vduse_vq_index(m->vq), ret, want);
	if (ret == -EIO && m->started)
		FZ_CHECK(m->broken && vduse_vq_broken(m->vq),
			 "pop -EIO on a queue that did not break");
	if (ret)
		return;
	e = p;
	FZ_CHECK(e->id == c->head, "popped head %u, published %u", e->id,
		 c->head);
	h = &m->held[m->nr_held++];
	h->elem = e;
	h->head = c->head;
	h->ndesc = c->n;
	h->n = e->out_num + e->in_num;
	FZ_CHECK(h->n == c->n, "%u iovecs for %u buffers", h->n, c->n);
	for (i = 0, j = 0, k = 0; i < c->n; i++) {
		const struct iovec *iov = &e->out_sg[i];

		FZ_CHECK(iov->iov_len == c->b[i].len, "iovec %u: %zu bytes, want %u",
			 i, iov->iov_len, c->b[i].len);
		FZ_CHECK((i < e->out_num) == !c->b[i].write,
			 "iovec %u on the wrong side", i);
		h->view[k++] = fk_iova_ptr(c->b[i].iova);
		FZ_CHECK(fz_alias(iov->iov_base, h->view[k - 1], iov->iov_len),
			 "iovec %u is not guest IOVA 0x%llx", i,
			 (unsigned long long)c->b[i].iova);
		j++;
	}
	m->pend_head = (m->pend_head + 1) % QSIZE;
	m->nr_pend--;
	m->last_avail++;
}

static void op_push(struct fz_in *in, struct mq *m)
{
	unsigned int k = fz_u8(in), i;
	uint32_t len = fz_u16(in), id, ulen;
	struct vduse_vq_elem *e;
	int ret;

	if (!m->nr_held)
		return;
	k %= m->nr_held;
	e = m->held[k].elem;
	check_held(m);
	ret = vduse_vq_push(m->vq, e, len);
	FZ_CHECK(ret == 0, "push of popped head %u = %d", e->id, ret);
	m->used_idx++;
	FZ_CHECK(sim_used_idx(&m->s) == m->used_idx, "used idx %u, want %u",
		 sim_used_idx(&m->s), m->used_idx);
	FZ_CHECK(sim_get_used(&m->s, &id, &ulen) && id == e->id &&
		 ulen == len, "used entry (%u, %u), pushed (%u, %u)", id,
		 ulen, e->id, len);
	free(e);
	for (i = 0; i < m->held[k].ndesc; i++)
		m->busy &= ~(1u << ((m->held[k].head + i) % QSIZE));
	m->held[k] = m->held[--m->nr_held];
}

static void op_notify(struct mq *m)
{
	int ret = vduse_vq_notify(m->vq);

	if (m->started)
		FZ_CHECK(ret == 0 || ret == 1, "notify = %d", ret);
	else
		FZ_CHECK(ret == -EIO, "notify on a stopped queue = %d", ret);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct vduse_device_config cfg = {
		.size = sizeof(cfg),
		.name = "fuzz",
		.device_id = 2,
		.num_queues = NQ,
		.queue_size = QSIZE,
		.ops = &ops,
	};
	uint64_t features = (1ull << VIRTIO_F_VERSION_1) |
			    (1ull << VIRTIO_F_ACCESS_PLATFORM);
	unsigned int i, nops = 0;
	uint8_t f;
	int ret;

	fk_setup();
	fz_log_reset();
	memset(&st, 0, sizeof(st));
	for (i = 0; i < NR_REGIONS; i++) {
		FZ_CHECK(!fk_region_add(layout[i].start, layout[i].size,
					VDUSE_ACCESS_RW), "region %u", i);
		fill(i);
		st.mapped[i] = true;
	}
	ret = vduse_device_new(&cfg, &st.dev);
	FZ_CHECK(ret == 0, "vduse_device_new = %d", ret);
	for (i = 0; i < NQ; i++)
		st.q[i].vq = vduse_device_vq(st.dev, i);
	f = fz_u8(&in);
	if (f & 1)
		features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	if (f & 2)
		features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	fk_set_features(features);

	while (fz_more(&in) && nops++ < MAX_OPS) {
		uint8_t op = fz_u8(&in);
		struct mq *m = &st.q[op >> 7];

		switch ((op & 0x7f) % 12) {
		case 0:
			op_status(&in);
			break;
		case 1:
			op_gvs(&in);
			break;
		case 2:
			op_spurious(&in);
			break;
		case 3:
			op_remap(&in);
			break;
		case 4:
			op_unmap(&in);
			break;
		case 5:
		case 6:
			op_add(&in, m);
			break;
		case 7:
		case 8:
			op_pop(m);
			break;
		case 9:
		case 10:
			op_push(&in, m);
			break;
		default:
			op_notify(m);
			break;
		}
		check_held(&st.q[0]);
		check_held(&st.q[1]);
	}
	process();

	/* Every element still held is pushed, and each push succeeds. */
	for (i = 0; i < NQ; i++)
		while (st.q[i].nr_held)
			op_push(&in, &st.q[i]);
	fz_free_device(st.dev);
	return 0;
}
