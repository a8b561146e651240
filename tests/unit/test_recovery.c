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
 * and the successor.
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
#include "test_util.h"

#define QS		16u	/* ring size */
#define MAX_OUT		(QS / 2)	/* two descriptors a request */
#define NREQ		64u
#define BUF(r)		(TU_DATA + 64ull * (r))
#define DONE_MARK(r)	(0x5eed0000u + (r))

static char log_path[64];

/* ---- the driver (always in the parent) ---- */

struct drv {
	struct sim_vq s;
	int head_req[QS];		/* request on a head, -1: free */
	unsigned int completions[NREQ];
	unsigned int next_req, outstanding, done;
};

static struct drv drv;

static void drv_init(uint16_t start)
{
	unsigned int i;

	memset(&drv, 0, sizeof(drv));
	for (i = 0; i < QS; i++)
		drv.head_req[i] = -1;
	sim_vq_init_at(&drv.s, 0, QS, TU_RING0, start);
}

/* Publish request r on a free even head: out (r), then in (8 bytes). */
static bool drv_submit(void)
{
	unsigned int h, r = drv.next_req;
	uint32_t *out;

	if (r == NREQ || drv.outstanding == MAX_OUT)
		return false;
	for (h = 0; drv.head_req[h] >= 0; h += 2)
		;
	out = fk_iova_ptr(BUF(r));
	out[0] = r;
	out[8] = 0;	/* the device writes the in buffer at +32 */
	sim_set_desc(&drv.s, h, BUF(r), 4, VRING_DESC_F_NEXT, h + 1);
	sim_set_desc(&drv.s, h + 1, BUF(r) + 32, 8, VRING_DESC_F_WRITE, 0);
	drv.head_req[h] = (int)r;
	drv.next_req++;
	drv.outstanding++;
	sim_publish(&drv.s, h);
	return true;
}

/* Take every used entry; each must complete an outstanding request. */
static void drv_collect(void)
{
	uint32_t id, len;

	while (sim_get_used(&drv.s, &id, &len)) {
		uint32_t *in;
		int r;

		assert_true(id < QS);
		r = drv.head_req[id];
		assert_true(r >= 0);	/* a head that is not in flight */
		assert_int_equal(len, 8);
		in = fk_iova_ptr(BUF(r) + 32);
		assert_int_equal(in[0], DONE_MARK(r));
		drv.completions[r]++;
		drv.head_req[id] = -1;
		drv.outstanding--;
		drv.done++;
	}
}

/* A used index the driver finds (as if the ring had been scribbled). */
static void sim_set_used_idx(struct sim_vq *s, uint16_t v)
{
	uint16_t *p = fk_iova_ptr(s->used + 2);

	__atomic_store_n(p, htole16(v), __ATOMIC_RELEASE);
}

static void drv_check_all_once(void)
{
	unsigned int r;

	for (r = 0; r < drv.next_req; r++)
		assert_int_equal(drv.completions[r], 1);
	assert_int_equal(drv.outstanding, 0);
	assert_int_equal((uint16_t)(sim_used_idx(&drv.s) - 0),
			 (uint16_t)drv.done);
}

/* ---- the device (child or successor) ---- */

/* Request number of an element (from its out buffer). */
static uint32_t elem_req(const struct vduse_vq_elem *e)
{
	return *(const uint32_t *)e->out_sg[0].iov_base;
}

static int dev_complete(struct vduse_vq *vq, struct vduse_vq_elem *e)
{
	uint32_t mark = DONE_MARK(elem_req(e));
	int ret;

	memcpy(e->in_sg[0].iov_base, &mark, sizeof(mark));
	ret = vduse_vq_push(vq, e, 8);
	free(e);
	return ret;
}

/* What the backend serves: its config space and its log_id. */
static uint8_t rec_space[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static const char rec_id[] = "backing file 8:1 inode 12";

static struct vduse_device_config rec_config(void)
{
	struct vduse_device_config c = tu_config("rec", 1, QS);

	c.log_path = log_path;
	c.config = rec_space;
	c.config_size = sizeof(rec_space);
	c.log_id = rec_id;
	c.log_id_size = sizeof(rec_id);
	return c;
}

static int setup(void **state)
{
	int fd;

	tu_setup(state);
	snprintf(log_path, sizeof(log_path), "/tmp/vduse-rec-XXXXXX");
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

/* A fresh fake kernel with the device created and the driver live. */
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
	drv_init(0);
	assert_int_equal(sim_driver_ok(dev, features), VDUSE_REQ_RESULT_OK);
	assert_true(vduse_vq_started(vduse_device_vq(dev, 0)));
	return dev;
}

/* The successor: reopen and recover. */
static struct vduse_device *reopen(void)
{
	struct vduse_device_config c = rec_config();
	struct vduse_device *dev;

	assert_int_equal(vduse_device_open(&c, &dev), 0);
	assert_true(vduse_device_process(dev) >= 0);
	assert_true(vduse_vq_started(vduse_device_vq(dev, 0)));
	return dev;
}

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

/*
 * The successor serves until the driver has made and seen every request:
 * its pops must come in avail order (what it pops again first, then new
 * requests), and never a request that was already completed.
 */
static void serve_to_end(struct vduse_device *dev)
{
	struct vduse_vq *vq = vduse_device_vq(dev, 0);
	int last = -1;

	for (;;) {
		struct vduse_vq_elem *e;
		void *p;
		int ret;

		while (drv_submit())
			;
		ret = vduse_vq_pop(vq, sizeof(*e), &p);
		if (ret == -EAGAIN) {
			unsigned int before = drv.done;

			drv_collect();
			if (drv.next_req == NREQ && !drv.outstanding)
				break;
			/* Nothing to pop, nothing came back: lost requests. */
			if (drv.done == before && !drv_submit())
				fail_msg("%u requests never complete",
					 drv.outstanding);
			continue;
		}
		assert_int_equal(ret, 0);
		e = p;
		assert_true((int)elem_req(e) > last);
		assert_int_equal(drv.completions[elem_req(e)], 0);
		last = (int)elem_req(e);
		assert_int_equal(dev_complete(vq, e), 0);
		drv_collect();
	}
	assert_int_equal(vduse_vq_inflight(vq), 0);
	drv_check_all_once();
}

/*
 * What the first process does: pops and out-of-order pushes, ending with
 * requests still in flight.  In a child: no cmocka, abort on surprise.
 */
static void child_script(struct vduse_vq *vq)
{
	static const char script[] = "ppp1p00pp2p0";
	struct vduse_vq_elem *held[QS];
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

static unsigned long *shared_points;

/* Fork the first process; it dies at crash point @at (0: after the
 * script).  Returns how it ended (waitpid status). */
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
	unsigned long at, points;

	shared_points = mmap(NULL, sizeof(*shared_points),
			     PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(shared_points != MAP_FAILED);

	for (at = 0;; at++) {
		struct vduse_device *dev = first_start(features);
		unsigned int published;
		int status;

		for (published = 0; published < 7 && drv_submit(); published++)
			;
		status = run_child(dev, at);
		if (at == 0) {
			/* The dry run counts the points. */
			assert_int_equal(status, 0);
			points = *shared_points;
			assert_true(points > 20);
		} else if (at <= points) {
			assert_true(WIFSIGNALED(status));
			assert_int_equal(WTERMSIG(status), SIGKILL);
		} else {
			assert_int_equal(status, 0);
		}
		/* The parent's handle is as stale as the dead child's. */
		vduse_device_forget(dev);
		drv_collect();	/* what the child published */
		dev = reopen();
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

/* A first process that serves for ever, completing out of order. */
static void child_serve_forever(struct vduse_vq *vq)
{
	struct vduse_vq_elem *held[QS];
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
		struct vduse_device *dev = first_start(tu_base_features());
		unsigned int k = (unsigned int)rand() % 40;
		struct timespec ts = { 0, (rand() % 200) * 1000 };
		pid_t pid;
		int status;

		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			child_serve_forever(vduse_device_vq(dev, 0));
		while (drv.done < k) {
			while (drv_submit())
				;
			drv_collect();
		}
		nanosleep(&ts, NULL);
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		vduse_device_forget(dev);
		drv_collect();
		dev = reopen();
		serve_to_end(dev);
		vduse_device_free(dev);
		assert_int_equal(fk_live_fds(), 0);
	}
}

/* Map the log to read or damage it as a test. */
static struct vduse_ilog_header *map_log(size_t *size)
{
	int fd = open(log_path, O_RDWR);
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
	struct vduse_device *dev = first_start(tu_base_features());
	struct vduse_vq *vq = vduse_device_vq(dev, 0);
	struct vduse_vq_elem *e[3];
	unsigned int i;

	for (i = 0; i < 3; i++)
		assert_true(drv_submit());
	for (i = 0; i < 3; i++)
		e[i] = tu_pop(vq);
	assert_int_equal(dev_complete(vq, e[1]), 0);
	free(e[0]);
	free(e[2]);
	vduse_device_forget(dev);
	drv_collect();
	assert_int_equal(drv.done, 1);
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
	dev = reopen();
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
	assert_int_equal(elem_req(e), 0);
	assert_int_equal(vduse_vq_inflight(vq), 1);
	assert_int_equal(dev_complete(vq, e), 0);
	serve_to_end(dev);
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
	dev = reopen();
	assert_int_equal(fk_vq_irqs(0), before + 1);
	serve_to_end(dev);
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
	c.queue_size = QS * 2;
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
	expect_open(&c, -EINVAL, "layout version 3 does not match 2");
	h->version--;
	h->magic[0] ^= 1;
	expect_open(&c, -EINVAL, "bad magic");
	h->magic[0] ^= 1;
	assert_int_equal(truncate(log_path, (off_t)size - 8), 0);
	expect_open(&c, -EINVAL, "size");
	assert_int_equal(truncate(log_path, (off_t)size), 0);
	assert_int_equal(truncate(log_path, 64), 0);
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
	dev = first_start(tu_base_features());
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
	fk_set_vq_info(0, QS, TU_RING1, TU_RING1 + 0x100, TU_RING1 + 0x200,
		       0, true);
	dev = reopen_quiet();
	assert_false(vduse_vq_started(vduse_device_vq(dev, 0)));
	assert_true(tu_log_contains("is not the one in the in-flight log"));
	vduse_device_free(dev);

	/* Not ready any more (reset): the logged requests are dropped. */
	crash_with_two_in_flight();
	fk_set_vq_info(0, QS, TU_RING0, 0, 0, 0, false);
	dev = reopen_quiet();
	assert_false(vduse_vq_started(vduse_device_vq(dev, 0)));
	assert_true(tu_log_contains("the requests its in-flight log held are dropped"));
	h = map_log(&size);
	assert_int_equal(log_vq0(h)->num, 0);
	munmap(h, size);
	vduse_device_free(dev);

	/* used->idx ahead of what the log can explain. */
	crash_with_two_in_flight();
	sim_set_used_idx(&drv.s, 3);
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
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crash_at_every_point,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_crash_at_every_point_event_idx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigkill_at_random, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_replay_order_and_vq_state,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupt_after_reconnect,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_runner_recovers_at_start,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_device_gone_or_busy,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_driver_changed, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
