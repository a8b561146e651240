// SPDX-License-Identifier: MIT
/*
 * Packed virtqueues behind the same pop/push/notify calls: well-formed
 * rings (chains, indirect tables, out-of-order completion, wrap-around,
 * sizes that are not powers of two, the full 16-bit id space, batches,
 * event suppression both ways, the queue state) and the twins of the
 * malformed split-ring cases, each asserting its reason.
 */
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "sim_packed.h"
#include "test_util.h"

#define QMAX		256u
#define F_PACKED	TU_F(VIRTIO_F_RING_PACKED)

static struct sim_pvq pq;	/* 128 KiB: not on the stack */

struct penv {
	struct vduse_device *dev;
	struct vduse_vq *vq;
};

/* Device "tp", one queue of at most QMAX; the driver's ring has @num. */
static void start_with(struct penv *e, unsigned int num, uint64_t features,
		       bool check_started)
{
	memset(e, 0, sizeof(*e));
	e->dev = tu_device_new("tp", 1, QMAX);
	assert_true(fk_created_config()->features & F_PACKED);
	sim_pvq_init(&pq, 0, num, TU_RING0);
	assert_int_equal(sim_driver_ok(e->dev, features), VDUSE_REQ_RESULT_OK);
	e->vq = vduse_device_vq(e->dev, 0);
	assert_non_null(e->vq);
	if (check_started)
		assert_true(vduse_vq_started(e->vq));
}

static void start(struct penv *e, unsigned int num)
{
	start_with(e, num, tu_base_features() | F_PACKED, true);
}

static void env_free(struct penv *e)
{
	vduse_device_free(e->dev);
	fk_region_del(TU_RING_BASE, TU_RING_BASE + TU_RING_SIZE - 1);
	fk_region_del(TU_DATA, TU_DATA + TU_DATA_SIZE - 1);
	assert_int_equal(fk_live_maps(), 0);
	assert_int_equal(fk_live_fds(), 0);
}

/* Pop, check the element's shape, write @len bytes, push, read back. */
static void roundtrip(struct penv *e, const struct sim_buf *b, unsigned int n,
		      uint16_t id, uint8_t seed)
{
	struct vduse_vq_elem *elem;
	unsigned int i, outs = 0;
	uint16_t uid;
	uint32_t len;

	for (i = 0; i < n; i++) {
		if (!b[i].write) {
			tu_fill(b[i].addr, (uint8_t)(seed + i), b[i].len);
			outs++;
		}
	}
	sim_pvq_add(&pq, b, n, id);
	elem = tu_pop(e->vq);
	assert_true(elem->id < vduse_vq_size(e->vq));
	assert_int_equal(elem->out_num, outs);
	assert_int_equal(elem->in_num, n - outs);
	for (i = 0; i < outs; i++)
		tu_assert_iov_is(&elem->out_sg[i], b[i].addr, b[i].len);
	if (n > outs)
		memset(elem->in_sg[0].iov_base, seed, elem->in_sg[0].iov_len);
	assert_int_equal(vduse_vq_push(e->vq, elem, 7), 0);
	free(elem);
	assert_true(sim_pvq_get_used(&pq, &uid, &len));
	assert_int_equal(uid, id);
	assert_int_equal(len, 7);
	if (n > outs)
		assert_int_equal(((uint8_t *)fk_iova_ptr(b[outs].addr))[0],
				 seed);
}

static void test_roundtrip(void **state)
{
	struct sim_buf b[3] = {
		{ TU_DATA, 16, false },
		{ TU_DATA + 0x1000, 100, false },
		{ TU_DATA + 0x2000, 64, true },
	};
	struct penv e;

	start(&e, QMAX);
	assert_true(vduse_device_features(e.dev) & F_PACKED);
	roundtrip(&e, b, 3, 7, 1);
	/* Nothing else was made available. */
	{
		void *p;

		assert_int_equal(vduse_vq_pop(e.vq, sizeof(struct vduse_vq_elem), &p),
				 -EAGAIN);
	}
	env_free(&e);
}

/*
 * Many laps of a ring whose size is not a power of two, chains of 1 to 4
 * descriptors, completed in reverse order in groups: the used positions
 * and wrap counters must follow the descriptors each buffer took.
 */
static void laps(unsigned int num)
{
	struct vduse_vq_elem *el[8];
	struct penv e;
	unsigned int round, i, total = 0;

	start(&e, num);
	for (round = 0; total < 5 * num; round++) {
		unsigned int n = 1 + round % 4, k;

		/* A group of up to 4 buffers that fits in the ring. */
		for (k = 0; k < 4 && (k + 1) * n <= num; k++) {
			struct sim_buf b[4];
			uint16_t id = (uint16_t)(60000 + round * 4 + k);

			for (i = 0; i < n; i++) {
				b[i].addr = TU_DATA + 0x100 * (k * 4 + i);
				b[i].len = 8;
				b[i].write = i == n - 1;
			}
			sim_pvq_add(&pq, b, n, id);
			total += n;
		}
		for (i = 0; i < k; i++)
			el[i] = tu_pop(e.vq);
		/* Reverse order: out-of-order completion. */
		for (i = k; i-- > 0;) {
			assert_int_equal(vduse_vq_push(e.vq, el[i], i), 0);
			free(el[i]);
		}
		for (i = k; i-- > 0;) {
			uint16_t id;
			uint32_t len;

			assert_true(sim_pvq_get_used(&pq, &id, &len));
			assert_int_equal(id, 60000 + round * 4 + i);
			assert_int_equal(len, i);
		}
		assert_false(sim_pvq_get_used(&pq, &(uint16_t){ 0 },
					      &(uint32_t){ 0 }));
		assert_int_equal(vduse_vq_inflight(e.vq), 0);
	}
	assert_false(vduse_vq_broken(e.vq));
	env_free(&e);
}

static void test_laps_pow2(void **state)
{
	laps(16);
}

static void test_laps_not_pow2(void **state)
{
	laps(7);
}

static void test_laps_size_one(void **state)
{
	laps(1);
}

static void test_id_space_edges(void **state)
{
	struct sim_buf b[2] = { { TU_DATA, 8, false }, { TU_DATA + 8, 8, true } };
	struct penv e;

	start(&e, 8);
	roundtrip(&e, b, 2, 0, 1);
	roundtrip(&e, b, 2, 65535, 2);
	roundtrip(&e, b, 2, 32768, 3);
	env_free(&e);
}

static void test_indirect(void **state)
{
	struct sim_buf b[3] = {
		{ TU_DATA, 16, false },
		{ TU_DATA + 0x100, 32, true },
		{ TU_DATA + 0x200, 48, true },
	};
	struct vduse_vq_elem *elem;
	struct penv e;
	uint16_t id;
	uint32_t len;

	start(&e, 4);
	tu_fill(b[0].addr, 9, 16);
	sim_pvq_add_indirect(&pq, TU_DATA + 0x10000, b, 3, 42);
	elem = tu_pop(e.vq);
	assert_int_equal(elem->out_num, 1);
	assert_int_equal(elem->in_num, 2);
	tu_assert_iov_is(&elem->out_sg[0], b[0].addr, 16);
	assert_int_equal(elem->in_sg[1].iov_len, 48);
	assert_int_equal(vduse_vq_push(e.vq, elem, 80), 0);
	free(elem);
	assert_true(sim_pvq_get_used(&pq, &id, &len));
	assert_int_equal(id, 42);
	assert_int_equal(len, 80);
	/* One ring descriptor: the next buffer is at position 1. */
	assert_int_equal(pq.next_used, 1);
	env_free(&e);
}

static void test_batch(void **state)
{
	struct sim_buf b[2] = { { TU_DATA, 8, false }, { TU_DATA + 8, 8, true } };
	struct vduse_vq_elem *el[8];
	uint32_t lens[8];
	struct penv e;
	unsigned int i;

	start(&e, 16);
	for (i = 0; i < 6; i++)
		sim_pvq_add(&pq, b, 2, (uint16_t)(100 + i));
	assert_int_equal(vduse_vq_pop_batch(e.vq, el, 8), 6);
	for (i = 0; i < 6; i++) {
		assert_true(el[i]->id < 16);
		lens[i] = i;
	}
	assert_int_equal(vduse_vq_push_batch(e.vq, el, lens, 6,
					     VDUSE_VQ_PUSH_NOTIFY), 1);
	assert_int_equal(fk_vq_irqs(0), 1);
	for (i = 0; i < 6; i++) {
		uint16_t id;
		uint32_t len;

		assert_true(sim_pvq_get_used(&pq, &id, &len));
		assert_int_equal(id, 100 + i);
		assert_int_equal(len, i);
	}
	/* The same element twice in one batch: refused, nothing pushed. */
	sim_pvq_add(&pq, b, 2, 1);
	assert_int_equal(vduse_vq_pop_batch(e.vq, el, 8), 1);
	el[1] = el[0];
	assert_int_equal(vduse_vq_push_batch(e.vq, el, lens, 2, 0), -EINVAL);
	assert_int_equal(vduse_vq_push_batch(e.vq, el, lens, 1, 0), 0);
	env_free(&e);
}

/* The driver's event suppression area decides the interrupts. */
static void test_interrupt_suppression(void **state)
{
	struct sim_buf b = { TU_DATA, 8, true };
	struct vduse_vq_elem *el[4];
	struct penv e;
	unsigned int i;

	start_with(&e, 8, tu_base_features() | F_PACKED |
		   tu_event_idx_feature(), true);
	/* DISABLE: none. */
	sim_pvq_set_driver_event(&pq, VRING_PACKED_EVENT_FLAG_DISABLE, 0);
	sim_pvq_add(&pq, &b, 1, 1);
	el[0] = tu_pop(e.vq);
	assert_int_equal(vduse_vq_push(e.vq, el[0], 0), 0);
	free(el[0]);
	assert_int_equal(vduse_vq_notify(e.vq), 0);
	/* ENABLE: one, and none more for nothing new. */
	sim_pvq_set_driver_event(&pq, VRING_PACKED_EVENT_FLAG_ENABLE, 0);
	sim_pvq_add(&pq, &b, 1, 2);
	el[0] = tu_pop(e.vq);
	assert_int_equal(vduse_vq_push(e.vq, el[0], 0), 0);
	free(el[0]);
	assert_int_equal(vduse_vq_notify(e.vq), 1);
	assert_int_equal(vduse_vq_notify(e.vq), 0);
	/*
	 * DESC: used position 2 now; ask for the interrupt when the
	 * descriptor at position 3 is used (wrap 1): the first push (to 3)
	 * does not reach it, the second (to 4) does.
	 */
	sim_pvq_set_driver_event(&pq, VRING_PACKED_EVENT_FLAG_DESC,
				 3 | 1u << VRING_PACKED_EVENT_F_WRAP_CTR);
	for (i = 0; i < 2; i++)
		sim_pvq_add(&pq, &b, 1, (uint16_t)(3 + i));
	for (i = 0; i < 2; i++)
		el[i] = tu_pop(e.vq);
	assert_int_equal(vduse_vq_push(e.vq, el[0], 0), 0);
	assert_int_equal(vduse_vq_notify(e.vq), 0);
	assert_int_equal(vduse_vq_push(e.vq, el[1], 0), 0);
	assert_int_equal(vduse_vq_notify(e.vq), 1);
	free(el[0]);
	free(el[1]);
	/*
	 * Across the wrap: used position 4 (wrap 1); the event at position
	 * 0 of the next lap (wrap 0) is passed by the 5th push.
	 */
	sim_pvq_set_driver_event(&pq, VRING_PACKED_EVENT_FLAG_DESC, 0);
	for (i = 0; i < 4; i++)
		sim_pvq_add(&pq, &b, 1, (uint16_t)(10 + i));
	for (i = 0; i < 4; i++) {
		el[0] = tu_pop(e.vq);
		assert_int_equal(vduse_vq_push(e.vq, el[0], 0), 0);
		free(el[0]);
		/* Used to 5, 6, 7, then 0 of the next lap: not past it. */
		assert_int_equal(vduse_vq_notify(e.vq), 0);
	}
	sim_pvq_add(&pq, &b, 1, 20);
	el[0] = tu_pop(e.vq);
	assert_int_equal(vduse_vq_push(e.vq, el[0], 0), 0);
	free(el[0]);
	assert_int_equal(vduse_vq_notify(e.vq), 1);
	env_free(&e);
}

/*
 * An event in the previous lap: used at 7 (wrap 1) and the driver asks for
 * position 7 of that lap; the push that wraps the used position to 0
 * (wrap 0) passes it.
 */
static void test_interrupt_event_previous_lap(void **state)
{
	struct sim_buf b = { TU_DATA, 8, true };
	struct vduse_vq_elem *elem;
	struct penv e;
	unsigned int i;

	start_with(&e, 8, tu_base_features() | F_PACKED |
		   tu_event_idx_feature(), true);
	sim_pvq_set_driver_event(&pq, VRING_PACKED_EVENT_FLAG_DISABLE, 0);
	for (i = 0; i < 8; i++) {
		sim_pvq_add(&pq, &b, 1, (uint16_t)i);
		elem = tu_pop(e.vq);
		if (i == 7)
			sim_pvq_set_driver_event(&pq,
				VRING_PACKED_EVENT_FLAG_DESC,
				7 | 1u << VRING_PACKED_EVENT_F_WRAP_CTR);
		assert_int_equal(vduse_vq_push(e.vq, elem, 0), 0);
		free(elem);
		assert_int_equal(vduse_vq_notify(e.vq), i == 7);
	}
	env_free(&e);
}

/* Our event suppression area: kicks off while busy, on with a last look. */
static void test_kick_suppression(void **state)
{
	struct sim_buf b = { TU_DATA, 8, true };
	struct vduse_vq_elem *elem;
	struct penv e;

	start(&e, 8);
	assert_int_equal(sim_pvq_device_flags(&pq),
			 VRING_PACKED_EVENT_FLAG_ENABLE);
	assert_int_equal(vduse_vq_disable_kicks(e.vq), 0);
	assert_int_equal(sim_pvq_device_flags(&pq),
			 VRING_PACKED_EVENT_FLAG_DISABLE);
	assert_int_equal(vduse_vq_enable_kicks(e.vq), 0);
	assert_int_equal(sim_pvq_device_flags(&pq),
			 VRING_PACKED_EVENT_FLAG_ENABLE);
	assert_int_equal(vduse_vq_disable_kicks(e.vq), 0);
	sim_pvq_add(&pq, &b, 1, 5);
	/* Something arrived while they were off: the caller must pop. */
	assert_int_equal(vduse_vq_enable_kicks(e.vq), 1);
	elem = tu_pop(e.vq);
	assert_int_equal(vduse_vq_push(e.vq, elem, 0), 0);
	free(elem);
	env_free(&e);
}

static void test_state(void **state)
{
	struct sim_buf b[2] = { { TU_DATA, 8, false }, { TU_DATA + 8, 8, true } };
	struct vduse_vq_state_packed st;
	struct vduse_vq_elem *el[3];
	struct penv e;
	unsigned int i;

	start(&e, 5);
	/* 3 buffers of 2 descriptors, the first used: avail at 6 % 5 = 1
	 * (wrap 0), used at 2 (wrap 1). */
	for (i = 0; i < 3; i++) {
		sim_pvq_add(&pq, b, 2, (uint16_t)i);
		el[i] = tu_pop(e.vq);
		if (i == 0) {
			assert_int_equal(vduse_vq_push(e.vq, el[i], 0), 0);
			free(el[i]);
		}
	}
	assert_int_equal(sim_get_vq_state_packed(e.dev, 0, &st),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(st.last_avail_idx, 1);
	assert_int_equal(st.last_avail_counter, 0);
	assert_int_equal(st.last_used_idx, 2);
	assert_int_equal(st.last_used_counter, 1);
	for (i = 1; i < 3; i++) {
		assert_int_equal(vduse_vq_push(e.vq, el[i], 0), 0);
		free(el[i]);
	}
	env_free(&e);
}

/* After a reset, the kernel's packed state until the queue starts. */
static void test_state_after_reset(void **state)
{
	struct sim_buf b = { TU_DATA, 8, true };
	struct vduse_vq_state_packed st;
	struct penv e;

	start(&e, 8);
	roundtrip(&e, &b, 1, 1, 1);
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	fk_set_vq_packed(0, false, 5, true, 3);
	assert_int_equal(sim_get_vq_state_packed(e.dev, 0, &st),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(st.last_avail_counter, 0);
	assert_int_equal(st.last_avail_idx, 5);
	assert_int_equal(st.last_used_counter, 1);
	assert_int_equal(st.last_used_idx, 3);
	env_free(&e);
}

/* A queue restarted from a state the driver set (vhost-vdpa's base). */
static void test_start_state(void **state)
{
	struct sim_buf b = { TU_DATA, 8, true };
	struct vduse_vq_elem *elem;
	struct vduse_device_config c = tu_config("tp", 1, QMAX);
	struct penv e;
	uint16_t id;
	uint32_t len;

	tu_guest_memory();
	assert_int_equal(vduse_device_new(&c, &e.dev), 0);
	sim_pvq_init(&pq, 0, 8, TU_RING0);
	/* Both positions at 6 of the lap with wrap counter 0. */
	pq.next_avail = pq.next_used = 6;
	pq.avail_wrap = pq.used_wrap = false;
	fk_set_vq_packed(0, false, 6, false, 6);
	assert_int_equal(sim_driver_ok(e.dev, tu_base_features() | F_PACKED),
			 VDUSE_REQ_RESULT_OK);
	e.vq = vduse_device_vq(e.dev, 0);
	assert_true(vduse_vq_started(e.vq));
	sim_pvq_add(&pq, &b, 1, 77);
	elem = tu_pop(e.vq);
	assert_int_equal(vduse_vq_push(e.vq, elem, 3), 0);
	free(elem);
	assert_true(sim_pvq_get_used(&pq, &id, &len));
	assert_int_equal(id, 77);
	env_free(&e);
}

static void bad_start_state(bool aw, uint16_t ai, bool uw, uint16_t ui)
{
	struct vduse_device_config c = tu_config("tp", 1, QMAX);
	struct penv e;

	assert_int_equal(fk_region_add(TU_RING_BASE, TU_RING_SIZE,
				       VDUSE_ACCESS_RW), 0);
	assert_int_equal(vduse_device_new(&c, &e.dev), 0);
	sim_pvq_init(&pq, 0, 8, TU_RING0);
	fk_set_vq_packed(0, aw, ai, uw, ui);
	sim_driver_ok(e.dev, tu_base_features() | F_PACKED);
	assert_false(vduse_vq_started(vduse_device_vq(e.dev, 0)));
	assert_true(tu_log_contains("impossible packed ring state"));
	env_free(&e);
}

static void test_bad_start_state(void **state)
{
	bad_start_state(true, 8, true, 0);	/* avail past the ring */
	tu_log_clear();
	bad_start_state(true, 0, true, 8);	/* used past the ring */
	tu_log_clear();
	bad_start_state(true, 2, true, 3);	/* used ahead, same lap */
	tu_log_clear();
	bad_start_state(false, 3, true, 2);	/* avail more than a lap on */
}

static void test_boundary_start_state(void **state)
{
	struct vduse_device_config c = tu_config("tp", 1, QMAX);
	struct penv e;

	/* Avail exactly one lap ahead of used: every descriptor in flight. */
	assert_int_equal(fk_region_add(TU_RING_BASE, TU_RING_SIZE,
				       VDUSE_ACCESS_RW), 0);
	assert_int_equal(vduse_device_new(&c, &e.dev), 0);
	sim_pvq_init(&pq, 0, 8, TU_RING0);
	fk_set_vq_packed(0, false, 2, true, 2);
	sim_driver_ok(e.dev, tu_base_features() | F_PACKED);
	assert_true(vduse_vq_started(vduse_device_vq(e.dev, 0)));
	env_free(&e);
}

/* Sizes a split ring refuses are fine packed, up to the maximum. */
static void test_sizes(void **state)
{
	struct penv e;

	start(&e, 3);
	assert_int_equal(vduse_vq_size(e.vq), 3);
	env_free(&e);
	start(&e, QMAX);
	env_free(&e);
	start_with(&e, QMAX + 1, tu_base_features() | F_PACKED, false);
	assert_false(vduse_vq_started(e.vq));
	assert_true(tu_log_contains("bad size"));
	env_free(&e);
}

/* A slot is free again only once pushed, whatever the order. */
static void test_slot_reuse(void **state)
{
	struct sim_buf b = { TU_DATA, 8, true };
	struct vduse_vq_elem *a, *bb, *c;
	struct penv e;
	uint16_t id;
	uint32_t len;

	start(&e, 8);
	sim_pvq_add(&pq, &b, 1, 10);
	sim_pvq_add(&pq, &b, 1, 11);
	a = tu_pop(e.vq);
	bb = tu_pop(e.vq);
	assert_int_not_equal(a->id, bb->id);
	assert_int_equal(vduse_vq_push(e.vq, a, 0), 0);
	free(a);
	sim_pvq_add(&pq, &b, 1, 12);
	c = tu_pop(e.vq);
	assert_int_not_equal(c->id, bb->id);
	assert_int_equal(vduse_vq_push(e.vq, bb, 1), 0);
	assert_int_equal(vduse_vq_push(e.vq, c, 2), 0);
	free(bb);
	free(c);
	assert_true(sim_pvq_get_used(&pq, &id, &len));
	assert_int_equal(id, 10);
	assert_true(sim_pvq_get_used(&pq, &id, &len));
	assert_int_equal(id, 11);
	assert_int_equal(len, 1);
	assert_true(sim_pvq_get_used(&pq, &id, &len));
	assert_int_equal(id, 12);
	assert_int_equal(len, 2);
	env_free(&e);
}

/* AVAIL and USED both equal to the wrap counter: used, not available. */
static void test_used_flags_not_available(void **state)
{
	struct penv e;
	void *p = NULL;

	start(&e, 8);
	sim_pvq_set_desc(&pq, 0, TU_DATA, 8, 1,
			 (1u << VRING_PACKED_DESC_F_AVAIL) |
			 (1u << VRING_PACKED_DESC_F_USED));
	assert_int_equal(vduse_vq_pop(e.vq, sizeof(struct vduse_vq_elem), &p),
			 -EAGAIN);
	assert_false(vduse_vq_broken(e.vq));
	env_free(&e);
}

/* ---- malformed rings: the twins of test_malformed's split cases ---- */

static void expect_broken(struct penv *e, const char *why)
{
	void *p = NULL;

	assert_int_equal(vduse_vq_pop(e->vq, sizeof(struct vduse_vq_elem), &p),
			 -EIO);
	assert_null(p);
	assert_true(vduse_vq_broken(e->vq));
	assert_int_equal(tu_cb.queue_error, 1);
	if (!tu_log_contains(why))
		fail_msg("log lacks \"%s\"", why);
	env_free(e);
}

static void test_chain_longer_than_ring(void **state)
{
	struct penv e;
	unsigned int i;

	start(&e, 4);
	/* Every descriptor says NEXT: the chain never ends. */
	for (i = 0; i < 4; i++)
		sim_pvq_set_desc(&pq, i, TU_DATA, 8, 0,
				 sim_pvq_avail_bits(&pq) | VRING_DESC_F_NEXT);
	expect_broken(&e, "descriptor chain longer than the 4 descriptors");
	assert_int_equal(tu_cb.last_error, -ELOOP);
}

/* A chain as long as the free part of the ring is fine; one more is not. */
static void test_chain_room_boundary(void **state)
{
	struct sim_buf b[4] = {
		{ TU_DATA, 8, false }, { TU_DATA, 8, false },
		{ TU_DATA, 8, false }, { TU_DATA, 8, false },
	};
	struct vduse_vq_elem *a, *c;
	struct penv e;

	start(&e, 4);
	sim_pvq_add(&pq, b, 1, 1);
	a = tu_pop(e.vq);
	sim_pvq_add(&pq, b, 3, 2);	/* 3 = the room left */
	c = tu_pop(e.vq);
	assert_int_equal(vduse_vq_push(e.vq, a, 0), 0);
	assert_int_equal(vduse_vq_push(e.vq, c, 0), 0);
	free(a);
	free(c);
	sim_pvq_add(&pq, b, 1, 3);
	a = tu_pop(e.vq);
	/* Room 3 again, a chain of 4 at positions 1, 2, 3, 0. */
	sim_pvq_add(&pq, b, 3, 4);
	sim_pvq_set_desc(&pq, 3, TU_DATA, 8, 4,
			 VRING_DESC_F_NEXT | (uint16_t)(1u << 15));
	sim_pvq_set_desc(&pq, 0, TU_DATA, 8, 4, (uint16_t)(1u << 15));
	free(a);
	expect_broken(&e, "longer than the 3 descriptors free");
}

static void test_bufid_twice(void **state)
{
	struct sim_buf b = { TU_DATA, 8, true };
	struct vduse_vq_elem *a;
	struct penv e;

	start(&e, 8);
	sim_pvq_add(&pq, &b, 1, 65535);
	a = tu_pop(e.vq);
	sim_pvq_add(&pq, &b, 1, 65535);
	free(a);
	expect_broken(&e, "buffer id 65535 made available twice");
}

/* The same id again once it was used is fine. */
static void test_bufid_reuse_after_used(void **state)
{
	struct sim_buf b = { TU_DATA, 8, true };
	struct penv e;

	start(&e, 8);
	roundtrip(&e, &b, 1, 9, 1);
	roundtrip(&e, &b, 1, 9, 2);
	assert_false(vduse_vq_broken(e.vq));
	env_free(&e);
}

/* Wrap-counter abuse: a descriptor made available again while in flight. */
static void test_available_while_in_flight(void **state)
{
	struct sim_buf b = { TU_DATA, 8, true };
	struct vduse_vq_elem *el[4];
	struct penv e;
	unsigned int i;

	start(&e, 4);
	for (i = 0; i < 4; i++) {
		sim_pvq_add(&pq, &b, 1, (uint16_t)i);
		el[i] = tu_pop(e.vq);
	}
	/* The driver flips position 0 to "available" for the next lap. */
	sim_pvq_set_desc(&pq, 0, TU_DATA, 8, 9, sim_pvq_avail_bits(&pq));
	for (i = 0; i < 4; i++)
		free(el[i]);
	expect_broken(&e, "made available while all 4 are in flight");
}

/* The same with fewer buffers than descriptors: the ring is full. */
static void test_available_while_ring_full(void **state)
{
	struct sim_buf b[2] = { { TU_DATA, 8, false }, { TU_DATA, 8, true } };
	struct vduse_vq_elem *el[2];
	struct penv e;
	unsigned int i;

	start(&e, 4);
	for (i = 0; i < 2; i++) {
		sim_pvq_add(&pq, b, 2, (uint16_t)i);
		el[i] = tu_pop(e.vq);
	}
	sim_pvq_set_desc(&pq, 0, TU_DATA, 8, 9, sim_pvq_avail_bits(&pq));
	for (i = 0; i < 2; i++)
		free(el[i]);
	expect_broken(&e, "made available while all 4 are in flight");
}

static void bad_indirect(uint32_t len, uint16_t extra, const char *why)
{
	struct penv e;

	start(&e, 8);
	memset(fk_iova_ptr(TU_DATA + 0x20000), 0, 0x10000);
	sim_pvq_set_desc(&pq, 0, TU_DATA + 0x20000, len, 1,
			 sim_pvq_avail_bits(&pq) | VRING_DESC_F_INDIRECT |
			 extra);
	expect_broken(&e, why);
}

static void test_indirect_len_not_multiple(void **state)
{
	bad_indirect(20, 0, "indirect table of bad size 20");
}

static void test_indirect_len_zero(void **state)
{
	bad_indirect(0, 0, "indirect table of bad size 0");
}

static void test_indirect_too_large(void **state)
{
	bad_indirect(16 * (QMAX + 1), 0, "indirect table of bad size");
}

static void test_indirect_with_next(void **state)
{
	bad_indirect(16, VRING_DESC_F_NEXT, "indirect descriptor with NEXT");
}

/* The largest table is fine. */
static void test_indirect_largest(void **state)
{
	struct vduse_vq_elem *elem;
	struct penv e;
	unsigned int i;

	start(&e, 8);
	for (i = 0; i < QMAX; i++) {
		struct vring_packed_desc *d = fk_iova_ptr(TU_DATA + 0x20000 + 16 * i);

		d->addr = htole64(TU_DATA + i);
		d->len = htole32(1);
		d->flags = htole16(VRING_DESC_F_WRITE);
	}
	sim_pvq_set_desc(&pq, 0, TU_DATA + 0x20000, 16 * QMAX, 1,
			 sim_pvq_avail_bits(&pq) | VRING_DESC_F_INDIRECT);
	elem = tu_pop(e.vq);
	assert_int_equal(elem->in_num, QMAX);
	assert_int_equal(vduse_vq_push(e.vq, elem, 0), 0);
	free(elem);
	env_free(&e);
}

static void test_indirect_in_indirect(void **state)
{
	struct vring_packed_desc *t;
	struct penv e;

	start(&e, 8);
	t = fk_iova_ptr(TU_DATA + 0x20000);
	memset(t, 0, 32);
	t[0].addr = htole64(TU_DATA);
	t[0].len = htole32(8);
	t[1].addr = htole64(TU_DATA + 0x30000);
	t[1].len = htole32(16);
	t[1].flags = htole16(VRING_DESC_F_INDIRECT);
	sim_pvq_set_desc(&pq, 0, TU_DATA + 0x20000, 32, 1,
			 sim_pvq_avail_bits(&pq) | VRING_DESC_F_INDIRECT);
	expect_broken(&e, "indirect descriptor inside an indirect table");
}

static void test_indirect_not_negotiated(void **state)
{
	struct penv e;

	start_with(&e, 8, TU_F(VIRTIO_F_VERSION_1) |
		   TU_F(VIRTIO_F_ACCESS_PLATFORM) | F_PACKED, true);
	sim_pvq_set_desc(&pq, 0, TU_DATA + 0x20000, 16, 1,
			 sim_pvq_avail_bits(&pq) | VRING_DESC_F_INDIRECT);
	expect_broken(&e, "indirect descriptor not negotiated");
}

static void test_unmapped_buffer(void **state)
{
	struct penv e;

	start(&e, 8);
	sim_pvq_set_desc(&pq, 0, 0x40000000ull, 8, 1, sim_pvq_avail_bits(&pq));
	expect_broken(&e, "readable buffer [0x40000000, +8]");
}

static void test_readable_after_writable(void **state)
{
	struct sim_buf b[2] = { { TU_DATA, 8, true }, { TU_DATA, 8, false } };
	struct penv e;

	start(&e, 8);
	sim_pvq_add(&pq, b, 2, 1);
	expect_broken(&e, "device-readable descriptor after a writable one");
}

static void test_writable_in_ro_region(void **state)
{
	struct sim_buf b = { 0x800000ull, 8, true };
	struct penv e;

	start(&e, 8);
	assert_int_equal(fk_region_add(0x800000ull, 0x1000, VDUSE_ACCESS_RO),
			 0);
	sim_pvq_add(&pq, &b, 1, 1);
	expect_broken(&e, "mapping lacks the permission");
}

/* A broken packed queue comes back after a reset, like a split one. */
static void test_reset_repairs(void **state)
{
	struct sim_buf b = { TU_DATA, 8, true };
	struct penv e;

	start(&e, 8);
	sim_pvq_set_desc(&pq, 0, 0x40000000ull, 8, 1, sim_pvq_avail_bits(&pq));
	{
		void *p;

		assert_int_equal(vduse_vq_pop(e.vq, sizeof(struct vduse_vq_elem), &p),
				 -EIO);
	}
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	sim_pvq_init(&pq, 0, 8, TU_RING0);
	assert_int_equal(sim_driver_ok(e.dev, tu_base_features() | F_PACKED),
			 VDUSE_REQ_RESULT_OK);
	assert_false(vduse_vq_broken(e.vq));
	roundtrip(&e, &b, 1, 3, 4);
	env_free(&e);
}

/* ---- what is offered ---- */

static void test_offer(void **state)
{
	struct vduse_device_config c = tu_config("tp", 1, QMAX);
	struct vduse_device *dev;
	char path[] = "/tmp/vduse-packed-log-XXXXXX";
	int fd;

	/* Default: offered. */
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_true(fk_created_config()->features & F_PACKED);
	vduse_device_free(dev);
	/* Turned off by the flag, and by NO_RING_FEATURES. */
	c.flags = VDUSE_DEVICE_F_NO_PACKED;
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_false(fk_created_config()->features & F_PACKED);
	vduse_device_free(dev);
	c.flags = VDUSE_DEVICE_F_NO_RING_FEATURES;
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_false(fk_created_config()->features & F_PACKED);
	vduse_device_free(dev);
	/* With an in-flight log too (it records packed rings), by default
	 * and when asked for. */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	c.flags = 0;
	c.log_path = path;
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_true(fk_created_config()->features & F_PACKED);
	vduse_device_free(dev);
	c.features = F_PACKED;
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_true(fk_created_config()->features & F_PACKED);
	vduse_device_free(dev);
	unlink(path);
	/* A kernel that refuses the bit gets the device without it. */
	c.features = 0;
	c.log_path = NULL;
	fk_fail_ioctl(VDUSE_CREATE_DEV, -EINVAL, 0);
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_false(fk_created_config()->features & F_PACKED);
	assert_true(tu_log_contains("refused VIRTIO_F_RING_PACKED"));
	vduse_device_free(dev);
	assert_int_equal(fk_live_fds(), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_roundtrip),
		T(test_laps_pow2),
		T(test_laps_not_pow2),
		T(test_laps_size_one),
		T(test_id_space_edges),
		T(test_indirect),
		T(test_batch),
		T(test_interrupt_suppression),
		T(test_interrupt_event_previous_lap),
		T(test_kick_suppression),
		T(test_state),
		T(test_state_after_reset),
		T(test_start_state),
		T(test_bad_start_state),
		T(test_boundary_start_state),
		T(test_sizes),
		T(test_slot_reuse),
		T(test_used_flags_not_available),
		T(test_chain_longer_than_ring),
		T(test_chain_room_boundary),
		T(test_bufid_twice),
		T(test_bufid_reuse_after_used),
		T(test_available_while_in_flight),
		T(test_available_while_ring_full),
		T(test_indirect_len_not_multiple),
		T(test_indirect_len_zero),
		T(test_indirect_too_large),
		T(test_indirect_with_next),
		T(test_indirect_largest),
		T(test_indirect_in_indirect),
		T(test_indirect_not_negotiated),
		T(test_unmapped_buffer),
		T(test_readable_after_writable),
		T(test_writable_in_ro_region),
		T(test_reset_repairs),
		T(test_offer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
