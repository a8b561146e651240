// SPDX-License-Identifier: MIT
/*
 * The batch API (vduse_vq_pop_batch, vduse_vq_push_batch) and the fast
 * path under it: per-head element storage, chains longer than a slot,
 * one used->idx store and one interrupt decision per batch, avail_event,
 * errors that push nothing, mixing with the single-element API, the
 * per-queue IOTLB mapping cache (permissions, lengths, invalidation) and
 * kick suppression (vduse_vq_disable_kicks, vduse_vq_enable_kicks).
 */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "internal.h"
#include "test_util.h"

#define POP_SZ	sizeof(struct vduse_vq_elem)
#define RA	0x1000000ull	/* extra regions, 4 KiB each */

static bool kick_pending(struct vduse_vq *vq)
{
	struct pollfd p = { .fd = vduse_vq_kick_fd(vq), .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Publish @n one-buffer requests (8 writable bytes each); their heads. */
static void publish_n(struct tu_env *e, unsigned int n, uint16_t *heads)
{
	for (unsigned int i = 0; i < n; i++) {
		struct sim_buf b = { TU_DATA + 0x100 * i, 8, true };
		uint16_t h = sim_add_chain(&e->s[0], &b, 1);

		if (heads)
			heads[i] = h;
		sim_publish(&e->s[0], h);
	}
}

static void push_all(struct vduse_vq *vq, struct vduse_vq_elem **el,
		     unsigned int n, uint32_t len)
{
	uint32_t lens[64];

	for (unsigned int i = 0; i < n; i++)
		lens[i] = len;
	assert_int_equal(vduse_vq_push_batch(vq, el, lens, n, 0), 0);
}

/* Pop one request with a buffer of @len at @iova (readable or not). */
static int pop_one(struct tu_env *e, uint64_t iova, uint32_t len, bool write,
		   struct vduse_vq_elem **el)
{
	struct sim_buf b = { iova, len, write };

	sim_publish(&e->s[0], sim_add_chain(&e->s[0], &b, 1));
	return vduse_vq_pop_batch(e->vq[0], el, 1);
}

static void test_pop_push(void **state)
{
	struct sim_buf b[3] = {
		{ TU_DATA, 16, false },
		{ TU_DATA + 0x1000, 100, true },
		{ TU_DATA + 0x2000, 1, true },
	};
	struct vduse_vq_elem *el[8];
	uint32_t lens[8], id, len;
	uint16_t heads[5], used0;
	struct tu_env e;
	int i, n;

	tu_env_start(&e, tu_base_features(), 0);
	tu_fill(b[0].addr, 3, 16);
	heads[0] = sim_add_chain(&e.s[0], b, 3);
	sim_publish(&e.s[0], heads[0]);
	for (i = 1; i < 5; i++) {
		struct sim_buf one = { TU_DATA + 0x4000 + 0x100 * i, 8, true };

		heads[i] = sim_add_chain(&e.s[0], &one, 1);
		sim_publish(&e.s[0], heads[i]);
	}
	used0 = sim_used_idx(&e.s[0]);

	/* Fewer than max: everything there was, in ring order. */
	n = vduse_vq_pop_batch(e.vq[0], el, 8);
	assert_int_equal(n, 5);
	for (i = 0; i < 5; i++) {
		assert_int_equal(el[i]->id, heads[i]);
		assert_int_equal(el[i]->reserved, 0);
		for (int j = 0; j < i; j++)
			assert_ptr_not_equal(el[i], el[j]);
	}
	assert_int_equal(el[0]->out_num, 1);
	assert_int_equal(el[0]->in_num, 2);
	tu_assert_iov_is(&el[0]->out_sg[0], b[0].addr, 16);
	assert_ptr_equal(el[0]->in_sg, el[0]->out_sg + 1);
	assert_int_equal(el[0]->in_sg[0].iov_len, 100);
	assert_int_equal(el[0]->in_sg[1].iov_len, 1);
	memcpy(el[0]->in_sg[0].iov_base, "batch", 5);
	assert_memory_equal(fk_iova_ptr(b[1].addr), "batch", 5);
	assert_int_equal(el[3]->out_num, 0);
	assert_int_equal(el[3]->in_num, 1);
	assert_int_equal(el[3]->in_sg[0].iov_len, 8);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 5);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el + 5, 3), -EAGAIN);
	assert_int_equal(sim_used_idx(&e.s[0]), used0);

	/* Completed out of order, one used->idx store, one interrupt. */
	struct vduse_vq_elem *rev[5];

	for (i = 0; i < 5; i++) {
		rev[i] = el[4 - i];
		lens[i] = 10 + i;
	}
	assert_int_equal(vduse_vq_push_batch(e.vq[0], rev, lens, 5,
					     VDUSE_VQ_PUSH_NOTIFY), 1);
	assert_int_equal(fk_vq_irqs(0), 1);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 0);
	assert_int_equal(sim_used_idx(&e.s[0]), (uint16_t)(used0 + 5));
	for (i = 0; i < 5; i++) {
		assert_true(sim_get_used(&e.s[0], &id, &len));
		assert_int_equal(id, heads[4 - i]);
		assert_int_equal(len, 10 + i);
	}
	assert_false(sim_get_used(&e.s[0], &id, &len));
	/* Nothing new: no second interrupt; n == 0 is a notify. */
	assert_int_equal(vduse_vq_push_batch(e.vq[0], NULL, NULL, 0,
					     VDUSE_VQ_PUSH_NOTIFY), 0);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 0);
	assert_int_equal(fk_vq_irqs(0), 1);
	assert_int_equal(fk_vq_irqs(1), 0);
	tu_env_free(&e);
}

/* max is a bound: max requests, then the rest; 0 is refused. */
static void test_max(void **state)
{
	struct vduse_vq_elem *el[8];
	uint16_t heads[5];
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	publish_n(&e, 5, heads);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 0), -EINVAL);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 0);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 3), 3);
	assert_int_equal(el[2]->id, heads[2]);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el + 3, 2), 2);
	assert_int_equal(el[3]->id, heads[3]);
	assert_int_equal(el[4]->id, heads[4]);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el + 5, 1), -EAGAIN);
	push_all(e.vq[0], el, 5, 8);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 0);
	/* Exactly max available: max. */
	publish_n(&e, 4, NULL);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 4), 4);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el + 4, 4), -EAGAIN);
	push_all(e.vq[0], el, 4, 8);
	tu_env_free(&e);
}

/*
 * A batch that stops at max stores avail_event once, and so does one that
 * drains the ring (kicks re-armed); without EVENT_IDX it is never written.
 */
static void test_avail_event(void **state)
{
	struct vduse_vq_elem *el[8];
	struct tu_env e;
	uint16_t *ev;

	tu_env_start(&e, tu_base_features() | tu_event_idx_feature(), 100);
	ev = fk_iova_ptr(e.s[0].used + 4 + 8ull * e.s[0].num);
	publish_n(&e, 5, NULL);
	*ev = 0xdead;
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 3), 3);
	assert_int_equal(sim_avail_event(&e.s[0]), 103);
	*ev = 0xdead;
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el + 3, 8), 2);
	assert_int_equal(sim_avail_event(&e.s[0]), 105);
	*ev = 0xdead;
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el + 5, 8), -EAGAIN);
	assert_int_equal(sim_avail_event(&e.s[0]), 105);
	push_all(e.vq[0], el, 5, 0);
	tu_env_free(&e);

	fk_teardown();
	tu_setup(NULL);
	tu_env_start(&e, tu_base_features(), 0);
	ev = fk_iova_ptr(e.s[0].used + 4 + 8ull * e.s[0].num);
	*ev = 0xdead;
	publish_n(&e, 2, NULL);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 8), 2);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el + 2, 8), -EAGAIN);
	assert_int_equal(sim_avail_event(&e.s[0]), 0xdead);
	push_all(e.vq[0], el, 2, 0);
	tu_env_free(&e);
}

/* One decision per batch: the driver's used_event and NO_INTERRUPT. */
static void test_interrupt_decision(void **state)
{
	struct vduse_vq_elem *el[8];
	uint32_t lens[8] = { 0 };
	struct tu_env e;
	uint16_t u;

	tu_env_start(&e, tu_base_features() | tu_event_idx_feature(), 0);
	u = sim_used_idx(&e.s[0]);
	/* The driver wants an interrupt once used passes u + 3. */
	sim_set_used_event(&e.s[0], (uint16_t)(u + 3));
	publish_n(&e, 6, NULL);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 8), 6);
	/* u + 3 entries: used_event u + 3 not passed yet. */
	assert_int_equal(vduse_vq_push_batch(e.vq[0], el, lens, 3,
					     VDUSE_VQ_PUSH_NOTIFY), 0);
	assert_int_equal(fk_vq_irqs(0), 0);
	/* One more crosses it. */
	assert_int_equal(vduse_vq_push_batch(e.vq[0], el + 3, lens, 1,
					     VDUSE_VQ_PUSH_NOTIFY), 1);
	assert_int_equal(fk_vq_irqs(0), 1);
	/* Without the flag: no decision, the next notify makes it. */
	sim_set_used_event(&e.s[0], (uint16_t)(u + 4));
	assert_int_equal(vduse_vq_push_batch(e.vq[0], el + 4, lens, 2, 0), 0);
	assert_int_equal(fk_vq_irqs(0), 1);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 1);
	assert_int_equal(fk_vq_irqs(0), 2);
	tu_env_free(&e);

	fk_teardown();
	tu_setup(NULL);
	tu_env_start(&e, tu_base_features(), 0);
	publish_n(&e, 2, NULL);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 8), 2);
	sim_set_avail_flags(&e.s[0], VRING_AVAIL_F_NO_INTERRUPT);
	assert_int_equal(vduse_vq_push_batch(e.vq[0], el, lens, 1,
					     VDUSE_VQ_PUSH_NOTIFY), 0);
	sim_set_avail_flags(&e.s[0], 0);
	assert_int_equal(vduse_vq_push_batch(e.vq[0], el + 1, lens, 1,
					     VDUSE_VQ_PUSH_NOTIFY), 1);
	assert_int_equal(fk_vq_irqs(0), 1);
	tu_env_free(&e);
}

/* A refused batch pushes nothing at all, and the elements stay usable. */
static void test_push_refused(void **state)
{
	struct vduse_vq_elem *el[4], *dup[3], fake;
	uint32_t lens[4] = { 1, 2, 3, 4 }, id, len;
	struct tu_env e;
	uint16_t before;

	tu_env_start(&e, tu_base_features(), 0);
	publish_n(&e, 3, NULL);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 4), 3);
	before = sim_used_idx(&e.s[0]);

	/* The same element twice in one batch. */
	dup[0] = el[0];
	dup[1] = el[1];
	dup[2] = el[0];
	assert_int_equal(vduse_vq_push_batch(e.vq[0], dup, lens, 3, 0),
			 -EINVAL);
	assert_true(tu_log_contains("not in flight"));
	/* An id never popped, last in the batch. */
	fake = *el[2];
	fake.id = (el[2]->id + 1) % TU_QSIZE;
	dup[0] = el[0];
	dup[1] = el[2];
	dup[2] = &fake;
	assert_int_equal(vduse_vq_push_batch(e.vq[0], dup, lens, 3, 0),
			 -EINVAL);
	/* Out of range, first in the batch. */
	fake.id = TU_QSIZE;
	dup[0] = &fake;
	assert_int_equal(vduse_vq_push_batch(e.vq[0], dup, lens, 1, 0),
			 -EINVAL);
	/* An unknown flag. */
	assert_int_equal(vduse_vq_push_batch(e.vq[0], el, lens, 3, 1u << 1),
			 -EINVAL);
	/* On the wrong queue. */
	assert_int_equal(vduse_vq_push_batch(e.vq[1], el, lens, 1, 0),
			 -EINVAL);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 3);
	assert_int_equal(sim_used_idx(&e.s[0]), before);
	assert_int_equal(fk_vq_irqs(0), 0);

	/* All three are still in flight: now they go, exactly once. */
	assert_int_equal(vduse_vq_push_batch(e.vq[0], el, lens, 3, 0), 0);
	assert_int_equal(sim_used_idx(&e.s[0]), (uint16_t)(before + 3));
	for (int i = 0; i < 3; i++) {
		assert_true(sim_get_used(&e.s[0], &id, &len));
		assert_int_equal(len, lens[i]);
	}
	assert_int_equal(vduse_vq_push_batch(e.vq[0], el, lens, 1, 0),
			 -EINVAL);
	assert_false(vduse_vq_broken(e.vq[0]));
	tu_env_free(&e);
}

/* Elements of either API go back through either push. */
static void test_mixed_apis(void **state)
{
	struct vduse_vq_elem *el[2], *single;
	uint32_t len = 8, id, l;
	uint16_t heads[3];
	struct tu_env e;
	void *p;

	tu_env_start(&e, tu_base_features(), 0);
	publish_n(&e, 3, heads);
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &p), 0);
	single = p;
	assert_int_equal(single->id, heads[0]);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 2), 2);
	assert_int_equal(el[0]->id, heads[1]);
	assert_int_equal(vduse_vq_push(e.vq[0], el[1], 8), 0);
	assert_int_equal(vduse_vq_push_batch(e.vq[0], &single, &len, 1, 0), 0);
	free(single);
	assert_int_equal(vduse_vq_push(e.vq[0], el[0], 8), 0);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 0);
	assert_true(sim_get_used(&e.s[0], &id, &l));
	assert_int_equal(id, heads[2]);
	assert_true(sim_get_used(&e.s[0], &id, &l));
	assert_int_equal(id, heads[0]);
	assert_true(sim_get_used(&e.s[0], &id, &l));
	assert_int_equal(id, heads[1]);
	tu_env_free(&e);
}

/*
 * A slot holds VDUSE_VQ_SLOT_IOV iovecs in place; a longer chain gets an
 * array of its own, kept for the next element of that head.  Both sides
 * of the boundary, direct and indirect, and the slot's reuse.
 */
static void check_long(struct tu_env *e, unsigned int nbufs, bool indirect)
{
	struct sim_buf b[VDUSE_VQ_SLOT_IOV + 2];
	struct vduse_vq_elem *el;
	uint16_t head;

	assert_true(nbufs <= VDUSE_VQ_SLOT_IOV + 2);
	for (unsigned int i = 0; i < nbufs; i++) {
		b[i] = (struct sim_buf){ TU_DATA + 0x1000 * i, 16 + i,
					 i >= 2 };
		tu_fill(b[i].addr, (uint8_t)(nbufs + i), 16 + i);
	}
	head = indirect ? sim_add_indirect(&e->s[0], TU_DATA + 0x80000, b,
					   nbufs) :
			  sim_add_chain(&e->s[0], b, nbufs);
	sim_publish(&e->s[0], head);
	assert_int_equal(vduse_vq_pop_batch(e->vq[0], &el, 1), 1);
	assert_int_equal(el->id, head);
	assert_int_equal(el->out_num, 2);
	assert_int_equal(el->in_num, nbufs - 2);
	for (unsigned int i = 0; i < nbufs; i++)
		tu_assert_iov_is(&el->out_sg[i], b[i].addr, 16 + i);
	assert_ptr_equal(el->in_sg, el->out_sg + 2);
	push_all(e->vq[0], &el, 1, 0);
}

static void test_long_chains(void **state)
{
	static const unsigned int n[] = {
		VDUSE_VQ_SLOT_IOV, VDUSE_VQ_SLOT_IOV + 1, VDUSE_VQ_SLOT_IOV,
		VDUSE_VQ_SLOT_IOV + 2, VDUSE_VQ_SLOT_IOV + 1, 3,
	};
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	for (unsigned int i = 0; i < sizeof(n) / sizeof(n[0]); i++) {
		check_long(&e, n[i], false);
		check_long(&e, n[i], true);
	}
	assert_false(vduse_vq_broken(e.vq[0]));
	tu_env_free(&e);
}

/*
 * A chain one iovec longer than a slot, with every buffer in the mapping
 * cache, next to an element in the following slot: the last iovec must
 * not land in the neighbour (which the second pop then overwrites).
 */
static void test_slot_bound_cached(void **state)
{
	struct sim_buf b[VDUSE_VQ_SLOT_IOV + 1], one = { TU_DATA, 8, true };
	struct vduse_vq_elem *el[2];
	unsigned int n = VDUSE_VQ_SLOT_IOV + 1;
	struct tu_env e;
	uint16_t head;

	tu_env_start(&e, tu_base_features(), 0);
	/* Cache TU_DATA's mapping. */
	assert_int_equal(pop_one(&e, TU_DATA, 8, true, el), 1);
	push_all(e.vq[0], el, 1, 0);
	for (unsigned int i = 0; i < n; i++) {
		b[i] = (struct sim_buf){ TU_DATA + 0x100 * i, 8 + i, true };
		tu_fill(b[i].addr, (uint8_t)i, 8 + i);
	}
	head = sim_add_indirect(&e.s[0], TU_DATA + 0x80000, b, n);
	sim_publish(&e.s[0], head);
	sim_publish(&e.s[0], sim_add_chain(&e.s[0], &one, 1));
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 2), 2);
	assert_int_equal(el[1]->id, el[0]->id + 1);
	assert_int_equal(el[0]->in_num, n);
	for (unsigned int i = 0; i < n; i++)
		tu_assert_iov_is(&el[0]->in_sg[i], b[i].addr, 8 + i);
	push_all(e.vq[0], el, 2, 0);
	tu_env_free(&e);
}

/*
 * Used ring unmappable for a shortage: a batch push keeps every
 * completion (the whole ring's worth at once is room enough), returns 0
 * and signals the kick fd; the next notify publishes them, in order.
 */
static void test_push_deferred(void **state)
{
	struct vduse_vq_elem *el[16];
	uint32_t lens[16], id, len;
	uint16_t heads[16];
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	/* A ring of 16, so that 16 pushes fill the room for deferrals. */
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	sim_vq_init_at(&e.s[0], 0, 16, TU_RING0, 0);
	sim_vq_init_at(&e.s[1], 1, 16, TU_RING1, 0);
	assert_int_equal(sim_driver_ok(e.dev, tu_base_features()),
			 VDUSE_REQ_RESULT_OK);
	publish_n(&e, 16, heads);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 16), 16);
	for (int i = 0; i < 16; i++)
		lens[i] = 100 + i;
	assert_int_equal(sim_update_iotlb(e.dev, 0, UINT64_MAX),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(vduse_vq_kick_drain(e.vq[0]), 0);
	fk_fail(FK_MMAP, -ENOMEM, 0);
	assert_int_equal(vduse_vq_push_batch(e.vq[0], el, lens, 16,
					     VDUSE_VQ_PUSH_NOTIFY), 0);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 0);
	assert_int_equal(sim_used_idx(&e.s[0]), 0);
	assert_true(kick_pending(e.vq[0]));
	assert_int_equal(fk_vq_irqs(0), 0);
	assert_false(vduse_vq_broken(e.vq[0]));

	assert_int_equal(vduse_vq_notify(e.vq[0]), 1);
	assert_int_equal(sim_used_idx(&e.s[0]), 16);
	for (int i = 0; i < 16; i++) {
		assert_true(sim_get_used(&e.s[0], &id, &len));
		assert_int_equal(id, heads[i]);
		assert_int_equal(len, 100 + i);
	}
	assert_false(sim_get_used(&e.s[0], &id, &len));
	tu_env_free(&e);
}

/* A malformed chain after good ones: those are returned, then -EIO. */
static void test_broken_mid_batch(void **state)
{
	struct vduse_vq_elem *el[4];
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	publish_n(&e, 1, NULL);
	sim_publish(&e.s[0], TU_QSIZE);		/* head out of range */
	publish_n(&e, 1, NULL);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 4), 1);
	assert_int_equal(tu_cb.queue_error, 1);
	assert_int_equal(tu_cb.last_error, -EINVAL);
	assert_true(tu_log_contains("out of range"));
	assert_true(vduse_vq_broken(e.vq[0]));
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el + 1, 4), -EIO);
	assert_int_equal(tu_cb.queue_error, 1);
	/* The element taken before stays the backend's to complete. */
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 1);
	push_all(e.vq[0], el, 1, 0);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 0);
	tu_env_free(&e);
}

/*
 * A shortage while mapping a later chain: the earlier ones are returned,
 * nothing more is consumed, the kick fd is signalled; with nothing taken
 * the call returns -ENOMEM.  The request is popped on the retry.
 */
static void test_shortage(void **state)
{
	struct sim_buf far = { RA, 8, true };
	struct vduse_vq_elem *el[4];
	uint16_t head;
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	assert_int_equal(fk_region_add(RA, 0x1000, VDUSE_ACCESS_RW), 0);
	publish_n(&e, 1, NULL);
	/* Warm: TU_DATA is mapped, RA is not yet. */
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 4), 1);
	push_all(e.vq[0], el, 1, 0);
	vduse_vq_kick_drain(e.vq[0]);

	publish_n(&e, 1, NULL);
	head = sim_add_chain(&e.s[0], &far, 1);
	sim_publish(&e.s[0], head);
	fk_fail(FK_MMAP, -ENOMEM, 0);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 4), 1);
	assert_true(kick_pending(e.vq[0]));
	assert_false(vduse_vq_broken(e.vq[0]));
	vduse_vq_kick_drain(e.vq[0]);
	fk_fail(FK_MMAP, -ENOMEM, 0);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el + 1, 4), -ENOMEM);
	assert_true(kick_pending(e.vq[0]));
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 1);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el + 1, 4), 1);
	assert_int_equal(el[1]->id, head);
	push_all(e.vq[0], el, 2, 0);
	assert_false(vduse_vq_broken(e.vq[0]));
	tu_env_free(&e);
}

/*
 * The mapping cache answers only for what the mapping allows: a
 * read-only region cached by a readable buffer still refuses a writable
 * one, for either API.
 */
static void test_cache_permission(void **state)
{
	struct vduse_vq_elem *el;
	struct tu_env e;
	void *p;

	tu_env_start(&e, tu_base_features(), 0);
	assert_int_equal(fk_region_add(RA, 0x1000, VDUSE_ACCESS_RO), 0);
	assert_int_equal(pop_one(&e, RA + 0x10, 8, false, &el), 1);
	tu_assert_iov_is(&el->out_sg[0], RA + 0x10, 8);
	push_all(e.vq[0], &el, 1, 0);
	assert_int_equal(pop_one(&e, RA + 0x20, 8, false, &el), 1);
	push_all(e.vq[0], &el, 1, 0);
	assert_int_equal(pop_one(&e, RA + 0x10, 8, true, &el), -EIO);
	assert_int_equal(tu_cb.queue_error, 1);
	assert_true(tu_log_contains("mapping lacks the permission"));
	tu_env_free(&e);

	/* The single-element API goes through the same cache. */
	fk_teardown();
	tu_setup(NULL);
	tu_env_start(&e, tu_base_features(), 0);
	assert_int_equal(fk_region_add(RA, 0x1000, VDUSE_ACCESS_RO), 0);
	assert_int_equal(pop_one(&e, RA + 0x10, 8, false, &el), 1);
	push_all(e.vq[0], &el, 1, 0);
	struct sim_buf w = { RA + 0x10, 8, true };

	sim_publish(&e.s[0], sim_add_chain(&e.s[0], &w, 1));
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &p), -EIO);
	assert_true(tu_log_contains("mapping lacks the permission"));
	tu_env_free(&e);
}

/*
 * A cached mapping covers a buffer only up to its last byte: a buffer
 * ending exactly there is one iovec; one byte more spans into the next
 * region (other memory) and is two.
 */
static void test_cache_length(void **state)
{
	struct vduse_vq_elem *el;
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	assert_int_equal(fk_region_add(RA, 0x1000, VDUSE_ACCESS_RW), 0);
	assert_int_equal(fk_region_add(RA + 0x1000, 0x1000, VDUSE_ACCESS_RW),
			 0);
	tu_fill(RA + 0xf00, 1, 0x100);
	tu_fill(RA + 0x1000, 2, 0x100);
	/* Fill the cache with RA's mapping. */
	assert_int_equal(pop_one(&e, RA, 8, false, &el), 1);
	push_all(e.vq[0], &el, 1, 0);

	assert_int_equal(pop_one(&e, RA + 0xff0, 0x10, false, &el), 1);
	assert_int_equal(el->out_num, 1);
	tu_assert_iov_is(&el->out_sg[0], RA + 0xff0, 0x10);
	push_all(e.vq[0], &el, 1, 0);

	assert_int_equal(pop_one(&e, RA + 0xff0, 0x11, false, &el), 1);
	assert_int_equal(el->out_num, 2);
	tu_assert_iov_is(&el->out_sg[0], RA + 0xff0, 0x10);
	tu_assert_iov_is(&el->out_sg[1], RA + 0x1000, 1);
	push_all(e.vq[0], &el, 1, 0);

	/* A zero-length buffer yields no iovec, cached or not. */
	assert_int_equal(pop_one(&e, RA + 0x10, 0, false, &el), 1);
	assert_int_equal(el->out_num, 0);
	push_all(e.vq[0], &el, 1, 0);
	assert_false(vduse_vq_broken(e.vq[0]));
	tu_env_free(&e);
}

/*
 * UPDATE_IOTLB empties the cache: after the kernel moved an IOVA to other
 * memory, the next element sees the new memory, and an element popped
 * before keeps the old (docs/threading.md, "Mapping lifetime").
 */
static void test_cache_invalidation(void **state)
{
	struct vduse_vq_elem *old, *el;
	uint8_t *before;
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	assert_int_equal(fk_region_add(RA, 0x1000, VDUSE_ACCESS_RW), 0);
	tu_fill(RA, 0x11, 64);
	assert_int_equal(pop_one(&e, RA, 64, false, &old), 1);
	tu_assert_iov_is(&old->out_sg[0], RA, 64);
	before = old->out_sg[0].iov_base;

	fk_region_del(RA, RA);
	assert_int_equal(fk_region_add(RA, 0x1000, VDUSE_ACCESS_RW), 0);
	tu_fill(RA, 0x22, 64);
	assert_int_equal(sim_update_iotlb(e.dev, RA, RA + 0xfff),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(pop_one(&e, RA, 64, false, &el), 1);
	assert_ptr_not_equal(el->out_sg[0].iov_base, before);
	tu_assert_iov_is(&el->out_sg[0], RA, 64);
	assert_int_equal(((uint8_t *)old->out_sg[0].iov_base)[0], 0x11);
	push_all(e.vq[0], &el, 1, 0);
	push_all(e.vq[0], &old, 1, 0);
	tu_env_free(&e);
}

/* The slots come with the ring: a restarted queue of another size. */
static void test_restart(void **state)
{
	struct vduse_vq_elem *el[4];
	struct tu_env e;

	uint32_t len = 0;

	tu_env_start(&e, tu_base_features(), 0);
	publish_n(&e, 3, NULL);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 4), 3);
	push_all(e.vq[0], el, 2, 0);
	/* Stopped with el[2] in flight: it can no longer be pushed. */
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	assert_true(tu_log_contains("stopped with 1 requests in flight"));
	assert_int_equal(vduse_vq_push_batch(e.vq[0], el + 2, &len, 1, 0),
			 -EIO);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 4), -EIO);
	assert_int_equal(vduse_vq_push_batch(e.vq[0], el, NULL, 0,
					     VDUSE_VQ_PUSH_NOTIFY), -EIO);
	sim_vq_init_at(&e.s[0], 0, 16, TU_RING0, 7);
	sim_vq_init_at(&e.s[1], 1, 16, TU_RING1, 0);
	assert_int_equal(sim_driver_ok(e.dev, tu_base_features()),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(vduse_vq_size(e.vq[0]), 16);
	publish_n(&e, 4, NULL);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 4), 4);
	for (int i = 0; i < 4; i++)
		assert_in_range(el[i]->id, 0, 15);
	push_all(e.vq[0], el, 4, 0);
	tu_env_free(&e);
}

static uint16_t used_flags(const struct sim_vq *s)
{
	return le16toh(*(uint16_t *)fk_iova_ptr(s->used));
}

/* Would the driver kick after publishing one more request? */
static bool driver_would_kick(struct tu_env *e, bool event_idx)
{
	uint16_t old = e->s[0].avail_idx;

	if (!event_idx)
		return !(used_flags(&e->s[0]) & VRING_USED_F_NO_NOTIFY);
	return vring_need_event(sim_avail_event(&e->s[0]),
				(uint16_t)(old + 1), old);
}

/*
 * Kicks off while busy: pops that find the ring empty leave them off;
 * enabling re-arms and looks once more.  EVENT_IDX (avail_event) and
 * without (VRING_USED_F_NO_NOTIFY), single and batch pops.
 */
static void check_kicks(bool event_idx)
{
	uint64_t f = tu_base_features() |
		     (event_idx ? tu_event_idx_feature() : 0);
	struct vduse_vq_elem *el[8];
	struct tu_env e;
	void *p, *q;

	tu_env_start(&e, f, 100);
	assert_true(driver_would_kick(&e, event_idx));
	publish_n(&e, 2, NULL);
	assert_int_equal(vduse_vq_disable_kicks(e.vq[0]), 0);
	assert_false(driver_would_kick(&e, event_idx));
	/* A batch that stops at max, then one that finds the ring empty. */
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 2), 2);
	assert_false(driver_would_kick(&e, event_idx));
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el + 2, 8), -EAGAIN);
	assert_false(driver_would_kick(&e, event_idx));
	publish_n(&e, 1, NULL);
	assert_false(driver_would_kick(&e, event_idx));
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &p), 0);
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &q), -EAGAIN);
	assert_false(driver_would_kick(&e, event_idx));
	push_all(e.vq[0], el, 2, 0);
	assert_int_equal(vduse_vq_push(e.vq[0], p, 0), 0);
	free(p);

	/* Something arrived while kicks were off: enable says so. */
	publish_n(&e, 1, NULL);
	assert_int_equal(vduse_vq_enable_kicks(e.vq[0]), 1);
	if (event_idx)
		assert_int_equal(sim_avail_event(&e.s[0]), 103);
	else
		assert_int_equal(used_flags(&e.s[0]), 0);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 8), 1);
	push_all(e.vq[0], el, 1, 0);
	/* Empty: safe to sleep, and the next request kicks. */
	assert_int_equal(vduse_vq_enable_kicks(e.vq[0]), 0);
	assert_true(driver_would_kick(&e, event_idx));

	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	assert_int_equal(vduse_vq_disable_kicks(e.vq[0]), -EIO);
	assert_int_equal(vduse_vq_enable_kicks(e.vq[0]), -EIO);
	tu_env_free(&e);
}

static void test_kicks_event_idx(void **state)
{
	check_kicks(true);
}

static void test_kicks_no_event_idx(void **state)
{
	check_kicks(false);
}

/* enable_kicks() across the wrap of the available index (to 0). */
static void check_kicks_wrap(bool event_idx)
{
	uint64_t f = tu_base_features() |
		     (event_idx ? tu_event_idx_feature() : 0);
	struct vduse_vq_elem *el[2];
	struct tu_env e;

	tu_env_start(&e, f, 65535);
	assert_int_equal(vduse_vq_disable_kicks(e.vq[0]), 0);
	publish_n(&e, 1, NULL);
	assert_int_equal(e.s[0].avail_idx, 0);
	assert_int_equal(vduse_vq_enable_kicks(e.vq[0]), 1);
	assert_int_equal(vduse_vq_pop_batch(e.vq[0], el, 2), 1);
	assert_int_equal(vduse_vq_enable_kicks(e.vq[0]), 0);
	push_all(e.vq[0], el, 1, 0);
	tu_env_free(&e);
}

static void test_kicks_wrap(void **state)
{
	check_kicks_wrap(true);
	fk_teardown();
	tu_setup(NULL);
	check_kicks_wrap(false);
}

/* A queue that restarts asks for kicks again, whatever the old one did. */
static void test_kicks_on_at_start(void **state)
{
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	assert_int_equal(vduse_vq_disable_kicks(e.vq[0]), 0);
	assert_int_equal(used_flags(&e.s[0]), VRING_USED_F_NO_NOTIFY);
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	/* The same ring memory, its flags left as they were. */
	assert_int_equal(sim_driver_ok(e.dev, tu_base_features()),
			 VDUSE_REQ_RESULT_OK);
	assert_true(vduse_vq_started(e.vq[0]));
	assert_int_equal(used_flags(&e.s[0]), 0);
	tu_env_free(&e);
}

#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_pop_push),
		T(test_max),
		T(test_avail_event),
		T(test_interrupt_decision),
		T(test_push_refused),
		T(test_mixed_apis),
		T(test_long_chains),
		T(test_slot_bound_cached),
		T(test_push_deferred),
		T(test_broken_mid_batch),
		T(test_shortage),
		T(test_cache_permission),
		T(test_cache_length),
		T(test_cache_invalidation),
		T(test_restart),
		T(test_kicks_event_idx),
		T(test_kicks_no_event_idx),
		T(test_kicks_wrap),
		T(test_kicks_on_at_start),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
