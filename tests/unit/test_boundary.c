// SPDX-License-Identifier: MIT
/*
 * Boundaries.  Every check the library makes on input from the ring or
 * from the kernel is tried at the boundary itself, on both sides: the last
 * value accepted and the first one refused, with the reason logged.  An
 * off-by-one in any of those comparisons fails one of these tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "sys.h"
#include "test_util.h"

#define POP_SZ		sizeof(struct vduse_vq_elem)
#define DATA_END	(TU_DATA + TU_DATA_SIZE)
/* The iovecs one pop can collect: lib/vq.c sizes its scratch array so. */
#define IOV_CAP		(2 * TU_QSIZE + 16)
#define RA		0x400000ull	/* two adjacent 4 KiB regions */
#define RC		0x1000000ull	/* IOV_CAP + 1 one-byte regions */
#define RD		0x500000ull	/* one 4 KiB region */
#define RR		0x700000ull	/* 4 KiB for the ring layouts */
#define RS		64u		/* queue size of the ring tests */

static void start(struct tu_env *e, uint16_t idx)
{
	tu_env_start(e, tu_base_features(), idx);
	tu_log_clear();
}

/* The captured log has a line containing @needle (print it if not). */
static void assert_logged(const char *needle)
{
	if (!tu_log_contains(needle))
		print_error("no log line contains \"%s\"\n", needle);
	assert_true(tu_log_contains(needle));
}

/* @p is the library's view of guest memory [iova, iova + len). */
static void assert_view(const void *p, uint64_t iova, size_t len)
{
	static uint8_t stamp;
	uint8_t *g = fk_iova_ptr(iova);
	uint8_t saved[256];

	assert_non_null(g);
	assert_true(len <= sizeof(saved));
	memcpy(saved, g, len);
	for (size_t i = 0; i < len; i++)
		g[i] = (uint8_t)(++stamp * 31 + i);
	assert_memory_equal(p, g, len);
	memcpy(g, saved, len);
}

/* Queue 0 broke on the next pop with @why as the logged reason. */
static void expect_refused(struct tu_env *e, const char *why)
{
	char line[256];
	void *p = NULL;

	assert_int_equal(vduse_vq_pop(e->vq[0], POP_SZ, &p), -EIO);
	assert_null(p);
	assert_true(vduse_vq_broken(e->vq[0]));
	assert_int_equal(tu_cb.queue_error, 1);
	assert_ptr_equal(tu_cb.error_vq, e->vq[0]);
	snprintf(line, sizeof(line), "queue 0 is broken: %s", why);
	assert_logged(line);
	assert_false(vduse_vq_broken(e->vq[1]));
	tu_env_free(e);
}

/* Pop on queue 0 succeeds with nothing logged as broken. */
static struct vduse_vq_elem *expect_pop(struct tu_env *e)
{
	struct vduse_vq_elem *elem = tu_pop(e->vq[0]);

	assert_false(vduse_vq_broken(e->vq[0]));
	assert_int_equal(tu_cb.queue_error, 0);
	assert_false(tu_log_contains("broken"));
	return elem;
}

static void push_free(struct tu_env *e, struct vduse_vq_elem *elem)
{
	assert_int_equal(vduse_vq_push(e->vq[0], elem, 0), 0);
	free(elem);
}

/* ---- the available index ---- */

/* A completely full ring: avail->idx exactly the queue size ahead. */
static void full_ring(uint16_t start_idx)
{
	struct vduse_vq_elem *elem[TU_QSIZE];
	struct tu_env e;
	uint16_t head[TU_QSIZE], st;
	uint32_t id, len;
	void *p;

	start(&e, start_idx);
	for (unsigned int i = 0; i < TU_QSIZE; i++) {
		struct sim_buf b = { TU_DATA + 16 * i, 16, false };

		head[i] = sim_add_chain(&e.s[0], &b, 1);
		sim_publish(&e.s[0], head[i]);
	}
	assert_int_equal((uint16_t)(e.s[0].avail_idx - start_idx), TU_QSIZE);
	for (unsigned int i = 0; i < TU_QSIZE; i++) {
		elem[i] = expect_pop(&e);
		assert_int_equal(elem[i]->id, head[i]);
		assert_view(elem[i]->out_sg[0].iov_base, TU_DATA + 16 * i, 16);
	}
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &p), -EAGAIN);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), TU_QSIZE);
	for (unsigned int i = 0; i < TU_QSIZE; i++)
		push_free(&e, elem[i]);
	for (unsigned int i = 0; i < TU_QSIZE; i++) {
		assert_true(sim_get_used(&e.s[0], &id, &len));
		assert_int_equal(id, head[i]);
	}
	assert_int_equal(sim_used_idx(&e.s[0]),
			 (uint16_t)(start_idx + TU_QSIZE));
	assert_int_equal(sim_get_vq_state(e.dev, 0, &st), VDUSE_REQ_RESULT_OK);
	assert_int_equal(st, (uint16_t)(start_idx + TU_QSIZE));
	tu_env_free(&e);
}

static void test_avail_full_ring(void **state)
{
	full_ring(0);
}

/* The same across the 16-bit wrap of both indices. */
static void test_avail_full_ring_wrap(void **state)
{
	full_ring(65535 - 100);
}

/* avail->idx one more than the queue size ahead. */
static void avail_jump(uint16_t start_idx)
{
	uint16_t to = (uint16_t)(start_idx + TU_QSIZE + 1);
	char why[128];
	struct tu_env e;

	start(&e, start_idx);
	sim_set_avail_idx(&e.s[0], to);
	snprintf(why, sizeof(why),
		 "available index jumped from %u to %u (size %u)",
		 start_idx, to, TU_QSIZE);
	expect_refused(&e, why);
}

static void test_avail_jump_size_plus_one(void **state)
{
	avail_jump(0);
}

static void test_avail_jump_size_plus_one_wrap(void **state)
{
	avail_jump(65535 - 100);
}

/* avail->idx goes 65535 -> 0 -> 1, used->idx follows. */
static void wrap_at_65535(uint64_t features)
{
	struct vduse_vq_elem *elem;
	struct tu_env e;
	uint16_t st;
	void *p;

	tu_env_start(&e, features, 65535);
	tu_log_clear();
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &p), -EAGAIN);
	for (unsigned int i = 0; i < 2; i++) {
		struct sim_buf b = { TU_DATA + 0x100 * i, 16, true };
		uint16_t head = sim_add_chain(&e.s[0], &b, 1);
		uint32_t id, len;

		sim_publish(&e.s[0], head);
		assert_int_equal(e.s[0].avail_idx, i);	/* 0, then 1 */
		elem = expect_pop(&e);
		assert_int_equal(elem->id, head);
		assert_int_equal(vduse_vq_push(e.vq[0], elem, 7 + i), 0);
		free(elem);
		assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &p), -EAGAIN);
		assert_int_equal(sim_used_idx(&e.s[0]), i);
		assert_true(sim_get_used(&e.s[0], &id, &len));
		assert_int_equal(id, head);
		assert_int_equal(len, 7 + i);
		assert_int_equal(sim_get_vq_state(e.dev, 0, &st),
				 VDUSE_REQ_RESULT_OK);
		assert_int_equal(st, i);
		if (features & tu_event_idx_feature())
			assert_int_equal(sim_avail_event(&e.s[0]), i);
		/* Interrupt when used->idx moves past 65535, then past 0. */
		sim_set_used_event(&e.s[0], (uint16_t)(i - 1));
		assert_int_equal(vduse_vq_notify(e.vq[0]), 1);
	}
	tu_env_free(&e);
}

static void test_wrap_65535(void **state)
{
	wrap_at_65535(tu_base_features());
}

static void test_wrap_65535_event_idx(void **state)
{
	wrap_at_65535(tu_base_features() | tu_event_idx_feature());
}

/* ---- head and next indices ---- */

static void test_head_last(void **state)
{
	struct vduse_vq_elem *elem;
	struct tu_env e;

	start(&e, 0);
	sim_set_desc(&e.s[0], TU_QSIZE - 1, TU_DATA, 8, 0, 0);
	sim_publish(&e.s[0], TU_QSIZE - 1);
	elem = expect_pop(&e);
	assert_int_equal(elem->id, TU_QSIZE - 1);
	assert_int_equal(elem->out_num, 1);
	push_free(&e, elem);
	tu_env_free(&e);
}

static void test_head_past_end(void **state)
{
	struct tu_env e;

	start(&e, 0);
	sim_publish(&e.s[0], TU_QSIZE);
	expect_refused(&e, "head 256 out of range (256)");
}

static void test_next_last(void **state)
{
	struct vduse_vq_elem *elem;
	struct tu_env e;

	start(&e, 0);
	sim_set_desc(&e.s[0], 0, TU_DATA, 8, VRING_DESC_F_NEXT, TU_QSIZE - 1);
	sim_set_desc(&e.s[0], TU_QSIZE - 1, TU_DATA + 8, 4, 0, 0);
	sim_publish(&e.s[0], 0);
	elem = expect_pop(&e);
	assert_int_equal(elem->out_num, 2);
	assert_int_equal(elem->out_sg[1].iov_len, 4);
	push_free(&e, elem);
	tu_env_free(&e);
}

static void test_next_past_end(void **state)
{
	struct tu_env e;

	start(&e, 0);
	sim_set_desc(&e.s[0], 0, TU_DATA, 8, VRING_DESC_F_NEXT, TU_QSIZE);
	sim_publish(&e.s[0], 0);
	expect_refused(&e, "descriptor index 256 out of range (256)");
}

/* ---- chain length ---- */

/* Descriptors 0 -> 1 -> ... -> num - 1; with @loop the last links to 0. */
static void chain_all(struct tu_env *e, bool loop)
{
	for (unsigned int i = 0; i < TU_QSIZE; i++) {
		bool last = i == TU_QSIZE - 1;

		sim_set_desc(&e->s[0], i, TU_DATA + 8 * i, 8,
			     (!last || loop) ? VRING_DESC_F_NEXT : 0,
			     last ? 0 : i + 1);
	}
	sim_publish(&e->s[0], 0);
}

static void test_chain_of_queue_size(void **state)
{
	struct vduse_vq_elem *elem;
	struct tu_env e;

	start(&e, 0);
	chain_all(&e, false);
	elem = expect_pop(&e);
	assert_int_equal(elem->out_num, TU_QSIZE);
	assert_view(elem->out_sg[TU_QSIZE - 1].iov_base,
		    TU_DATA + 8 * (TU_QSIZE - 1), 8);
	push_free(&e, elem);
	tu_env_free(&e);
}

static void test_chain_loop_of_queue_size(void **state)
{
	struct tu_env e;

	start(&e, 0);
	chain_all(&e, true);
	expect_refused(&e, "descriptor chain longer than 256 (a loop?)");
	assert_int_equal(tu_cb.last_error, -ELOOP);
}

/* ---- indirect tables ---- */

#define TABLE	(TU_DATA + 0x10000)

/* A table of @n 8-byte readable buffers, chained 0 -> 1 -> ... */
static uint16_t indirect_of(struct tu_env *e, unsigned int n)
{
	struct sim_buf *b = calloc(n, sizeof(*b));
	uint16_t head;

	assert_non_null(b);
	for (unsigned int i = 0; i < n; i++)
		b[i] = (struct sim_buf){ TU_DATA + 8 * i, 8, false };
	head = sim_add_indirect(&e->s[0], TABLE, b, n);
	free(b);
	return head;
}

static void indirect_ok(unsigned int n)
{
	struct vduse_vq_elem *elem;
	struct tu_env e;

	start(&e, 0);
	sim_publish(&e.s[0], indirect_of(&e, n));
	elem = expect_pop(&e);
	assert_int_equal(elem->out_num, n);
	assert_view(elem->out_sg[n - 1].iov_base, TU_DATA + 8 * (n - 1), 8);
	push_free(&e, elem);
	tu_env_free(&e);
}

/* max_size entries, and the smallest table, one entry. */
static void test_indirect_max_entries(void **state)
{
	indirect_ok(TU_QSIZE);
}

static void test_indirect_one_entry(void **state)
{
	indirect_ok(1);
}

/* An indirect descriptor of @len bytes is refused as a bad size. */
static void indirect_bad_len(uint32_t len)
{
	char why[64];
	struct tu_env e;

	start(&e, 0);
	indirect_of(&e, TU_QSIZE);
	sim_set_desc(&e.s[0], 0, TABLE, len, VRING_DESC_F_INDIRECT, 0);
	sim_publish(&e.s[0], 0);
	snprintf(why, sizeof(why), "indirect table of bad size %u", len);
	expect_refused(&e, why);
}

static void test_indirect_max_plus_one(void **state)
{
	indirect_bad_len(16 * (TU_QSIZE + 1));
}

static void test_indirect_len_zero(void **state)
{
	indirect_bad_len(0);
}

static void test_indirect_len_not_multiple(void **state)
{
	indirect_bad_len(16 + 8);
}

static void test_indirect_len_below_one_entry(void **state)
{
	indirect_bad_len(15);
}

static void test_indirect_with_next(void **state)
{
	struct tu_env e;

	start(&e, 0);
	indirect_of(&e, 2);
	sim_set_desc(&e.s[0], 0, TABLE, 32,
		     VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	sim_set_desc(&e.s[0], 1, TU_DATA, 8, 0, 0);
	sim_publish(&e.s[0], 0);
	expect_refused(&e, "indirect descriptor with NEXT");
}

/* In a table of 4, entry 0 links to entry @next. */
static void indirect_next(struct tu_env *e, uint16_t next)
{
	struct vring_desc *t;

	start(e, 0);
	sim_publish(&e->s[0], indirect_of(e, 4));
	t = fk_iova_ptr(TABLE);
	t[0].next = htole16(next);
}

static void test_indirect_next_last(void **state)
{
	struct vduse_vq_elem *elem;
	struct tu_env e;

	indirect_next(&e, 3);
	elem = expect_pop(&e);
	assert_int_equal(elem->out_num, 2);
	assert_view(elem->out_sg[1].iov_base, TU_DATA + 24, 8);
	push_free(&e, elem);
	tu_env_free(&e);
}

static void test_indirect_next_past_end(void **state)
{
	struct tu_env e;

	indirect_next(&e, 4);
	expect_refused(&e, "descriptor index 4 out of range (4)");
}

/* A table whose last entry links back to its first. */
static void test_indirect_loop(void **state)
{
	struct vring_desc *t;
	struct tu_env e;

	start(&e, 0);
	sim_publish(&e.s[0], indirect_of(&e, 4));
	t = fk_iova_ptr(TABLE);
	t[3].flags = htole16(VRING_DESC_F_NEXT);
	t[3].next = htole16(0);
	expect_refused(&e, "descriptor chain longer than 4 (a loop?)");
}

static void test_indirect_in_indirect(void **state)
{
	struct vring_desc *t;
	struct tu_env e;

	start(&e, 0);
	sim_publish(&e.s[0], indirect_of(&e, 4));
	t = fk_iova_ptr(TABLE);
	t[3].flags = htole16(VRING_DESC_F_INDIRECT);
	expect_refused(&e, "indirect descriptor inside an indirect table");
}

/* ---- region edges ---- */

/* One buffer, readable unless @write, published and popped. */
static struct vduse_vq_elem *pop_buf(struct tu_env *e, uint64_t addr,
				     uint32_t len, bool write)
{
	struct sim_buf b = { addr, len, write };

	sim_publish(&e->s[0], sim_add_chain(&e->s[0], &b, 1));
	return expect_pop(e);
}

static void refuse_buf(uint64_t addr, uint32_t len, const char *err)
{
	struct sim_buf b = { addr, len, false };
	char why[128];
	struct tu_env e;

	start(&e, 0);
	sim_publish(&e.s[0], sim_add_chain(&e.s[0], &b, 1));
	snprintf(why, sizeof(why), "readable buffer [0x%llx, +%u]: %s",
		 (unsigned long long)addr, len, err);
	expect_refused(&e, why);
}

/* Buffers ending at the last byte, and starting at the first byte. */
static void test_region_edges_inside(void **state)
{
	struct vduse_vq_elem *elem;
	struct tu_env e;

	start(&e, 0);
	elem = pop_buf(&e, DATA_END - 0x100, 0x100, false);
	assert_int_equal(elem->out_num, 1);
	assert_int_equal(elem->out_sg[0].iov_len, 0x100);
	assert_view(elem->out_sg[0].iov_base, DATA_END - 0x100, 0x100);
	push_free(&e, elem);
	elem = pop_buf(&e, DATA_END - 1, 1, true);
	assert_int_equal(elem->in_num, 1);
	assert_view(elem->in_sg[0].iov_base, DATA_END - 1, 1);
	push_free(&e, elem);
	elem = pop_buf(&e, TU_DATA, 2, false);
	assert_int_equal(elem->out_num, 1);
	assert_view(elem->out_sg[0].iov_base, TU_DATA, 2);
	push_free(&e, elem);
	tu_env_free(&e);
}

/* One byte past the end is in no region. */
static void test_region_end_plus_one(void **state)
{
	refuse_buf(DATA_END - 0x100, 0x101, "Bad address");
}

/* One byte before the start is in no region. */
static void test_region_start_minus_one(void **state)
{
	refuse_buf(TU_DATA - 1, 2, "Bad address");
}

/*
 * Two adjacent regions: a buffer ending at the first one's last byte is
 * one iovec, one byte more is two; cached regions are found again at
 * their first and last byte without asking the kernel.
 */
static void test_adjacent_regions(void **state)
{
	struct vduse_vq_elem *elem;
	unsigned int getfd;
	struct tu_env e;

	start(&e, 0);
	assert_int_equal(fk_region_add(RA, 0x1000, VDUSE_ACCESS_RW), 0);
	assert_int_equal(fk_region_add(RA + 0x1000, 0x1000, VDUSE_ACCESS_RW),
			 0);
	*(uint8_t *)fk_iova_ptr(RA + 0xfff) = 0xa1;
	*(uint8_t *)fk_iova_ptr(RA + 0x1000) = 0xb2;

	elem = pop_buf(&e, RA + 0xfff, 1, false);
	assert_int_equal(elem->out_num, 1);
	assert_int_equal(elem->out_sg[0].iov_len, 1);
	assert_int_equal(*(uint8_t *)elem->out_sg[0].iov_base, 0xa1);
	push_free(&e, elem);

	elem = pop_buf(&e, RA + 0xfff, 2, false);
	assert_int_equal(elem->out_num, 2);
	assert_int_equal(elem->out_sg[0].iov_len, 1);
	assert_int_equal(elem->out_sg[1].iov_len, 1);
	assert_int_equal(*(uint8_t *)elem->out_sg[0].iov_base, 0xa1);
	assert_int_equal(*(uint8_t *)elem->out_sg[1].iov_base, 0xb2);
	push_free(&e, elem);
	assert_int_equal(fk_live_maps_in(RA, RA + 0x1fff), 2);

	getfd = fk_ioctl_calls(VDUSE_IOTLB_GET_FD);
	for (unsigned int i = 0; i < 4; i++) {
		static const uint64_t at[4] = {
			RA, RA + 0xfff, RA + 0x1000, RA + 0x1fff,
		};

		elem = pop_buf(&e, at[i], 1, true);
		assert_view(elem->in_sg[0].iov_base, at[i], 1);
		push_free(&e, elem);
	}
	assert_int_equal(fk_ioctl_calls(VDUSE_IOTLB_GET_FD), getfd);
	assert_int_equal(fk_live_maps_in(RA, RA + 0x1fff), 2);
	tu_env_free(&e);
}

/* The last byte of the IOVA space: ending there is fine, not past it. */
#define TOP	0xfffffffffffff000ull

static void test_iova_top(void **state)
{
	struct vduse_vq_elem *elem;
	struct tu_env e;

	start(&e, 0);
	assert_int_equal(fk_region_add(TOP, 0x1000, VDUSE_ACCESS_RW), 0);
	elem = pop_buf(&e, UINT64_MAX - 0xff, 0x100, false);
	assert_int_equal(elem->out_num, 1);
	assert_int_equal(elem->out_sg[0].iov_len, 0x100);
	assert_view(elem->out_sg[0].iov_base, UINT64_MAX - 0xff, 0x100);
	push_free(&e, elem);
	elem = pop_buf(&e, UINT64_MAX, 1, false);
	assert_int_equal(elem->out_num, 1);
	push_free(&e, elem);
	tu_env_free(&e);
}

static void test_iova_top_plus_one(void **state)
{
	struct sim_buf b = { UINT64_MAX - 0xff, 0x101, false };
	struct tu_env e;

	start(&e, 0);
	assert_int_equal(fk_region_add(TOP, 0x1000, VDUSE_ACCESS_RW), 0);
	sim_publish(&e.s[0], sim_add_chain(&e.s[0], &b, 1));
	expect_refused(&e,
		       "readable buffer [0xffffffffffffff00, +257]: Bad address");
}

/* ---- zero-length buffers ---- */

/*
 * A buffer of length 0 yields no iovec and is never looked up, wherever it
 * points; the rest of the chain is served, and a chain of only such
 * buffers is an element with no iovec that can be completed.
 */
static void test_len_zero(void **state)
{
	struct sim_buf b[3] = {
		{ 0x9000000, 0, false },	/* unmapped */
		{ TU_DATA, 16, true },
		{ UINT64_MAX, 0, true },	/* would wrap with len 1 */
	};
	struct vduse_vq_elem *elem;
	unsigned int getfd;
	struct tu_env e;
	uint32_t id, len;
	uint16_t head;

	start(&e, 0);
	/* Map TU_DATA first, so that the chain asks the kernel nothing. */
	push_free(&e, pop_buf(&e, TU_DATA, 1, false));
	getfd = fk_ioctl_calls(VDUSE_IOTLB_GET_FD);
	sim_publish(&e.s[0], sim_add_chain(&e.s[0], b, 3));
	elem = expect_pop(&e);
	assert_int_equal(elem->out_num, 0);
	assert_int_equal(elem->in_num, 1);
	assert_view(elem->in_sg[0].iov_base, TU_DATA, 16);
	assert_int_equal(elem->in_sg[0].iov_len, 16);
	push_free(&e, elem);

	head = sim_add_chain(&e.s[0], b, 1);
	sim_publish(&e.s[0], head);
	elem = expect_pop(&e);
	assert_int_equal(elem->out_num, 0);
	assert_int_equal(elem->in_num, 0);
	assert_int_equal(elem->id, head);
	push_free(&e, elem);
	assert_int_equal(fk_ioctl_calls(VDUSE_IOTLB_GET_FD), getfd);
	sim_get_used(&e.s[0], &id, &len);
	sim_get_used(&e.s[0], &id, &len);
	assert_true(sim_get_used(&e.s[0], &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 0);
	tu_env_free(&e);
}

/* ---- iovec capacity ---- */

/* One buffer across @n one-byte regions needs @n iovecs. */
static void iov_chain(struct tu_env *e, unsigned int n)
{
	struct sim_buf b = { RC, n, false };

	start(e, 0);
	for (unsigned int i = 0; i < IOV_CAP + 1; i++)
		assert_int_equal(fk_region_add(RC + i, 1, VDUSE_ACCESS_RW), 0);
	sim_publish(&e->s[0], sim_add_chain(&e->s[0], &b, 1));
}

static void test_iov_cap_exact(void **state)
{
	struct vduse_vq_elem *elem;
	struct tu_env e;

	iov_chain(&e, IOV_CAP);
	elem = expect_pop(&e);
	assert_int_equal(elem->out_num, IOV_CAP);
	assert_view(elem->out_sg[IOV_CAP - 1].iov_base, RC + IOV_CAP - 1, 1);
	assert_false(tu_log_contains("kept changing"));
	push_free(&e, elem);
	tu_env_free(&e);
}

static void test_iov_cap_plus_one(void **state)
{
	char why[64];
	struct tu_env e;

	iov_chain(&e, IOV_CAP + 1);
	snprintf(why, sizeof(why), "chain needs more than %u iovecs", IOV_CAP);
	expect_refused(&e, why);
	assert_int_equal(tu_cb.last_error, -E2BIG);
}

/* ---- a bogus IOTLB_GET_FD answer ---- */

#define GX	0x800000ull	/* the IOVA asked for; no region there */
#define GOFF	0x3000000ull	/* guest memory no region uses */

/* A buffer at GX is popped while the kernel answers [start, last]. */
static void getfd_answer(struct tu_env *e, uint64_t first, uint64_t last,
			 uint32_t len)
{
	struct vduse_iotlb_entry a = {
		.start = first, .last = last, .offset = GOFF,
		.perm = VDUSE_ACCESS_RW,
	};
	struct sim_buf b = { GX, len, false };

	start(e, 0);
	fk_force_getfd(&a);	/* the rings are already cached */
	sim_publish(&e->s[0], sim_add_chain(&e->s[0], &b, 1));
}

/* An answer that holds exactly the byte asked for is used. */
static void test_getfd_exact(void **state)
{
	struct vduse_vq_elem *elem;
	struct tu_env e;

	getfd_answer(&e, GX, GX, 1);
	elem = expect_pop(&e);
	assert_int_equal(elem->out_num, 1);
	assert_int_equal(elem->out_sg[0].iov_len, 1);
	push_free(&e, elem);
	fk_force_getfd(NULL);
	tu_env_free(&e);
}

static void getfd_refused(uint64_t first, uint64_t last)
{
	char why[128];
	struct tu_env e;

	getfd_answer(&e, first, last, 1);
	snprintf(why, sizeof(why),
		 "IOTLB_GET_FD for 0x%llx returned [0x%llx, 0x%llx] perm",
		 GX, (unsigned long long)first, (unsigned long long)last);
	expect_refused(&e, "readable buffer [0x800000, +1]: Bad address");
	assert_logged(why);
}

/* The answer starts one byte after the IOVA asked for. */
static void test_getfd_starts_after(void **state)
{
	getfd_refused(GX + 1, GX + 0xfff);
}

/* The answer ends one byte before it. */
static void test_getfd_ends_before(void **state)
{
	getfd_refused(GX - 0x1000, GX - 1);
}

/* File descriptor 0 is a valid answer too (stdin closed). */
static void test_getfd_fd_zero(void **state)
{
	struct vduse_vq_elem *elem;
	struct tu_env e;
	int saved;

	start(&e, 0);
	assert_int_equal(fk_region_add(RD, 0x1000, VDUSE_ACCESS_RW), 0);
	saved = fcntl(0, F_DUPFD_CLOEXEC, 3);
	close(0);
	elem = pop_buf(&e, RD, 1, false);	/* GET_FD returns fd 0 */
	assert_view(elem->out_sg[0].iov_base, RD, 1);
	assert_int_equal(fcntl(0, F_GETFD), -1);	/* closed again */
	push_free(&e, elem);
	if (saved >= 0) {
		assert_int_equal(dup2(saved, 0), 0);
		close(saved);
	}
	tu_env_free(&e);
}

/* ---- rings: alignment, size, region end ---- */

static struct vduse_device *ring_dev(void)
{
	struct vduse_device_config c = tu_config("rings", 1, RS);
	struct vduse_device *dev;

	assert_int_equal(fk_region_add(RR, 0x1000, VDUSE_ACCESS_RW), 0);
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	return dev;
}

/* DRIVER_OK with queue 0 of @num at @desc/@avail/@used: did it start? */
static bool try_start(struct vduse_device *dev, uint32_t num, uint64_t desc,
		      uint64_t avail, uint64_t used)
{
	struct vduse_vq *vq = vduse_device_vq(dev, 0);
	unsigned int kickfd_calls = fk_vq_kickfd_calls(0);
	bool started;
	void *p;

	memset(fk_iova_ptr(RR), 0, 0x1000);
	fk_set_vq_info(0, num, desc, avail, used, 0, true);
	tu_log_clear();
	assert_int_equal(sim_driver_ok(dev, tu_base_features()),
			 VDUSE_REQ_RESULT_OK);
	started = vduse_vq_started(vq);
	if (started) {
		assert_int_equal(vduse_vq_size(vq), num);
		assert_int_equal(vduse_vq_pop(vq, POP_SZ, &p), -EAGAIN);
		assert_false(tu_log_contains("cannot map rings"));
		assert_false(tu_log_contains("bad size"));
	} else {
		assert_int_equal(vduse_vq_size(vq), 0);
		assert_int_equal(vduse_vq_pop(vq, POP_SZ, &p), -EIO);
		assert_int_equal(fk_vq_kickfd_calls(0), kickfd_calls);
	}
	assert_int_equal(sim_set_status(dev, 0), VDUSE_REQ_RESULT_OK);
	return started;
}

static void free_dev(struct vduse_device *dev)
{
	vduse_device_free(dev);
	assert_int_equal(fk_live_maps(), 0);
	assert_int_equal(fk_live_fds(), 0);
}

/* desc 16-aligned, avail 2-aligned, used 4-aligned, and none more. */
#define D_OK	(RR + 0x010)
#define A_OK	(RR + 0x802)
#define U_OK	(RR + 0xa04)

static void test_ring_alignment_ok(void **state)
{
	struct vduse_device *dev = ring_dev();

	assert_true(try_start(dev, RS, D_OK, A_OK, U_OK));
	free_dev(dev);
}

static void misaligned(uint64_t desc, uint64_t avail, uint64_t used)
{
	struct vduse_device *dev = ring_dev();
	char line[160];

	assert_false(try_start(dev, RS, desc, avail, used));
	snprintf(line, sizeof(line),
		 "cannot map rings (desc 0x%llx avail 0x%llx used 0x%llx): %s",
		 (unsigned long long)desc, (unsigned long long)avail,
		 (unsigned long long)used, strerror(EINVAL));
	assert_logged(line);
	free_dev(dev);
}

static void test_ring_desc_8_aligned(void **state)
{
	misaligned(D_OK - 8, A_OK, U_OK);
}

static void test_ring_avail_odd(void **state)
{
	misaligned(D_OK, A_OK - 1, U_OK);
}

static void test_ring_used_2_aligned(void **state)
{
	misaligned(D_OK, A_OK, U_OK - 2);
}

/* The avail ring (2 * (3 + RS) bytes) ending at the region's last byte. */
static void test_ring_at_region_end(void **state)
{
	struct vduse_device *dev = ring_dev();
	uint64_t avail = RR + 0x1000 - 2 * (3 + RS);
	char line[160];

	assert_true(try_start(dev, RS, D_OK, avail, U_OK));
	assert_false(try_start(dev, RS, D_OK, avail + 2, U_OK));
	snprintf(line, sizeof(line),
		 "cannot map rings (desc 0x%llx avail 0x%llx used 0x%llx): %s",
		 (unsigned long long)D_OK, (unsigned long long)avail + 2,
		 (unsigned long long)U_OK, strerror(E2BIG));
	assert_logged(line);
	free_dev(dev);
}

static void test_queue_size_ok(void **state)
{
	struct vduse_device *dev = ring_dev();

	assert_true(try_start(dev, RS, D_OK, A_OK, U_OK));	/* max */
	assert_true(try_start(dev, 1, D_OK, A_OK, U_OK));	/* min */
	free_dev(dev);
}

static void bad_size(uint32_t num)
{
	struct vduse_device *dev = ring_dev();
	char line[64];

	assert_false(try_start(dev, num, D_OK, A_OK, U_OK));
	snprintf(line, sizeof(line), "queue 0: bad size %u (max %u)", num, RS);
	assert_logged(line);
	free_dev(dev);
}

static void test_queue_size_twice_max(void **state)
{
	bad_size(2 * RS);
}

static void test_queue_size_not_power_of_2(void **state)
{
	bad_size(RS - 16);
}

static void test_queue_size_zero(void **state)
{
	bad_size(0);
}

/* ---- pop and push arguments ---- */

static void test_pop_size(void **state)
{
	struct tu_env e;
	void *p = NULL;

	start(&e, 0);
	sim_publish(&e.s[0], 0);
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ - 1, &p), -EINVAL);
	assert_null(p);
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &p), 0);
	assert_non_null(p);
	push_free(&e, p);
	tu_env_free(&e);
}

/* A push of id == num is refused (id num - 1 works in test_head_last). */
static void test_push_id_past_end(void **state)
{
	struct vduse_vq_elem fake = { .id = TU_QSIZE };
	struct tu_env e;

	start(&e, 0);
	assert_int_equal(vduse_vq_push(e.vq[0], &fake, 0), -EINVAL);
	assert_logged("push of id 256 that is not in flight");
	assert_int_equal(sim_used_idx(&e.s[0]), 0);
	tu_env_free(&e);
}

/* ---- kernel messages ---- */


/* Map RD into queue 0's cache, with no element left in flight. */
static void cache_rd(struct tu_env *e)
{
	push_free(e, pop_buf(e, RD + 0x800, 1, false));
	assert_int_equal(vduse_vq_inflight(e->vq[0]), 0);
	assert_int_equal(fk_live_maps_in(RD, RD + 0xfff), 1);
}

static void invalidate(struct tu_env *e, uint64_t first, uint64_t last,
		       unsigned int left)
{
	assert_int_equal(sim_update_iotlb(e->dev, first, last),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(fk_live_maps_in(RD, RD + 0xfff), left);
}

/* Invalidations ending at the region's first byte, or one before it. */
static void test_update_iotlb_first_byte(void **state)
{
	struct tu_env e;

	start(&e, 0);
	assert_int_equal(fk_region_add(RD, 0x1000, VDUSE_ACCESS_RW), 0);
	cache_rd(&e);
	invalidate(&e, RD - 0x1000, RD - 1, 1);
	invalidate(&e, RD - 1, RD - 1, 1);
	invalidate(&e, RD - 0x1000, RD, 0);
	cache_rd(&e);
	invalidate(&e, RD, RD, 0);
	assert_false(vduse_vq_broken(e.vq[0]));
	assert_false(tu_log_contains("munmap"));
	tu_env_free(&e);
}

/* Invalidations starting at the region's last byte, or one after it. */
static void test_update_iotlb_last_byte(void **state)
{
	struct tu_env e;

	start(&e, 0);
	assert_int_equal(fk_region_add(RD, 0x1000, VDUSE_ACCESS_RW), 0);
	cache_rd(&e);
	invalidate(&e, RD + 0x1000, RD + 0x1fff, 1);
	invalidate(&e, RD + 0x1000, UINT64_MAX, 1);
	invalidate(&e, RD + 0xfff, RD + 0x1fff, 0);
	cache_rd(&e);
	invalidate(&e, RD + 0xfff, RD + 0xfff, 0);
	assert_false(vduse_vq_broken(e.vq[0]));
	tu_env_free(&e);
}

/* A failing munmap is reported, and the mapping is forgotten anyway. */
static void test_update_iotlb_munmap_fails(void **state)
{
	struct tu_env e;

	start(&e, 0);
	assert_int_equal(fk_region_add(RD, 0x1000, VDUSE_ACCESS_RW), 0);
	cache_rd(&e);
	fk_fail(FK_MUNMAP, -EINVAL, 0);
	invalidate(&e, RD, RD + 0xfff, 0);
	assert_logged("munmap of IOVA [0x500000, 0x500fff] failed: Invalid argument");
	tu_env_free(&e);
}

/* start == last is one byte; start > last is refused, nothing dropped. */
static void test_update_iotlb_start_after_last(void **state)
{
	struct tu_env e;

	start(&e, 0);
	assert_int_equal(fk_region_add(RD, 0x1000, VDUSE_ACCESS_RW), 0);
	cache_rd(&e);
	assert_int_equal(sim_update_iotlb(e.dev, RD + 1, RD),
			 VDUSE_REQ_RESULT_FAILED);
	assert_int_equal(sim_update_iotlb(e.dev, UINT64_MAX, 0),
			 VDUSE_REQ_RESULT_FAILED);
	assert_int_equal(fk_live_maps_in(RD, RD + 0xfff), 1);
	invalidate(&e, RD + 1, RD + 1, 0);
	tu_env_free(&e);
}

static void test_get_vq_state_index(void **state)
{
	struct tu_env e;
	uint16_t st = 0;

	start(&e, 1234);
	assert_int_equal(sim_get_vq_state(e.dev, 1, &st), VDUSE_REQ_RESULT_OK);
	assert_int_equal(st, 1234);
	assert_false(tu_log_contains("GET_VQ_STATE"));
	assert_int_equal(sim_get_vq_state(e.dev, 2, &st),
			 VDUSE_REQ_RESULT_FAILED);
	assert_logged("GET_VQ_STATE for queue 2 of 2");
	tu_env_free(&e);
}

/* A read of the device fd that returns @short_by bytes fewer. */
static const struct vduse_sys *real_sys;
static struct vduse_sys short_sys;
static size_t short_by;

static ssize_t short_read(int fd, void *buf, size_t len)
{
	ssize_t ret = real_sys->read(fd, buf, len);

	if (len == sizeof(struct vduse_dev_request) && ret == (ssize_t)len)
		ret -= (ssize_t)short_by;
	return ret;
}

static int message_of(struct tu_env *e, size_t by, uint32_t *id)
{
	struct vduse_dev_request req = { .type = VDUSE_GET_VQ_STATE };
	int ret;

	short_by = by;
	*id = fk_push_msg(&req);
	vduse_sys_set(&short_sys);
	ret = vduse_device_process(e->dev);
	vduse_sys_set(real_sys);
	return ret;
}

static void test_short_message(void **state)
{
	struct vduse_dev_response resp;
	char line[64];
	struct tu_env e;
	uint32_t id;

	start(&e, 0);
	real_sys = vduse_sys;
	short_sys = *real_sys;
	short_sys.read = short_read;

	assert_int_equal(message_of(&e, 0, &id), 1);
	assert_true(fk_response(id, &resp));
	assert_int_equal(resp.result, VDUSE_REQ_RESULT_OK);
	assert_false(tu_log_contains("short message"));

	assert_int_equal(message_of(&e, 1, &id), -EIO);
	assert_false(fk_response(id, &resp));
	snprintf(line, sizeof(line), "short message (%zu bytes)",
		 sizeof(struct vduse_dev_request) - 1);
	assert_logged(line);

	/* Nothing at all (end of file). */
	assert_int_equal(message_of(&e, sizeof(struct vduse_dev_request), &id),
			 -EIO);
	assert_false(fk_response(id, &resp));
	assert_logged("short message (0 bytes)");
	tu_env_free(&e);
}

/* The first eventfd the library asks for gets fd 0 (stdin closed). */
static int saved_stdin = -2;

static int eventfd_at_0(unsigned int initval, int flags)
{
	if (saved_stdin == -2) {
		saved_stdin = fcntl(0, F_DUPFD_CLOEXEC, 3);
		close(0);
	}
	return real_sys->eventfd(initval, flags);
}

/* Queue 0's kick fd is fd 0: it works, and it is closed at the end. */
static void test_kick_fd_zero(void **state)
{
	struct tu_env e;

	real_sys = vduse_sys;
	short_sys = *real_sys;
	short_sys.eventfd = eventfd_at_0;
	saved_stdin = -2;
	vduse_sys_set(&short_sys);
	tu_env_start(&e, tu_base_features(), 0);
	vduse_sys_set(real_sys);
	tu_log_clear();
	assert_int_equal(vduse_vq_kick_fd(e.vq[0]), 0);
	assert_int_equal(fk_vq_kickfd(0), 0);
	sim_kick(&e.s[0]);
	assert_int_equal(vduse_vq_kick_drain(e.vq[0]), 0);
	push_free(&e, pop_buf(&e, TU_DATA, 16, false));
	tu_env_free(&e);	/* checks that fd 0 was closed too */
	if (saved_stdin >= 0) {
		assert_int_equal(dup2(saved_stdin, 0), 0);
		close(saved_stdin);
	}
}

/* Messages at WARN or ERR level, with the last one. */
static unsigned int bad_logs;
static char bad_log[256];

static void count_bad(int level, const char *msg, void *opaque)
{
	(void)opaque;
	if (level <= VDUSE_LOG_WARN) {
		bad_logs++;
		snprintf(bad_log, sizeof(bad_log), "%s", msg);
	}
}

/* A clean run at the edges of everything logs no error and no warning. */
static void test_clean_run_is_quiet(void **state)
{
	struct vduse_vq_elem *elem;
	struct tu_env e;
	uint16_t st;

	bad_logs = 0;
	vduse_log_set_handler(count_bad, NULL);
	vduse_log_set_level(VDUSE_LOG_DEBUG);
	tu_env_start(&e, tu_base_features() | tu_event_idx_feature(), 65535);
	assert_int_equal(fk_region_add(RD, 0x1000, VDUSE_ACCESS_RW), 0);
	push_free(&e, pop_buf(&e, DATA_END - 1, 1, true));
	elem = pop_buf(&e, RD, 0x1000, false);
	assert_true(vduse_vq_notify(e.vq[0]) >= 0);
	push_free(&e, elem);
	assert_true(vduse_vq_notify(e.vq[0]) >= 0);
	sim_kick(&e.s[0]);
	assert_int_equal(vduse_vq_kick_drain(e.vq[0]), 0);
	assert_int_equal(sim_update_iotlb(e.dev, RD, RD + 0xfff),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(sim_get_vq_state(e.dev, 1, &st), VDUSE_REQ_RESULT_OK);
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	tu_env_free(&e);
	if (bad_logs)
		print_error("logged: %s\n", bad_log);
	assert_int_equal(bad_logs, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_avail_full_ring),
		T(test_avail_full_ring_wrap),
		T(test_avail_jump_size_plus_one),
		T(test_avail_jump_size_plus_one_wrap),
		T(test_wrap_65535),
		T(test_wrap_65535_event_idx),
		T(test_head_last),
		T(test_head_past_end),
		T(test_next_last),
		T(test_next_past_end),
		T(test_chain_of_queue_size),
		T(test_chain_loop_of_queue_size),
		T(test_indirect_max_entries),
		T(test_indirect_one_entry),
		T(test_indirect_max_plus_one),
		T(test_indirect_len_zero),
		T(test_indirect_len_not_multiple),
		T(test_indirect_len_below_one_entry),
		T(test_indirect_with_next),
		T(test_indirect_next_last),
		T(test_indirect_next_past_end),
		T(test_indirect_loop),
		T(test_indirect_in_indirect),
		T(test_region_edges_inside),
		T(test_region_end_plus_one),
		T(test_region_start_minus_one),
		T(test_adjacent_regions),
		T(test_iova_top),
		T(test_iova_top_plus_one),
		T(test_len_zero),
		T(test_iov_cap_exact),
		T(test_iov_cap_plus_one),
		T(test_getfd_exact),
		T(test_getfd_starts_after),
		T(test_getfd_ends_before),
		T(test_getfd_fd_zero),
		T(test_ring_alignment_ok),
		T(test_ring_desc_8_aligned),
		T(test_ring_avail_odd),
		T(test_ring_used_2_aligned),
		T(test_ring_at_region_end),
		T(test_queue_size_ok),
		T(test_queue_size_twice_max),
		T(test_queue_size_not_power_of_2),
		T(test_queue_size_zero),
		T(test_pop_size),
		T(test_push_id_past_end),
		T(test_update_iotlb_first_byte),
		T(test_update_iotlb_last_byte),
		T(test_update_iotlb_munmap_fails),
		T(test_update_iotlb_start_after_last),
		T(test_get_vq_state_index),
		T(test_short_message),
		T(test_kick_fd_zero),
		T(test_clean_run_is_quiet),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
