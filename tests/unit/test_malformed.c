// SPDX-License-Identifier: MIT
/*
 * Malformed rings.  Each test builds one kind of bad ring on queue 0 and
 * checks the same contract: pop returns -EIO, the queue is broken, the
 * queue_error callback ran once, a message was logged, queue 1 still
 * works, and a reset followed by DRIVER_OK brings queue 0 back.
 */
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_kernel.h"
#include "test_util.h"

#define POP_SZ	sizeof(struct vduse_vq_elem)
#define RO_REGION	0x500000ull

static void good_request(struct tu_env *e, unsigned int q)
{
	struct sim_buf b[2] = {
		{ TU_DATA + 0x10000 * (q + 1), 16, false },
		{ TU_DATA + 0x10000 * (q + 1) + 0x100, 16, true },
	};
	struct vduse_vq_elem *elem;
	uint32_t id, len;
	uint16_t head;

	memset(fk_iova_ptr(b[0].addr), 0x11, 16);
	head = sim_add_chain(&e->s[q], b, 2);
	sim_publish(&e->s[q], head);
	elem = tu_pop(e->vq[q]);
	assert_int_equal(elem->id, head);
	assert_int_equal(elem->out_num, 1);
	assert_int_equal(elem->in_num, 1);
	assert_memory_equal(elem->out_sg[0].iov_base, fk_iova_ptr(b[0].addr), 16);
	assert_int_equal(vduse_vq_push(e->vq[q], elem, 16), 0);
	free(elem);
	assert_true(vduse_vq_notify(e->vq[q]) >= 0);
	assert_true(sim_get_used(&e->s[q], &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 16);
}

static void start(struct tu_env *e)
{
	tu_env_start(e, tu_base_features() | tu_event_idx_feature(), 0);
	assert_int_equal(fk_region_add(RO_REGION, 0x1000, VDUSE_ACCESS_RO), 0);
	/* Both queues work before the bad ring is written. */
	good_request(e, 0);
	good_request(e, 1);
	tu_log_clear();
}

/* Run before the reset, to undo what the test did to the kernel. */
static void (*repair)(void);

/* The next pop on queue 0 meets the bad ring. */
static void expect_broken(struct tu_env *e)
{
	void *p = NULL;
	uint16_t used = sim_used_idx(&e->s[0]);
	unsigned int inflight = vduse_vq_inflight(e->vq[0]);

	assert_int_equal(vduse_vq_pop(e->vq[0], POP_SZ, &p), -EIO);
	assert_null(p);
	assert_true(vduse_vq_broken(e->vq[0]));
	assert_int_equal(tu_cb.queue_error, 1);
	assert_ptr_equal(tu_cb.error_vq, e->vq[0]);
	assert_true(tu_cb.last_error < 0);
	assert_true(tu_log_contains("queue 0 is broken"));

	/* It stays broken, and says so only once. */
	assert_int_equal(vduse_vq_pop(e->vq[0], POP_SZ, &p), -EIO);
	assert_int_equal(tu_cb.queue_error, 1);
	assert_int_equal(sim_used_idx(&e->s[0]), used);
	assert_int_equal(vduse_vq_inflight(e->vq[0]), inflight);

	/* The other queue is not affected. */
	assert_false(vduse_vq_broken(e->vq[1]));
	good_request(e, 1);

	/* A reset and a new DRIVER_OK repair it. */
	if (repair)
		repair();
	repair = NULL;
	assert_int_equal(sim_set_status(e->dev, 0), VDUSE_REQ_RESULT_OK);
	assert_false(vduse_vq_broken(e->vq[0]));
	sim_vq_init_at(&e->s[0], 0, TU_QSIZE, TU_RING0, 0);
	sim_vq_init_at(&e->s[1], 1, TU_QSIZE, TU_RING1, 0);
	assert_int_equal(sim_driver_ok(e->dev, tu_base_features() |
				       tu_event_idx_feature()),
			 VDUSE_REQ_RESULT_OK);
	assert_false(vduse_vq_broken(e->vq[0]));
	good_request(e, 0);
	good_request(e, 1);
	assert_int_equal(tu_cb.queue_error, 1);
	tu_env_free(e);
}

static void test_head_out_of_range(void **state)
{
	struct tu_env e;

	start(&e);
	sim_publish(&e.s[0], TU_QSIZE);
	expect_broken(&e);
}

static void test_next_out_of_range(void **state)
{
	struct tu_env e;

	start(&e);
	sim_set_desc(&e.s[0], 5, TU_DATA, 8, VRING_DESC_F_NEXT, 0xffff);
	sim_publish(&e.s[0], 5);
	expect_broken(&e);
}

static void test_chain_loop(void **state)
{
	struct tu_env e;

	start(&e);
	sim_set_desc(&e.s[0], 0, TU_DATA, 8, VRING_DESC_F_NEXT, 1);
	sim_set_desc(&e.s[0], 1, TU_DATA + 8, 8, VRING_DESC_F_NEXT, 0);
	sim_publish(&e.s[0], 0);
	expect_broken(&e);
	assert_int_equal(tu_cb.last_error, -ELOOP);
}

static void bad_indirect(uint32_t len)
{
	struct tu_env e;

	start(&e);
	memset(fk_iova_ptr(TU_DATA + 0x20000), 0, 0x10000);
	sim_set_desc(&e.s[0], 3, TU_DATA + 0x20000, len, VRING_DESC_F_INDIRECT, 0);
	sim_publish(&e.s[0], 3);
	expect_broken(&e);
}

static void test_indirect_len_not_multiple(void **state)
{
	bad_indirect(20);
}

static void test_indirect_len_zero(void **state)
{
	bad_indirect(0);
}

static void test_indirect_too_large(void **state)
{
	bad_indirect(16 * (TU_QSIZE + 1));
}

/*
 * A two-entry indirect table whose second entry gets @flags and @next:
 * the queue breaks, and the log gives @why.
 */
static void bad_indirect_entry(uint16_t flags, uint16_t next, const char *why)
{
	struct sim_buf b[2] = {
		{ TU_DATA, 8, false },
		{ TU_DATA + 0x3000, 32, false },
	};
	struct tu_env e;
	uint16_t head;
	struct vring_desc *t;

	start(&e);
	head = sim_add_indirect(&e.s[0], TU_DATA + 0x2000, b, 2);
	t = fk_iova_ptr(TU_DATA + 0x2000);
	t[1].flags = htole16(flags);
	t[1].next = htole16(next);
	sim_publish(&e.s[0], head);
	expect_broken(&e);
	assert_true(tu_log_contains(why));
}

/* The second entry of the table is itself indirect. */
static void test_indirect_in_indirect(void **state)
{
	bad_indirect_entry(VRING_DESC_F_INDIRECT, 0,
			   "indirect descriptor inside an indirect table");
}

/* The second entry of the table links back to the first. */
static void test_indirect_loop(void **state)
{
	bad_indirect_entry(VRING_DESC_F_NEXT, 0, "a loop?");
}

static void test_unmapped_buffer(void **state)
{
	struct sim_buf b = { 0x9000000, 16, false };
	unsigned int getfd;
	struct tu_env e;

	start(&e);
	getfd = fk_ioctl_calls(VDUSE_IOTLB_GET_FD);
	sim_publish(&e.s[0], sim_add_chain(&e.s[0], &b, 1));
	expect_broken(&e);
	assert_true(fk_ioctl_calls(VDUSE_IOTLB_GET_FD) > getfd);
}

static void test_unmapped_indirect_table(void **state)
{
	struct tu_env e;

	start(&e);
	sim_set_desc(&e.s[0], 2, 0x9000000, 32, VRING_DESC_F_INDIRECT, 0);
	sim_publish(&e.s[0], 2);
	expect_broken(&e);
}

static void test_writable_in_ro_region(void **state)
{
	struct sim_buf b[2] = {
		{ TU_DATA, 8, false },
		{ RO_REGION + 0x10, 16, true },
	};
	struct tu_env e;

	start(&e);
	sim_publish(&e.s[0], sim_add_chain(&e.s[0], b, 2));
	expect_broken(&e);
	assert_true(tu_log_contains("permission"));
}

static void test_readable_after_writable(void **state)
{
	struct sim_buf b[3] = {
		{ TU_DATA, 8, false },
		{ TU_DATA + 0x100, 8, true },
		{ TU_DATA + 0x200, 8, false },
	};
	struct tu_env e;

	start(&e);
	sim_publish(&e.s[0], sim_add_chain(&e.s[0], b, 3));
	expect_broken(&e);
}

static void test_avail_idx_jump(void **state)
{
	struct tu_env e;

	start(&e);
	sim_set_avail_idx(&e.s[0], e.s[0].avail_idx + TU_QSIZE + 1);
	expect_broken(&e);
}

static void test_same_head_twice(void **state)
{
	struct sim_buf b = { TU_DATA, 8, true };
	struct vduse_vq_elem *elem;
	struct tu_env e;
	uint16_t head;

	start(&e);
	head = sim_add_chain(&e.s[0], &b, 1);
	sim_publish(&e.s[0], head);
	sim_publish(&e.s[0], head);
	elem = tu_pop(e.vq[0]);
	assert_int_equal(elem->id, head);
	/* In flight, and offered again. */
	free(elem);
	expect_broken(&e);
}

static void ring_region_back(void)
{
	fk_region_del(TU_RING_BASE, TU_RING_BASE + TU_RING_SIZE - 1);
	assert_int_equal(fk_region_add(TU_RING_BASE, TU_RING_SIZE,
				       VDUSE_ACCESS_RW), 0);
}

/* The kernel unmaps queue 0's rings (an UPDATE_IOTLB) between two pops. */
static void test_rings_unmapped(void **state)
{
	struct tu_env e;

	start(&e);
	fk_region_del(TU_RING_BASE, TU_RING_BASE);
	/* Only the first page, queue 0's descriptors, goes away. */
	assert_int_equal(fk_region_add(TU_RING0 + 0x1000,
				       TU_RING_SIZE - 0x1000, VDUSE_ACCESS_RW), 0);
	assert_int_equal(sim_update_iotlb(e.dev, TU_RING0, TU_RING0 + 15),
			 VDUSE_REQ_RESULT_OK);
	repair = ring_region_back;
	expect_broken(&e);
}

static void test_indirect_not_negotiated(void **state)
{
	struct sim_buf b = { TU_DATA, 8, false };
	struct tu_env e;
	uint16_t head;
	void *p;

	tu_env_start(&e, tu_base_features() & ~TU_F(VIRTIO_RING_F_INDIRECT_DESC), 0);
	head = sim_add_indirect(&e.s[0], TU_DATA + 0x2000, &b, 1);
	sim_publish(&e.s[0], head);
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &p), -EIO);
	assert_true(vduse_vq_broken(e.vq[0]));
	assert_int_equal(tu_cb.queue_error, 1);
	tu_env_free(&e);
}

#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_head_out_of_range),
		T(test_next_out_of_range),
		T(test_chain_loop),
		T(test_indirect_len_not_multiple),
		T(test_indirect_len_zero),
		T(test_indirect_too_large),
		T(test_indirect_in_indirect),
		T(test_indirect_loop),
		T(test_unmapped_buffer),
		T(test_unmapped_indirect_table),
		T(test_writable_in_ro_region),
		T(test_readable_after_writable),
		T(test_avail_idx_jump),
		T(test_same_head_twice),
		T(test_rings_unmapped),
		T(test_indirect_not_negotiated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
