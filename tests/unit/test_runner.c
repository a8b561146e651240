// SPDX-License-Identifier: MIT
/* The runner: control thread answering messages, one thread per queue. */
#define _GNU_SOURCE	/* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "test_util.h"

#define LD(x)		__atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define ADD(x, v)	__atomic_add_fetch(&(x), (v), __ATOMIC_SEQ_CST)

static struct {
	unsigned int init, exit, events, kicks, polls, handled, poll_errs;
	unsigned int exit_sleep_ms;
	unsigned int queue_stops;	/* atomic: queue threads read it */
	pthread_t init_thread[2], event_thread[2];
	unsigned int exit_saw_stops[8];
	int poll_fd;		/* queue 1 also waits on this */
	void *opaque_seen;
} rs;

/* Poll @cond for up to five seconds. */
#define WAIT_FOR(cond) do {						\
	struct timespec ts_ = { 0, 1000 * 1000 };			\
	int n_;								\
	for (n_ = 0; n_ < 5000 && !(cond); n_++)			\
		nanosleep(&ts_, NULL);					\
	assert_true(cond);						\
} while (0)

static int r_init(struct vduse_vq *vq, void *opaque, int *poll_fd)
{
	unsigned int q = vduse_vq_index(vq);

	assert_int_equal(*poll_fd, -1);
	rs.init_thread[q] = pthread_self();
	__atomic_store_n(&rs.opaque_seen, opaque, __ATOMIC_SEQ_CST);
	if (q == 1)
		*poll_fd = rs.poll_fd;
	ADD(rs.init, 1);
	return 0;
}

static void r_event(struct vduse_vq *vq, void *opaque, unsigned int events)
{
	unsigned int q = vduse_vq_index(vq);
	void *p;

	rs.event_thread[q] = pthread_self();
	if (events & VDUSE_RUNNER_KICK)
		ADD(rs.kicks, 1);
	if (events & VDUSE_RUNNER_POLL_ERR)
		ADD(rs.poll_errs, 1);
	if (events & VDUSE_RUNNER_POLL) {
		uint64_t v;

		if (read(rs.poll_fd, &v, sizeof(v)) == sizeof(v))
			ADD(rs.polls, 1);
	}
	while (vduse_vq_pop(vq, sizeof(struct vduse_vq_elem), &p) == 0) {
		struct vduse_vq_elem *elem = p;

		memset(elem->in_sg[0].iov_base, 0xee, elem->in_sg[0].iov_len);
		vduse_vq_push(vq, elem, (uint32_t)elem->in_sg[0].iov_len);
		free(elem);
		ADD(rs.handled, 1);
	}
	vduse_vq_notify(vq);
	ADD(rs.events, 1);
}

static void r_exit(struct vduse_vq *vq, void *opaque)
{
	unsigned int n;

	if (rs.exit_sleep_ms)
		usleep(rs.exit_sleep_ms * 1000);
	n = ADD(rs.exit, 1);

	if (n <= 8)
		rs.exit_saw_stops[n - 1] = LD(rs.queue_stops);
}

static void r_queue_stop(struct vduse_device *dev, struct vduse_vq *vq)
{
	ADD(rs.queue_stops, 1);
	tu_ops.queue_stop(dev, vq);
}

static const struct vduse_runner_ops r_ops = {
	.size = sizeof(struct vduse_runner_ops),
	.queue_init = r_init,
	.queue_event = r_event,
	.queue_exit = r_exit,
};

static uint32_t push_status(uint8_t status)
{
	struct vduse_dev_request req = { .type = VDUSE_SET_STATUS };

	req.s.status = status;
	return fk_push_msg(&req);
}

static bool answered(uint32_t id)
{
	struct vduse_dev_response resp;

	return fk_response(id, &resp) && resp.result == VDUSE_REQ_RESULT_OK;
}

/*
 * Guest memory, a device from @c with @nq rings at TU_RING0/1, a runner
 * with @ops started, and FEATURES_OK then DRIVER_OK answered.
 */
static void runner_up(const struct vduse_device_config *c,
		      const struct vduse_runner_ops *ops, unsigned int nq,
		      struct sim_vq *s, struct vduse_device **dev,
		      struct vduse_runner **r)
{
	const uint8_t fok = VIRTIO_CONFIG_S_FEATURES_OK;
	unsigned int i;
	uint32_t msg;

	tu_guest_memory();
	assert_int_equal(vduse_device_new(c, dev), 0);
	for (i = 0; i < nq; i++)
		sim_vq_init_at(&s[i], i, TU_QSIZE, i ? TU_RING1 : TU_RING0, 0);
	fk_set_features(tu_base_features());
	assert_int_equal(vduse_runner_new(*dev, ops, NULL, r), 0);
	assert_int_equal(vduse_runner_start(*r), 0);
	push_status(fok);
	msg = push_status(fok | VIRTIO_CONFIG_S_DRIVER_OK);
	WAIT_FOR(answered(msg));
}

static void test_runner(void **state)
{
	const uint8_t fok = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
			    VIRTIO_CONFIG_S_FEATURES_OK;
	struct vduse_device_config c = tu_config("run", 2, TU_QSIZE);
	struct vduse_device_ops dev_ops = tu_ops;
	struct sim_buf b[2] = {
		{ TU_DATA, 8, false },
		{ TU_DATA + 0x100, 32, true },
	};
	struct vduse_runner *r, *r2;
	struct vduse_device *dev;
	struct sim_vq s[2];
	uint32_t id, len, msg;
	uint64_t one = 1;
	int tag;

	memset(&rs, 0, sizeof(rs));
	rs.poll_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(rs.poll_fd >= 0);
	dev_ops.queue_stop = r_queue_stop;
	c.ops = &dev_ops;
	tu_guest_memory();
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	sim_vq_init_at(&s[0], 0, TU_QSIZE, TU_RING0, 0);
	sim_vq_init_at(&s[1], 1, TU_QSIZE, TU_RING1, 0);
	fk_set_features(tu_base_features());

	assert_int_equal(vduse_runner_new(dev, &r_ops, &tag, &r), 0);
	assert_int_equal(vduse_runner_new(dev, &r_ops, &tag, &r2), -EBUSY);
	assert_int_equal(vduse_runner_start(r), 0);
	assert_int_equal(vduse_runner_start(r), -EALREADY);

	/* DRIVER_OK through the device fd: the control thread starts both
	 * queue threads. */
	push_status(fok);
	msg = push_status(fok | VIRTIO_CONFIG_S_DRIVER_OK);
	WAIT_FOR(answered(msg));
	WAIT_FOR(LD(rs.init) == 2);
	assert_ptr_equal(rs.opaque_seen, &tag);
	assert_false(pthread_equal(rs.init_thread[0], pthread_self()));
	assert_false(pthread_equal(rs.init_thread[0], rs.init_thread[1]));
	/* Each queue thread gets one KICK right after init, for requests made
	 * available before its kick fd was armed. */
	WAIT_FOR(LD(rs.events) == 2);
	assert_int_equal(LD(rs.kicks), 2);

	/* A kick: queue 0's thread pops, completes and notifies. */
	sim_publish(&s[0], sim_add_chain(&s[0], b, 2));
	sim_kick(&s[0]);
	WAIT_FOR(sim_used_idx(&s[0]) == 1);
	WAIT_FOR(fk_vq_irqs(0) == 1);
	assert_true(sim_get_used(&s[0], &id, &len));
	assert_int_equal(len, 32);
	assert_int_equal(*(uint8_t *)fk_iova_ptr(TU_DATA + 0x11f), 0xee);
	assert_true(LD(rs.kicks) >= 1);
	assert_true(pthread_equal(rs.event_thread[0], rs.init_thread[0]));

	/* The backend's own fd wakes queue 1's thread. */
	assert_int_equal(write(rs.poll_fd, &one, sizeof(one)), sizeof(one));
	WAIT_FOR(LD(rs.polls) == 1);
	assert_true(pthread_equal(rs.event_thread[1], rs.init_thread[1]));

	/* Reset: each queue thread exits before queue_stop is called. */
	msg = push_status(0);
	WAIT_FOR(answered(msg));
	assert_int_equal(LD(rs.exit), 2);
	assert_int_equal(rs.exit_saw_stops[0], 0);
	/* Both threads were told to stop at once: the second may end before
	 * or after the first queue's queue_stop. */
	assert_true(rs.exit_saw_stops[1] <= 1);
	assert_int_equal(LD(tu_cb.queue_stop), 2);
	assert_int_equal(LD(tu_cb.reset), 1);

	/* And again, then free the runner with the queues running. */
	sim_vq_init_at(&s[0], 0, TU_QSIZE, TU_RING0, 0);
	sim_vq_init_at(&s[1], 1, TU_QSIZE, TU_RING1, 0);
	push_status(fok);
	msg = push_status(fok | VIRTIO_CONFIG_S_DRIVER_OK);
	WAIT_FOR(answered(msg));
	WAIT_FOR(LD(rs.init) == 4);
	vduse_runner_free(r);
	assert_int_equal(LD(rs.exit), 4);

	/* The device is the application's again: it processes by hand, and a
	 * new runner can be attached. */
	assert_int_equal(sim_set_status(dev, 0), VDUSE_REQ_RESULT_OK);
	assert_int_equal(LD(rs.exit), 4);
	assert_int_equal(vduse_runner_new(dev, &r_ops, NULL, &r2), 0);
	vduse_runner_free(r2);

	vduse_device_free(dev);
	close(rs.poll_fd);
	assert_int_equal(fk_live_fds(), 0);
	assert_int_equal(fk_live_maps(), 0);
	assert_int_equal(fk_bad_closes(), 0);
}

static int init_fails(struct vduse_vq *vq, void *opaque, int *poll_fd)
{
	ADD(rs.init, 1);
	return -ENOMEM;
}

/* A queue whose init failed gets no events and no queue_exit. */
static void test_runner_init_fails(void **state)
{
	const struct vduse_runner_ops ops = {
		.size = sizeof(ops),
		.queue_init = init_fails,
		.queue_event = r_event,
		.queue_exit = r_exit,
	};
	struct vduse_device_config c = tu_config("runf", 1, TU_QSIZE);
	struct vduse_runner *r;
	struct vduse_device *dev;
	struct sim_vq s;
	struct sim_buf b = { TU_DATA, 8, true };

	memset(&rs, 0, sizeof(rs));
	runner_up(&c, &ops, 1, &s, &dev, &r);
	WAIT_FOR(LD(rs.init) == 1);
	sim_publish(&s, sim_add_chain(&s, &b, 1));
	sim_kick(&s);
	usleep(20000);
	assert_int_equal(LD(rs.events), 0);
	assert_int_equal(sim_used_idx(&s), 0);
	assert_true(tu_log_contains("init failed"));
	vduse_runner_free(r);
	assert_int_equal(LD(rs.exit), 0);
	vduse_device_free(dev);
	assert_int_equal(fk_live_fds(), 0);
}

static int init_poll_all(struct vduse_vq *vq, void *opaque, int *poll_fd)
{
	*poll_fd = rs.poll_fd;
	ADD(rs.init, 1);
	return 0;
}

static long ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000 +
	       (now.tv_nsec - t->tv_nsec) / 1000000;
}

enum poll_err_kind { HANGUP, ERROR, INVALID };

/*
 * The backend's poll fd reports POLLHUP, POLLERR or POLLNVAL: the queue
 * thread tells the backend once, stops polling the fd instead of spinning
 * on it, and still serves kicks.
 */
static void poll_err_case(enum poll_err_kind kind, const char *name)
{
	const struct vduse_runner_ops ops = {
		.size = sizeof(ops),
		.queue_init = init_poll_all,
		.queue_event = r_event,
		.queue_exit = r_exit,
	};
	struct vduse_device_config c = tu_config("runp", 1, TU_QSIZE);
	struct sim_buf b = { TU_DATA, 16, true };
	struct vduse_runner *r;
	struct vduse_device *dev;
	unsigned int before;
	struct sim_vq s;
	int p[2] = { -1, -1 };
	char want[64];

	memset(&rs, 0, sizeof(rs));
	if (kind == INVALID) {
		/* A number no fd of this process has. */
		rs.poll_fd = 900;
		assert_int_equal(fcntl(rs.poll_fd, F_GETFD), -1);
	} else {
		assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
		/* Hang-up: the reader of a pipe nobody writes; error: the
		 * writer of a pipe nobody reads. */
		rs.poll_fd = kind == HANGUP ? p[0] : p[1];
	}
	runner_up(&c, &ops, 1, &s, &dev, &r);
	WAIT_FOR(LD(rs.init) == 1);
	WAIT_FOR(LD(rs.events) >= 1);

	if (kind == HANGUP)
		close(p[1]);
	else if (kind == ERROR)
		close(p[0]);
	WAIT_FOR(LD(rs.poll_errs) == 1);
	/* No spinning: over 100 ms, the thread is not woken again. */
	before = LD(rs.events);
	usleep(100000);
	assert_true(LD(rs.events) - before <= 1);
	assert_int_equal(LD(rs.poll_errs), 1);
	snprintf(want, sizeof(want), "poll fd %d reports %s", rs.poll_fd,
		 name);
	assert_true(tu_log_contains(want));
	assert_true(tu_log_contains("no longer polling it"));

	/* Kicks still work. */
	sim_publish(&s, sim_add_chain(&s, &b, 1));
	sim_kick(&s);
	WAIT_FOR(sim_used_idx(&s) == 1);
	assert_int_equal(LD(rs.handled), 1);
	assert_int_equal(LD(rs.poll_errs), 1);

	vduse_runner_free(r);
	assert_int_equal(LD(rs.exit), 1);
	vduse_device_free(dev);
	if (kind == HANGUP)
		close(p[0]);
	else if (kind == ERROR)
		close(p[1]);
	assert_int_equal(fk_live_fds(), 0);
}

static void test_runner_poll_fd_hangup(void **state)
{
	poll_err_case(HANGUP, "POLLHUP");
}

static void test_runner_poll_fd_error(void **state)
{
	poll_err_case(ERROR, "POLLERR");
}

static void test_runner_poll_fd_invalid(void **state)
{
	poll_err_case(INVALID, "POLLNVAL");
}

static struct {
	unsigned int calls;
	int err;
	struct vduse_runner *r;
	void *opaque;
	pthread_t thread;
} cf;

static void r_control_failed(struct vduse_runner *r, void *opaque, int err)
{
	cf.err = err;
	cf.r = r;
	cf.opaque = opaque;
	cf.thread = pthread_self();
	ADD(cf.calls, 1);
}

static bool readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/* Start a runner with r_control_failed; status 0 and a quiet fd so far. */
static struct vduse_runner *start_watched(struct vduse_device *dev, int *tag)
{
	const struct vduse_runner_ops ops = {
		.size = sizeof(ops),
		.control_failed = r_control_failed,
	};
	struct vduse_runner *r;

	memset(&cf, 0, sizeof(cf));
	assert_int_equal(vduse_runner_new(dev, &ops, tag, &r), 0);
	assert_true(vduse_runner_fd(r) >= 0);
	assert_int_equal(vduse_runner_status(r), 0);
	assert_false(readable(vduse_runner_fd(r)));
	assert_int_equal(vduse_runner_start(r), 0);
	return r;
}

/* The application learns that the control thread died, three ways. */
static void check_died(struct vduse_runner *r, int *tag, int err)
{
	WAIT_FOR(readable(vduse_runner_fd(r)));
	assert_int_equal(vduse_runner_status(r), err);
	assert_int_equal(LD(cf.calls), 1);
	assert_int_equal(cf.err, err);
	assert_ptr_equal(cf.r, r);
	assert_ptr_equal(cf.opaque, tag);
	assert_false(pthread_equal(cf.thread, pthread_self()));
	/* It stays readable: the library never drains it. */
	assert_true(readable(vduse_runner_fd(r)));
	assert_int_equal(vduse_runner_start(r), -EALREADY);
}

/* vduse_device_process() fails: the control thread ends and says so. */
static void test_runner_control_fails(void **state)
{
	struct vduse_device_config c = tu_config("runc", 1, TU_QSIZE);
	struct vduse_device *dev;
	struct vduse_runner *r;
	uint32_t msg;
	int tag;

	assert_int_equal(vduse_device_new(&c, &dev), 0);
	r = start_watched(dev, &tag);

	/* A message that is answered: still alive. */
	msg = push_status(VIRTIO_CONFIG_S_ACKNOWLEDGE);
	WAIT_FOR(answered(msg));
	usleep(10000);
	assert_int_equal(vduse_runner_status(r), 0);
	assert_false(readable(vduse_runner_fd(r)));
	assert_int_equal(LD(cf.calls), 0);

	fk_fail(FK_READ, -EIO, 0);
	msg = push_status(VIRTIO_CONFIG_S_ACKNOWLEDGE |
			  VIRTIO_CONFIG_S_DRIVER);
	check_died(r, &tag, -EIO);
	assert_false(answered(msg));
	assert_true(tu_log_contains("stopping the control thread: Input/output error"));

	vduse_runner_free(r);
	vduse_device_free(dev);
	assert_int_equal(fk_live_fds(), 0);
}

/* The device fd reports POLLERR: the control thread ends with -EIO. */
static void test_runner_device_fd_error(void **state)
{
	struct vduse_device_config c = tu_config("rune", 1, TU_QSIZE);
	struct vduse_device *dev;
	struct vduse_runner *r;
	int p[2], tag;

	assert_int_equal(vduse_device_new(&c, &dev), 0);
	/* Behind the fake's back, the device fd becomes the writer of a pipe
	 * nobody reads, which polls as POLLERR. */
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	assert_int_equal(dup2(p[1], vduse_device_fd(dev)),
			 vduse_device_fd(dev));
	close(p[1]);
	r = start_watched(dev, &tag);
	check_died(r, &tag, -EIO);
	assert_true(tu_log_contains("stopping the control thread: the device fd reports POLLERR"));
	vduse_runner_free(r);
	vduse_device_free(dev);
	assert_int_equal(fk_live_fds(), 0);
}

/*
 * A reset stops every queue thread in parallel: two queue_exit calls of
 * 300 ms each take about 300 ms, not 600.  A thread slower than
 * stop_slow_ms is named in the log.
 */
static void parallel_stop_case(unsigned int slow_ms, bool behind)
{
	const struct vduse_runner_ops ops = {
		.size = sizeof(ops),
		.queue_init = r_init,
		.queue_event = r_event,
		.queue_exit = r_exit,
		.stop_slow_ms = slow_ms,
	};
	const uint8_t fok = VIRTIO_CONFIG_S_FEATURES_OK;
	struct vduse_device_config c = tu_config("runs", 2, TU_QSIZE);
	struct vduse_runner *r;
	struct vduse_device *dev;
	struct sim_vq s[2];
	struct timespec t0;
	uint32_t msg;
	long ms;

	memset(&rs, 0, sizeof(rs));
	rs.poll_fd = -1;
	rs.exit_sleep_ms = 300;
	runner_up(&c, &ops, 2, s, &dev, &r);
	WAIT_FOR(LD(rs.init) == 2);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	msg = push_status(0);
	WAIT_FOR(answered(msg));
	ms = ms_since(&t0);
	if (behind) {
		/* Answered at the limit, without the threads. */
		assert_true(ms >= 100);
		assert_true(ms < 250);
		assert_int_equal(LD(tu_cb.queue_stop), 0);
		assert_true(tu_log_contains("queue 0: slow to stop: its thread is still running 100 ms after it was told to stop (in queue_exit or queue_event); the queue stops without it"));
		assert_true(tu_log_contains("queue 1: slow to stop"));
		/* They end; the control thread reaps them. */
		WAIT_FOR(LD(tu_cb.queue_stop) == 2);
		assert_int_equal(LD(rs.exit), 2);
		assert_true(tu_log_contains("queue 0: its thread stopped after"));
		assert_true(tu_log_contains("queue 1: its thread stopped after"));
	} else {
		assert_int_equal(LD(rs.exit), 2);
		assert_int_equal(LD(tu_cb.queue_stop), 2);
		assert_true(ms >= 300);
		assert_true(ms < 500);
		assert_false(tu_log_contains("slow to stop"));
	}

	/* vduse_runner_free() stops the queue threads in parallel too. */
	sim_vq_init_at(&s[0], 0, TU_QSIZE, TU_RING0, 0);
	sim_vq_init_at(&s[1], 1, TU_QSIZE, TU_RING1, 0);
	push_status(fok);
	msg = push_status(fok | VIRTIO_CONFIG_S_DRIVER_OK);
	WAIT_FOR(answered(msg));
	WAIT_FOR(LD(rs.init) == 4);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	vduse_runner_free(r);
	ms = ms_since(&t0);
	assert_int_equal(LD(rs.exit), 4);
	assert_true(ms >= 300);
	assert_true(ms < 500);

	assert_int_equal(sim_set_status(dev, 0), VDUSE_REQ_RESULT_OK);
	vduse_device_free(dev);
	assert_int_equal(fk_live_fds(), 0);
	assert_int_equal(fk_live_maps(), 0);
}

static void test_runner_parallel_stop_slow(void **state)
{
	parallel_stop_case(100, true);
}

static void test_runner_parallel_stop_in_time(void **state)
{
	parallel_stop_case(1000, false);
}

static void test_runner_bad_args(void **state)
{
	struct vduse_runner_ops ops = { .size = 0 };
	struct vduse_device_config c = tu_config("runa", 1, 8);
	struct vduse_device *dev;
	struct vduse_runner *r;

	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_int_equal(vduse_runner_new(dev, &ops, NULL, &r), -EINVAL);
	assert_int_equal(vduse_runner_new(NULL, &r_ops, NULL, &r), -EINVAL);
	assert_int_equal(vduse_runner_new(dev, NULL, NULL, &r), -EINVAL);
	assert_int_equal(vduse_runner_start(NULL), -EINVAL);
	assert_int_equal(vduse_runner_status(NULL), -EINVAL);
	assert_int_equal(vduse_runner_fd(NULL), -EINVAL);
	/* Its eventfd cannot be created: nothing is left behind, and the
	 * device takes a runner afterwards. */
	fk_fail(FK_EVENTFD, -EMFILE, 0);
	assert_int_equal(vduse_runner_new(dev, &r_ops, NULL, &r), -EMFILE);
	assert_null(r);
	assert_true(tu_log_contains("cannot create its eventfd"));
	/* The stop eventfd cannot be created: nothing is left behind. */
	assert_int_equal(vduse_runner_new(dev, &r_ops, NULL, &r), 0);
	fk_fail(FK_EVENTFD, -EMFILE, 0);
	assert_int_equal(vduse_runner_start(r), -EMFILE);
	vduse_runner_free(r);
	vduse_device_free(dev);
	assert_int_equal(fk_live_fds(), 0);
}

/*
 * A queue thread that holds a popped element past the stop limit: the
 * reset is answered without it, the element's buffer stays mapped (even
 * across an UPDATE_IOTLB of everything) and writable until the thread
 * ends, its late push fails cleanly, and only then is queue_stop called
 * and the mapping dropped.  A DRIVER_OK meanwhile waits for the thread.
 */
static struct vduse_vq_elem *behind_elem;
static int behind_push = 1;

static void hold_event(struct vduse_vq *vq, void *opaque, unsigned int events)
{
	void *p;

	if (!behind_elem && vduse_vq_pop(vq, sizeof(*behind_elem), &p) == 0) {
		behind_elem = p;
		ADD(rs.handled, 1);
	}
	ADD(rs.events, 1);
}

static void hold_exit(struct vduse_vq *vq, void *opaque)
{
	usleep(300 * 1000);
	if (behind_elem) {
		memset(behind_elem->in_sg[0].iov_base, 0x5a,
		       behind_elem->in_sg[0].iov_len);
		__atomic_store_n(&behind_push,
				 vduse_vq_push(vq, behind_elem, 16),
				 __ATOMIC_SEQ_CST);
		free(behind_elem);
		behind_elem = NULL;
	}
	ADD(rs.exit, 1);
}

static void test_runner_left_behind(void **state)
{
	const struct vduse_runner_ops ops = {
		.size = sizeof(ops),
		.queue_init = r_init,
		.queue_event = hold_event,
		.queue_exit = hold_exit,
		.stop_slow_ms = 50,
	};
	struct vduse_device_config c = tu_config("runl", 1, TU_QSIZE);
	struct vduse_dev_request req = { .type = VDUSE_UPDATE_IOTLB };
	struct sim_buf b = { TU_DATA + 0x300, 16, true };
	const uint8_t fok = VIRTIO_CONFIG_S_FEATURES_OK;
	struct vduse_runner *r;
	struct vduse_device *dev;
	struct timespec t0;
	struct sim_vq s;
	uint32_t msg;

	memset(&rs, 0, sizeof(rs));
	behind_push = 1;
	runner_up(&c, &ops, 1, &s, &dev, &r);
	sim_publish(&s, sim_add_chain(&s, &b, 1));
	sim_kick(&s);
	WAIT_FOR(LD(rs.handled) == 1);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	msg = push_status(0);
	WAIT_FOR(answered(msg));
	assert_true(ms_since(&t0) < 250);
	req.iova.start = 0;
	req.iova.last = UINT64_MAX;
	msg = fk_push_msg(&req);
	WAIT_FOR(answered(msg));
	assert_int_equal(LD(rs.exit), 0);		/* still sleeping */
	assert_int_equal(LD(tu_cb.queue_stop), 0);
	assert_int_equal(fk_live_maps_in(TU_DATA, TU_DATA), 1);
	assert_true(tu_log_contains("queue 0 stopped without its thread"));

	/* DRIVER_OK again before the thread ends: the start waits for it. */
	sim_vq_init_at(&s, 0, TU_QSIZE, TU_RING0, 0);
	push_status(fok);
	msg = push_status(fok | VIRTIO_CONFIG_S_DRIVER_OK);
	WAIT_FOR(answered(msg));
	assert_int_equal(LD(rs.exit), 1);
	assert_int_equal(__atomic_load_n(&behind_push, __ATOMIC_SEQ_CST), -EIO);
	assert_int_equal(*(uint8_t *)fk_iova_ptr(TU_DATA + 0x30f), 0x5a);
	assert_int_equal(LD(tu_cb.queue_stop), 1);
	assert_int_equal(fk_live_maps_in(TU_DATA, TU_DATA), 0);
	WAIT_FOR(LD(rs.init) == 2);
	assert_true(vduse_vq_started(vduse_device_vq(dev, 0)));

	vduse_runner_free(r);
	assert_int_equal(sim_set_status(dev, 0), VDUSE_REQ_RESULT_OK);
	vduse_device_free(dev);
	assert_int_equal(fk_live_fds(), 0);
	assert_int_equal(fk_live_maps(), 0);
}

/*
 * queue_run: the backend owns the queue thread's wait.  qr_run() waits on
 * the kick fd and the stop fd in one poll(), as a backend waiting in its
 * own io_uring would, and records the order of events.
 */
enum qr_mode { QR_SERVE, QR_DECLINE, QR_EARLY, QR_DEAF };

static struct {
	enum qr_mode mode;
	unsigned int runs, returned, served, exit_after_return;
	int stop_fd;
	pthread_t run_thread, init_thread;
} qr;

static int qr_init(struct vduse_vq *vq, void *opaque, int *poll_fd)
{
	qr.init_thread = pthread_self();
	ADD(rs.init, 1);
	return 0;
}

static int qr_run(struct vduse_vq *vq, void *opaque, int stop_fd)
{
	struct pollfd fds[2] = {
		{ .fd = stop_fd, .events = POLLIN },
		{ .fd = vduse_vq_kick_fd(vq), .events = POLLIN },
	};
	void *p;

	qr.run_thread = pthread_self();
	qr.stop_fd = stop_fd;
	ADD(qr.runs, 1);
	switch (qr.mode) {
	case QR_DECLINE:
		return -EOPNOTSUPP;
	case QR_EARLY:
		ADD(qr.returned, 1);
		return 0;
	case QR_DEAF:
		/* Never looks at the stop fd: the slow-stop limit applies. */
		usleep(300 * 1000);
		ADD(qr.returned, 1);
		return 0;
	case QR_SERVE:
		break;
	}
	for (;;) {
		if (poll(fds, 2, -1) < 0)
			continue;
		if (fds[0].revents)
			break;
		vduse_vq_kick_drain(vq);
		while (vduse_vq_pop(vq, sizeof(struct vduse_vq_elem), &p) == 0) {
			struct vduse_vq_elem *elem = p;

			vduse_vq_push(vq, elem, 0);
			free(elem);
			ADD(qr.served, 1);
		}
		vduse_vq_notify(vq);
	}
	ADD(qr.returned, 1);
	return 0;
}

static void qr_exit(struct vduse_vq *vq, void *opaque)
{
	if (LD(qr.returned) == LD(qr.runs))
		ADD(qr.exit_after_return, 1);
	ADD(rs.exit, 1);
}

static void qr_up(enum qr_mode mode, unsigned int slow_ms, const char *name,
		  struct sim_vq *s, struct vduse_device **dev,
		  struct vduse_runner **r)
{
	const struct vduse_runner_ops ops = {
		.size = sizeof(ops),
		.queue_init = qr_init,
		.queue_event = r_event,
		.queue_exit = qr_exit,
		.queue_run = qr_run,
		.stop_slow_ms = slow_ms,
	};
	struct vduse_device_config c = tu_config(name, 1, TU_QSIZE);

	memset(&rs, 0, sizeof(rs));
	memset(&qr, 0, sizeof(qr));
	rs.poll_fd = -1;
	qr.mode = mode;
	runner_up(&c, &ops, 1, s, dev, r);
	WAIT_FOR(LD(qr.runs) == 1);
}

static void qr_down(struct vduse_device *dev)
{
	assert_int_equal(sim_set_status(dev, 0), VDUSE_REQ_RESULT_OK);
	vduse_device_free(dev);
	assert_int_equal(fk_live_fds(), 0);
	assert_int_equal(fk_live_maps(), 0);
}

/*
 * The backend's loop serves kicks in the queue thread, no queue_event is
 * called, and a reset, then vduse_runner_free(), make it return before
 * queue_exit and queue_stop run.
 */
static void test_runner_queue_run(void **state)
{
	const uint8_t fok = VIRTIO_CONFIG_S_FEATURES_OK;
	struct sim_buf b = { TU_DATA, 16, true };
	struct vduse_runner *r;
	struct vduse_device *dev;
	struct sim_vq s;
	uint32_t msg;

	qr_up(QR_SERVE, 0, "runq", &s, &dev, &r);
	assert_true(pthread_equal(qr.run_thread, qr.init_thread));
	assert_false(pthread_equal(qr.run_thread, pthread_self()));
	assert_true(qr.stop_fd >= 0);

	sim_publish(&s, sim_add_chain(&s, &b, 1));
	sim_kick(&s);
	WAIT_FOR(sim_used_idx(&s) == 1);
	WAIT_FOR(fk_vq_irqs(0) == 1);
	assert_int_equal(LD(qr.served), 1);
	assert_int_equal(LD(rs.events), 0);

	/* Reset: answered once the backend's loop returned and queue_exit
	 * ran, then queue_stop. */
	msg = push_status(0);
	WAIT_FOR(answered(msg));
	assert_int_equal(LD(qr.returned), 1);
	assert_int_equal(LD(rs.exit), 1);
	assert_int_equal(LD(qr.exit_after_return), 1);
	assert_int_equal(LD(tu_cb.queue_stop), 1);
	assert_false(tu_log_contains("slow to stop"));

	/* Started again; vduse_runner_free() stops it the same way. */
	sim_vq_init_at(&s, 0, TU_QSIZE, TU_RING0, 0);
	push_status(fok);
	msg = push_status(fok | VIRTIO_CONFIG_S_DRIVER_OK);
	WAIT_FOR(answered(msg));
	WAIT_FOR(LD(qr.runs) == 2);
	vduse_runner_free(r);
	assert_int_equal(LD(qr.returned), 2);
	assert_int_equal(LD(rs.exit), 2);
	assert_int_equal(LD(qr.exit_after_return), 2);
	assert_int_equal(LD(rs.events), 0);
	qr_down(dev);
}

/* queue_run declines: the runner's own loop takes over, KICK first. */
static void test_runner_queue_run_declines(void **state)
{
	struct sim_buf b = { TU_DATA, 16, true };
	struct vduse_runner *r;
	struct vduse_device *dev;
	struct sim_vq s;
	uint32_t msg;

	qr_up(QR_DECLINE, 0, "runqd", &s, &dev, &r);
	WAIT_FOR(LD(rs.events) == 1);
	assert_int_equal(LD(rs.kicks), 1);
	sim_publish(&s, sim_add_chain(&s, &b, 1));
	sim_kick(&s);
	WAIT_FOR(sim_used_idx(&s) == 1);
	assert_int_equal(LD(rs.handled), 1);
	msg = push_status(0);
	WAIT_FOR(answered(msg));
	assert_int_equal(LD(rs.exit), 1);
	assert_int_equal(LD(qr.runs), 1);
	vduse_runner_free(r);
	assert_int_equal(LD(rs.exit), 1);
	qr_down(dev);
}

/*
 * queue_run returns 0 without being told to stop: logged, and the thread
 * idles (no queue_event, no queue_exit) until the queue stops.
 */
static void test_runner_queue_run_early(void **state)
{
	struct sim_buf b = { TU_DATA, 16, true };
	struct vduse_runner *r;
	struct vduse_device *dev;
	struct sim_vq s;
	uint32_t msg;

	qr_up(QR_EARLY, 0, "runqe", &s, &dev, &r);
	WAIT_FOR(tu_log_contains("queue_run returned before the queue was told to stop"));
	sim_publish(&s, sim_add_chain(&s, &b, 1));
	sim_kick(&s);
	usleep(20000);
	assert_int_equal(LD(rs.events), 0);
	assert_int_equal(LD(rs.exit), 0);
	assert_int_equal(sim_used_idx(&s), 0);
	msg = push_status(0);
	WAIT_FOR(answered(msg));
	assert_int_equal(LD(rs.exit), 1);
	assert_int_equal(LD(tu_cb.queue_stop), 1);
	vduse_runner_free(r);
	qr_down(dev);
}

/*
 * A queue_run that does not watch the stop fd is left behind at
 * stop_slow_ms like a slow queue_exit, and reaped once it returns.
 */
static void test_runner_queue_run_deaf(void **state)
{
	struct vduse_runner *r;
	struct vduse_device *dev;
	struct timespec t0;
	struct sim_vq s;
	uint32_t msg;

	qr_up(QR_DEAF, 50, "runqs", &s, &dev, &r);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	msg = push_status(0);
	WAIT_FOR(answered(msg));
	assert_true(ms_since(&t0) < 250);
	assert_true(tu_log_contains("queue 0: slow to stop"));
	WAIT_FOR(LD(tu_cb.queue_stop) == 1);
	assert_int_equal(LD(rs.exit), 1);
	assert_int_equal(LD(qr.exit_after_return), 1);
	assert_true(tu_log_contains("queue 0: its thread stopped after"));
	assert_false(tu_log_contains("queue_run returned before"));
	vduse_runner_free(r);
	qr_down(dev);
}

#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_runner),
		T(test_runner_init_fails),
		T(test_runner_poll_fd_hangup),
		T(test_runner_poll_fd_error),
		T(test_runner_poll_fd_invalid),
		T(test_runner_control_fails),
		T(test_runner_device_fd_error),
		T(test_runner_parallel_stop_slow),
		T(test_runner_parallel_stop_in_time),
		T(test_runner_left_behind),
		T(test_runner_queue_run),
		T(test_runner_queue_run_declines),
		T(test_runner_queue_run_early),
		T(test_runner_queue_run_deaf),
		T(test_runner_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
