// SPDX-License-Identifier: MIT
/* ramdisk: a virtio-blk RAM disk through VDUSE (docs/tutorial.md). */
#include <endian.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <libvduse.h>

#define QUEUE_SIZE 128

static unsigned char *disk;
static uint64_t disk_size;

/* Copy @len bytes between @buf and the iovecs, from @skip bytes into them. */
static size_t iov_copy(const struct iovec *iov, uint32_t n, size_t skip,
		       void *buf, size_t len, bool to_iov)
{
	size_t done = 0;

	for (uint32_t i = 0; i < n && done < len; i++) {
		size_t l = iov[i].iov_len;
		char *p = iov[i].iov_base;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		p += skip;
		l = l - skip < len - done ? l - skip : len - done;
		skip = 0;
		memcpy(to_iov ? p : (char *)buf + done,
		       to_iov ? (char *)buf + done : p, l);
		done += l;
	}
	return done;
}

static size_t iov_size(const struct iovec *iov, uint32_t n)
{
	size_t size = 0;

	for (uint32_t i = 0; i < n; i++)
		size += iov[i].iov_len;
	return size;
}

/* Serve one request; returns how many bytes were written into in_sg. */
static uint32_t serve(const struct vduse_vq_elem *e)
{
	struct virtio_blk_outhdr hdr;
	size_t in = iov_size(e->in_sg, e->in_num), len = 0;
	uint8_t status = VIRTIO_BLK_S_OK;
	uint64_t sector, off;

	if (in == 0 || iov_copy(e->out_sg, e->out_num, 0, &hdr, sizeof(hdr),
				false) != sizeof(hdr))
		return 0;	/* malformed: no room for a status byte */
	sector = le64toh(hdr.sector);
	off = sector * 512;
	switch (le32toh(hdr.type)) {
	case VIRTIO_BLK_T_IN:	/* read: data, then the status byte */
		len = in - 1;
		if (sector > disk_size / 512 || len > disk_size - off) {
			status = VIRTIO_BLK_S_IOERR;
			len = 0;
		} else {
			iov_copy(e->in_sg, e->in_num, 0, disk + off, len, true);
		}
		break;
	case VIRTIO_BLK_T_OUT:	/* write: the data follows the header */
		len = iov_size(e->out_sg, e->out_num) - sizeof(hdr);
		if (sector > disk_size / 512 || len > disk_size - off)
			status = VIRTIO_BLK_S_IOERR;
		else
			iov_copy(e->out_sg, e->out_num, sizeof(hdr),
				 disk + off, len, false);
		len = 0;
		break;
	default:
		status = VIRTIO_BLK_S_UNSUPP;
	}
	iov_copy(e->in_sg, e->in_num, in - 1, &status, 1, true);
	return (uint32_t)len + 1;
}

/* A queue thread of the runner: the driver kicked, or the queue started. */
static void queue_event(struct vduse_vq *vq, void *opaque, unsigned int events)
{
	struct vduse_vq_elem *e;

	while (vduse_vq_pop(vq, sizeof(*e), (void **)&e) == 0) {
		vduse_vq_push(vq, e, serve(e));
		free(e);
	}
	vduse_vq_notify(vq);	/* one interrupt for all that was pushed */
}

static void log_msg(int level, const char *msg, void *opaque)
{
	if (level <= VDUSE_LOG_WARN)
		fprintf(stderr, "ramdisk: %s\n", msg);
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "ramdisk0";
	struct virtio_blk_config config = {
		.seg_max = htole32(QUEUE_SIZE - 2),
	};
	struct vduse_device_config cfg = {
		.size = sizeof(cfg),
		.name = name,
		.device_id = VIRTIO_ID_BLOCK,
		.features = 1ULL << VIRTIO_BLK_F_SEG_MAX,
		.num_queues = 1,
		.queue_size = QUEUE_SIZE,
		.config = &config,
		.config_size = sizeof(config),
	};
	struct vduse_runner_ops ops = {
		.size = sizeof(ops),
		.queue_event = queue_event,
	};
	struct vduse_device *dev = NULL;
	struct vduse_runner *runner = NULL;
	sigset_t sigs;
	int sig, ret;

	disk_size = (argc > 2 ? strtoull(argv[2], NULL, 10) : 64) << 20;
	disk = calloc(1, disk_size);
	if (!disk || !disk_size) {
		fprintf(stderr, "usage: ramdisk [NAME [MIB]]\n");
		return 1;
	}
	config.capacity = htole64(disk_size / 512);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	vduse_log_set_handler(log_msg, NULL);

	ret = vduse_device_new(&cfg, &dev);
	if (ret == 0)
		ret = vduse_runner_new(dev, &ops, NULL, &runner);
	if (ret == 0)
		ret = vduse_runner_start(runner);
	if (ret == 0)
		ret = vduse_device_attach(dev);
	if (ret == 0) {
		printf("ramdisk: %s attached, %llu MiB\n", name,
		       (unsigned long long)disk_size >> 20);
		fflush(stdout);
		sigwait(&sigs, &sig);
		ret = vduse_device_detach(dev);
	}
	if (ret < 0)
		fprintf(stderr, "ramdisk: %s: %s\n", name, strerror(-ret));
	vduse_runner_free(runner);
	vduse_device_free(dev);
	free(disk);
	return ret < 0 ? 1 : 0;
}
