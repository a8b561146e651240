// SPDX-License-Identifier: MIT
/*
 * Crash recovery: a backend process dies (fork + SIGKILL, at every store
 * of the in-flight log's write order, or at a random moment) and a
 * successor reconnects with vduse_device_open(); every request the driver
 * made completes exactly once and the used ring stays well-formed.  Also
 * every refusal of a missing or mismatched log, each with its reason.
 *
 * Guest memory is the fake kernel's memfd and the log a file, so both are
 * shared by a forked child and its parent; the parent plays the driver
 * and the successor.  The driver, the successor's loop and the crash at
 * every point are shared with test_recovery_batch.c (recovery_drv.c).
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "internal.h"
#include "recovery_drv.h"

/* A used index the driver finds (as if the ring had been scribbled). */
static void sim_set_used_idx(struct sim_vq *s, uint16_t v)
{
	uint16_t *p = fk_iova_ptr(s->used + 2);

	__atomic_store_n(p, htole16(v), __ATOMIC_RELEASE);
}

/* ---- the device (child or successor) ---- */

static int dev_complete(struct vduse_vq *vq, struct vduse_vq_elem *e)
{
	int ret;

	rec_mark_done(e);
	ret = vduse_vq_push(vq, e, 8);
	free(e);
	return ret;
}

/* What the backend serves: its config space and its log_id. */
static uint8_t rec_space[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static const char rec_id[] = "backing file 8:1 inode 12";

/* Reopen and process once, without asking for a started queue. */
static struct vduse_device *reopen_quiet(void)
{
	struct vduse_device_config c = rec_config();
	struct vduse_device *dev;

	tu_log_clear();
	assert_int_equal(vduse_device_open(&c, &dev), 0);
	assert_true(vduse_device_process(dev) >= 0);
	return dev;
}

/* The successor pops one element at a time and pushes it. */
static int serve_pop(struct vduse_vq *vq, struct vduse_vq_elem **el)
{
	void *p;
	int ret = vduse_vq_pop(vq, sizeof(**el), &p);

	if (ret)
		return ret;
	el[0] = p;
	return 1;
}

static void serve_complete(struct vduse_vq *vq, struct vduse_vq_elem **el,
			   unsigned int n)
{
	assert_int_equal(n, 1);
	assert_int_equal(dev_complete(vq, el[0]), 0);
}

/*
 * What the first process does: pops and out-of-order pushes, ending with
 * requests still in flight.  In a child: no cmocka, abort on surprise.
 */
static void child_script(struct vduse_vq *vq)
{
	static const char script[] = "ppp1p00pp2p0";
	struct vduse_vq_elem *held[REC_QS];
	unsigned int n = 0, i, k;

	for (i = 0; script[i]; i++) {
		void *p;

		if (script[i] == 'p') {
			int ret = vduse_vq_pop(vq, sizeof(**held), &p);

			if (ret)
				_exit(100 - ret);
			held[n++] = p;
			continue;
		}
		k = (unsigned int)(script[i] - '0');
		if (k >= n || dev_complete(vq, held[k]))
			_exit(11);
		memmove(&held[k], &held[k + 1], (n - k - 1) * sizeof(*held));
		n--;
		if (vduse_vq_notify(vq) < 0)
			_exit(12);
	}
	/* Killed with these in flight: nothing is freed. */
}

const struct rec_params rec_params = {
	.name = "rec",
	.nreq = 64,
	.mark = 0x5eed0000u,
	.config = rec_space,
	.config_size = sizeof(rec_space),
	.log_id = rec_id,
	.log_id_size = sizeof(rec_id),
	.pop = serve_pop,
	.complete = serve_complete,
	.child_script = child_script,
	.prefill = 7,
	.min_points = 20,
};

/* A first process that serves for ever, completing out of order. */
static void child_serve_forever(struct vduse_vq *vq)
{
	struct vduse_vq_elem *held[REC_QS];
	unsigned int n;

	for (;;) {
		void *p;

		for (n = 0; vduse_vq_pop(vq, sizeof(**held), &p) == 0; n++)
			held[n] = p;
		while (n)	/* newest first */
			if (dev_complete(vq, held[--n]))
				_exit(11);
		vduse_vq_notify(vq);
		sched_yield();
	}
}

/*
 * SIGKILL at a moment the parent does not choose: the child serves while
 * the parent drives, and dies after a random number of completions plus a
 * random delay, at whatever instruction it is running.
 */
static void test_sigkill_at_random(void **state)
{
	unsigned int round;

	(void)state;
	srand(8);
	for (round = 0; round < 40; round++) {
		struct vduse_device *dev = rec_first_start(tu_base_features());
		unsigned int k = (unsigned int)rand() % 40;
		struct timespec ts = { 0, (rand() % 200) * 1000 };
		pid_t pid;
		int status;

		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			child_serve_forever(vduse_device_vq(dev, 0));
		while (rec_drv.done < k) {
			while (rec_submit())
				;
			rec_collect();
		}
		nanosleep(&ts, NULL);
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		vduse_device_forget(dev);
		rec_collect();
		dev = rec_reopen();
		rec_serve_to_end(dev);
		vduse_device_free(dev);
		assert_int_equal(fk_live_fds(), 0);
	}
}

/* Map the log to read or damage it as a test. */
static struct vduse_ilog_header *map_log(size_t *size)
{
	int fd = open(rec_log_path, O_RDWR);
	off_t end;
	void *p;

	assert_true(fd >= 0);
	end = lseek(fd, 0, SEEK_END);
	assert_true(end > 0);
	p = mmap(NULL, (size_t)end, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	assert_true(p != MAP_FAILED);
	*size = (size_t)end;
	return p;
}

static struct vduse_ilog_vq *log_vq0(struct vduse_ilog_header *h)
{
	size_t off = (sizeof(*h) + 63) & ~63ul;

	return (struct vduse_ilog_vq *)((uint8_t *)h + off);
}

/* A first process left two requests in flight and died (in-process). */
static void crash_with_two_in_flight(void)
{
	struct vduse_device *dev = rec_first_start(tu_base_features());
	struct vduse_vq *vq = vduse_device_vq(dev, 0);
	struct vduse_vq_elem *e[3];
	unsigned int i;

	for (i = 0; i < 3; i++)
		assert_true(rec_submit());
	for (i = 0; i < 3; i++)
		e[i] = tu_pop(vq);
	assert_int_equal(dev_complete(vq, e[1]), 0);
	free(e[0]);
	free(e[2]);
	vduse_device_forget(dev);
	rec_collect();
	assert_int_equal(rec_drv.done, 1);
}

static void expect_open(struct vduse_device_config *c, int err,
			const char *why)
{
	struct vduse_device *dev = (void *)c;

	tu_log_clear();
	assert_int_equal(vduse_device_open(c, &dev), err);
	assert_null(dev);
	if (!tu_log_contains(why))
		fail_msg("no \"%s\" in the log", why);
}

static void test_replay_order_and_vq_state(void **state)
{
	struct vduse_device *dev;
	struct vduse_vq *vq;
	struct vduse_vq_elem *e;
	uint16_t avail = 0;

	(void)state;
	crash_with_two_in_flight();
	tu_cb.queue_start = 0;
	dev = rec_reopen();
	vq = vduse_device_vq(dev, 0);
	assert_int_equal(tu_cb.queue_start, 1);
	assert_true(tu_log_contains("2 requests to pop again"));
	/* GET_VQ_STATE: the logged avail index, re-pops included. */
	assert_int_equal(sim_get_vq_state(dev, 0, &avail),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(avail, 3);
	/* A DRIVER_OK the dead process read but never answered, again. */
	assert_int_equal(sim_set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE |
					VIRTIO_CONFIG_S_DRIVER |
					VIRTIO_CONFIG_S_FEATURES_OK |
					VIRTIO_CONFIG_S_DRIVER_OK),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(tu_cb.queue_start, 1);
	e = tu_pop(vq);
	assert_int_equal(rec_elem_req(e), 0);
	assert_int_equal(vduse_vq_inflight(vq), 1);
	assert_int_equal(dev_complete(vq, e), 0);
	rec_serve_to_end(dev);
	vduse_device_free(dev);
}

/*
 * A request held while the ring laps three times over (the driver frees
 * and reuses every other head): the successor still pops it again, and
 * before a newer one on a lower head.
 */
static void test_long_held_request(void **state)
{
	struct vduse_device *dev = rec_first_start(tu_base_features());
	struct vduse_vq *vq = vduse_device_vq(dev, 0);
	struct vduse_vq_elem *held[2];
	unsigned int i;

	(void)state;
	assert_true(rec_submit());	/* request 0 on head 0 */
	assert_true(rec_submit());	/* request 1 on head 2 */
	assert_int_equal(dev_complete(vq, tu_pop(vq)), 0);
	held[0] = tu_pop(vq);
	assert_int_equal(held[0]->id, 2);
	rec_collect();
	for (i = 0; i < 3 * REC_QS; i++) {
		assert_true(rec_submit());
		assert_int_equal(dev_complete(vq, tu_pop(vq)), 0);
		rec_collect();
	}
	assert_true(rec_submit());
	held[1] = tu_pop(vq);
	assert_int_equal(held[1]->id, 0);
	free(held[0]);
	free(held[1]);
	vduse_device_forget(dev);
	tu_log_clear();
	dev = rec_reopen();
	assert_true(tu_log_contains("2 requests to pop again"));
	rec_serve_to_end(dev);
	vduse_device_free(dev);
}

/*
 * The dead process published a completion (used->idx) but died before it
 * interrupted the driver, which may wait for that interrupt for ever: the
 * successor interrupts once on every queue it recovers.
 */
static void test_interrupt_after_reconnect(void **state)
{
	struct vduse_device *dev;
	unsigned int before;

	(void)state;
	crash_with_two_in_flight();
	before = fk_vq_irqs(0);
	dev = rec_reopen();
	assert_int_equal(fk_vq_irqs(0), before + 1);
	rec_serve_to_end(dev);
	vduse_device_free(dev);
}

/* The runner's queue thread, for the reconnect-with-a-runner test. */
static int run_init(struct vduse_vq *vq, void *opaque, int *poll_fd)
{
	(void)vq;
	(void)opaque;
	(void)poll_fd;
	return 0;
}

static void run_event(struct vduse_vq *vq, void *opaque, unsigned int ev)
{
	(void)vq;
	(void)opaque;
	(void)ev;
}

/*
 * A reconnected device served by the runner: no message comes (the kernel
 * does not repeat SET_STATUS for a new opener), yet the control thread
 * must recover and start the queues at once, not at the next message.
 */
static void test_runner_recovers_at_start(void **state)
{
	struct vduse_runner_ops ops = {
		.size = sizeof(ops),
		.queue_init = run_init,
		.queue_event = run_event,
	};
	struct vduse_device_config c = rec_config();
	struct timespec ts = { 0, 1000 * 1000 };
	struct vduse_runner *r;
	struct vduse_device *dev;
	struct vduse_vq *vq;
	unsigned int i;

	(void)state;
	crash_with_two_in_flight();
	assert_int_equal(vduse_device_open(&c, &dev), 0);
	vq = vduse_device_vq(dev, 0);
	assert_int_equal(vduse_runner_new(dev, &ops, NULL, &r), 0);
	assert_int_equal(vduse_runner_start(r), 0);
	for (i = 0; i < 5000 && !vduse_vq_started(vq); i++)
		nanosleep(&ts, NULL);
	assert_true(vduse_vq_started(vq));
	vduse_runner_free(r);
	vduse_device_free(dev);
}

static void test_refusals(void **state)
{
	struct vduse_device_config c = rec_config();
	struct vduse_ilog_header *h;
	size_t size;

	(void)state;
	c.log_path = NULL;
	expect_open(&c, -EINVAL, "needs the in-flight log");
	c.log_path = "/nonexistent/vduse.log";
	expect_open(&c, -ENOENT, "no in-flight log at /nonexistent");

	crash_with_two_in_flight();
	h = map_log(&size);
	c = rec_config();
	c.num_queues = 2;
	expect_open(&c, -EINVAL, "queue count 1 does not match 2");
	c = rec_config();
	c.queue_size = REC_QS * 2;
	expect_open(&c, -EINVAL, "queue size 16 does not match 32");
	c = rec_config();
	c.device_id = 1;
	expect_open(&c, -EINVAL, "device id 2 does not match 1");
	c = rec_config();
	c.flags |= VDUSE_DEVICE_F_NO_RING_FEATURES;
	expect_open(&c, -EINVAL, "features 0x");
	c = rec_config();
	c.name = "other";
	expect_open(&c, -EINVAL, "device name \"rec\" does not match");
	c = rec_config();
	c.config_size--;
	expect_open(&c, -EINVAL, "config space size 8 does not match 7");
	c = rec_config();
	rec_space[3] ^= 0x40;
	expect_open(&c, -EINVAL, "config space differs");
	rec_space[3] ^= 0x40;
	c = rec_config();
	c.log_id = "backing file 8:1 inode 13";
	expect_open(&c, -EINVAL, "its log_id differs");
	c = rec_config();
	c.log_id_size--;
	expect_open(&c, -EINVAL, "its log_id differs");
	c = rec_config();
	c.log_id_size = VDUSE_LOG_ID_MAX + 1;
	expect_open(&c, -EINVAL, "log_id of 65 bytes");
	c = rec_config();
	h->version++;
	expect_open(&c, -EINVAL, "layout version 4 does not match 3");
	h->version--;
	h->magic[0] ^= 1;
	expect_open(&c, -EINVAL, "bad magic");
	h->magic[0] ^= 1;
	assert_int_equal(truncate(rec_log_path, (off_t)size - 8), 0);
	expect_open(&c, -EINVAL, "size");
	assert_int_equal(truncate(rec_log_path, (off_t)size), 0);
	assert_int_equal(truncate(rec_log_path, 64), 0);
	expect_open(&c, -EINVAL, "too short for a header");
	munmap(h, size);
}

static void test_device_gone_or_busy(void **state)
{
	struct vduse_device_config c = rec_config();
	struct vduse_device *dev, *dev2;
	int fd;

	(void)state;
	/* The log is held: a second process would get -EBUSY. */
	dev = rec_first_start(tu_base_features());
	expect_open(&c, -EBUSY, "in use by another process");
	vduse_device_free(dev);
	/* A clean exit destroyed the device: nothing to reconnect to. */
	expect_open(&c, -ENOENT, "no VDUSE device named rec");

	/* A log fd shares the lock: the node itself is busy then. */
	fk_setup();
	fd = memfd_create("vduse-log", MFD_CLOEXEC);
	assert_true(fd >= 0);
	c = rec_config();
	c.log_path = NULL;
	c.flags |= VDUSE_DEVICE_F_LOG_FD;
	c.log_fd = fd;
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	expect_open(&c, -EBUSY, "another process has it open");
	vduse_device_forget(dev);
	assert_int_equal(vduse_device_open(&c, &dev2), 0);
	vduse_device_free(dev2);
	close(fd);
}

static void test_driver_changed(void **state)
{
	struct vduse_device *dev;
	struct vduse_ilog_header *h;
	size_t size;

	(void)state;
	/* The driver set the queue up elsewhere: refuse, do not guess. */
	crash_with_two_in_flight();
	fk_set_vq_info(0, REC_QS, TU_RING1, TU_RING1 + 0x100, TU_RING1 + 0x200,
		       0, true);
	dev = reopen_quiet();
	assert_false(vduse_vq_started(vduse_device_vq(dev, 0)));
	assert_true(tu_log_contains("is not the one in the in-flight log"));
	vduse_device_free(dev);

	/* Not ready any more (reset): the logged requests are dropped. */
	crash_with_two_in_flight();
	fk_set_vq_info(0, REC_QS, TU_RING0, 0, 0, 0, false);
	dev = reopen_quiet();
	assert_false(vduse_vq_started(vduse_device_vq(dev, 0)));
	assert_true(tu_log_contains("the requests its in-flight log held are dropped"));
	h = map_log(&size);
	assert_int_equal(log_vq0(h)->num, 0);
	munmap(h, size);
	vduse_device_free(dev);

	/* used->idx ahead of what the log can explain. */
	crash_with_two_in_flight();
	sim_set_used_idx(&rec_drv.s, 3);
	dev = reopen_quiet();
	assert_false(vduse_vq_started(vduse_device_vq(dev, 0)));
	assert_true(tu_log_contains("used index 3 in the ring does not follow the in-flight log's 1"));
	vduse_device_free(dev);

	/* A head entry with no meaning. */
	crash_with_two_in_flight();
	h = map_log(&size);
	log_vq0(h)->heads[4] = 3ull << 32;
	dev = reopen_quiet();
	assert_false(vduse_vq_started(vduse_device_vq(dev, 0)));
	assert_true(tu_log_contains("head 4 (entry 0x300000000) has an unknown state"));
	munmap(h, size);
	vduse_device_free(dev);
}

int main(void)
{
#define REC_TEST(f) cmocka_unit_test_setup_teardown(f, rec_setup, rec_teardown)
	const struct CMUnitTest tests[] = {
		REC_TEST(test_crash_at_every_point),
		REC_TEST(test_crash_at_every_point_event_idx),
		REC_TEST(test_sigkill_at_random),
		REC_TEST(test_replay_order_and_vq_state),
		REC_TEST(test_long_held_request),
		REC_TEST(test_interrupt_after_reconnect),
		REC_TEST(test_runner_recovers_at_start),
		REC_TEST(test_refusals),
		REC_TEST(test_device_gone_or_busy),
		REC_TEST(test_driver_changed),
	};
#undef REC_TEST

	return cmocka_run_group_tests(tests, NULL, NULL);
}
