// SPDX-License-Identifier: MIT
/*
 * Crash recovery with the batch API: a first process pops and pushes in
 * batches (vduse_vq_pop_batch, vduse_vq_push_batch with and without
 * VDUSE_VQ_PUSH_NOTIFY) and is killed at every store of the in-flight
 * log's write order (the library is built with crash points); a successor
 * reconnects, pops again with vduse_vq_pop_batch what was in flight, and
 * every request the driver made completes exactly once, in pop order.
 * The first process turned kicks off; the successor has them on.
 * test_recovery.c does the same for the single-element API; the driver and
 * the loops both use are in recovery_drv.c.
 */
#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <string.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "internal.h"
#include "recovery_drv.h"

/* Write each element's mark, then push them all in one call. */
static int complete(struct vduse_vq *vq, struct vduse_vq_elem **el,
		    unsigned int n, unsigned int flags)
{
	uint32_t lens[REC_QS];

	for (unsigned int i = 0; i < n; i++) {
		rec_mark_done(el[i]);
		lens[i] = 8;
	}
	return vduse_vq_push_batch(vq, el, lens, n, flags);
}

/* The successor pops up to 3 at a time and pushes them in one call. */
static int serve_pop(struct vduse_vq *vq, struct vduse_vq_elem **el)
{
	return vduse_vq_pop_batch(vq, el, 3);
}

static void serve_complete(struct vduse_vq *vq, struct vduse_vq_elem **el,
			   unsigned int n)
{
	assert_true(complete(vq, el, n, VDUSE_VQ_PUSH_NOTIFY) >= 0);
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
	struct vduse_vq_elem *held[REC_QS], *batch[REC_QS];
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
static void check_kicks_on(struct vduse_device *dev)
{
	struct vduse_vq *vq = vduse_device_vq(dev, 0);
	uint16_t flags = le16toh(*(uint16_t *)fk_iova_ptr(rec_drv.s.used));

	if (vq->event_idx)
		assert_int_equal(sim_avail_event(&rec_drv.s),
				 (uint16_t)vq->last_avail_idx);
	else
		assert_int_equal(flags & VRING_USED_F_NO_NOTIFY, 0);
}

const struct rec_params rec_params = {
	.name = "recb",
	.nreq = 48,
	.mark = 0xba7c0000u,
	.pop = serve_pop,
	.complete = serve_complete,
	.child_script = child_script,
	.prefill = REC_QS,	/* as many as the driver may have out */
	.min_points = 30,
	.recovered = check_kicks_on,
};

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crash_at_every_point,
						rec_setup, rec_teardown),
		cmocka_unit_test_setup_teardown(
			test_crash_at_every_point_event_idx, rec_setup,
			rec_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
