// SPDX-License-Identifier: MIT
/*
 * Crash recovery with the batch API: a first process pops and pushes in
 * batches (vduse_vq_pop_batch, vduse_vq_push_batch with and without
 * VDUSE_VQ_PUSH_NOTIFY) and is killed at every store of the in-flight
 * log's write order (the library is built with crash points); a successor
 * reconnects, pops again with vduse_vq_pop_batch what was in flight, and
 * every request the driver made completes exactly once, in pop order.
 * The first process turned kicks off; the successor has them on.
 * test_recovery.c does the same for the single-element API.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "internal.h"
#include "test_util.h"

#define QS		16u
#define MAX_OUT		(QS / 2)	/* two descriptors a request */
#define NREQ		48u
#define BUF(r)		(TU_DATA + 64ull * (r))
#define DONE_MARK(r)	(0xba7c0000u + (r))

static char log_path[64];

/* ---- the driver (the parent) ---- */

static struct {
	struct sim_vq s;
	int head_req[QS];		/* request on a head, -1: free */
	unsigned int completions[NREQ];
	unsigned int next_req, outstanding, done;
} drv;

static void drv_init(void)
{
	memset(&drv, 0, sizeof(drv));
	for (unsigned int i = 0; i < QS; i++)
		drv.head_req[i] = -1;
	sim_vq_init_at(&drv.s, 0, QS, TU_RING0, 0);
}

static bool drv_submit(void)
{
	unsigned int h, r = drv.next_req;

	if (r == NREQ || drv.outstanding == MAX_OUT)
		return false;
	for (h = 0; drv.head_req[h] >= 0; h += 2)
		;
	*(uint32_t *)fk_iova_ptr(BUF(r)) = r;
	*(uint32_t *)fk_iova_ptr(BUF(r) + 32) = 0;
	sim_set_desc(&drv.s, h, BUF(r), 4, VRING_DESC_F_NEXT, h + 1);
	sim_set_desc(&drv.s, h + 1, BUF(r) + 32, 8, VRING_DESC_F_WRITE, 0);
	drv.head_req[h] = (int)r;
	drv.next_req++;
	drv.outstanding++;
	sim_publish(&drv.s, h);
	return true;
}

static void drv_collect(void)
{
	uint32_t id, len;

	while (sim_get_used(&drv.s, &id, &len)) {
		int r;

		assert_true(id < QS);
		r = drv.head_req[id];
		assert_true(r >= 0);
		assert_int_equal(len, 8);
		assert_int_equal(*(uint32_t *)fk_iova_ptr(BUF(r) + 32),
				 DONE_MARK(r));
		drv.completions[r]++;
		drv.head_req[id] = -1;
		drv.outstanding--;
		drv.done++;
	}
}

/* ---- the device ---- */

static uint32_t elem_req(const struct vduse_vq_elem *e)
{
	return *(const uint32_t *)e->out_sg[0].iov_base;
}

/* Write each element's mark, then push them all in one call. */
static int complete(struct vduse_vq *vq, struct vduse_vq_elem **el,
		    unsigned int n, unsigned int flags)
{
	uint32_t lens[QS];

	for (unsigned int i = 0; i < n; i++) {
		uint32_t mark = DONE_MARK(elem_req(el[i]));

		memcpy(el[i]->in_sg[0].iov_base, &mark, sizeof(mark));
		lens[i] = 8;
	}
	return vduse_vq_push_batch(vq, el, lens, n, flags);
}

static struct vduse_device_config rec_config(void)
{
	struct vduse_device_config c = tu_config("recb", 1, QS);

	c.log_path = log_path;
	return c;
}

static int setup(void **state)
{
	int fd;

	tu_setup(state);
	snprintf(log_path, sizeof(log_path), "/tmp/vduse-recb-XXXXXX");
	fd = mkstemp(log_path);
	assert_true(fd >= 0);
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	unlink(log_path);
	return tu_teardown(state);
}

static struct vduse_device *first_start(uint64_t features)
{
	struct vduse_device_config c = rec_config();
	struct vduse_device *dev;

	fk_setup();
	assert_int_equal(fk_region_add(TU_RING_BASE, TU_RING_SIZE,
				       VDUSE_ACCESS_RW), 0);
	assert_int_equal(fk_region_add(TU_DATA, TU_DATA_SIZE,
				       VDUSE_ACCESS_RW), 0);
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	drv_init();
	assert_int_equal(sim_driver_ok(dev, features), VDUSE_REQ_RESULT_OK);
	return dev;
}

/*
 * The successor pops in batches until the driver has seen every request:
 * pops in avail order (first what it pops again), none completed before.
 */
static void serve_to_end(struct vduse_device *dev)
{
	struct vduse_vq *vq = vduse_device_vq(dev, 0);
	int last = -1;

	for (;;) {
		struct vduse_vq_elem *el[QS];
		int n;

		while (drv_submit())
			;
		n = vduse_vq_pop_batch(vq, el, 3);
		if (n == -EAGAIN) {
			unsigned int before = drv.done;

			drv_collect();
			if (drv.next_req == NREQ && !drv.outstanding)
				break;
			if (drv.done == before && !drv_submit())
				fail_msg("%u requests never complete",
					 drv.outstanding);
			continue;
		}
		assert_true(n > 0);
		for (int i = 0; i < n; i++) {
			assert_true((int)elem_req(el[i]) > last);
			assert_int_equal(drv.completions[elem_req(el[i])], 0);
			last = (int)elem_req(el[i]);
		}
		assert_true(complete(vq, el, (unsigned int)n,
				     VDUSE_VQ_PUSH_NOTIFY) >= 0);
		drv_collect();
	}
	assert_int_equal(vduse_vq_inflight(vq), 0);
	for (unsigned int r = 0; r < NREQ; r++)
		assert_int_equal(drv.completions[r], 1);
}

/*
 * The first process: batches of pops, then batches of pushes of the newest
 * elements, newest first, ending with requests in flight.  In a child: no
 * cmocka, exit with a code on surprise.
 */
static void child_script(struct vduse_vq *vq)
{
	static const struct { char op; unsigned int n; } script[] = {
		{ 'p', 3 }, { 'c', 2 }, { 'p', 3 }, { 'n', 3 }, { 'p', 2 },
		{ 'n', 1 },
	};
	struct vduse_vq_elem *held[QS], *batch[QS];
	unsigned int n = 0;

	/* Busy: the successor must turn kicks back on. */
	if (vduse_vq_disable_kicks(vq))
		_exit(13);
	for (unsigned int i = 0; i < sizeof(script) / sizeof(script[0]); i++) {
		unsigned int k = script[i].n;

		if (script[i].op == 'p') {
			int got = vduse_vq_pop_batch(vq, held + n, k);

			if (got != (int)k)
				_exit(100 - got);
			n += k;
			continue;
		}
		if (k > n)
			_exit(11);
		for (unsigned int j = 0; j < k; j++)
			batch[j] = held[n - 1 - j];
		if (complete(vq, batch, k, script[i].op == 'n' ?
			     VDUSE_VQ_PUSH_NOTIFY : 0) < 0)
			_exit(12);
		n -= k;
	}
}

/* The dead process left kicks off; the successor asks for them. */
static void check_kicks_on(struct vduse_vq *vq)
{
	uint16_t flags = le16toh(*(uint16_t *)fk_iova_ptr(drv.s.used));

	if (vq->event_idx)
		assert_int_equal(sim_avail_event(&drv.s),
				 (uint16_t)vq->last_avail_idx);
	else
		assert_int_equal(flags & VRING_USED_F_NO_NOTIFY, 0);
}

static unsigned long *shared_points;

static int run_child(struct vduse_device *dev, unsigned long at)
{
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		vduse_crash_points = 0;
		vduse_crash_countdown = at;
		child_script(vduse_device_vq(dev, 0));
		*shared_points = vduse_crash_points;
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void crash_everywhere(uint64_t features)
{
	unsigned long at, points = 0;

	shared_points = mmap(NULL, sizeof(*shared_points),
			     PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(shared_points != MAP_FAILED);
	for (at = 0;; at++) {
		struct vduse_device_config c = rec_config();
		struct vduse_device *dev = first_start(features);
		int status;

		while (drv_submit())
			;
		status = run_child(dev, at);
		if (at == 0) {
			/* The dry run counts the points. */
			assert_int_equal(status, 0);
			points = *shared_points;
			assert_true(points > 30);
		} else if (at <= points) {
			assert_true(WIFSIGNALED(status));
			assert_int_equal(WTERMSIG(status), SIGKILL);
		} else {
			assert_int_equal(status, 0);
		}
		vduse_device_forget(dev);
		drv_collect();
		assert_int_equal(vduse_device_open(&c, &dev), 0);
		assert_true(vduse_device_process(dev) >= 0);
		assert_true(vduse_vq_started(vduse_device_vq(dev, 0)));
		check_kicks_on(vduse_device_vq(dev, 0));
		serve_to_end(dev);
		vduse_device_free(dev);
		assert_int_equal(fk_live_fds(), 0);
		assert_int_equal(fk_live_maps(), 0);
		if (at > points)
			break;
	}
	munmap(shared_points, sizeof(*shared_points));
}

static void test_crash_at_every_point(void **state)
{
	(void)state;
	crash_everywhere(tu_base_features());
}

static void test_crash_at_every_point_event_idx(void **state)
{
	(void)state;
	crash_everywhere(tu_base_features() | tu_event_idx_feature());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crash_at_every_point,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_crash_at_every_point_event_idx, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
