// SPDX-License-Identifier: MIT
/* Shared by the crash recovery tests (see recovery_drv.h). */
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
#include "crash_child.h"
#include "recovery_drv.h"

#define BUF(r)		(TU_DATA + 64ull * (r))

struct rec_drv rec_drv;
char rec_log_path[64];

static void rec_drv_init(void)
{
	memset(&rec_drv, 0, sizeof(rec_drv));
	for (unsigned int i = 0; i < REC_QS; i++)
		rec_drv.head_req[i] = -1;
	sim_vq_init_at(&rec_drv.s, 0, REC_QS, TU_RING0, 0);
}

bool rec_submit(void)
{
	unsigned int h, r = rec_drv.next_req;
	uint32_t *out;

	if (r == rec_params.nreq || rec_drv.outstanding == REC_MAX_OUT)
		return false;
	for (h = 0; rec_drv.head_req[h] >= 0; h += 2)
		;
	out = fk_iova_ptr(BUF(r));
	out[0] = r;
	out[8] = 0;	/* the device writes the in buffer at +32 */
	sim_set_desc(&rec_drv.s, h, BUF(r), 4, VRING_DESC_F_NEXT, h + 1);
	sim_set_desc(&rec_drv.s, h + 1, BUF(r) + 32, 8, VRING_DESC_F_WRITE,
		     0);
	rec_drv.head_req[h] = (int)r;
	rec_drv.next_req++;
	rec_drv.outstanding++;
	sim_publish(&rec_drv.s, h);
	return true;
}

void rec_collect(void)
{
	uint32_t id, len;

	while (sim_get_used(&rec_drv.s, &id, &len)) {
		uint32_t *in;
		int r;

		assert_true(id < REC_QS);
		r = rec_drv.head_req[id];
		assert_true(r >= 0);	/* a head that is not in flight */
		assert_int_equal(len, 8);
		in = fk_iova_ptr(BUF(r) + 32);
		assert_int_equal(in[0], rec_params.mark + (uint32_t)r);
		rec_drv.completions[r]++;
		rec_drv.head_req[id] = -1;
		rec_drv.outstanding--;
		rec_drv.done++;
	}
}

void rec_check_all_once(void)
{
	for (unsigned int r = 0; r < rec_drv.next_req; r++)
		assert_int_equal(rec_drv.completions[r], 1);
	assert_int_equal(rec_drv.outstanding, 0);
	assert_int_equal(sim_used_idx(&rec_drv.s), (uint16_t)rec_drv.done);
}

uint32_t rec_elem_req(const struct vduse_vq_elem *e)
{
	return *(const uint32_t *)e->out_sg[0].iov_base;
}

void rec_mark_done(struct vduse_vq_elem *e)
{
	uint32_t mark = rec_params.mark + rec_elem_req(e);

	memcpy(e->in_sg[0].iov_base, &mark, sizeof(mark));
}

struct vduse_device_config rec_config(void)
{
	struct vduse_device_config c = tu_config(rec_params.name, 1, REC_QS);

	c.log_path = rec_log_path;
	c.config = rec_params.config;
	c.config_size = rec_params.config_size;
	c.log_id = rec_params.log_id;
	c.log_id_size = rec_params.log_id_size;
	return c;
}

int rec_setup(void **state)
{
	int fd;

	assert_true(rec_params.nreq <= REC_MAX_REQ);
	tu_setup(state);
	snprintf(rec_log_path, sizeof(rec_log_path), "/tmp/vduse-%s-XXXXXX",
		 rec_params.name);
	fd = mkstemp(rec_log_path);
	assert_true(fd >= 0);
	close(fd);
	return 0;
}

int rec_teardown(void **state)
{
	unlink(rec_log_path);
	return tu_teardown(state);
}

struct vduse_device *rec_first_start(uint64_t features)
{
	struct vduse_device_config c = rec_config();
	struct vduse_device *dev;

	fk_setup();
	tu_guest_memory();
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	rec_drv_init();
	assert_int_equal(sim_driver_ok(dev, features), VDUSE_REQ_RESULT_OK);
	assert_true(vduse_vq_started(vduse_device_vq(dev, 0)));
	return dev;
}

struct vduse_device *rec_reopen(void)
{
	struct vduse_device_config c = rec_config();
	struct vduse_device *dev;

	assert_int_equal(vduse_device_open(&c, &dev), 0);
	assert_true(vduse_device_process(dev) >= 0);
	assert_true(vduse_vq_started(vduse_device_vq(dev, 0)));
	return dev;
}

void rec_serve_to_end(struct vduse_device *dev)
{
	struct vduse_vq *vq = vduse_device_vq(dev, 0);
	int last = -1;

	for (;;) {
		struct vduse_vq_elem *el[REC_QS];
		int n;

		while (rec_submit())
			;
		n = rec_params.pop(vq, el);
		if (n == -EAGAIN) {
			unsigned int before = rec_drv.done;

			rec_collect();
			if (rec_drv.next_req == rec_params.nreq &&
			    !rec_drv.outstanding)
				break;
			/* Nothing to pop, nothing came back: lost requests. */
			if (rec_drv.done == before && !rec_submit())
				fail_msg("%u requests never complete",
					 rec_drv.outstanding);
			continue;
		}
		assert_true(n > 0);
		for (int i = 0; i < n; i++) {
			uint32_t r = rec_elem_req(el[i]);

			assert_true((int)r > last);
			assert_int_equal(rec_drv.completions[r], 0);
			last = (int)r;
		}
		rec_params.complete(vq, el, (unsigned int)n);
		rec_collect();
	}
	assert_int_equal(vduse_vq_inflight(vq), 0);
	rec_check_all_once();
}

static unsigned long *shared_points;

static void crash_everywhere(uint64_t features)
{
	unsigned long at, points = 0;

	shared_points = mmap(NULL, sizeof(*shared_points),
			     PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(shared_points != MAP_FAILED);
	for (at = 0;; at++) {
		struct vduse_device *dev = rec_first_start(features);
		unsigned int published;
		int status;

		for (published = 0;
		     published < rec_params.prefill && rec_submit();
		     published++)
			;
		status = crash_child(dev, rec_params.child_script, at,
				     shared_points);
		if (at == 0) {
			/* The dry run counts the points. */
			assert_int_equal(status, 0);
			points = *shared_points;
			assert_true(points > rec_params.min_points);
		} else if (at <= points) {
			assert_true(WIFSIGNALED(status));
			assert_int_equal(WTERMSIG(status), SIGKILL);
		} else {
			assert_int_equal(status, 0);
		}
		/* The parent's handle is as stale as the dead child's. */
		vduse_device_forget(dev);
		rec_collect();	/* what the child published */
		dev = rec_reopen();
		if (rec_params.recovered)
			rec_params.recovered(dev);
		rec_serve_to_end(dev);
		vduse_device_free(dev);
		assert_int_equal(fk_live_fds(), 0);
		assert_int_equal(fk_live_maps(), 0);
		if (at > points)
			break;
	}
	munmap(shared_points, sizeof(*shared_points));
}

void test_crash_at_every_point(void **state)
{
	(void)state;
	crash_everywhere(tu_base_features());
}

void test_crash_at_every_point_event_idx(void **state)
{
	(void)state;
	crash_everywhere(tu_base_features() | tu_event_idx_feature());
}
