// SPDX-License-Identifier: MIT
/*
 * Guest-side checks of the vduse_shim uAPI that need no device server.
 *
 *   shim-test bad-ioctls     every malformed request is refused, nothing
 *                            crashes, the module still works afterwards
 *   shim-test destroy NAME   VDUSE_DESTROY_DEV (for a device whose daemon
 *                            died)
 *   shim-test silent NAME S  create NAME, open it, never answer a message
 *                            for S seconds; then expect it broken (poll
 *                            reports POLLERR, ioctls fail), close, destroy
 *
 * Prints one "ok"/"not ok" line per check; exits 1 if any check failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vduse.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int failures;

static void expect(const char *what, int ret, int want_errno)
{
	int err = ret < 0 ? errno : 0;

	if ((want_errno == 0 && ret >= 0) || (want_errno && ret < 0 && err == want_errno)) {
		printf("ok     %s\n", what);
		return;
	}
	printf("not ok %s: got %d (%s), wanted %s\n", what, ret,
	       ret < 0 ? strerror(err) : "success",
	       want_errno ? strerror(want_errno) : "success");
	failures++;
}

struct dev_cfg {
	struct vduse_dev_config cfg;
	struct virtio_blk_config blk;
};

static void good_config(struct dev_cfg *c, const char *name)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->cfg.name, sizeof(c->cfg.name), "%s", name);
	c->cfg.device_id = VIRTIO_ID_BLOCK;
	c->cfg.features = (1ULL << VIRTIO_F_VERSION_1) |
			  (1ULL << VIRTIO_F_ACCESS_PLATFORM);
	c->cfg.vq_num = 2;
	c->cfg.vq_align = 4096;
	c->cfg.config_size = sizeof(c->blk);
	c->blk.capacity = 2048;
}

static int create(int ctl, struct dev_cfg *c)
{
	return ioctl(ctl, VDUSE_CREATE_DEV, &c->cfg);
}

static int bad_ioctls(void)
{
	struct dev_cfg c;
	uint64_t ver;
	int ctl, fd, fd2, efd;
	char name[VDUSE_NAME_MAX];
	char buf[4096];

	ctl = open("/dev/vduse/control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		perror("/dev/vduse/control");
		return 1;
	}

	/* control device */
	expect("GET_API_VERSION", ioctl(ctl, VDUSE_GET_API_VERSION, &ver), 0);
	expect("API version is 0", ver == 0 ? 0 : -1, 0);
	ver = 1;
	expect("SET_API_VERSION 1 refused", ioctl(ctl, VDUSE_SET_API_VERSION, &ver), EINVAL);
	ver = 0;
	expect("SET_API_VERSION 0", ioctl(ctl, VDUSE_SET_API_VERSION, &ver), 0);
	expect("unknown control ioctl", ioctl(ctl, _IO(VDUSE_BASE, 0x7f)), ENOTTY);
	expect("CREATE_DEV with a wrong size", ioctl(ctl, _IOW(VDUSE_BASE, 0x02, uint64_t), &c), ENOTTY);
	expect("CREATE_DEV bad pointer", ioctl(ctl, VDUSE_CREATE_DEV, (void *)8), EFAULT);

	good_config(&c, "bad");
	memset(c.cfg.name, 'a', sizeof(c.cfg.name));
	expect("name without NUL", create(ctl, &c), EINVAL);
	good_config(&c, "");
	expect("empty name", create(ctl, &c), EINVAL);
	good_config(&c, "a/b");
	expect("name with a slash", create(ctl, &c), EINVAL);
	good_config(&c, "control");
	expect("name 'control'", create(ctl, &c), EINVAL);
	good_config(&c, "bad");
	c.cfg.config_size = 1 << 20;
	expect("huge config size", create(ctl, &c), EINVAL);
	good_config(&c, "bad");
	c.cfg.config_size = 0xffffffff;
	expect("config size 4G-1", create(ctl, &c), EINVAL);
	good_config(&c, "bad");
	c.cfg.device_id = VIRTIO_ID_NET;
	expect("net device refused", create(ctl, &c), EINVAL);
	good_config(&c, "bad");
	c.cfg.features &= ~(1ULL << VIRTIO_F_ACCESS_PLATFORM);
	expect("no ACCESS_PLATFORM", create(ctl, &c), EINVAL);
	good_config(&c, "bad");
	c.cfg.vq_num = 0;
	expect("zero queues", create(ctl, &c), EINVAL);
	good_config(&c, "bad");
	c.cfg.vq_num = 100000;
	expect("100000 queues", create(ctl, &c), EINVAL);
	good_config(&c, "bad");
	c.cfg.vq_align = 3000;
	expect("vq_align not a power of two", create(ctl, &c), EINVAL);
	good_config(&c, "bad");
	c.cfg.reserved[3] = 1;
	expect("reserved not zero", create(ctl, &c), EINVAL);

	good_config(&c, "shimtest");
	expect("CREATE_DEV shimtest", create(ctl, &c), 0);
	expect("CREATE_DEV duplicate", create(ctl, &c), EEXIST);

	/* device node */
	fd = open("/dev/vduse/shimtest", O_RDWR | O_CLOEXEC);
	expect("open device", fd, 0);
	fd2 = open("/dev/vduse/shimtest", O_RDWR | O_CLOEXEC);
	expect("second open refused", fd2, EBUSY);
	if (fd2 >= 0)
		close(fd2);

	{
		struct vduse_vq_config vc = { .index = 2, .max_size = 256 };

		expect("VQ_SETUP index out of range", ioctl(fd, VDUSE_VQ_SETUP, &vc), EINVAL);
		vc.index = 0xffffffff;
		expect("VQ_SETUP index 2^32-1", ioctl(fd, VDUSE_VQ_SETUP, &vc), EINVAL);
		vc.index = 0;
		vc.max_size = 0;
		expect("VQ_SETUP size 0", ioctl(fd, VDUSE_VQ_SETUP, &vc), EINVAL);
		vc.max_size = 100;
		expect("VQ_SETUP size not a power of two", ioctl(fd, VDUSE_VQ_SETUP, &vc), EINVAL);
		vc.max_size = 256;
		vc.reserved[0] = 1;
		expect("VQ_SETUP reserved not zero", ioctl(fd, VDUSE_VQ_SETUP, &vc), EINVAL);
		vc.reserved[0] = 0;
		expect("VQ_SETUP good", ioctl(fd, VDUSE_VQ_SETUP, &vc), 0);
	}
	{
		struct vduse_vq_info vi = { .index = 7 };

		expect("VQ_GET_INFO index out of range", ioctl(fd, VDUSE_VQ_GET_INFO, &vi), EINVAL);
		vi.index = 0;
		expect("VQ_GET_INFO good", ioctl(fd, VDUSE_VQ_GET_INFO, &vi), 0);
		expect("VQ_GET_INFO not ready before attach", vi.ready ? -1 : 0, 0);
	}
	{
		struct vduse_vq_eventfd ve = { .index = 9, .fd = -1 };

		expect("VQ_SETUP_KICKFD index out of range", ioctl(fd, VDUSE_VQ_SETUP_KICKFD, &ve), EINVAL);
		ve.index = 0;
		ve.fd = 1000;
		expect("VQ_SETUP_KICKFD bad fd", ioctl(fd, VDUSE_VQ_SETUP_KICKFD, &ve), EBADF);
		ve.fd = -7;
		expect("VQ_SETUP_KICKFD fd -7", ioctl(fd, VDUSE_VQ_SETUP_KICKFD, &ve), EINVAL);
		efd = eventfd(0, EFD_CLOEXEC);
		ve.fd = efd;
		expect("VQ_SETUP_KICKFD good", ioctl(fd, VDUSE_VQ_SETUP_KICKFD, &ve), 0);
		ve.fd = -1;
		expect("VQ_SETUP_KICKFD deassign", ioctl(fd, VDUSE_VQ_SETUP_KICKFD, &ve), 0);
		close(efd);
	}
	{
		uint32_t idx = 5;

		expect("VQ_INJECT_IRQ index out of range", ioctl(fd, VDUSE_VQ_INJECT_IRQ, &idx), EINVAL);
		idx = 0;
		expect("VQ_INJECT_IRQ before DRIVER_OK", ioctl(fd, VDUSE_VQ_INJECT_IRQ, &idx), EINVAL);
		expect("INJECT_CONFIG_IRQ before DRIVER_OK", ioctl(fd, VDUSE_DEV_INJECT_CONFIG_IRQ), EINVAL);
	}
	{
		struct {
			struct vduse_config_data d;
			uint8_t b[16];
		} cd = { .d = { .offset = 4096, .length = 1 } };

		expect("SET_CONFIG offset past the end", ioctl(fd, VDUSE_DEV_SET_CONFIG, &cd), EINVAL);
		cd.d.offset = 0;
		cd.d.length = 0;
		expect("SET_CONFIG length 0", ioctl(fd, VDUSE_DEV_SET_CONFIG, &cd), EINVAL);
		cd.d.offset = 8;
		cd.d.length = 0xfffffff8;
		expect("SET_CONFIG length overflowing", ioctl(fd, VDUSE_DEV_SET_CONFIG, &cd), EINVAL);
		cd.d.offset = 0;
		cd.d.length = 8;
		expect("SET_CONFIG good", ioctl(fd, VDUSE_DEV_SET_CONFIG, &cd), 0);
	}
	{
		struct vduse_iotlb_entry e = { .start = 10, .last = 5 };
		struct vduse_iova_umem um = { 0 };
		uint64_t features;

		expect("IOTLB_GET_FD start > last", ioctl(fd, VDUSE_IOTLB_GET_FD, &e), EINVAL);
		e.start = 0;
		e.last = ~0ULL;
		expect("IOTLB_GET_FD before attach", ioctl(fd, VDUSE_IOTLB_GET_FD, &e), EINVAL);
		expect("IOTLB_REG_UMEM unsupported", ioctl(fd, VDUSE_IOTLB_REG_UMEM, &um), EOPNOTSUPP);
		expect("unknown device ioctl", ioctl(fd, _IO(VDUSE_BASE, 0x7e)), ENOTTY);
		expect("VQ_SETUP with a wrong size", ioctl(fd, _IOW(VDUSE_BASE, 0x14, uint32_t), &features), ENOTTY);
		expect("DEV_GET_FEATURES", ioctl(fd, VDUSE_DEV_GET_FEATURES, &features), 0);
		expect("DEV_GET_FEATURES bad pointer", ioctl(fd, VDUSE_DEV_GET_FEATURES, (void *)8), EFAULT);
	}
	{
		struct vduse_dev_response resp = { .request_id = 12345 };
		int fl = fcntl(fd, F_GETFL);

		expect("read with a short buffer", read(fd, buf, 8), EINVAL);
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		expect("read with nothing pending", read(fd, buf, sizeof(buf)), EAGAIN);
		fcntl(fd, F_SETFL, fl);
		expect("write of a wrong size", write(fd, buf, 7), EINVAL);
		expect("write of an unknown request", write(fd, &resp, sizeof(resp)), ENOENT);
		resp.reserved[1] = 3;
		expect("write with reserved set", write(fd, &resp, sizeof(resp)), EINVAL);
	}

	snprintf(name, sizeof(name), "shimtest");
	expect("DESTROY_DEV while open", ioctl(ctl, VDUSE_DESTROY_DEV, name), EBUSY);
	close(fd);
	memset(name, 'x', sizeof(name));
	expect("DESTROY_DEV name without NUL", ioctl(ctl, VDUSE_DESTROY_DEV, name), EINVAL);
	snprintf(name, sizeof(name), "nosuchdev");
	expect("DESTROY_DEV unknown", ioctl(ctl, VDUSE_DESTROY_DEV, name), EINVAL);
	snprintf(name, sizeof(name), "shimtest");
	expect("DESTROY_DEV", ioctl(ctl, VDUSE_DESTROY_DEV, name), 0);
	expect("DESTROY_DEV again", ioctl(ctl, VDUSE_DESTROY_DEV, name), EINVAL);
	expect("node gone", access("/dev/vduse/shimtest", F_OK), ENOENT);

	/* Still works afterwards. */
	good_config(&c, "shimtest2");
	expect("CREATE_DEV after all that", create(ctl, &c), 0);
	snprintf(name, sizeof(name), "shimtest2");
	expect("DESTROY_DEV shimtest2", ioctl(ctl, VDUSE_DESTROY_DEV, name), 0);
	close(ctl);
	return failures ? 1 : 0;
}

static int destroy(const char *dev)
{
	char name[VDUSE_NAME_MAX] = "";
	int ctl = open("/dev/vduse/control", O_RDWR | O_CLOEXEC);

	if (ctl < 0) {
		perror("/dev/vduse/control");
		return 1;
	}
	snprintf(name, sizeof(name), "%s", dev);
	if (ioctl(ctl, VDUSE_DESTROY_DEV, name)) {
		fprintf(stderr, "destroy %s: %s\n", dev, strerror(errno));
		close(ctl);
		return 1;
	}
	close(ctl);
	return 0;
}

static int silent(const char *dev, int seconds)
{
	struct vduse_vq_config vc = { .max_size = 256 };
	struct pollfd pfd = { .events = POLLIN };
	char name[VDUSE_NAME_MAX] = "";
	struct dev_cfg c;
	uint64_t features;
	int ctl, fd;

	ctl = open("/dev/vduse/control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		perror("/dev/vduse/control");
		return 1;
	}
	good_config(&c, dev);
	expect("CREATE_DEV", create(ctl, &c), 0);
	snprintf(name, sizeof(name), "/dev/vduse/%s", dev);
	fd = open(name, O_RDWR | O_CLOEXEC);
	expect("open", fd, 0);
	for (vc.index = 0; vc.index < c.cfg.vq_num; vc.index++)
		expect("VQ_SETUP", ioctl(fd, VDUSE_VQ_SETUP, &vc), 0);
	printf("silent: ready\n");
	sleep(seconds);

	pfd.fd = fd;
	expect("poll reports POLLERR", poll(&pfd, 1, 0) == 1 &&
	       (pfd.revents & POLLERR) ? 0 : -1, 0);
	expect("ioctl on a broken device", ioctl(fd, VDUSE_DEV_GET_FEATURES, &features), EIO);
	close(fd);
	snprintf(name, sizeof(name), "%s", dev);
	expect("DESTROY_DEV", ioctl(ctl, VDUSE_DESTROY_DEV, name), 0);
	close(ctl);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && !strcmp(argv[1], "bad-ioctls"))
		return bad_ioctls();
	if (argc == 3 && !strcmp(argv[1], "destroy"))
		return destroy(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "silent"))
		return silent(argv[2], atoi(argv[3]));
	fprintf(stderr, "usage: %s bad-ioctls | destroy NAME | silent NAME SECONDS\n",
		argv[0]);
	return 2;
}
