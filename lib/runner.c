// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The runner: a control thread that answers the kernel's messages, and one
 * pthread per started queue that waits on the queue's kick fd (and an
 * optional fd of the backend's) and calls the backend.  It is built only on
 * the public core API plus the queue start/stop hooks.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "sys.h"

struct runner_queue {
	struct vduse_runner *r;
	struct vduse_vq *vq;
	pthread_t thread;
	int stop_fd;
	bool running;
};

struct vduse_runner {
	struct vduse_device *dev;
	struct vduse_runner_ops ops;
	void *opaque;
	pthread_t control;
	bool control_running;
	int stop_fd;
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

static int new_stop_fd(void)
{
	return vduse_sys->eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

static void signal_stop(int fd)
{
	uint64_t one = 1;

	if (vduse_sys->write(fd, &one, sizeof(one)) != sizeof(one))
		vduse_err("runner: cannot signal a thread to stop");
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
		if (fds[2].revents)
			events |= VDUSE_RUNNER_POLL;
		if (events && r->ops.queue_event)
			r->ops.queue_event(vq, r->opaque, events);
	}

	if (ret == 0 && r->ops.queue_exit)
		r->ops.queue_exit(vq, r->opaque);
	return NULL;
}

static int hook_start(void *data, struct vduse_vq *vq)
{
	struct vduse_runner *r = data;
	struct runner_queue *q = &r->queues[vq->index];
	int ret;

	q->stop_fd = new_stop_fd();
	if (q->stop_fd < 0)
		return q->stop_fd;
	q->r = r;
	q->vq = vq;
	ret = spawn(&q->thread, queue_thread, q);
	if (ret < 0) {
		vduse_sys->close(q->stop_fd);
		q->stop_fd = -1;
		return ret;
	}
	q->running = true;
	return 0;
}

static void hook_stop(void *data, struct vduse_vq *vq)
{
	struct vduse_runner *r = data;
	struct runner_queue *q = &r->queues[vq->index];

	if (!q->running)
		return;
	signal_stop(q->stop_fd);
	pthread_join(q->thread, NULL);
	vduse_sys->close(q->stop_fd);
	q->stop_fd = -1;
	q->running = false;
}

static const struct vduse_queue_hooks runner_hooks = {
	.start = hook_start,
	.stop = hook_stop,
};

static void *control_thread(void *arg)
{
	struct vduse_runner *r = arg;
	struct vduse_device *dev = r->dev;

	for (;;) {
		struct pollfd fds[2] = {
			{ .fd = r->stop_fd, .events = POLLIN },
			{ .fd = dev->dev_fd, .events = POLLIN },
		};
		int ret;

		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			vduse_err("%s: runner: poll: %s", dev->name,
				  strerror(errno));
			break;
		}
		if (fds[0].revents)
			break;
		if (fds[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			vduse_err("%s: runner: the device fd reports an error",
				  dev->name);
			break;
		}
		ret = vduse_device_process(dev);
		if (ret < 0 && ret != -EINTR) {
			vduse_err("%s: runner: stopping the control thread: %s",
				  dev->name, strerror(-ret));
			break;
		}
	}
	return NULL;
}

int vduse_runner_new(struct vduse_device *dev,
		     const struct vduse_runner_ops *ops, void *opaque,
		     struct vduse_runner **out)
{
	struct vduse_runner *r;
	unsigned int i;
	int ret;

	if (!dev || !ops || !out || ops->size < sizeof(size_t))
		return -EINVAL;
	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->stop_fd = -1;
	r->queues = calloc(dev->num_queues, sizeof(*r->queues));
	if (!r->queues) {
		free(r);
		return -ENOMEM;
	}
	for (i = 0; i < dev->num_queues; i++)
		r->queues[i].stop_fd = -1;
	memcpy(&r->ops, ops,
	       ops->size < sizeof(r->ops) ? ops->size : sizeof(r->ops));
	r->ops.size = sizeof(r->ops);
	r->opaque = opaque;
	r->dev = dev;

	ret = vduse_device_set_hooks(dev, &runner_hooks, r);
	if (ret < 0) {
		vduse_err("%s: the device has a runner already", dev->name);
		free(r->queues);
		free(r);
		return ret;
	}
	*out = r;
	return 0;
}

int vduse_runner_start(struct vduse_runner *r)
{
	int ret;

	if (!r)
		return -EINVAL;
	if (r->control_running)
		return -EALREADY;
	r->stop_fd = new_stop_fd();
	if (r->stop_fd < 0)
		return r->stop_fd;
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

void vduse_runner_free(struct vduse_runner *r)
{
	unsigned int i;

	if (!r)
		return;
	if (r->control_running) {
		signal_stop(r->stop_fd);
		pthread_join(r->control, NULL);
	}
	if (r->stop_fd >= 0)
		vduse_sys->close(r->stop_fd);
	/* The control thread is gone, so nothing starts or stops queues. */
	for (i = 0; i < r->dev->num_queues; i++)
		hook_stop(r, &r->dev->vqs[i]);
	vduse_device_set_hooks(r->dev, NULL, NULL);
	free(r->queues);
	free(r);
}
