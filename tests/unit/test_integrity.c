// SPDX-License-Identifier: MIT
/*
 * Data-path integrity: a mapping outlives every element that points into
 * it, callbacks run without library locks, a shortage never loses a
 * wake-up or a completion, sizes never wrap, IOTLB fds never leak.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fake_kernel.h"
#include "internal.h"
#include "test_util.h"

#define RA	0x400000ull	/* extra 4 KiB regions */
#define RB	0x410000ull
#define POP_SZ_MIN	sizeof(struct vduse_vq_elem)

/* Publish a request: 16 readable bytes at @out, 16 writable at @in. */
static uint16_t request(struct tu_env *e, unsigned int q, uint64_t out,
			uint64_t in)
{
	struct sim_buf b[2] = { { out, 16, false }, { in, 16, true } };
	uint16_t head = sim_add_chain(&e->s[q], b, 2);

	sim_publish(&e->s[q], head);
	return head;
}

static bool overlaps(const struct iovec *a, const struct iovec *b)
{
	uintptr_t a0 = (uintptr_t)a->iov_base, b0 = (uintptr_t)b->iov_base;

	return a0 < b0 + b->iov_len && b0 < a0 + a->iov_len;
}

static bool kick_pending(struct vduse_vq *vq)
{
	struct pollfd p = { .fd = vduse_vq_kick_fd(vq), .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void push_free(struct vduse_vq *vq, struct vduse_vq_elem *elem,
		      uint32_t len)
{
	assert_int_equal(vduse_vq_push(vq, elem, len), 0);
	free(elem);
}

/*
 * The scenario: request 1 is in flight when the kernel moves its
 * buffer's IOVA to other memory; request 2 uses the new memory.  Request
 * 1's buffer must stay mapped (no SIGSEGV) and must not alias request 2's.
 */
static void test_inflight_buffer_outlives_update(void **state)
{
	struct vduse_vq_elem *e1, *e2;
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	assert_int_equal(fk_region_add(RA, 0x1000, VDUSE_ACCESS_RW), 0);
	request(&e, 0, TU_DATA, RA);
	e1 = tu_pop(e.vq[0]);
	assert_int_equal(fk_live_maps_in(RA, RA), 1);

	fk_region_del(RA, RA);
	assert_int_equal(fk_region_add(RA, 0x1000, VDUSE_ACCESS_RW), 0);
	memset(fk_iova_ptr(RA), 0x55, 16);
	assert_int_equal(sim_update_iotlb(e.dev, RA, RA), VDUSE_REQ_RESULT_OK);
	/* Retired, not unmapped: request 1 still points into it. */
	assert_int_equal(fk_live_maps_in(RA, RA), 1);

	request(&e, 0, TU_DATA + 0x100, RA);
	e2 = tu_pop(e.vq[0]);
	assert_int_equal(fk_live_maps_in(RA, RA), 2);
	assert_false(overlaps(&e1->in_sg[0], &e2->in_sg[0]));
	memset(e1->in_sg[0].iov_base, 0xaa, 16);	/* request 1 completes */
	assert_int_equal(((uint8_t *)e2->in_sg[0].iov_base)[0], 0x55);
	assert_int_equal(((uint8_t *)fk_iova_ptr(RA))[15], 0x55);

	push_free(e.vq[0], e1, 16);
	assert_int_equal(fk_live_maps_in(RA, RA), 1);	/* the old one went */
	push_free(e.vq[0], e2, 16);
	assert_int_equal(fk_live_maps_in(RA, RA), 1);
	tu_env_free(&e);
}

/*
 * A device bound to vhost_vdpa sees UPDATE_IOTLB of the whole space on
 * every map change: rings and buffers of requests in flight stay valid,
 * the completions land in the re-mapped used ring, and once the last one
 * is pushed nothing retired is left mapped.
 */
static void test_whole_space_update_under_inflight(void **state)
{
	struct vduse_vq_elem *el[3];
	uint16_t head[3];
	struct tu_env e;
	uint32_t id, len;
	int i;

	tu_env_start(&e, tu_base_features(), 0);
	for (i = 0; i < 3; i++) {
		head[i] = request(&e, 0, TU_DATA, TU_DATA + 0x100 * (i + 1));
		el[i] = tu_pop(e.vq[0]);
	}
	assert_int_equal(sim_update_iotlb(e.dev, 0, UINT64_MAX),
			 VDUSE_REQ_RESULT_OK);
	/* Queue 1 has nothing in flight: its ring mapping went at once. */
	assert_int_equal(fk_live_maps_in(TU_RING_BASE, TU_RING_BASE), 1);
	assert_int_equal(fk_live_maps_in(TU_DATA, TU_DATA), 1);

	for (i = 0; i < 3; i++) {
		memset(el[i]->in_sg[0].iov_base, 0xa0 + i, 16);
		push_free(e.vq[0], el[i], 16);
	}
	/* Fresh ring mappings for queue 0; the retired ones and the data
	 * region (no new pop touched it) are gone. */
	assert_int_equal(fk_live_maps_in(TU_RING_BASE, TU_RING_BASE), 1);
	assert_int_equal(fk_live_maps_in(TU_DATA, TU_DATA), 0);
	for (i = 0; i < 3; i++) {
		assert_true(sim_get_used(&e.s[0], &id, &len));
		assert_int_equal(id, head[i]);
		assert_int_equal(len, 16);
		assert_int_equal(*(uint8_t *)fk_iova_ptr(TU_DATA + 0x100 * (i + 1)),
				 0xa0 + i);
	}
	assert_int_equal(vduse_vq_notify(e.vq[0]), 1);
	tu_env_free(&e);
}

/*
 * Two retirements while a grace period runs: X is retired under A, then
 * Y under A and B.  Each goes exactly when nothing popped before it is in
 * flight any more, whichever of A and B is pushed first.
 */
static void grace_periods(bool a_first)
{
	struct vduse_vq_elem *a, *b;
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	assert_int_equal(fk_region_add(RA, 0x1000, VDUSE_ACCESS_RW), 0);
	assert_int_equal(fk_region_add(RB, 0x1000, VDUSE_ACCESS_RW), 0);
	request(&e, 0, TU_DATA, RA);
	a = tu_pop(e.vq[0]);
	assert_int_equal(sim_update_iotlb(e.dev, RA, RA), VDUSE_REQ_RESULT_OK);
	request(&e, 0, TU_DATA, RB);
	b = tu_pop(e.vq[0]);
	assert_int_equal(sim_update_iotlb(e.dev, RB, RB), VDUSE_REQ_RESULT_OK);
	assert_int_equal(fk_live_maps_in(RA, RA), 1);
	assert_int_equal(fk_live_maps_in(RB, RB), 1);

	if (a_first) {
		push_free(e.vq[0], a, 0);
		assert_int_equal(fk_live_maps_in(RA, RA), 0);
		assert_int_equal(fk_live_maps_in(RB, RB), 1);	/* B uses it */
		push_free(e.vq[0], b, 0);
	} else {
		push_free(e.vq[0], b, 0);
		/* A may still point into X; Y waits its turn. */
		assert_int_equal(fk_live_maps_in(RA, RA), 1);
		assert_int_equal(fk_live_maps_in(RB, RB), 1);
		push_free(e.vq[0], a, 0);
	}
	assert_int_equal(fk_live_maps_in(RA, RA), 0);
	assert_int_equal(fk_live_maps_in(RB, RB), 0);
	tu_env_free(&e);
}

static void test_grace_period_a_first(void **state)
{
	grace_periods(true);
}

static void test_grace_period_b_first(void **state)
{
	grace_periods(false);
}

/* Retired mappings of a stopped queue go with the stop. */
static void test_reset_drops_retired(void **state)
{
	struct vduse_vq_elem *a;
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	request(&e, 0, TU_DATA, TU_DATA + 0x100);
	a = tu_pop(e.vq[0]);
	assert_int_equal(sim_update_iotlb(e.dev, 0, UINT64_MAX),
			 VDUSE_REQ_RESULT_OK);
	assert_true(fk_live_maps() > 0);
	free(a);	/* the backend abandons it (queue_stop contract) */
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	assert_int_equal(fk_live_maps(), 0);
	tu_env_free(&e);
}

/* queue_error runs with no library lock held: it may push. */
static struct vduse_vq_elem *held;
static int trylock_in_cb = -1, push_in_cb = -1;

static void push_from_error(struct vduse_vq *vq, int err)
{
	trylock_in_cb = pthread_mutex_trylock(&vq->iotlb.lock);
	if (trylock_in_cb != 0)
		return;		/* pushing now would deadlock */
	pthread_mutex_unlock(&vq->iotlb.lock);
	push_in_cb = vduse_vq_push(vq, held, 0);
}

static void test_queue_error_without_lock(void **state)
{
	struct tu_env e;
	void *p = NULL;

	tu_env_start(&e, tu_base_features(), 0);
	request(&e, 0, TU_DATA, TU_DATA + 0x100);
	held = tu_pop(e.vq[0]);
	tu_cb.on_error = push_from_error;
	sim_publish(&e.s[0], TU_QSIZE);	/* a head out of range */
	assert_int_equal(vduse_vq_pop(e.vq[0], sizeof(*held), &p), -EIO);
	assert_int_equal(tu_cb.queue_error, 1);
	assert_int_equal(trylock_in_cb, 0);
	assert_int_equal(push_in_cb, 0);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 0);
	assert_int_equal(sim_used_idx(&e.s[0]), 1);
	free(held);
	tu_cb.on_error = NULL;
	tu_env_free(&e);
}

/*
 * The next pop on queue 0 meets a shortage: -ENOMEM, nothing consumed, the
 * queue not broken, a kick pending; the pop after it takes @head.
 */
static void pop_short_then_retry(struct tu_env *e, uint16_t head)
{
	struct vduse_vq_elem *el;
	void *p = NULL;

	assert_int_equal(vduse_vq_pop(e->vq[0], POP_SZ_MIN, &p), -ENOMEM);
	assert_null(p);
	assert_false(vduse_vq_broken(e->vq[0]));
	assert_int_equal(tu_cb.queue_error, 0);
	assert_int_equal(vduse_vq_inflight(e->vq[0]), 0);
	assert_true(kick_pending(e->vq[0]));
	el = tu_pop(e->vq[0]);
	assert_int_equal(el->id, head);
	push_free(e->vq[0], el, 16);
}

/*
 * Shortages while translating (mmap: ENOMEM; IOTLB_GET_FD: EMFILE) are
 * not a malformed ring: nothing is consumed, the queue stays usable and
 * the kick fd is signalled so that the caller comes back, even with
 * EVENT_IDX where the driver kicks only once.
 */
static void shortage_then_retry(void (*inject)(void))
{
	struct tu_env e;
	uint16_t head;

	tu_env_start(&e, tu_base_features() | tu_event_idx_feature(), 0);
	assert_int_equal(fk_region_add(RA, 0x1000, VDUSE_ACCESS_RW), 0);
	head = request(&e, 0, TU_DATA, RA);
	assert_int_equal(vduse_vq_kick_drain(e.vq[0]), 0);
	assert_false(kick_pending(e.vq[0]));
	inject();
	pop_short_then_retry(&e, head);
	tu_env_free(&e);
}

static void inject_mmap_enomem(void)
{
	fk_fail(FK_MMAP, -ENOMEM, 0);
}

static void inject_getfd_emfile(void)
{
	fk_fail_ioctl(VDUSE_IOTLB_GET_FD, -EMFILE, 0);
}

static void test_pop_mmap_shortage(void **state)
{
	shortage_then_retry(inject_mmap_enomem);
}

static void test_pop_fd_shortage(void **state)
{
	shortage_then_retry(inject_getfd_emfile);
}

/* The other side: GET_FD's "not mapped" is the driver's fault. */
static void test_pop_unmapped_breaks(void **state)
{
	struct tu_env e;
	void *p = NULL;

	tu_env_start(&e, tu_base_features(), 0);
	request(&e, 0, TU_DATA, RA);	/* RA is not a region */
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ_MIN, &p), -EIO);
	assert_true(vduse_vq_broken(e.vq[0]));
	assert_true(tu_log_contains("writable buffer [0x400000, +16]"));
	tu_env_free(&e);
}

/*
 * The used ring cannot be mapped when a request completes: the push is
 * kept, published on the next call, and the driver is interrupted then.
 */
static void test_push_deferred_on_shortage(void **state)
{
	struct vduse_vq_elem *el;
	struct tu_env e;
	uint32_t id, len;
	uint16_t head;
	void *p = NULL;

	tu_env_start(&e, tu_base_features(), 0);
	head = request(&e, 0, TU_DATA, TU_DATA + 0x100);
	el = tu_pop(e.vq[0]);
	assert_int_equal(sim_update_iotlb(e.dev, 0, UINT64_MAX),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(vduse_vq_kick_drain(e.vq[0]), 0);
	fk_fail(FK_MMAP, -ENOMEM, 0);
	push_free(e.vq[0], el, 16);
	assert_false(vduse_vq_broken(e.vq[0]));
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 0);
	assert_int_equal(sim_used_idx(&e.s[0]), 0);	/* not yet */
	assert_true(kick_pending(e.vq[0]));
	assert_int_equal(fk_vq_irqs(0), 0);

	/* The queue thread comes back for the kick: nothing new to pop. */
	assert_int_equal(vduse_vq_pop(e.vq[0], sizeof(*el), &p), -EAGAIN);
	assert_int_equal(sim_used_idx(&e.s[0]), 1);
	assert_true(sim_get_used(&e.s[0], &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 16);
	assert_int_equal(fk_vq_irqs(0), 1);
	tu_env_free(&e);
}

/* Rings that cannot be mapped at DRIVER_OK for a shortage: the queue
 * starts and maps them on first use, with the driver's used index. */
static void test_start_rings_shortage(void **state)
{
	struct vduse_vq_elem *el;
	struct tu_env e;
	uint32_t id, len;
	uint16_t head;

	fk_fail(FK_MMAP, -ENOMEM, 0);
	tu_env_start(&e, tu_base_features(), 7);
	assert_true(tu_log_contains("rings not mapped yet"));
	head = request(&e, 0, TU_DATA, TU_DATA + 0x100);
	el = tu_pop(e.vq[0]);
	assert_int_equal(el->id, head);
	push_free(e.vq[0], el, 16);
	assert_int_equal(sim_used_idx(&e.s[0]), 8);
	assert_true(sim_get_used(&e.s[0], &id, &len));
	assert_int_equal(id, head);
	tu_env_free(&e);
}

/* A failed VDUSE_VQ_INJECT_IRQ is retried by the next notify. */
static void test_irq_failure_retried(void **state)
{
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	request(&e, 0, TU_DATA, TU_DATA + 0x100);
	push_free(e.vq[0], tu_pop(e.vq[0]), 16);
	fk_fail_ioctl(VDUSE_VQ_INJECT_IRQ, -EIO, 0);
	assert_int_equal(vduse_vq_notify(e.vq[0]), -EIO);
	assert_int_equal(fk_vq_irqs(0), 0);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 1);
	assert_int_equal(fk_vq_irqs(0), 1);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 0);	/* only once */
	tu_env_free(&e);
}

/* pop's size: SIZE_MAX / 2 is the largest it takes. */
static void test_pop_size_overflow(void **state)
{
	struct vduse_vq_elem *el;
	struct tu_env e;
	void *p = NULL;

	tu_env_start(&e, tu_base_features(), 0);
	request(&e, 0, TU_DATA, TU_DATA + 0x100);
	assert_int_equal(vduse_vq_pop(e.vq[0], SIZE_MAX, &p), -EOVERFLOW);
	assert_int_equal(vduse_vq_pop(e.vq[0], SIZE_MAX / 2 + 1, &p),
			 -EOVERFLOW);
	/* Accepted, but no allocator has that much: a shortage. */
	assert_int_equal(vduse_vq_pop(e.vq[0], SIZE_MAX / 2, &p), -ENOMEM);
	assert_null(p);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 0);
	el = tu_pop(e.vq[0]);
	push_free(e.vq[0], el, 16);
	tu_env_free(&e);
}

/*
 * GET_FD answering (almost) the whole 2^64 IOVA space: the mapping size
 * last - start + 1 + (offset within a page) must not wrap to something
 * small.  One byte less than the address space passes the size check
 * (and mmap refuses it); one byte more is refused before mmap.
 */
static void huge_region(uint64_t last, uint64_t offset, const char *why)
{
	struct vduse_iotlb_entry ans = {
		.start = 0, .last = last, .offset = offset,
		.perm = VDUSE_ACCESS_RW,
	};
	struct tu_env e;
	void *p = NULL;

	tu_env_start(&e, tu_base_features(), 0);
	assert_int_equal(fk_region_add(RA, 0x1000, VDUSE_ACCESS_RW), 0);
	request(&e, 0, TU_DATA, RA);	/* TU_DATA, RA: not cached yet */
	fk_force_getfd(&ans);
	tu_log_clear();
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ_MIN, &p), -EIO);
	assert_true(vduse_vq_broken(e.vq[0]));
	assert_true(tu_log_contains(why));
	fk_force_getfd(NULL);
	tu_env_free(&e);
	/* A fresh fake kernel for the next case. */
	tu_teardown(NULL);
	tu_setup(NULL);
}

static void test_whole_space_region_wraps(void **state)
{
	huge_region(UINT64_MAX, 0, "too large to map");
	huge_region(UINT64_MAX, 1, "too large to map");
	huge_region(UINT64_MAX - 1, 1, "too large to map");
}

static void test_nearly_whole_space_region(void **state)
{
	huge_region(UINT64_MAX - 1, 0, "mmap of IOVA [0x0, 0xfffffffffffffffe]");
	huge_region(UINT64_MAX - 2, 1, "mmap of IOVA [0x0, 0xfffffffffffffffd]");
}

/* IOTLB fds get close-on-exec before they are used (the fake kernel,
 * like the real one, hands them out without it and refuses the mmap). */
static void test_iotlb_fd_cloexec(void **state)
{
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	request(&e, 0, TU_DATA, TU_DATA + 0x100);
	push_free(e.vq[0], tu_pop(e.vq[0]), 16);
	assert_int_equal(fk_leaky_fds(), 0);
	assert_true(fk_calls(FK_MMAP) >= 3);
	tu_env_free(&e);
}

/* ---- allocation failures (the test links with --wrap=realloc,calloc,malloc) ---- */

/* Fail the @n-th next call (1: the next one) of each; 0: never. */
static unsigned int fail_realloc, fail_calloc, fail_malloc;

void *__real_realloc(void *p, size_t n);
void *__real_calloc(size_t nmemb, size_t n);
void *__real_malloc(size_t n);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_calloc(size_t nmemb, size_t n);
void *__wrap_malloc(size_t n);

static bool due(unsigned int *count)
{
	return *count && --*count == 0;
}

void *__wrap_realloc(void *p, size_t n)
{
	return due(&fail_realloc) ? NULL : __real_realloc(p, n);
}

void *__wrap_calloc(size_t nmemb, size_t n)
{
	return due(&fail_calloc) ? NULL : __real_calloc(nmemb, n);
}

void *__wrap_malloc(size_t n)
{
	return due(&fail_malloc) ? NULL : __real_malloc(n);
}

/*
 * Each allocation a pop makes fails once: growing the IOTLB table
 * (realloc), a new mapping's record (calloc), the element (malloc).  Each
 * is a shortage: -ENOMEM, nothing consumed, a kick pending, and the next
 * pop takes the request.
 */
static void alloc_fails_once(unsigned int *which)
{
	struct tu_env e;
	uint16_t head;
	int i;

	tu_env_start(&e, tu_base_features() | tu_event_idx_feature(), 0);
	/* Fill the table to its capacity (8: rings, data and 6 regions). */
	for (i = 0; i < 6; i++) {
		uint64_t r = RA + 0x1000ull * (2 * i);

		assert_int_equal(fk_region_add(r, 0x1000, VDUSE_ACCESS_RW), 0);
		request(&e, 0, TU_DATA, r);
		push_free(e.vq[0], tu_pop(e.vq[0]), 0);
	}
	head = request(&e, 0, TU_DATA, RA + 0x1000ull * 12);
	assert_int_equal(fk_region_add(RA + 0x1000ull * 12, 0x1000,
				       VDUSE_ACCESS_RW), 0);
	assert_int_equal(vduse_vq_kick_drain(e.vq[0]), 0);
	*which = 1;
	pop_short_then_retry(&e, head);
	assert_int_equal(*which, 0);	/* it was that allocation */
	tu_env_free(&e);
	tu_teardown(NULL);
	tu_setup(NULL);
}

static void test_alloc_failures_are_shortages(void **state)
{
	alloc_fails_once(&fail_realloc);
	alloc_fails_once(&fail_calloc);
	alloc_fails_once(&fail_malloc);
}

/* A backend that refuses queue_start leaves that queue stopped (and says
 * so); the next DRIVER_OK after a reset starts it. */
static int refuse_queue0(struct vduse_vq *vq)
{
	return vduse_vq_index(vq) == 0 ? -EBUSY : 0;
}

static void test_queue_start_refused(void **state)
{
	struct tu_env e;
	void *p = NULL;

	tu_cb.on_start = refuse_queue0;
	tu_env_start_partial(&e, tu_base_features(), 0);
	tu_cb.on_start = NULL;
	assert_false(vduse_vq_started(e.vq[0]));
	assert_true(vduse_vq_started(e.vq[1]));
	assert_true(tu_log_contains("queue 0: start refused by backend"));
	assert_int_equal(fk_vq_kickfd(0), VDUSE_EVENTFD_DEASSIGN);
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ_MIN, &p), -EIO);

	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	sim_vq_init_at(&e.s[0], 0, TU_QSIZE, TU_RING0, 0);
	sim_vq_init_at(&e.s[1], 1, TU_QSIZE, TU_RING1, 0);
	assert_int_equal(sim_driver_ok(e.dev, tu_base_features()),
			 VDUSE_REQ_RESULT_OK);
	assert_true(vduse_vq_started(e.vq[0]));
	request(&e, 0, TU_DATA, TU_DATA + 0x100);
	push_free(e.vq[0], tu_pop(e.vq[0]), 16);
	tu_env_free(&e);
}

/*
 * IOTLB_GET_FD answers that do not hold the IOVA asked for, or hold it
 * with no permission, break the queue.  A one-byte buffer at @a, so that
 * one lookup is made: [a, a] is the tightest good answer, one byte off on
 * either side is bad.
 */
static void getfd_answer(uint64_t start, uint64_t last, uint8_t perm,
			 bool good)
{
	const uint64_t a = TU_DATA + 0x100;
	struct vduse_iotlb_entry ans = {
		.start = start, .last = last, .perm = perm,
		.offset = 0x100000,	/* somewhere in the fake's memory */
	};
	struct sim_buf b = { a, 1, true };
	struct tu_env e;
	void *p = NULL;

	tu_env_start(&e, tu_base_features(), 0);
	sim_publish(&e.s[0], sim_add_chain(&e.s[0], &b, 1));
	fk_force_getfd(&ans);
	tu_log_clear();
	if (good) {
		p = tu_pop(e.vq[0]);
		fk_force_getfd(NULL);
		push_free(e.vq[0], p, 1);
	} else {
		assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ_MIN, &p), -EIO);
		assert_true(vduse_vq_broken(e.vq[0]));
		assert_true(tu_log_contains("IOTLB_GET_FD for 0x200100 returned"));
		fk_force_getfd(NULL);
	}
	tu_env_free(&e);
	tu_teardown(NULL);
	tu_setup(NULL);
}

static void test_getfd_inconsistent(void **state)
{
	const uint64_t a = TU_DATA + 0x100;

	getfd_answer(a, a, VDUSE_ACCESS_RW, true);
	getfd_answer(a + 1, a + 0x1000, VDUSE_ACCESS_RW, false);
	getfd_answer(a - 0x1000, a - 1, VDUSE_ACCESS_RW, false);
	getfd_answer(a, a, VDUSE_ACCESS_WO, true);
	getfd_answer(a, a, 0, false);
}

static int setup(void **state)
{
	fail_realloc = fail_calloc = fail_malloc = 0;
	return tu_setup(state);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, tu_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_inflight_buffer_outlives_update),
		T(test_whole_space_update_under_inflight),
		T(test_grace_period_a_first),
		T(test_grace_period_b_first),
		T(test_reset_drops_retired),
		T(test_queue_error_without_lock),
		T(test_pop_mmap_shortage),
		T(test_pop_fd_shortage),
		T(test_pop_unmapped_breaks),
		T(test_push_deferred_on_shortage),
		T(test_start_rings_shortage),
		T(test_irq_failure_retried),
		T(test_pop_size_overflow),
		T(test_whole_space_region_wraps),
		T(test_nearly_whole_space_region),
		T(test_iotlb_fd_cloexec),
		T(test_alloc_failures_are_shortages),
		T(test_queue_start_refused),
		T(test_getfd_inconsistent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
