// SPDX-License-Identifier: MIT
/*
 * A minimal vhost-vdpa driver for the VM test of Linux 7.3's VDUSE features
 * (tests/vm/guest/uapi.sh).  On a device bound to vhost_vdpa it sets up
 * queues 0 and 1, enables queue 0 before DRIVER_OK and queue 1 after it
 * (VDUSE_F_QUEUE_READY: the device starts queue 1 then), suspends the device
 * (VDUSE_F_SUSPEND) and reads each queue's state back (GET_VQ_STATE).
 *
 *   vdpa-uapi /dev/vhost-vdpa-N BASE
 *
 * Both rings start at avail and used index BASE, so nothing is in flight
 * and the state read back after the suspend must be BASE.  One
 * "vdpa-uapi: ..." line per step; exit status 0 when every step worked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vhost.h>
#include <linux/virtio_config.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEM_SIZE	(1u << 20)
#define MEM_IOVA	0x100000ull
#define QSIZE		64u
#define RING_STRIDE	0x10000u	/* one queue's rings per 64 KiB */

#ifndef VHOST_BACKEND_F_SUSPEND
#define VHOST_BACKEND_F_SUSPEND	0x4
#endif
#ifndef VHOST_VDPA_SUSPEND
#define VHOST_VDPA_SUSPEND	_IO(VHOST_VIRTIO, 0x7D)
#endif
#define BACKEND_F_ENABLE_AFTER_DRIVER_OK	0x6	/* Linux 6.4 */

static int fd = -1;

static int step(const char *what, unsigned long req, void *arg)
{
	if (ioctl(fd, req, arg) == 0)
		return 0;
	printf("vdpa-uapi: %s: %s\n", what, strerror(errno));
	return -1;
}

static int set_status(uint8_t s)
{
	uint8_t got = 0;

	if (step("VHOST_VDPA_SET_STATUS", VHOST_VDPA_SET_STATUS, &s) ||
	    step("VHOST_VDPA_GET_STATUS", VHOST_VDPA_GET_STATUS, &got))
		return -1;
	printf("vdpa-uapi: status 0x%02x -> 0x%02x\n", s, got);
	return got == s ? 0 : -1;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* Queue @q's rings in guest memory and in the device, at index @base. */
static int setup_queue(uint8_t *mem, unsigned int q, uint16_t base)
{
	uint64_t desc = MEM_IOVA + q * RING_STRIDE;
	uint64_t avail = desc + 16 * QSIZE;
	uint64_t used = (avail + 6 + 2 * QSIZE + 3) & ~3ull;
	struct vhost_vring_state num = { .index = q, .num = QSIZE };
	struct vhost_vring_state st = { .index = q, .num = base };
	struct vhost_vring_addr addr = {
		.index = q,
		.desc_user_addr = desc,
		.avail_user_addr = avail,
		.used_user_addr = used,
	};

	put16(mem + (avail - MEM_IOVA) + 2, base);
	put16(mem + (used - MEM_IOVA) + 2, base);
	return step("VHOST_SET_VRING_NUM", VHOST_SET_VRING_NUM, &num) ||
	       step("VHOST_SET_VRING_ADDR", VHOST_SET_VRING_ADDR, &addr) ||
	       step("VHOST_SET_VRING_BASE", VHOST_SET_VRING_BASE, &st);
}

static int enable(unsigned int q)
{
	struct vhost_vring_state st = { .index = q, .num = 1 };

	if (step("VHOST_VDPA_SET_VRING_ENABLE", VHOST_VDPA_SET_VRING_ENABLE,
		 &st))
		return -1;
	printf("vdpa-uapi: queue %u enabled\n", q);
	return 0;
}

int main(int argc, char **argv)
{
	const uint8_t feat_ok = VIRTIO_CONFIG_S_ACKNOWLEDGE |
				VIRTIO_CONFIG_S_DRIVER |
				VIRTIO_CONFIG_S_FEATURES_OK;
	uint64_t backend = 0, want, features = 0;
	struct vhost_msg_v2 msg = { .type = VHOST_IOTLB_MSG_V2 };
	uint16_t base;
	uint8_t *mem;
	int memfd, fails = 0;
	unsigned int q;

	if (argc != 3) {
		fprintf(stderr, "usage: %s /dev/vhost-vdpa-N BASE\n", argv[0]);
		return 2;
	}
	base = (uint16_t)strtoul(argv[2], NULL, 0);
	fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("vdpa-uapi: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	/* Guest memory: a file mapping, as vhost-vdpa's VA mode needs. */
	memfd = memfd_create("vdpa-uapi", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, MEM_SIZE) < 0)
		return 1;
	mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (mem == MAP_FAILED)
		return 1;

	if (step("VHOST_SET_OWNER", VHOST_SET_OWNER, NULL) ||
	    step("VHOST_GET_BACKEND_FEATURES", VHOST_GET_BACKEND_FEATURES,
		 &backend))
		return 1;
	want = backend & ((1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2) |
			  (1ULL << VHOST_BACKEND_F_SUSPEND) |
			  (1ULL << BACKEND_F_ENABLE_AFTER_DRIVER_OK));
	printf("vdpa-uapi: backend features 0x%llx, acking 0x%llx\n",
	       (unsigned long long)backend, (unsigned long long)want);
	if (step("VHOST_SET_BACKEND_FEATURES", VHOST_SET_BACKEND_FEATURES,
		 &want) ||
	    step("VHOST_GET_FEATURES", VHOST_GET_FEATURES, &features))
		return 1;
	features &= (1ULL << VIRTIO_F_VERSION_1) |
		    (1ULL << VIRTIO_F_ACCESS_PLATFORM);
	if (step("VHOST_SET_FEATURES", VHOST_SET_FEATURES, &features) ||
	    set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE) ||
	    set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER) ||
	    set_status(feat_ok))
		return 1;

	msg.iotlb.iova = MEM_IOVA;
	msg.iotlb.size = MEM_SIZE;
	msg.iotlb.uaddr = (uint64_t)(uintptr_t)mem;
	msg.iotlb.perm = VHOST_ACCESS_RW;
	msg.iotlb.type = VHOST_IOTLB_UPDATE;
	if (write(fd, &msg, sizeof(msg)) != sizeof(msg)) {
		printf("vdpa-uapi: IOTLB update: %s\n", strerror(errno));
		return 1;
	}
	for (q = 0; q < 2; q++)
		if (setup_queue(mem, q, base))
			return 1;

	/* Queue 0 before DRIVER_OK, queue 1 after it. */
	if (enable(0) || set_status(feat_ok | VIRTIO_CONFIG_S_DRIVER_OK))
		return 1;
	usleep(200 * 1000);
	if (enable(1))
		return 1;
	usleep(200 * 1000);

	if (step("VHOST_VDPA_SUSPEND", VHOST_VDPA_SUSPEND, NULL))
		return 1;
	printf("vdpa-uapi: suspended\n");
	for (q = 0; q < 2; q++) {
		struct vhost_vring_state st = { .index = q };

		if (step("VHOST_GET_VRING_BASE", VHOST_GET_VRING_BASE, &st)) {
			fails++;
			continue;
		}
		printf("vdpa-uapi: base %u=%u\n", q, st.num);
		fails += st.num != base;
	}
	if (set_status(0))
		fails++;
	close(fd);
	return fails ? 1 : 0;
}
