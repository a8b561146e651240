// SPDX-License-Identifier: MIT
/*
 * Crash recovery on packed rings (docs/recovery.md): the twin of
 * test_recovery.c and test_recovery_batch.c.  A first process is killed
 * (fork + SIGKILL) at every store of the in-flight log's write order, or
 * at a random moment, and a successor reconnects; every request the
 * driver made completes exactly once.
 *
 * What makes packed rings harder is played out by the first process,
 * which is the driver as well as the device here (the driver's state is
 * in shared memory, so the parent carries on from where the child left
 * it): out-of-order completions write used descriptors over the ring
 * descriptors of buffers still in flight, and the driver, which frees ring
 * space by count, makes new buffers available over the positions an
 * in-flight buffer was read from.  Requests are direct chains of 2 and 3
 * descriptors and indirect buffers, the ring's size (13) is not a power of
 * two, and the positions wrap several times.
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
#include "crash_child.h"
#include "sim_packed.h"
#include "test_util.h"

#define QS		16u	/* queue size of the device */
#define NUM		13u	/* the driver's ring */
#define NREQ		60u
#define MARK		0x9ac0000u
#define F_PACKED	TU_F(VIRTIO_F_RING_PACKED)
#define BUF(r)		(TU_DATA + 64ull * (r))
#define TABLE(r)	(TU_DATA + 0x10000ull + 64ull * (r))
#define ID(k)		((uint16_t)(0xfff0u + (k)))	/* buffer ids */
#define NIDS		12u

/* The driver, in memory a forked first process shares with its parent. */
struct pdrv {
	struct sim_pvq s;
	int id_req[NIDS];		/* request on buffer id ID(k), -1 */
	unsigned int completions[NREQ];
	unsigned int next_req, outstanding, done, in_ring;
};
static struct pdrv *drv;

static char log_path[64];

/* Request r: 2 direct, indirect, 3 direct descriptors, by r % 3. */
static unsigned int req_ndesc(unsigned int r)
{
	return r % 3 == 0 ? 2 : r % 3 == 1 ? 1 : 3;
}

static void drv_init(void)
{
	memset(drv, 0, sizeof(*drv));
	for (unsigned int k = 0; k < NIDS; k++)
		drv->id_req[k] = -1;
	sim_pvq_init(&drv->s, 0, NUM, TU_RING0);
}

/* Make the next request available if it fits; false if not. */
static bool submit(void)
{
	unsigned int r = drv->next_req, k, nd;
	struct sim_buf b[3];
	uint32_t *out;

	if (r == NREQ)
		return false;
	nd = req_ndesc(r);
	if (drv->in_ring + nd > NUM)
		return false;
	for (k = 0; k < NIDS && drv->id_req[k] >= 0; k++)
		;
	if (k == NIDS)
		return false;
	out = fk_iova_ptr(BUF(r));
	memset(out, 0, 64);
	out[0] = r;
	b[0] = (struct sim_buf){ BUF(r), 4, false };
	if (nd == 3) {
		b[1] = (struct sim_buf){ BUF(r) + 8, 4, false };
		b[2] = (struct sim_buf){ BUF(r) + 32, 8, true };
		sim_pvq_add(&drv->s, b, 3, ID(k));
	} else {
		b[1] = (struct sim_buf){ BUF(r) + 32, 8, true };
		if (nd == 1)
			sim_pvq_add_indirect(&drv->s, TABLE(r), b, 2, ID(k));
		else
			sim_pvq_add(&drv->s, b, 2, ID(k));
	}
	drv->id_req[k] = (int)r;
	drv->in_ring += nd;
	drv->next_req++;
	drv->outstanding++;
	return true;
}

/* Take every used descriptor; each completes an outstanding request. */
static void collect(void)
{
	uint16_t id;
	uint32_t len;

	while (sim_pvq_get_used(&drv->s, &id, &len)) {
		unsigned int k = (uint16_t)(id - ID(0));
		uint32_t *in;
		int r;

		assert_true(k < NIDS);
		r = drv->id_req[k];
		assert_true(r >= 0);	/* an id that is not in flight */
		assert_int_equal(len, 8);
		in = fk_iova_ptr(BUF(r) + 32);
		assert_int_equal(in[0], MARK + (uint32_t)r);
		drv->completions[r]++;
		drv->id_req[k] = -1;
		drv->in_ring -= req_ndesc((unsigned int)r);
		drv->outstanding--;
		drv->done++;
	}
}

static void check_all_once(void)
{
	for (unsigned int r = 0; r < drv->next_req; r++)
		assert_int_equal(drv->completions[r], 1);
	assert_int_equal(drv->next_req, NREQ);
	assert_int_equal(drv->outstanding, 0);
}

/* ---- the device ---- */

static uint32_t elem_req(const struct vduse_vq_elem *e)
{
	return *(const uint32_t *)e->out_sg[0].iov_base;
}

static void mark_done(struct vduse_vq_elem *e)
{
	uint32_t mark = MARK + elem_req(e);

	memcpy(e->in_sg[0].iov_base, &mark, sizeof(mark));
}

static struct vduse_device_config config(void)
{
	struct vduse_device_config c = tu_config("recp", 1, QS);

	c.log_path = log_path;
	return c;
}

static int setup(void **state)
{
	int fd;

	tu_setup(state);
	drv = mmap(NULL, sizeof(*drv), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(drv != MAP_FAILED);
	snprintf(log_path, sizeof(log_path), "/tmp/vduse-recp-XXXXXX");
	fd = mkstemp(log_path);
	assert_true(fd >= 0);
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	unlink(log_path);
	munmap(drv, sizeof(*drv));
	return tu_teardown(state);
}

static struct vduse_device *first_start(uint64_t features)
{
	struct vduse_device_config c = config();
	struct vduse_device *dev;

	fk_setup();
	tu_guest_memory();
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_true(fk_created_config()->features & F_PACKED);
	drv_init();
	assert_int_equal(sim_driver_ok(dev, features | F_PACKED),
			 VDUSE_REQ_RESULT_OK);
	assert_true(vduse_vq_started(vduse_device_vq(dev, 0)));
	return dev;
}

static struct vduse_device *reopen(void)
{
	struct vduse_device_config c = config();
	struct vduse_device *dev;

	tu_log_clear();
	assert_int_equal(vduse_device_open(&c, &dev), 0);
	assert_true(vduse_device_process(dev) >= 0);
	assert_true(vduse_vq_started(vduse_device_vq(dev, 0)));
	return dev;
}

/* How the successor and the scripts pop and push. */
static bool use_batch;

static int pop_some(struct vduse_vq *vq, struct vduse_vq_elem **el,
		    unsigned int max)
{
	void *p;
	int ret;

	if (use_batch)
		return vduse_vq_pop_batch(vq, el, max);
	ret = vduse_vq_pop(vq, sizeof(**el), &p);
	if (ret)
		return ret;
	el[0] = p;
	return 1;
}

/* Complete @n elements, the last first. */
static int push_some(struct vduse_vq *vq, struct vduse_vq_elem **el,
		     unsigned int n)
{
	struct vduse_vq_elem *rev[QS];
	uint32_t lens[QS];
	unsigned int i;
	int ret = 0;

	for (i = 0; i < n; i++) {
		mark_done(el[i]);
		rev[i] = el[n - 1 - i];
		lens[i] = 8;
	}
	if (use_batch)
		return vduse_vq_push_batch(vq, rev, lens, n,
					   VDUSE_VQ_PUSH_NOTIFY);
	for (i = 0; i < n && ret == 0; i++) {
		ret = vduse_vq_push(vq, rev[i], 8);
		free(rev[i]);
	}
	return ret < 0 ? ret : vduse_vq_notify(vq);
}

/*
 * The successor serves until every request was made and seen: its pops
 * come in the order they were made available (what it pops again first,
 * then new ones), never a request already completed.
 */
static void serve_to_end(struct vduse_device *dev)
{
	struct vduse_vq *vq = vduse_device_vq(dev, 0);
	int last = -1;

	for (;;) {
		struct vduse_vq_elem *el[QS];
		int n;

		while (submit())
			;
		n = pop_some(vq, el, 3);
		if (n == -EAGAIN) {
			unsigned int before = drv->done;

			collect();
			if (drv->next_req == NREQ && !drv->outstanding)
				break;
			if (drv->done == before && !submit())
				fail_msg("%u requests never complete",
					 drv->outstanding);
			continue;
		}
		assert_true(n > 0);
		for (int i = 0; i < n; i++) {
			uint32_t r = elem_req(el[i]);

			assert_true((int)r > last);
			assert_int_equal(drv->completions[r], 0);
			last = (int)r;
		}
		assert_true(push_some(vq, el, (unsigned int)n) >= 0);
		collect();
	}
	assert_int_equal(vduse_vq_inflight(vq), 0);
	check_all_once();
}

/* In a child: no cmocka, exit with a code on a surprise. */
static void must(bool ok, int code)
{
	if (!ok)
		_exit(code);
}

/* Pop @k elements into held[]. */
static void c_pop(struct vduse_vq *vq, struct vduse_vq_elem **held,
		  unsigned int *n, unsigned int k)
{
	while (k) {
		int got = pop_some(vq, held + *n, k);

		must(got > 0, 20);
		*n += (unsigned int)got;
		k -= (unsigned int)got;
	}
}

/* Complete held[i] for each index in @which (into the list as it is
 * now), in one batch or one by one. */
static void c_push(struct vduse_vq *vq, struct vduse_vq_elem **held,
		   unsigned int *n, const unsigned int *which, unsigned int k)
{
	struct vduse_vq_elem *el[QS];
	bool taken[QS] = { false };
	unsigned int i, j;

	for (i = 0; i < k; i++) {
		must(which[i] < *n, 21);
		el[k - 1 - i] = held[which[i]];	/* push_some reverses */
		taken[which[i]] = true;
	}
	must(push_some(vq, el, k) >= 0, 22);
	for (i = j = 0; i < *n; i++)
		if (!taken[i])
			held[j++] = held[i];
	*n = j;
}

/* The driver's turn inside the first process. */
static void c_driver(void)
{
	collect();
	while (submit())
		;
}

/*
 * The first process.  The ring is full (the parent filled it) with
 * requests 0 (2 descriptors, positions 0-1), 1 (indirect, 2), 2 (3
 * descriptors, 3-5), 3 (6-7), 4 (8), 5 (9-11).
 */
static void child_script(struct vduse_vq *vq)
{
	struct vduse_vq_elem *held[QS];
	unsigned int n = 0;

	c_pop(vq, held, &n, 3);				/* 0, 1, 2 */
	/* 2 first: its used descriptor lands on 0's first descriptor. */
	c_push(vq, held, &n, (unsigned int[]){ 2 }, 1);
	/* The driver frees 3 and writes 6 (positions 12, 0) and 7 (1):
	 * over what request 0 was read from, while 0 is in flight. */
	c_driver();
	c_pop(vq, held, &n, 2);				/* 3, 4 */
	/* 1 and 4: a batch, on 0's second descriptor and beyond. */
	c_push(vq, held, &n, (unsigned int[]){ 1, 3 }, 2);
	c_driver();
	c_pop(vq, held, &n, 3);				/* 5, 6, 7 */
	c_push(vq, held, &n, (unsigned int[]){ 0, 3 }, 2);	/* 0, 6 */
	c_driver();
	c_pop(vq, held, &n, 1);
	c_push(vq, held, &n, (unsigned int[]){ 2 }, 1);
	/* Killed with these in flight: nothing is freed. */
	must(n >= 3, 23);
}

static unsigned long *shared_points;

/* Serve a few rounds first, so that the script starts at @lap laps. */
static void warm_up(struct vduse_device *dev, unsigned int reqs)
{
	struct vduse_vq *vq = vduse_device_vq(dev, 0);

	while (drv->done < reqs) {
		struct vduse_vq_elem *el[QS];
		int n;

		while (submit() && drv->next_req < reqs)
			;
		n = pop_some(vq, el, QS);
		if (n > 0)
			assert_true(push_some(vq, el, (unsigned int)n) >= 0);
		collect();
	}
}

/*
 * A successor that dies too, at crash point @at of its recovery (its
 * rewrites of the log): the next one must recover just the same.
 */
static void successor_killed(unsigned long at)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct vduse_device_config c = config();
		struct vduse_device *dev;

		vduse_crash_countdown = at;
		if (vduse_device_open(&c, &dev) < 0)
			_exit(30);
		vduse_device_process(dev);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) || WEXITSTATUS(status) == 0);
}

static void crash_everywhere(uint64_t features, unsigned int warm,
			     bool twice)
{
	unsigned long at, points = 0;

	shared_points = mmap(NULL, sizeof(*shared_points),
			     PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(shared_points != MAP_FAILED);
	for (at = 0;; at++) {
		struct vduse_device *dev = first_start(features);
		int status;

		warm_up(dev, warm);
		while (submit())
			;
		status = crash_child(dev, child_script, at, shared_points);
		if (at == 0) {
			assert_int_equal(status, 0);
			points = *shared_points;
			assert_true(points > 40);
		} else if (at <= points) {
			assert_true(WIFSIGNALED(status));
			assert_int_equal(WTERMSIG(status), SIGKILL);
		} else {
			assert_int_equal(status, 0);
		}
		vduse_device_forget(dev);
		/* The driver goes on while nobody serves: it takes what the
		 * child published and reuses the positions it freed. */
		collect();
		while (submit())
			;
		if (twice)
			successor_killed(1 + at % 6);
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
	use_batch = false;
	crash_everywhere(tu_base_features(), 0, false);
}

static void test_crash_at_every_point_batch(void **state)
{
	(void)state;
	use_batch = true;
	crash_everywhere(tu_base_features(), 0, false);
}

/*
 * The same a few laps on (wrap counters 0 and 1), with EVENT_IDX, and a
 * first successor killed while it recovers.
 */
static void test_crash_at_every_point_wrapped(void **state)
{
	(void)state;
	use_batch = false;
	crash_everywhere(tu_base_features() | tu_event_idx_feature(), 7, true);
}

static void test_crash_at_every_point_batch_wrapped(void **state)
{
	(void)state;
	use_batch = true;
	crash_everywhere(tu_base_features() | tu_event_idx_feature(), 11, true);
}

/* A first process that serves for ever, completing out of order. */
static void child_serve_forever(struct vduse_vq *vq)
{
	for (;;) {
		struct vduse_vq_elem *el[QS];
		int n = pop_some(vq, el, QS);

		if (n > 0 && push_some(vq, el, (unsigned int)n) < 0)
			_exit(11);
		sched_yield();
	}
}

/* SIGKILL at a moment the parent does not choose. */
static void test_sigkill_at_random(void **state)
{
	unsigned int round;

	(void)state;
	srand(9);
	for (round = 0; round < 40; round++) {
		struct vduse_device *dev = first_start(tu_base_features());
		unsigned int k = (unsigned int)rand() % 40;
		struct timespec ts = { 0, (rand() % 200) * 1000 };
		pid_t pid;
		int status;

		use_batch = round & 1;
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			child_serve_forever(vduse_device_vq(dev, 0));
		while (drv->done < k) {
			while (submit())
				;
			collect();
		}
		nanosleep(&ts, NULL);
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		vduse_device_forget(dev);
		collect();
		dev = reopen();
		serve_to_end(dev);
		vduse_device_free(dev);
		assert_int_equal(fk_live_fds(), 0);
	}
}

/*
 * In-process: requests 0-5 fill the ring; 0, 1 and 2 are popped, 2 is
 * completed (its used descriptor over 0's first), the driver writes 6 and
 * 7 over 0's descriptors, 3 is popped; then the process dies with 0, 1
 * and 3 in flight.
 */
static void crash_with_three_in_flight(void)
{
	struct vduse_device *dev = first_start(tu_base_features());
	struct vduse_vq *vq = vduse_device_vq(dev, 0);
	struct vduse_vq_elem *e[4];
	unsigned int i;

	use_batch = false;
	while (submit())
		;
	assert_int_equal(drv->next_req, 6);
	for (i = 0; i < 4; i++)
		e[i] = NULL;
	for (i = 0; i < 3; i++)
		e[i] = tu_pop(vq);
	assert_true(push_some(vq, &e[2], 1) >= 0);
	collect();
	assert_int_equal(drv->done, 1);
	while (submit())
		;
	assert_int_equal(drv->next_req, 8);
	e[3] = tu_pop(vq);
	assert_int_equal(elem_req(e[3]), 3);
	free(e[0]);
	free(e[1]);
	free(e[3]);
	vduse_device_forget(dev);
}

static void test_replay_order_and_vq_state(void **state)
{
	struct vduse_vq_state_packed st;
	struct vduse_device *dev;
	struct vduse_vq *vq;
	struct vduse_vq_elem *e;

	(void)state;
	crash_with_three_in_flight();
	tu_cb.queue_start = 0;
	dev = reopen();
	vq = vduse_device_vq(dev, 0);
	assert_int_equal(tu_cb.queue_start, 1);
	assert_true(tu_log_contains("3 requests to pop again"));
	/* Next avail: position 8 (requests 0-3 took 8 descriptors), wrap
	 * 1; next used: 3 (request 2's 3), wrap 1. */
	assert_int_equal(sim_get_vq_state_packed(dev, 0, &st),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(st.last_avail_idx, 8);
	assert_int_equal(st.last_avail_counter, 1);
	assert_int_equal(st.last_used_idx, 3);
	assert_int_equal(st.last_used_counter, 1);
	/* A DRIVER_OK the dead process never answered, again. */
	assert_int_equal(sim_set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE |
					VIRTIO_CONFIG_S_DRIVER |
					VIRTIO_CONFIG_S_FEATURES_OK |
					VIRTIO_CONFIG_S_DRIVER_OK),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(tu_cb.queue_start, 1);
	/* Request 0's descriptors were overwritten in the ring: it comes
	 * from the log's copies, whole. */
	e = tu_pop(vq);
	assert_int_equal(elem_req(e), 0);
	assert_int_equal(e->out_num, 1);
	assert_int_equal(e->in_num, 1);
	tu_assert_iov_is(&e->out_sg[0], BUF(0), 4);
	tu_assert_iov_is(&e->in_sg[0], BUF(0) + 32, 8);
	assert_int_equal(vduse_vq_inflight(vq), 1);
	assert_true(push_some(vq, &e, 1) >= 0);
	/* Request 1, indirect: its table read again. */
	e = tu_pop(vq);
	assert_int_equal(elem_req(e), 1);
	tu_assert_iov_is(&e->in_sg[0], BUF(1) + 32, 8);
	assert_true(push_some(vq, &e, 1) >= 0);
	collect();
	serve_to_end(dev);
	vduse_device_free(dev);
}

/* The successor interrupts once on every queue it recovers. */
static void test_interrupt_after_reconnect(void **state)
{
	struct vduse_device *dev;
	unsigned int before;

	(void)state;
	crash_with_three_in_flight();
	/* The dead process had turned kicks off. */
	*(uint16_t *)fk_iova_ptr(drv->s.device + 2) =
		htole16(VRING_PACKED_EVENT_FLAG_DISABLE);
	before = fk_vq_irqs(0);
	dev = reopen();
	assert_int_equal(fk_vq_irqs(0), before + 1);
	/* Kicks are asked for again. */
	assert_int_equal(sim_pvq_device_flags(&drv->s),
			 VRING_PACKED_EVENT_FLAG_ENABLE);
	serve_to_end(dev);
	vduse_device_free(dev);
}

static struct vduse_ilog_vq *map_vq0(struct vduse_ilog_header **h,
				     size_t *size)
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
	*h = p;
	*size = (size_t)end;
	return (struct vduse_ilog_vq *)((uint8_t *)p +
					((sizeof(**h) + 63) & ~63ul));
}

static struct vduse_device *reopen_quiet(void)
{
	struct vduse_device_config c = config();
	struct vduse_device *dev;

	tu_log_clear();
	assert_int_equal(vduse_device_open(&c, &dev), 0);
	assert_true(vduse_device_process(dev) >= 0);
	return dev;
}

static void test_log_refusals(void **state)
{
	struct vduse_ilog_header *h;
	struct vduse_ilog_vq *l;
	struct vduse_device *dev;
	size_t size;

	(void)state;
	/* A log that recorded a split ring is not recovered as packed. */
	crash_with_three_in_flight();
	l = map_vq0(&h, &size);
	assert_int_equal(l->layout, VDUSE_ILOG_PACKED);
	l->layout = VDUSE_ILOG_SPLIT;
	dev = reopen_quiet();
	assert_false(vduse_vq_started(vduse_device_vq(dev, 0)));
	assert_true(tu_log_contains("recorded a split ring, the driver negotiated a packed one"));
	vduse_device_free(dev);
	munmap(h, size);

	/* Two buffers sharing a copy of a descriptor. */
	crash_with_three_in_flight();
	l = map_vq0(&h, &size);
	/* Slots 0 (request 0, 2 descriptors) and 2 (request 3, which took
	 * the slot request 2 left, 2 descriptors too). */
	assert_int_equal(VDUSE_ILOG_STATE(l->heads[2]), VDUSE_ILOG_INFLIGHT);
	l->heads[2] = (l->heads[2] & 0xffffffffffffull) |
		      (l->heads[0] & ~0xffffffffffffull);
	dev = reopen_quiet();
	assert_false(vduse_vq_started(vduse_device_vq(dev, 0)));
	assert_true(tu_log_contains("shares a copy with another"));
	vduse_device_free(dev);
	munmap(h, size);

	/* A position outside the ring. */
	crash_with_three_in_flight();
	l = map_vq0(&h, &size);
	l->used_idx = NUM;
	dev = reopen_quiet();
	assert_false(vduse_vq_started(vduse_device_vq(dev, 0)));
	assert_true(tu_log_contains("are outside the ring (13)"));
	vduse_device_free(dev);
	munmap(h, size);
}

/*
 * A kernel that refused VIRTIO_F_RING_PACKED at creation: the log says
 * so, and a reopen with the same config (which would add the bit again)
 * takes the logged features.
 */
static void test_reopen_where_packed_was_refused(void **state)
{
	struct vduse_device_config c = config();
	struct vduse_device *dev;

	(void)state;
	fk_setup();
	fk_fail_ioctl(VDUSE_CREATE_DEV, -EINVAL, 0);
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_false(fk_created_config()->features & F_PACKED);
	vduse_device_forget(dev);
	tu_log_clear();
	assert_int_equal(vduse_device_open(&c, &dev), 0);
	vduse_device_free(dev);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_crash_at_every_point),
		T(test_crash_at_every_point_batch),
		T(test_crash_at_every_point_wrapped),
		T(test_crash_at_every_point_batch_wrapped),
		T(test_sigkill_at_random),
		T(test_replay_order_and_vq_state),
		T(test_interrupt_after_reconnect),
		T(test_log_refusals),
		T(test_reopen_where_packed_was_refused),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
