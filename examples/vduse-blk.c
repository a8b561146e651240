// SPDX-License-Identifier: MIT
/*
 * vduse-blk: a virtio-blk device backed by a file or block device, served
 * from userspace through VDUSE with libvduse's runner and io_uring.
 *
 *   main thread     options, device set-up (or reconnection to the
 *                   device a killed predecessor left), attach, wait for
 *                   a signal
 *                   (or for the runner's control thread to fail),
 *                   detach and tear-down
 *   control thread  the runner's: answers the kernel's VDUSE messages
 *   queue threads   the runner's, one per started queue, each with its
 *                   own io_uring (examples/blk/blk_queue.c)
 *
 * Request parsing and the config space are in examples/blk/blk_req.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fs.h>
#include <linux/stat.h>
#include <linux/virtio_ids.h>

#include <libvduse.h>

#include "blk/blk_log.h"
#include "blk/blk_queue.h"
#include "blk/blk_req.h"
#include "blk/blk_umem.h"

#define BLK_PROG		"vduse-blk"
#define BLK_EXIT_USAGE		2
#define BLK_LOG_DIR		"/run/vduse-blk"

struct blk_opts {
	const char *name;
	const char *file;
	const char *serial;
	const char *log;	/* the in-flight log, NULL: none */
	bool default_log;	/* log is BLK_LOG_DIR/NAME */
	char log_buf[sizeof(BLK_LOG_DIR) + 256];
	uint32_t queues;
	uint32_t queue_size;
	uint32_t block_size;
	bool read_only;
	bool direct;
	bool attach;
	const char *driver;	/* vDPA bus driver, NULL: the bus's choice */
	bool no_packed;
	bool verbose;
	bool ring_wait;		/* --wait=ring */
	bool pin;		/* --pin */
	uint32_t poll_us;	/* --poll-us */
	bool umem;		/* --umem */
};

enum {
	BLK_OPT_SERIAL = 0x100,
	BLK_OPT_DIRECT,
	BLK_OPT_NO_ATTACH,
	BLK_OPT_LOG,
	BLK_OPT_NO_LOG,
	BLK_OPT_DRIVER,
	BLK_OPT_NO_PACKED,
	BLK_OPT_WAIT,
	BLK_OPT_PIN,
	BLK_OPT_NO_PIN,
	BLK_OPT_POLL_US,
	BLK_OPT_UMEM,		/* --umem */
};

static const struct option blk_long_opts[] = {
	{ "name",	required_argument, NULL, 'n' },
	{ "queues",	required_argument, NULL, 'q' },
	{ "queue-size",	required_argument, NULL, 's' },
	{ "read-only",	no_argument,	   NULL, 'r' },
	{ "block-size",	required_argument, NULL, 'b' },
	{ "serial",	required_argument, NULL, BLK_OPT_SERIAL },
	{ "direct",	no_argument,	   NULL, BLK_OPT_DIRECT },
	{ "no-attach",	no_argument,	   NULL, BLK_OPT_NO_ATTACH },
	{ "driver",	required_argument, NULL, BLK_OPT_DRIVER },
	{ "log",	required_argument, NULL, BLK_OPT_LOG },
	{ "no-log",	no_argument,	   NULL, BLK_OPT_NO_LOG },
	{ "no-packed",	no_argument,	   NULL, BLK_OPT_NO_PACKED },
	{ "wait",	required_argument, NULL, BLK_OPT_WAIT },
	{ "pin",	no_argument,	   NULL, BLK_OPT_PIN },
	{ "no-pin",	no_argument,	   NULL, BLK_OPT_NO_PIN },
	{ "poll-us",	required_argument, NULL, BLK_OPT_POLL_US },
	{ "umem",	no_argument,	   NULL, BLK_OPT_UMEM },
	{ "verbose",	no_argument,	   NULL, 'v' },
	{ "help",	no_argument,	   NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void blk_usage(FILE *f)
{
	fprintf(f,
"Usage: " BLK_PROG " [OPTIONS] FILE\n"
"\n"
"Serve FILE (a regular file or a block device) as a virtio-blk disk through\n"
"VDUSE.  The device is created as /dev/vduse/NAME, attached to the vDPA bus\n"
"and bound by the kernel's virtio_blk driver, which makes a /dev/vdX disk.\n"
"The disk's size is FILE's size, which must be a multiple of 512 and of\n"
"the block size.  Needs the vduse and virtio_vdpa modules and root.\n"
"\n"
"Options:\n"
"  -n, --name NAME        device name (default: vduse-blk0)\n"
"  -q, --queues N         number of virtqueues, 1 to 256, each served by\n"
"                         its own thread and io_uring (default: one per\n"
"                         CPU vduse-blk may run on, at most 8)\n"
"  -s, --queue-size N     largest virtqueue size, a power of 2 from 4 to\n"
"                         32768 (default: 256)\n"
"  -r, --read-only        open FILE read-only and offer a read-only disk;\n"
"                         writes, discards and write zeroes fail\n"
"  -b, --block-size N     logical block size, a power of 2 from 512 to\n"
"                         4096 (default: 512)\n"
"      --serial STR       disk serial returned to GET_ID, at most 20 bytes\n"
"                         (default: the first 20 bytes of NAME)\n"
"      --direct           open FILE with O_DIRECT (bypass the page cache);\n"
"                         the block size must be a multiple of FILE's\n"
"                         direct I/O alignment\n"
"      --no-attach        create and serve the device but do not attach\n"
"                         it; attach it yourself with\n"
"                           vdpa dev add name NAME mgmtdev vduse\n"
"      --driver virtio|vhost\n"
"                         the vDPA bus driver to bind: virtio (virtio_vdpa,\n"
"                         a /dev/vdX on this host) or vhost (vhost_vdpa, a\n"
"                         /dev/vhost-vdpa-N for a VMM such as QEMU, printed\n"
"                         once attached; see docs/virtual-machines.md).\n"
"                         Default: the driver the bus picks, virtio_vdpa\n"
"                         when only it is loaded; a named driver that is\n"
"                         not loaded is an error\n"
"      --log PATH         the in-flight log that lets a restarted vduse-blk\n"
"                         reconnect (default: " BLK_LOG_DIR "/NAME)\n"
"      --no-log           no in-flight log: the device dies with us\n"
"      --no-packed        offer split virtqueues only (packed ones are\n"
"                         offered by default, with or without the log)\n"
"      --wait ring|runner where each queue thread waits: runner (poll()\n"
"                         on the kick fd and the io_uring, then a read of\n"
"                         the kick fd) or ring (the kick read, the stop\n"
"                         and the I/O all in the queue's io_uring: one\n"
"                         io_uring_enter() per wake-up; default: runner)\n"
"      --pin, --no-pin    pin queue N's thread to the Nth CPU it may use,\n"
"                         or let it float (default: --no-pin)\n"
"      --poll-us N        before an idle queue sleeps, look at its ring for\n"
"                         N microseconds with kicks off, 0 to 1000000\n"
"                         (default: 0)\n"
"      --umem             back the device's bounce region with memory of\n"
"                         ours (hugepages if there are any), registered\n"
"                         with VDUSE_IOTLB_REG_UMEM; falls back to the\n"
"                         kernel's pages if it cannot (virtio driver only)\n"
"  -v, --verbose          debug messages (ours and the library's)\n"
"  -h, --help             show this help and exit\n"
"\n"
"Features offered: FLUSH (fdatasync), DISCARD (punch hole; BLKDISCARD on a\n"
"block device), WRITE_ZEROES (zero range, or punch hole when the driver\n"
"allows unmapping; BLKZEROOUT on a block device), multiple queues, GET_ID.\n"
"A write is acknowledged only once it reached FILE; a flush only once\n"
"fdatasync() returned, and once one failed every later flush fails.\n"
"\n"
"Signals: SIGINT or SIGTERM detaches the device (the kernel flushes and\n"
"removes the disk), completes the requests in flight, destroys the device,\n"
"syncs FILE and exits with status 0.\n"
"\n"
"Crash recovery: started again with the same command line after it was\n"
"killed (SIGKILL, a crash), vduse-blk finds the device NAME it left in the\n"
"kernel and its in-flight log, reconnects and serves the same disk: every\n"
"request the driver made is completed exactly once, and the disk never\n"
"goes away.  A restart with a different FILE, size, block size, serial,\n"
"queue count or queue size, or with --read-only changed, is refused, as is\n"
"one without the log (--no-log, or the log removed).  On a clean shutdown\n"
"the log is removed.\n"
"\n"
"Messages go to stderr; \"" BLK_PROG ": NAME attached\" is printed once the\n"
"disk exists.  Exit status: 0 on a clean shutdown, 1 on a failure, 2 for a\n"
"bad command line.\n"
"\n"
"Example:\n"
"  truncate -s 1G disk.img\n"
"  " BLK_PROG " -n blk0 -q 4 disk.img &\n"
"  mkfs.ext4 /dev/vda     # the new disk; see lsblk\n"
"  kill %%1\n");
}

/* ------------------------------------------------------------------------ */
/* Command line                                                              */

static int blk_parse_u32(const char *arg, const char *what, uint32_t *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(arg, &end, 0);
	if (errno || end == arg || *end || arg[0] == '-' || v > UINT32_MAX) {
		fprintf(stderr, BLK_PROG ": invalid %s: '%s'\n", what, arg);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

/*
 * One queue per CPU we may run on, at most 8: on 2 vCPUs two queues beat
 * one in most runs, and by 1.7-3x at iodepth 1 (docs/benchmarks.md).
 */
static uint32_t blk_default_queues(void)
{
	cpu_set_t set;
	int n;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 1;
	n = CPU_COUNT(&set);
	return n < 1 ? 1 : n > 8 ? 8 : (uint32_t)n;
}

/* Returns 0 to run, 1 to exit successfully (help), -EINVAL on errors. */
static int blk_parse_args(int argc, char **argv, struct blk_opts *o)
{
	bool no_log = false;
	const char *msg;
	int c, ret = 0;

	*o = (struct blk_opts) {
		.name = "vduse-blk0",
		.queues = blk_default_queues(),
		.queue_size = 256,
		.block_size = 512,
		.attach = true,
	};
	while ((c = getopt_long(argc, argv, "n:q:s:rb:vh", blk_long_opts,
				NULL)) != -1) {
		switch (c) {
		case 'n':
			o->name = optarg;
			break;
		case 'q':
			ret = blk_parse_u32(optarg, "number of queues",
					    &o->queues);
			break;
		case 's':
			ret = blk_parse_u32(optarg, "queue size",
					    &o->queue_size);
			break;
		case 'r':
			o->read_only = true;
			break;
		case 'b':
			ret = blk_parse_u32(optarg, "block size",
					    &o->block_size);
			break;
		case BLK_OPT_SERIAL:
			o->serial = optarg;
			break;
		case BLK_OPT_DIRECT:
			o->direct = true;
			break;
		case BLK_OPT_NO_ATTACH:
			o->attach = false;
			break;
		case BLK_OPT_DRIVER:
			if (!strcmp(optarg, "virtio")) {
				o->driver = VDUSE_DRIVER_VIRTIO;
			} else if (!strcmp(optarg, "vhost")) {
				o->driver = VDUSE_DRIVER_VHOST;
			} else {
				fprintf(stderr, BLK_PROG ": --driver is virtio or vhost, not '%s'\n",
					optarg);
				ret = -EINVAL;
			}
			break;
		case BLK_OPT_LOG:
			o->log = optarg;
			if (!*optarg) {
				fprintf(stderr, BLK_PROG ": --log needs a path\n");
				ret = -EINVAL;
			}
			break;
		case BLK_OPT_NO_LOG:	/* wins over --log, in any order */
			no_log = true;
			break;
		case BLK_OPT_NO_PACKED:
			o->no_packed = true;
			break;
		case BLK_OPT_WAIT:
			o->ring_wait = !strcmp(optarg, "ring");
			if (!o->ring_wait && strcmp(optarg, "runner")) {
				fprintf(stderr, BLK_PROG ": --wait is ring or runner, not '%s'\n",
					optarg);
				ret = -EINVAL;
			}
			break;
		case BLK_OPT_PIN:
		case BLK_OPT_NO_PIN:
			o->pin = c == BLK_OPT_PIN;
			break;
		case BLK_OPT_POLL_US:
			ret = blk_parse_u32(optarg, "--poll-us", &o->poll_us);
			if (!ret && o->poll_us > 1000000) {
				fprintf(stderr, BLK_PROG ": --poll-us is at most 1000000\n");
				ret = -EINVAL;
			}
			break;
		case BLK_OPT_UMEM:
			o->umem = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			blk_usage(stdout);
			return 1;
		default:
			ret = -EINVAL;
			break;
		}
		if (ret < 0)
			goto bad;
	}
	if (optind != argc - 1) {
		fprintf(stderr, BLK_PROG ": %s\n", optind == argc ?
			"missing FILE" : "too many arguments");
		goto bad;
	}
	o->file = argv[optind];
	if (!o->name[0]) {
		fprintf(stderr, BLK_PROG ": the device name is empty\n");
		goto bad;
	}
	if (o->umem && o->driver && !strcmp(o->driver, VDUSE_DRIVER_VHOST)) {
		fprintf(stderr, BLK_PROG ": --umem backs the bounce region, which only --driver virtio uses\n");
		goto bad;
	}
	if (no_log) {
		o->log = NULL;
	} else if (!o->log) {
		if (strchr(o->name, '/') || strlen(o->name) > 255) {
			fprintf(stderr, BLK_PROG ": bad device name '%s'\n",
				o->name);
			goto bad;
		}
		snprintf(o->log_buf, sizeof(o->log_buf), BLK_LOG_DIR "/%s",
			 o->name);
		o->log = o->log_buf;
		o->default_log = true;
	}
	msg = blk_disk_check(o->block_size, o->queues, o->queue_size,
			     o->serial);
	if (msg) {
		fprintf(stderr, BLK_PROG ": %s\n", msg);
		goto bad;
	}
	return 0;
bad:
	fprintf(stderr, "Try '" BLK_PROG " --help' for more information.\n");
	return -EINVAL;
}

/* The serial: --serial, or the first BLK_ID_BYTES bytes of the name. */
static const char *blk_serial(const struct blk_opts *o, char *buf,
			      size_t len)
{
	if (o->serial)
		return o->serial;
	snprintf(buf, len, "%.*s", (int)BLK_ID_BYTES, o->name);
	return buf;
}

/* ------------------------------------------------------------------------ */
/* Backing file                                                              */

static int blk_file_size(int fd, const char *path, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		blk_err("%s: %s", path, strerror(errno));
		return -errno;
	}
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0) {
			blk_err("%s: BLKGETSIZE64: %s", path, strerror(errno));
			return -errno;
		}
		return 0;
	}
	blk_err("%s: not a regular file or block device", path);
	return -EINVAL;
}

/*
 * With --direct every request must meet the file's O_DIRECT alignment:
 * requests are block aligned, so the block size must be a multiple of it.
 * Returns 0, or -EINVAL (a usage error) with the reason printed.
 */
static int blk_check_direct(const struct blk_opts *o, int fd, bool blkdev)
{
	struct blk_dio_info info = { 0 };
	const char *msg, *src;
	struct statx stx;
	uint32_t align;
	int lbs;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_DIOALIGN,
		  &stx) == 0) {
		info.statx_dio = stx.stx_mask & STATX_DIOALIGN;
		info.dio_offset_align = stx.stx_dio_offset_align;
		info.fs_block = stx.stx_blksize;
	}
	if (blkdev && ioctl(fd, BLKSSZGET, &lbs) == 0 && lbs > 0)
		info.logical_block = (uint32_t)lbs;
	align = blk_dio_align(&info);
	src = info.statx_dio ? "statx" :
	      info.logical_block ? "BLKSSZGET" : "filesystem block size";
	blk_dbg("%s: direct I/O alignment %u (%s)", o->file, align, src);
	msg = blk_dio_check(o->block_size, align);
	if (!msg)
		return 0;
	fprintf(stderr, BLK_PROG ": %s: --direct: %s", o->file, msg);
	if (align)
		fprintf(stderr, " (%u, from %s); use --block-size %u or more",
			align, src, align);
	fprintf(stderr, "\n");
	return -EINVAL;
}

/*
 * Open the backing file and describe the disk.  Returns the fd or -errno;
 * *usage is set when the options do not suit the file.
 */
static int blk_open(const struct blk_opts *o, struct blk_disk *disk,
		    bool *blkdev, bool *usage)
{
	struct stat st;
	int flags = O_CLOEXEC | (o->read_only ? O_RDONLY : O_RDWR);
	char serial[BLK_ID_BYTES + 1];
	const char *msg;
	uint64_t size;
	int fd, ret;

	if (o->direct)
		flags |= O_DIRECT;
	fd = open(o->file, flags);
	if (fd < 0) {
		ret = -errno;
		blk_err("cannot open %s: %s", o->file, strerror(errno));
		return ret;
	}
	*blkdev = fstat(fd, &st) == 0 && S_ISBLK(st.st_mode);
	if (o->direct) {
		ret = blk_check_direct(o, fd, *blkdev);
		if (ret < 0) {
			*usage = true;
			goto err;
		}
	}
	ret = blk_file_size(fd, o->file, &size);
	if (ret < 0)
		goto err;
	msg = blk_disk_init(disk, size, o->block_size, o->queues,
			    o->queue_size, o->read_only,
			    blk_serial(o, serial, sizeof(serial)));
	if (msg) {
		blk_err("%s: %s", o->file, msg);
		ret = -EINVAL;
		goto err;
	}
	return fd;
err:
	close(fd);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Device                                                                    */

static void blk_status_changed(struct vduse_device *dev, uint8_t status)
{
	blk_dbg("%s: status 0x%02x", vduse_device_name(dev), status);
	if (status & VIRTIO_CONFIG_S_DRIVER_OK)
		blk_dbg("%s: uapi: ring layout %s", vduse_device_name(dev),
			vduse_device_features(dev) &
			(1ULL << VIRTIO_F_RING_PACKED) ? "packed" : "split");
}

static void blk_queue_error(struct vduse_device *dev, struct vduse_vq *vq,
			    int err)
{
	blk_err("%s: queue %u is broken (%s); it needs a device reset",
		vduse_device_name(dev), vduse_vq_index(vq), strerror(-err));
}

static const struct vduse_device_ops blk_dev_ops = {
	.size = sizeof(struct vduse_device_ops),
	.status_changed = blk_status_changed,
	.queue_error = blk_queue_error,
};

/*
 * What the in-flight log must find again on a restart, besides what the
 * library checks (queues, features, the config space with the size and
 * block size): the same backing file and serial.
 */
struct blk_log_id {
	char magic[8];
	uint64_t dev;		/* st_dev, or st_rdev of a block device */
	uint64_t ino;		/* 0 for a block device */
	char serial[BLK_ID_BYTES];
};

static void blk_log_id(const struct blk_opts *o, int fd,
		       struct blk_log_id *id)
{
	char buf[BLK_ID_BYTES + 1];
	const char *serial;
	struct stat st;

	memset(id, 0, sizeof(*id));
	memcpy(id->magic, "vdusblk1", sizeof(id->magic));
	if (fstat(fd, &st) == 0) {
		id->dev = S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev;
		id->ino = S_ISBLK(st.st_mode) ? 0 : st.st_ino;
	}
	/* --serial's string, or the default made in @buf. */
	serial = blk_serial(o, buf, sizeof(buf));
	memcpy(id->serial, serial, strnlen(serial, sizeof(id->serial)));
}

/* The default log's directory: made here, the log by the library. */
static int blk_log_dir(const struct blk_opts *o)
{
	if (!o->log || !o->default_log)
		return 0;
	if ((mkdir("/run", 0755) < 0 && errno != EEXIST) ||
	    (mkdir(BLK_LOG_DIR, 0700) < 0 && errno != EEXIST)) {
		blk_err("cannot make %s for the in-flight log: %s (or give --log PATH or --no-log)",
			BLK_LOG_DIR, strerror(errno));
		return -errno;
	}
	return 0;
}

/* Why a reconnection failed, in the user's terms. */
static void blk_reopen_failed(const struct blk_opts *o, int err)
{
	switch (err) {
	case -ENOENT:
		blk_err("cannot reconnect to the existing device %s: no in-flight log, or the device went away (see above); if no "
			BLK_PROG " serves it, remove it with: vdpa dev del %s",
			o->name, o->name);
		break;
	case -EINVAL:
		blk_err("cannot reconnect to the existing device %s: it was created with a different file, geometry or options (see above)",
			o->name);
		break;
	case -EBUSY:
		blk_err("cannot reconnect to %s: another process serves it",
			o->name);
		break;
	default:
		blk_err("cannot reconnect to the existing device %s: %s (the kernel may have failed it after its timeout)",
			o->name, strerror(-err));
		break;
	}
}

/*
 * Create the device, or reconnect to the one a killed predecessor left
 * (*reopened set).
 */
static int blk_device_get(const struct blk_opts *o,
			  const struct blk_backend *be,
			  struct vduse_device **dev, bool *reopened)
{
	struct virtio_blk_config config;
	struct blk_log_id id;
	struct vduse_device_config cfg = {
		.size = sizeof(cfg),
		.name = o->name,
		.device_id = VIRTIO_ID_BLOCK,
		.features = blk_disk_features(be->disk),
		.num_queues = be->disk->num_queues,
		.queue_size = be->disk->queue_size,
		.config = &config,
		.config_size = sizeof(config),
		.ops = &blk_dev_ops,
		.log_path = o->log,
		.log_id = o->log ? &id : NULL,
		.log_id_size = o->log ? sizeof(id) : 0,
		.flags = o->no_packed ? VDUSE_DEVICE_F_NO_PACKED : 0,
	};
	const char *as = getenv("VDUSE_BLK_TEST_AS");
	uint32_t groups[64];
	int ret;

	*reopened = false;
	/*
	 * For tests/vm/guest/uapi.sh only: queue i in virtqueue group i and
	 * VDUSE_BLK_TEST_AS address spaces (VDUSE API version 1).
	 */
	if (as && cfg.num_queues <= 64) {
		for (uint32_t i = 0; i < cfg.num_queues; i++)
			groups[i] = i;
		cfg.num_groups = cfg.num_queues;
		cfg.num_as = (uint32_t)atoi(as);
		cfg.queue_group = groups;
	}
	blk_disk_config(be->disk, &config);
	blk_log_id(o, be->fd, &id);
	ret = blk_log_dir(o);
	if (ret < 0)
		return ret;
	ret = vduse_device_new(&cfg, dev);
	if (ret == -EEXIST && o->log) {
		blk_info("%s exists: reconnecting with the in-flight log %s",
			 o->name, o->log);
		ret = vduse_device_open(&cfg, dev);
		if (ret < 0)
			blk_reopen_failed(o, ret);
		else
			*reopened = true;
		return ret;
	}
	if (ret == -ENODEV)
		blk_err("VDUSE is not available (is the vduse module loaded?)");
	else if (ret == -EEXIST)
		blk_err("a VDUSE device named %s already exists (and --no-log: cannot reconnect to it)",
			o->name);
	else if (ret < 0)
		blk_err("cannot create device %s: %s", o->name,
			strerror(-ret));
	return ret;
}

/*
 * Wait for SIGINT or SIGTERM, or for the runner's control thread to stop
 * on its own: then nothing answers the kernel any more, so give up.
 */
static int blk_wait(const sigset_t *set, struct vduse_runner *runner)
{
	struct signalfd_siginfo si;
	struct pollfd fds[2];
	int sfd, ret;

	sfd = signalfd(-1, set, SFD_CLOEXEC);
	if (sfd < 0) {
		ret = -errno;
		blk_err("signalfd: %s", strerror(-ret));
		return ret;
	}
	fds[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	fds[1] = (struct pollfd){ .fd = vduse_runner_fd(runner),
				  .events = POLLIN };
	do {
		ret = poll(fds, 2, -1);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0) {
		ret = -errno;
		blk_err("poll: %s", strerror(-ret));
	} else if (fds[1].revents) {
		ret = vduse_runner_status(runner);
		blk_err("the device's control thread stopped (%s); shutting down",
			strerror(ret < 0 ? -ret : EIO));
		if (ret >= 0)
			ret = -EIO;
	} else if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
		blk_info("%s, shutting down", strsignal((int)si.ssi_signo));
		ret = 0;
	} else {
		ret = -errno;
		blk_err("reading a signal: %s", strerror(-ret));
	}
	close(sfd);
	return ret;
}

/*
 * Detach before the device can be destroyed.  With --no-attach the user
 * may or may not have attached it: -ENODEV then means it was not.
 */
static int blk_detach(const struct blk_opts *o, struct vduse_device *dev)
{
	int ret = vduse_device_detach(dev);

	if (ret == -ENODEV && !o->attach) {
		blk_dbg("%s was not attached", o->name);
		return 0;
	}
	if (ret < 0)
		blk_err("cannot detach %s: %s", o->name, strerror(-ret));
	return ret;
}

/* With --driver vhost: the node to hand to the VMM, on stdout too. */
static void blk_print_vhost_node(const struct blk_opts *o,
				 const struct vduse_device *dev)
{
	char node[64];
	int ret;

	if (!o->driver || strcmp(o->driver, VDUSE_DRIVER_VHOST))
		return;
	ret = vduse_device_vhost_node(dev, node, sizeof(node));
	if (ret < 0) {
		blk_err("%s has no vhost-vdpa node: %s", o->name,
			strerror(-ret));
		return;
	}
	fprintf(stderr, BLK_PROG ": %s is %s (vhost_vdpa)\n", o->name, node);
	printf("%s\n", node);
	fflush(stdout);
}

/* Create, attach and serve the device until SIGINT or SIGTERM. */
static int blk_serve(const struct blk_opts *o, const struct blk_backend *be,
		     const sigset_t *sigs)
{
	struct vduse_runner *runner = NULL;
	struct vduse_device *dev = NULL;
	struct blk_umem umem = { 0 };
	bool attached = false, reopened;
	int ret;

	ret = blk_device_get(o, be, &dev, &reopened);
	if (ret < 0)
		return ret;
	if (o->umem) {
		ret = blk_umem_set(o->name, dev, &umem);
		if (ret < 0)
			goto out;
	}
	blk_dbg("%s: uapi: VDUSE API version %u, VDUSE features 0x%llx",
		o->name, vduse_device_api_version(dev),
		(unsigned long long)vduse_device_vduse_features(dev));
	ret = vduse_runner_new(dev, be->ring_wait ? &blk_runner_ops_ring :
						    &blk_runner_ops,
			       (void *)be, &runner);
	if (ret < 0) {
		blk_err("cannot create the runner: %s", strerror(-ret));
		goto out;
	}
	ret = vduse_runner_start(runner);
	if (ret < 0) {
		blk_err("cannot start the runner: %s", strerror(-ret));
		goto out;
	}
	if (o->attach) {
		ret = vduse_device_attach_driver(dev, o->driver);
		if (ret == -EEXIST && reopened) {
			attached = true;
			fprintf(stderr, BLK_PROG ": %s reconnected, still attached\n",
				o->name);
		} else if (ret < 0) {
			blk_err("cannot attach %s: %s", o->name,
				strerror(-ret));
			goto out;
		} else {
			attached = true;
			fprintf(stderr, BLK_PROG ": %s attached\n", o->name);
		}
		blk_print_vhost_node(o, dev);
	} else {
		blk_info("%s created; attach it with: vdpa dev add name %s mgmtdev vduse",
			 o->name, o->name);
	}

	ret = blk_wait(sigs, runner);
	if (attached || !o->attach) {
		int r = blk_detach(o, dev);

		if (!ret)
			ret = r;
	}
out:
	/* Queue threads finish their in-flight I/O in queue_exit. */
	vduse_runner_free(runner);
	vduse_device_free(dev);
	blk_umem_free(&umem);		/* once the device no longer uses it */
	/* Destroyed (the detach worked): nothing left to reconnect to. */
	if (!ret && o->log && unlink(o->log) < 0 && errno != ENOENT)
		blk_err("cannot remove the in-flight log %s: %s", o->log,
			strerror(errno));
	return ret;
}

/* Make the acknowledged writes durable before exiting. */
static int blk_sync(const struct blk_opts *o, int fd)
{
	if (fsync(fd) < 0 && errno != EINVAL && errno != EROFS) {
		blk_err("fsync %s: %s", o->file, strerror(errno));
		return -errno;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct blk_flush_state flush = { 0 };
	bool blkdev = false, usage = false;
	struct blk_backend be;
	struct blk_disk disk;
	struct blk_opts o;
	sigset_t sigs;
	int fd, ret;

	ret = blk_parse_args(argc, argv, &o);
	if (ret)
		return ret > 0 ? EXIT_SUCCESS : BLK_EXIT_USAGE;
	blk_log_init(BLK_PROG, o.verbose);

	/* Before any thread exists, so that every thread inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	ret = pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if (ret) {
		blk_err("pthread_sigmask: %s", strerror(ret));
		return EXIT_FAILURE;
	}

	fd = blk_open(&o, &disk, &blkdev, &usage);
	if (fd < 0)
		return usage ? BLK_EXIT_USAGE : EXIT_FAILURE;
	blk_dbg("%s: %llu sectors, block size %u, %u queue(s) of %u%s",
		o.file, (unsigned long long)disk.capacity, disk.block_size,
		disk.num_queues, disk.queue_size,
		disk.read_only ? ", read-only" : "");
	be = (struct blk_backend) {
		.disk = &disk,
		.fd = fd,
		.blkdev = blkdev,
		.flush = &flush,
		.ring_wait = o.ring_wait,
		.pin = o.pin,
		.poll_us = o.poll_us,
	};
	if (getenv("VDUSE_BLK_TEST_HOLD_FLUSH_MS"))
		be.test_hold_flush_ms =
			(unsigned int)atoi(getenv("VDUSE_BLK_TEST_HOLD_FLUSH_MS"));

	ret = blk_serve(&o, &be, &sigs);
	if (blk_sync(&o, fd) < 0 && !ret)
		ret = -EIO;
	close(fd);
	return ret < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
