// SPDX-License-Identifier: MIT
/*
 * vduse-null: the smallest useful libvduse device, written against the
 * event-loop-agnostic core API (no runner, no liburing).
 *
 * It is a virtio-blk disk of a fixed size that stores nothing: reads return
 * zeros, writes, flushes, discards and write zeroes succeed and are
 * forgotten.  Request parsing is shared with vduse-blk (blk/blk_req.c).
 *
 * Everything happens in one thread running one poll() loop over:
 *   - the device fd: the kernel has messages -> vduse_device_process(),
 *     which calls the device callbacks and starts/stops queues;
 *   - each started queue's kick fd: the driver queued requests ->
 *     vduse_vq_kick_drain(), then vduse_vq_pop() until -EAGAIN,
 *     vduse_vq_push() each, one vduse_vq_notify();
 *   - a signalfd for SIGINT/SIGTERM;
 *   - an eventfd a helper thread writes when attach or detach returns.
 *
 * With --poll the loop never sleeps while a queue is started: it turns
 * the queue's kicks off (vduse_vq_disable_kicks()) and keeps popping, and
 * looks at its fds without waiting (poll() with a 0 timeout) every
 * NULL_SPIN_ROUNDS rounds.  That is the cheapest a VDUSE device can be
 * served (no kick, no wake-up, one CPU spent on it): bench/run.sh measures
 * it as the floor under any daemon (docs/benchmarks.md).
 *
 * vduse_device_attach() and vduse_device_detach() block until the kernel's
 * driver has probed or gone, and the kernel needs this loop's answers to get
 * there.  So they run in a short-lived helper thread while the loop goes on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <linux/virtio_ids.h>

#include <libvduse.h>

#include "blk/blk_log.h"
#include "blk/blk_req.h"

#define NULL_PROG	"vduse-null"
#define NULL_MAX_QUEUES	8	/* --queues: 1 by default */
#define NULL_QUEUE_SIZE	128
/* --poll: rounds over the queues between two looks at the other fds. */
#define NULL_SPIN_ROUNDS	4096

/* Runs vduse_device_attach() or _detach() off the event loop. */
struct null_helper {
	int (*fn)(struct vduse_device *dev);
	struct vduse_device *dev;
	pthread_t thread;
	bool running;
	int ret;
	int done_fd;		/* eventfd, written when fn returned */
};

static void *null_helper_main(void *arg)
{
	struct null_helper *h = arg;

	h->ret = h->fn(h->dev);
	if (eventfd_write(h->done_fd, 1) < 0)
		blk_err("eventfd_write: %s", strerror(errno));
	return NULL;
}

static int null_helper_start(struct null_helper *h,
			     int (*fn)(struct vduse_device *dev))
{
	int ret;

	h->fn = fn;
	ret = pthread_create(&h->thread, NULL, null_helper_main, h);
	if (ret) {
		blk_err("pthread_create: %s", strerror(ret));
		return -ret;
	}
	h->running = true;
	return 0;
}

/* The helper signalled: collect it and return what fn returned. */
static int null_helper_join(struct null_helper *h)
{
	eventfd_t v;

	if (eventfd_read(h->done_fd, &v) < 0)
		return 1;	/* spurious wake-up: still running */
	pthread_join(h->thread, NULL);
	h->running = false;
	return h->ret;
}

/* ------------------------------------------------------------------------ */
/* The data path                                                             */

/* Answer one request; returns the length to push. */
static uint32_t null_handle(const struct blk_disk *disk,
			    struct vduse_vq_elem *elem)
{
	struct blk_req r;
	uint8_t status = VIRTIO_BLK_S_OK;

	if (blk_req_parse(disk, elem->out_sg, elem->out_num, elem->in_sg,
			  elem->in_num, &r) < 0)
		return 0;	/* no status byte: nothing to answer in */
	switch (r.op) {
	case BLK_OP_DONE:
		status = r.status;
		break;
	case BLK_OP_READ:
		blk_iov_memset(r.iov, r.iov_cnt, 0);
		break;
	case BLK_OP_GET_ID:
		blk_req_get_id(disk, &r);
		break;
	default:	/* WRITE, FLUSH, DISCARD, WRITE_ZEROES: forget it */
		break;
	}
	blk_req_set_status(&r, status);
	return blk_req_used_len(&r);
}

/* Serve everything the driver has queued on @vq; returns how much. */
static unsigned int null_serve(const struct blk_disk *disk,
			       struct vduse_vq *vq)
{
	struct vduse_vq_elem *elem;
	unsigned int pushed = 0;
	int ret;

	/* -EAGAIN re-arms the kick, so a request queued later will kick. */
	while ((ret = vduse_vq_pop(vq, sizeof(*elem), (void **)&elem)) == 0) {
		ret = vduse_vq_push(vq, elem, null_handle(disk, elem));
		if (ret < 0)
			blk_warn("queue %u: push: %s", vduse_vq_index(vq),
				 strerror(-ret));
		else
			pushed++;
		free(elem);
	}
	if (ret != -EAGAIN && ret != -EIO)
		blk_err("queue %u: pop: %s", vduse_vq_index(vq),
			strerror(-ret));
	if (pushed)
		vduse_vq_notify(vq);	/* one interrupt for the batch */
	return pushed;
}

/* ------------------------------------------------------------------------ */
/* The event loop                                                            */

enum { NULL_FD_DEV, NULL_FD_SIG, NULL_FD_HELPER, NULL_FD_QUEUES };

struct null_loop {
	struct vduse_device *dev;
	const struct blk_disk *disk;
	struct null_helper helper;
	int sig_fd;
	bool stopping;		/* a signal arrived */
	bool attached;
	bool busy_poll;		/* --poll */
	bool kicks_off[NULL_MAX_QUEUES];	/* --poll: disabled since it started */
};

static struct pollfd null_pollfd(int fd)
{
	return (struct pollfd){ .fd = fd, .events = POLLIN };
}

/* The fds to wait on; queues come and go as the driver starts them. */
static nfds_t null_fill_fds(struct null_loop *l, struct pollfd *fds,
			    struct vduse_vq **vqs)
{
	unsigned int i;
	nfds_t n = NULL_FD_QUEUES;

	fds[NULL_FD_DEV] = null_pollfd(vduse_device_fd(l->dev));
	fds[NULL_FD_SIG] = null_pollfd(l->sig_fd);
	fds[NULL_FD_HELPER] = null_pollfd(l->helper.done_fd);
	for (i = 0; i < vduse_device_num_queues(l->dev); i++) {
		struct vduse_vq *vq = vduse_device_vq(l->dev, i);

		if (!vduse_vq_started(vq))
			continue;
		vqs[n] = vq;
		fds[n++] = null_pollfd(vduse_vq_kick_fd(vq));
	}
	return n;
}

/* The device fd is readable: answer the kernel, then catch up on queues. */
static int null_on_device(struct null_loop *l, short revents)
{
	unsigned int i;
	int ret;

	if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
		blk_err("the device fd reports an error");
		return -EIO;
	}
	ret = vduse_device_process(l->dev);
	if (ret < 0 && ret != -EINTR) {
		blk_err("vduse_device_process: %s", strerror(-ret));
		return ret;
	}
	/* A queue that (re)started has its kicks on again. */
	memset(l->kicks_off, 0, sizeof(l->kicks_off));
	/* A queue may have started with requests already waiting. */
	for (i = 0; i < vduse_device_num_queues(l->dev); i++) {
		struct vduse_vq *vq = vduse_device_vq(l->dev, i);

		if (vduse_vq_started(vq))
			null_serve(l->disk, vq);
	}
	return 0;
}

/*
 * --poll: serve the started queues, kicks off, for NULL_SPIN_ROUNDS rounds.
 * Returns false when no queue is started (then the loop sleeps in poll()).
 */
static bool null_spin(struct null_loop *l)
{
	unsigned int i, n = vduse_device_num_queues(l->dev), round;
	bool any = false;

	for (i = 0; i < n; i++) {
		struct vduse_vq *vq = vduse_device_vq(l->dev, i);

		if (!vduse_vq_started(vq))
			continue;
		any = true;
		if (!l->kicks_off[i])
			l->kicks_off[i] = vduse_vq_disable_kicks(vq) == 0;
	}
	if (!any)
		return false;
	for (round = 0; round < NULL_SPIN_ROUNDS; round++)
		for (i = 0; i < n; i++) {
			struct vduse_vq *vq = vduse_device_vq(l->dev, i);

			if (vduse_vq_started(vq))
				null_serve(l->disk, vq);
		}
	return true;
}

static void null_on_signal(struct null_loop *l)
{
	struct signalfd_siginfo si;

	if (read(l->sig_fd, &si, sizeof(si)) != sizeof(si))
		return;
	blk_info("%s, shutting down", strsignal((int)si.ssi_signo));
	l->stopping = true;
}

/*
 * The helper returned.  Returns 1 when the loop is over (detached), 0 to go
 * on, -errno on failure.
 */
static int null_on_helper(struct null_loop *l)
{
	int ret = null_helper_join(&l->helper);

	if (ret == 1)
		return 0;
	if (l->helper.fn == vduse_device_detach) {
		if (ret < 0)
			blk_err("detach: %s", strerror(-ret));
		return ret < 0 ? ret : 1;
	}
	if (ret < 0) {
		blk_err("attach: %s", strerror(-ret));
		return ret;
	}
	l->attached = true;
	fprintf(stderr, NULL_PROG ": %s attached\n", vduse_device_name(l->dev));
	return 0;
}

static int null_loop_run(struct null_loop *l)
{
	struct pollfd fds[NULL_FD_QUEUES + NULL_MAX_QUEUES];
	struct vduse_vq *vqs[NULL_FD_QUEUES + NULL_MAX_QUEUES];
	nfds_t i, n;
	int ret = 0, timeout;

	while (ret == 0) {
		/* Detach once a signal came and attach has returned. */
		if (l->stopping && l->attached && !l->helper.running) {
			ret = null_helper_start(&l->helper,
						vduse_device_detach);
			l->attached = false;
			if (ret < 0)
				break;
		}
		if (l->stopping && !l->helper.running)
			break;

		/* --poll: spin, then only look at the fds. */
		timeout = l->busy_poll && null_spin(l) ? 0 : -1;
		n = null_fill_fds(l, fds, vqs);
		if (poll(fds, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			blk_err("poll: %s", strerror(errno));
			break;
		}
		if (fds[NULL_FD_DEV].revents)
			ret = null_on_device(l, fds[NULL_FD_DEV].revents);
		for (i = NULL_FD_QUEUES; i < n && ret == 0; i++) {
			if (!fds[i].revents)
				continue;
			vduse_vq_kick_drain(vqs[i]);
			null_serve(l->disk, vqs[i]);
		}
		if (fds[NULL_FD_SIG].revents)
			null_on_signal(l);
		if (ret == 0 && fds[NULL_FD_HELPER].revents)
			ret = null_on_helper(l);
	}
	return ret < 0 ? ret : 0;
}

/*
 * After a failure the helper may still be blocked in attach or detach,
 * waiting for answers: keep answering until it returns.  (If the device fd
 * is unusable, the kernel gives up on its own after its message timeout.)
 */
static void null_helper_finish(struct null_loop *l)
{
	bool dev_ok = true;

	while (l->helper.running) {
		struct pollfd fds[2] = {
			null_pollfd(dev_ok ? vduse_device_fd(l->dev) : -1),
			null_pollfd(l->helper.done_fd),
		};

		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			break;
		if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			dev_ok = false;
		else if (fds[0].revents && vduse_device_process(l->dev) < 0)
			dev_ok = false;
		if (fds[1].revents)
			null_helper_join(&l->helper);
	}
}

/* ------------------------------------------------------------------------ */
/* Set-up                                                                    */

static void null_usage(FILE *f)
{
	fprintf(f,
"Usage: " NULL_PROG " [-n NAME] [-S MIB] [-q N] [-p] [-v]\n"
"\n"
"A virtio-blk disk through VDUSE that reads as zeros and forgets writes.\n"
"It is created, attached (a /dev/vdX appears) and served until SIGINT or\n"
"SIGTERM, which detach and destroy it.\n"
"\n"
"  -n, --name NAME   device name (default: vduse-null0)\n"
"  -S, --size MIB    disk size in MiB (default: 1024)\n"
"  -q, --queues N    virtqueues, 1 to 8, all served by the one thread\n"
"                    (default: 1)\n"
"  -p, --poll        busy-poll the queues with kicks off (a CPU spins)\n"
"  -v, --verbose     debug messages\n"
"  -h, --help        show this help and exit\n");
}

static int null_parse_args(int argc, char **argv, const char **name,
			   uint64_t *size, unsigned int *queues,
			   bool *busy_poll, bool *verbose)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 'S' },
		{ "queues", required_argument, NULL, 'q' },
		{ "poll", no_argument, NULL, 'p' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long mib;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "n:S:q:pvh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			*name = optarg;
			break;
		case 'S':
			errno = 0;
			mib = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || !mib ||
			    mib > (1ull << 40)) {
				fprintf(stderr, NULL_PROG ": invalid size '%s'\n",
					optarg);
				return -EINVAL;
			}
			*size = mib << 20;
			break;
		case 'q':
			errno = 0;
			mib = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || !mib ||
			    mib > NULL_MAX_QUEUES) {
				fprintf(stderr, NULL_PROG ": invalid number of queues '%s'\n",
					optarg);
				return -EINVAL;
			}
			*queues = (unsigned int)mib;
			break;
		case 'p':
			*busy_poll = true;
			break;
		case 'v':
			*verbose = true;
			break;
		case 'h':
			null_usage(stdout);
			return 1;
		default:
			null_usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		null_usage(stderr);
		return -EINVAL;
	}
	return 0;
}

static int null_device_new(const char *name, const struct blk_disk *disk,
			   struct vduse_device **dev)
{
	struct virtio_blk_config config;
	struct vduse_device_config cfg = {
		.size = sizeof(cfg),
		.name = name,
		.device_id = VIRTIO_ID_BLOCK,
		.features = blk_disk_features(disk),
		.num_queues = disk->num_queues,
		.queue_size = disk->queue_size,
		.config = &config,
		.config_size = sizeof(config),
	};
	int ret;

	blk_disk_config(disk, &config);
	ret = vduse_device_new(&cfg, dev);
	if (ret < 0)
		blk_err("cannot create %s: %s", name, strerror(-ret));
	return ret;
}

int main(int argc, char **argv)
{
	const char *name = "vduse-null0";
	uint64_t size = 1ull << 30;
	unsigned int queues = 1;
	struct null_loop l = { .sig_fd = -1, .helper.done_fd = -1 };
	struct blk_disk disk;
	bool verbose = false;
	const char *msg;
	sigset_t sigs;
	int ret;

	ret = null_parse_args(argc, argv, &name, &size, &queues,
			      &l.busy_poll, &verbose);
	if (ret)
		return ret > 0 ? EXIT_SUCCESS : 2;
	blk_log_init(NULL_PROG, verbose);
	msg = blk_disk_init(&disk, size, BLK_SECTOR_SIZE, queues,
			    NULL_QUEUE_SIZE, false, "vduse-null");
	if (msg) {
		blk_err("%s", msg);
		return EXIT_FAILURE;
	}

	/* Blocked in every thread; the loop reads them from a signalfd. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	l.sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	l.helper.done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l.sig_fd < 0 || l.helper.done_fd < 0) {
		blk_err("signalfd/eventfd: %s", strerror(errno));
		ret = -errno;
		goto out;
	}

	ret = null_device_new(name, &disk, &l.dev);
	if (ret < 0)
		goto out;
	l.disk = &disk;
	l.helper.dev = l.dev;
	ret = null_helper_start(&l.helper, vduse_device_attach);
	if (ret == 0)
		ret = null_loop_run(&l);
	null_helper_finish(&l);
out:
	vduse_device_free(l.dev);
	if (l.helper.done_fd >= 0)
		close(l.helper.done_fd);
	if (l.sig_fd >= 0)
		close(l.sig_fd);
	return ret < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
