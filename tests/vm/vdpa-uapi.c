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
 * and the state read back after the suspend must be BASE.
 *
 *   vdpa-uapi --asid /dev/vhost-vdpa-N
 *
 * API version 1's address spaces, on a block device whose queue 1 is alone
 * in group 1 with two address spaces (vduse-blk with VDUSE_BLK_TEST_AS=2):
 * group 1 goes to address space 1, where queue 1's rings and a read of
 * sector 0 live; space 0 holds other memory at the same IOVAs.  The read
 * must complete with the first bytes of the disk (0x5a).
 *
 * One "vdpa-uapi: ..." line per step; exit status 0 when every step worked.
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
#include <sys/eventfd.h>
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

/* In --asid mode, the request in queue 1's memory, after its rings. */
#define REQ_HDR		(MEM_IOVA + 0x80000)
#define REQ_DATA	(MEM_IOVA + 0x81000)
#define REQ_STATUS	(MEM_IOVA + 0x82000)

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

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint8_t *guest_memory(void)
{
	int memfd = memfd_create("vdpa-uapi", MFD_CLOEXEC);
	uint8_t *mem;

	if (memfd < 0 || ftruncate(memfd, MEM_SIZE) < 0)
		return NULL;
	mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	return mem == MAP_FAILED ? NULL : mem;
}

static int map_as(uint32_t asid, uint8_t *mem)
{
	struct vhost_msg_v2 msg = { .type = VHOST_IOTLB_MSG_V2, .asid = asid };

	msg.iotlb.iova = MEM_IOVA;
	msg.iotlb.size = MEM_SIZE;
	msg.iotlb.uaddr = (uint64_t)(uintptr_t)mem;
	msg.iotlb.perm = VHOST_ACCESS_RW;
	msg.iotlb.type = VHOST_IOTLB_UPDATE;
	if (write(fd, &msg, sizeof(msg)) != sizeof(msg)) {
		printf("vdpa-uapi: IOTLB update of address space %u: %s\n",
		       asid, strerror(errno));
		return -1;
	}
	return 0;
}

static void set_desc(uint8_t *mem, uint64_t desc, unsigned int i,
		     uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = mem + (desc - MEM_IOVA) + 16 * i;

	put64(d, addr);
	put32(d + 8, len);
	put16(d + 12, flags);
	put16(d + 14, next);
}

static int asid_test(const char *node)
{
	const uint8_t feat_ok = VIRTIO_CONFIG_S_ACKNOWLEDGE |
				VIRTIO_CONFIG_S_DRIVER |
				VIRTIO_CONFIG_S_FEATURES_OK;
	uint64_t backend = 0, want, features = 0;
	uint64_t desc = MEM_IOVA + RING_STRIDE;	/* queue 1 */
	uint64_t avail = desc + 16 * QSIZE;
	uint64_t used = (avail + 6 + 2 * QSIZE + 3) & ~3ull;
	struct vhost_vring_state grp = { .index = 1 };
	struct vhost_vring_state move = { .index = 1, .num = 1 };
	struct vhost_vring_file kick = { .index = 1 };
	unsigned int nas = 0, ngroups = 0, i;
	uint8_t *mem0, *mem1, *u;
	uint64_t one = 1;

	fd = open(node, O_RDWR | O_CLOEXEC);
	mem0 = guest_memory();
	mem1 = guest_memory();
	kick.fd = eventfd(0, EFD_CLOEXEC);
	if (fd < 0 || !mem0 || !mem1 || kick.fd < 0) {
		printf("vdpa-uapi: setup: %s\n", strerror(errno));
		return 1;
	}
	if (step("VHOST_SET_OWNER", VHOST_SET_OWNER, NULL) ||
	    step("VHOST_GET_BACKEND_FEATURES", VHOST_GET_BACKEND_FEATURES,
		 &backend))
		return 1;
	want = backend & ((1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2) |
			  (1ULL << VHOST_BACKEND_F_IOTLB_ASID));
	if (step("VHOST_SET_BACKEND_FEATURES", VHOST_SET_BACKEND_FEATURES,
		 &want) ||
	    step("VHOST_VDPA_GET_AS_NUM", VHOST_VDPA_GET_AS_NUM, &nas) ||
	    step("VHOST_VDPA_GET_GROUP_NUM", VHOST_VDPA_GET_GROUP_NUM,
		 &ngroups) ||
	    step("VHOST_VDPA_GET_VRING_GROUP", VHOST_VDPA_GET_VRING_GROUP,
		 &grp))
		return 1;
	printf("vdpa-uapi: %u address spaces, %u groups, queue 1 in group %u\n",
	       nas, ngroups, grp.num);
	if (nas < 2 || grp.num != 1)
		return 1;
	if (step("VHOST_GET_FEATURES", VHOST_GET_FEATURES, &features))
		return 1;
	features &= (1ULL << VIRTIO_F_VERSION_1) |
		    (1ULL << VIRTIO_F_ACCESS_PLATFORM);
	if (step("VHOST_SET_FEATURES", VHOST_SET_FEATURES, &features) ||
	    set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE) ||
	    set_status(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER) ||
	    set_status(feat_ok) ||
	    step("VHOST_VDPA_SET_GROUP_ASID", VHOST_VDPA_SET_GROUP_ASID, &move))
		return 1;
	printf("vdpa-uapi: group 1 in address space 1\n");
	/* Space 0 has zeros at queue 1's IOVAs: a wrong lookup finds no
	 * request there. */
	if (map_as(0, mem0) || map_as(1, mem1) || setup_queue(mem0, 0, 0) ||
	    setup_queue(mem1, 1, 0))
		return 1;

	/* A read of sector 0 (VIRTIO_BLK_T_IN): header, 512 bytes, status. */
	put32(mem1 + (REQ_HDR - MEM_IOVA), 0);
	put64(mem1 + (REQ_HDR - MEM_IOVA) + 8, 0);
	mem1[REQ_STATUS - MEM_IOVA] = 0xff;
	set_desc(mem1, desc, 0, REQ_HDR, 16, 1 /* NEXT */, 1);
	set_desc(mem1, desc, 1, REQ_DATA, 512, 1 | 2 /* NEXT, WRITE */, 2);
	set_desc(mem1, desc, 2, REQ_STATUS, 1, 2 /* WRITE */, 0);
	put16(mem1 + (avail - MEM_IOVA) + 4, 0);	/* ring[0] = head 0 */
	put16(mem1 + (avail - MEM_IOVA) + 2, 1);	/* avail idx 1 */

	if (step("VHOST_SET_VRING_KICK", VHOST_SET_VRING_KICK, &kick) ||
	    enable(0) || enable(1) ||
	    set_status(feat_ok | VIRTIO_CONFIG_S_DRIVER_OK))
		return 1;
	if (write(kick.fd, &one, sizeof(one)) != sizeof(one))
		return 1;
	u = mem1 + (used - MEM_IOVA) + 2;
	for (i = 0; i < 500 && (u[0] | u[1] << 8) != 1; i++)
		usleep(10 * 1000);
	printf("vdpa-uapi: queue 1 used index %u, status %u, data %02x %02x\n",
	       u[0] | u[1] << 8, mem1[REQ_STATUS - MEM_IOVA],
	       mem1[REQ_DATA - MEM_IOVA], mem1[REQ_DATA - MEM_IOVA + 511]);
	if ((u[0] | u[1] << 8) != 1 || mem1[REQ_STATUS - MEM_IOVA] != 0 ||
	    mem1[REQ_DATA - MEM_IOVA] != 0x5a ||
	    mem1[REQ_DATA - MEM_IOVA + 511] != 0x5a)
		return 1;
	printf("vdpa-uapi: read through address space 1\n");
	set_status(0);
	close(fd);
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

	if (argc == 3 && !strcmp(argv[1], "--asid"))
		return asid_test(argv[2]);
	if (argc != 3) {
		fprintf(stderr, "usage: %s /dev/vhost-vdpa-N BASE | --asid /dev/vhost-vdpa-N\n",
			argv[0]);
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
