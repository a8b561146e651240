// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The runner: a control thread that answers the kernel's messages, and one
 * pthread per started queue that waits on the queue's kick fd (and an
 * optional fd of the backend's) and calls the backend, or hands that wait
 * to the backend (vduse_runner_ops.queue_run) with the fd that tells it to
 * stop.  It is built only on the public core API plus the queue start/stop
 * hooks.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "sys.h"

/* Default for vduse_runner_ops.stop_slow_ms. */
#define STOP_SLOW_MS	5000u

struct runner_queue {
	struct vduse_runner *r;
	struct vduse_vq *vq;
	pthread_t thread;
	int stop_fd;
	/* Only the thread that starts and stops queues touches these. */
	bool running;		/* a thread exists and has not been joined */
	bool stopping;		/* stop_fd was signalled, at stop_at */
	struct timespec stop_at;	/* CLOCK_MONOTONIC */
	bool exited;		/* under r->lock: the thread is ending, */
	struct timespec exited_at;	/* since then */
	bool behind;		/* its queue was stopped without it */
};

struct vduse_runner {
	struct vduse_device *dev;
	struct vduse_runner_ops ops;
	void *opaque;
	pthread_t control;
	bool control_running;
	int stop_fd;
	int status;		/* atomic: 0, or why the control thread ended */
	int status_fd;		/* readable once status is set */
	int reap_fd;		/* a queue thread ended: reap left-behind ones */
	pthread_mutex_t lock;	/* protects queues[].exited */
	pthread_cond_t exited;	/* broadcast when one becomes true */
	struct runner_queue *queues;
};

/* Runner threads leave every signal to the application's threads. */
static int spawn(pthread_t *th, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int ret;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(th, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

static int new_event_fd(void)
{
	return vduse_sys->eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

static void signal_fd(int fd)
{
	uint64_t one = 1;

	if (vduse_sys->write(fd, &one, sizeof(one)) != sizeof(one))
		vduse_err("runner: cannot signal an eventfd");
}

static const char *poll_err_name(short revents)
{
	if (revents & POLLNVAL)
		return "POLLNVAL";
	if (revents & POLLERR)
		return "POLLERR";
	return "POLLHUP";
}

static bool fd_readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	while (poll(&pfd, 1, timeout_ms) < 0)
		if (errno != EINTR)
			return false;
	return pfd.revents != 0;
}

/*
 * The backend owns the wait (queue_run).  Returns true when the thread is
 * done (told to stop), false when the runner's own loop takes over.
 */
static bool backend_run(struct runner_queue *q)
{
	struct vduse_runner *r = q->r;
	struct vduse_vq *vq = q->vq;
	int ret;

	ret = r->ops.queue_run(vq, r->opaque, q->stop_fd);
	if (ret < 0) {
		vduse_dbg("%s: queue %u: the backend hands the wait back: %s",
			  vq->dev->name, vq->index, strerror(-ret));
		return false;
	}
	if (fd_readable(q->stop_fd, 0))
		return true;
	vduse_err("%s: queue %u: queue_run returned before the queue was told to stop; the queue idles until then",
		  vq->dev->name, vq->index);
	while (!fd_readable(q->stop_fd, -1))
		;
	return true;
}

static void *queue_thread(void *arg)
{
	struct runner_queue *q = arg;
	struct vduse_runner *r = q->r;
	struct vduse_vq *vq = q->vq;
	int poll_fd = -1, ret = 0;

	if (r->ops.queue_init)
		ret = r->ops.queue_init(vq, r->opaque, &poll_fd);
	if (ret < 0) {
		vduse_err("%s: queue %u: backend init failed: %s",
			  vq->dev->name, vq->index, strerror(-ret));
		poll_fd = -1;
	}
	/* Nobody would consume the poll fd's readiness: do not spin on it. */
	if (!r->ops.queue_event)
		poll_fd = -1;
	if (ret == 0 && r->ops.queue_run && backend_run(q))
		goto out;
	/* Requests may be waiting from before the kick fd was armed. */
	if (ret == 0 && r->ops.queue_event)
		r->ops.queue_event(vq, r->opaque, VDUSE_RUNNER_KICK);

	for (;;) {
		struct pollfd fds[3] = {
			{ .fd = q->stop_fd, .events = POLLIN },
			{ .fd = ret < 0 ? -1 : vq->kick_fd, .events = POLLIN },
			{ .fd = poll_fd, .events = POLLIN },
		};
		unsigned int events = 0;

		if (poll(fds, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			vduse_err("%s: queue %u: poll: %s", vq->dev->name,
				  vq->index, strerror(errno));
			break;
		}
		if (fds[0].revents)
			break;
		if (fds[1].revents) {
			vduse_vq_kick_drain(vq);
			events |= VDUSE_RUNNER_KICK;
		}
		if (fds[2].revents & POLLIN)
			events |= VDUSE_RUNNER_POLL;
		/* Errors and hang-ups are level-triggered: never poll again. */
		if (fds[2].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			vduse_warn("%s: queue %u: the backend's poll fd %d reports %s; no longer polling it",
				   vq->dev->name, vq->index, poll_fd,
				   poll_err_name(fds[2].revents));
			poll_fd = -1;
			events |= VDUSE_RUNNER_POLL_ERR;
		}
		if (events && r->ops.queue_event)
			r->ops.queue_event(vq, r->opaque, events);
	}

out:
	if (ret == 0 && r->ops.queue_exit)
		r->ops.queue_exit(vq, r->opaque);
	pthread_mutex_lock(&r->lock);
	clock_gettime(CLOCK_MONOTONIC, &q->exited_at);
	q->exited = true;
	pthread_cond_broadcast(&r->exited);
	pthread_mutex_unlock(&r->lock);
	/* If its queue was stopped without it, the control thread reaps it. */
	signal_fd(r->reap_fd);
	return NULL;
}

static int hook_start(void *data, struct vduse_vq *vq)
{
	struct vduse_runner *r = data;
	struct runner_queue *q = &r->queues[vq->index];
	int ret;

	q->stop_fd = new_event_fd();
	if (q->stop_fd < 0)
		return q->stop_fd;
	q->r = r;
	q->vq = vq;
	q->stopping = false;
	q->exited = false;
	ret = spawn(&q->thread, queue_thread, q);
	if (ret < 0) {
		vduse_sys->close(q->stop_fd);
		q->stop_fd = -1;
		return ret;
	}
	q->running = true;
	return 0;
}

/* Tell a queue's thread to stop, without waiting for it. */
static void tell_stop(struct runner_queue *q)
{
	if (!q->running || q->stopping)
		return;
	clock_gettime(CLOCK_MONOTONIC, &q->stop_at);
	signal_fd(q->stop_fd);
	q->stopping = true;
}

static void tell_stop_all(void *data)
{
	struct vduse_runner *r = data;
	unsigned int i;

	for (i = 0; i < r->dev->num_queues; i++)
		tell_stop(&r->queues[i]);
}

static long ms_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000 +
	       (b->tv_nsec - a->tv_nsec) / 1000000;
}

static unsigned int slow_limit(const struct vduse_runner *r)
{
	return r->ops.stop_slow_ms ? r->ops.stop_slow_ms : STOP_SLOW_MS;
}

/* The thread has ended (q->exited): join it and forget it. */
static void finish_join(struct runner_queue *q)
{
	pthread_join(q->thread, NULL);
	vduse_sys->close(q->stop_fd);
	q->stop_fd = -1;
	q->running = false;
	q->stopping = false;
	q->behind = false;
}

/* How long the ended thread took to stop.  Called with r->lock held. */
static long took_ms(const struct runner_queue *q)
{
	return ms_between(&q->stop_at, &q->exited_at);
}

/*
 * Wait until the thread has ended.  With @limited, give up at the slow
 * limit: say which queue is slow, leave the thread behind (returns true)
 * and let the queue stop without it; the library keeps what its elements
 * point at mapped, and reap_queue() finishes the job once it has ended.
 * Without @limited (the runner is being freed), keep waiting.
 */
static bool join_queue(struct vduse_runner *r, struct runner_queue *q,
		       bool limited)
{
	unsigned int limit = slow_limit(r);
	struct timespec deadline;
	bool late = false;
	long took;

	if (!q->running || q->behind)
		return q->behind;
	tell_stop(q);
	deadline = q->stop_at;
	deadline.tv_sec += limit / 1000;
	deadline.tv_nsec += (long)(limit % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}

	pthread_mutex_lock(&r->lock);
	while (!q->exited &&
	       pthread_cond_timedwait(&r->exited, &r->lock, &deadline) !=
	       ETIMEDOUT)
		;
	if (!q->exited) {
		/* No callback, not even logging, under the lock. */
		pthread_mutex_unlock(&r->lock);
		if (limited) {
			vduse_err("%s: queue %u: slow to stop: its thread is still running %u ms after it was told to stop (in queue_exit or queue_event); the queue stops without it",
				  r->dev->name, q->vq->index, limit);
			q->behind = true;
			return true;
		}
		late = true;
		vduse_err("%s: queue %u: slow to stop: its thread is still running %u ms after it was told to stop (in queue_exit or queue_event); waiting for it",
			  r->dev->name, q->vq->index, limit);
		pthread_mutex_lock(&r->lock);
		while (!q->exited)
			pthread_cond_wait(&r->exited, &r->lock);
	}
	took = took_ms(q);
	pthread_mutex_unlock(&r->lock);
	finish_join(q);
	if (late)
		vduse_warn("%s: queue %u: its thread stopped after %ld ms",
			   r->dev->name, q->vq->index, took);
	else if (took > (long)limit)
		/* It ended while another queue was being waited for. */
		vduse_err("%s: queue %u: slow to stop: its thread took %ld ms (limit %u ms)",
			  r->dev->name, q->vq->index, took, limit);
	return false;
}

/*
 * A thread left behind by a stop: wait for it (@wait) or only take it if
 * it has ended, then let the library release its queue.  On the thread
 * that starts and stops queues.
 */
static void reap_queue(struct vduse_runner *r, struct runner_queue *q,
		       bool wait)
{
	long took;

	if (!q->behind)
		return;
	pthread_mutex_lock(&r->lock);
	if (!q->exited && !wait) {
		pthread_mutex_unlock(&r->lock);
		return;
	}
	while (!q->exited)
		pthread_cond_wait(&r->exited, &r->lock);
	took = took_ms(q);
	pthread_mutex_unlock(&r->lock);
	finish_join(q);
	vduse_warn("%s: queue %u: its thread stopped after %ld ms",
		   r->dev->name, q->vq->index, took);
	vduse_vq_left_behind_gone(q->vq);
}

static void reap_ended(struct vduse_runner *r)
{
	unsigned int i;
	uint64_t v;

	vduse_sys->read(r->reap_fd, &v, sizeof(v));
	for (i = 0; i < r->dev->num_queues; i++)
		reap_queue(r, &r->queues[i], false);
}

static int hook_stop(void *data, struct vduse_vq *vq)
{
	struct vduse_runner *r = data;

	return join_queue(r, &r->queues[vq->index], true);
}

static void hook_reap(void *data, struct vduse_vq *vq)
{
	struct vduse_runner *r = data;

	reap_queue(r, &r->queues[vq->index], true);
}

static const struct vduse_queue_hooks runner_hooks = {
	.start = hook_start,
	.stop = hook_stop,
	.stop_begin = tell_stop_all,
	.reap = hook_reap,
};

/* The control thread ends on its own: tell the application. */
static void control_failed(struct vduse_runner *r, int err)
{
	__atomic_store_n(&r->status, err, __ATOMIC_RELEASE);
	signal_fd(r->status_fd);
	if (r->ops.control_failed)
		r->ops.control_failed(r, r->opaque, err);
}

static void *control_thread(void *arg)
{
	struct vduse_runner *r = arg;
	struct vduse_device *dev = r->dev;
	bool first = true;
	int ret;

	for (;;) {
		struct pollfd fds[3] = {
			{ .fd = r->stop_fd, .events = POLLIN },
			{ .fd = dev->dev_fd, .events = POLLIN },
			{ .fd = r->reap_fd, .events = POLLIN },
		};

		/*
		 * The first pass does not wait: a reconnected device
		 * (vduse_device_open) recovers in its first process(), and
		 * no message may come to trigger it.
		 */
		if (poll(fds, 3, first ? 0 : -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			vduse_err("%s: runner: poll: %s", dev->name,
				  strerror(-ret));
			break;
		}
		if (fds[0].revents)
			return NULL;
		if (fds[2].revents)
			reap_ended(r);
		if (!fds[1].revents && !first)
			continue;
		first = false;
		if (fds[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			ret = fds[1].revents & POLLNVAL ? -EBADF : -EIO;
			vduse_err("%s: runner: stopping the control thread: the device fd reports %s",
				  dev->name, poll_err_name(fds[1].revents));
			break;
		}
		ret = vduse_device_process(dev);
		if (ret < 0 && ret != -EINTR) {
			vduse_err("%s: runner: stopping the control thread: %s",
				  dev->name, strerror(-ret));
			break;
		}
	}
	control_failed(r, ret);
	return NULL;
}

static void runner_destroy(struct vduse_runner *r)
{
	if (r->status_fd >= 0)
		vduse_sys->close(r->status_fd);
	if (r->reap_fd >= 0)
		vduse_sys->close(r->reap_fd);
	pthread_cond_destroy(&r->exited);
	pthread_mutex_destroy(&r->lock);
	free(r->queues);
	free(r);
}

int vduse_runner_new(struct vduse_device *dev,
		     const struct vduse_runner_ops *ops, void *opaque,
		     struct vduse_runner **out)
{
	pthread_condattr_t attr;
	struct vduse_runner *r;
	unsigned int i;
	int ret;

	if (!dev || !ops || !out) {
		vduse_err("vduse_runner_new: %s is NULL",
			  !dev ? "dev" : !ops ? "ops" : "out");
		return -EINVAL;
	}
	if (ops->size < sizeof(size_t)) {
		vduse_err("%s: runner: .size is %zu, not sizeof(struct vduse_runner_ops)",
			  dev->name, ops->size);
		return -EINVAL;
	}
	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r) {
		vduse_err("%s: runner: out of memory", dev->name);
		return -ENOMEM;
	}
	r->stop_fd = -1;
	r->status_fd = -1;
	r->reap_fd = -1;
	/* Queue threads are timed on the monotonic clock. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&r->exited, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&r->lock, NULL);
	r->queues = calloc(dev->num_queues, sizeof(*r->queues));
	if (!r->queues) {
		vduse_err("%s: runner: out of memory", dev->name);
		runner_destroy(r);
		return -ENOMEM;
	}
	for (i = 0; i < dev->num_queues; i++)
		r->queues[i].stop_fd = -1;
	memcpy(&r->ops, ops,
	       ops->size < sizeof(r->ops) ? ops->size : sizeof(r->ops));
	r->ops.size = sizeof(r->ops);
	r->opaque = opaque;
	r->dev = dev;

	r->status_fd = new_event_fd();
	r->reap_fd = new_event_fd();
	if (r->status_fd < 0 || r->reap_fd < 0) {
		ret = r->status_fd < 0 ? r->status_fd : r->reap_fd;
		vduse_err("%s: runner: cannot create its eventfd: %s",
			  dev->name, strerror(-ret));
		runner_destroy(r);
		return ret;
	}
	ret = vduse_device_set_hooks(dev, &runner_hooks, r);
	if (ret < 0) {
		vduse_err("%s: the device has a runner already", dev->name);
		runner_destroy(r);
		return ret;
	}
	*out = r;
	return 0;
}

int vduse_runner_start(struct vduse_runner *r)
{
	int ret;

	if (!r) {
		vduse_err("vduse_runner_start: r is NULL");
		return -EINVAL;
	}
	if (r->control_running) {
		vduse_err("%s: runner: started already", r->dev->name);
		return -EALREADY;
	}
	r->stop_fd = new_event_fd();
	if (r->stop_fd < 0) {
		vduse_err("%s: runner: cannot create its eventfd: %s",
			  r->dev->name, strerror(-r->stop_fd));
		return r->stop_fd;
	}
	ret = spawn(&r->control, control_thread, r);
	if (ret < 0) {
		vduse_err("%s: runner: cannot start the control thread: %s",
			  r->dev->name, strerror(-ret));
		vduse_sys->close(r->stop_fd);
		r->stop_fd = -1;
		return ret;
	}
	r->control_running = true;
	return 0;
}

int vduse_runner_status(const struct vduse_runner *r)
{
	if (!r)
		return -EINVAL;
	return __atomic_load_n(&r->status, __ATOMIC_ACQUIRE);
}

int vduse_runner_fd(const struct vduse_runner *r)
{
	if (!r)
		return -EINVAL;
	return r->status_fd;
}

void vduse_runner_free(struct vduse_runner *r)
{
	unsigned int i;

	if (!r)
		return;
	if (r->control_running) {
		signal_fd(r->stop_fd);
		pthread_join(r->control, NULL);
	}
	if (r->stop_fd >= 0)
		vduse_sys->close(r->stop_fd);
	/*
	 * The control thread is gone, so nothing else starts or stops
	 * queues.  Threads left behind by a stop are waited for, then every
	 * running one is told to stop before any is waited for.
	 */
	for (i = 0; i < r->dev->num_queues; i++)
		reap_queue(r, &r->queues[i], true);
	tell_stop_all(r);
	for (i = 0; i < r->dev->num_queues; i++)
		join_queue(r, &r->queues[i], false);
	vduse_device_set_hooks(r->dev, NULL, NULL);
	runner_destroy(r);
}
