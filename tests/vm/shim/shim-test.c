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
 *   shim-test hostile NAME MODE QSIZE
 *                            a small RAM-backed virtio-blk daemon (64 MiB,
 *                            one queue of QSIZE) that serves requests until
 *                            SIGUSR1, then waits for requests in flight,
 *                            rewrites the ring as MODE says and exits:
 *                              noevent   used->flags NO_NOTIFY, avail_event
 *                                        just behind avail->idx (the driver
 *                                        stops kicking)
 *                              selfloop  every in-flight head's descriptor
 *                                        points at itself
 *                              longchain the descriptors that are free or
 *                                        have NEXT form one cycle (in-flight
 *                                        chains keep their flags)
 *                              indirect  every in-flight head is an indirect
 *                                        table of 4G-16 bytes at IOVA 4096,
 *                                        where 1 MiB of descriptors form a
 *                                        cycle
 *                              inflate   avail->idx moved 0x8000 entries
 *                                        ahead, past anything the ring
 *                                        can hold
 *                            The shim maps the descriptor table and the
 *                            avail ring read-only, so the rewrites of
 *                            selfloop, longchain, indirect and inflate
 *                            fault: it prints "write refused" (SIGBUS)
 *                            and exits all the same
 *                              crash     nothing: it stops serving and waits
 *                                        for its SIGKILL, requests in flight
 *                                        (the data lives in the file
 *                                        /tmp/shim-store-NAME, for resume)
 *   shim-test resume NAME AVAIL
 *                            a second daemon for a crashed one: reopens
 *                            NAME, expects VQ_GET_INFO to say the ring
 *                            resumes at avail index AVAIL (what the crashed
 *                            one printed), then serves from the index the
 *                            kernel gave (the requests in flight first)
 *                            until SIGUSR1
 *   shim-test resume NAME dead
 *                            the reopen must fail with EIO
 *   shim-test resume NAME race:MS
 *                            a reopen racing reconnect_timeout: if it is
 *                            refused (EIO) it prints "refused" and exits 3;
 *                            if it succeeds, the device must still be alive
 *                            MS milliseconds later (VQ_GET_INFO works, the
 *                            queue is ready), then it serves as above from
 *                            the index the kernel gave
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
#include <linux/virtio_ring.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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
	good_config(&c, ".");
	expect("name '.'", create(ctl, &c), EINVAL);
	good_config(&c, "..");
	expect("name '..'", create(ctl, &c), EINVAL);
	good_config(&c, "a b");
	expect("name with a space", create(ctl, &c), EINVAL);
	good_config(&c, "a\nb");
	expect("name with a newline", create(ctl, &c), EINVAL);
	good_config(&c, "a:b");
	expect("name with a colon", create(ctl, &c), EINVAL);
	good_config(&c, "d\xc3\xa4");
	expect("name with a UTF-8 letter", create(ctl, &c), EINVAL);
	good_config(&c, "\xe4");
	expect("name with a Latin-1 letter", create(ctl, &c), EINVAL);
	good_config(&c, "a*");
	expect("name with a star", create(ctl, &c), EINVAL);
	good_config(&c, "Ok-name_1.2");
	expect("name of [A-Za-z0-9._-]", create(ctl, &c), 0);
	snprintf(name, sizeof(name), "Ok-name_1.2");
	expect("DESTROY_DEV Ok-name_1.2", ioctl(ctl, VDUSE_DESTROY_DEV, name), 0);
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

/* ---- a hostile daemon ---------------------------------------------------- */

#define H_SECTORS	(64ULL << 11)	/* 64 MiB */
#define H_MAPS		64
/* IOVA of the indirect table of the indirect case (not 0: refused). */
#define H_TABLE		4096

struct h_map {
	uint64_t start, last;
	uint8_t *p;
};

static struct {
	int fd;
	uint8_t *store;
	struct h_map maps[H_MAPS];
	int nmaps;
	unsigned int num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail;
	uint16_t used_idx;
	unsigned long served;
} h;

static volatile sig_atomic_t h_trigger;

static void h_on_usr1(int sig)
{
	(void)sig;
	h_trigger = 1;
}

static void h_unmap(uint64_t start, uint64_t last)
{
	int i;

	for (i = 0; i < h.nmaps; i++) {
		struct h_map *m = &h.maps[i];

		if (m->last < start || m->start > last)
			continue;
		munmap(m->p, m->last - m->start + 1);
		*m = h.maps[--h.nmaps];
		i--;
	}
}

/* The disk: in memory, or in /tmp/shim-store-NAME to outlive a crash. */
static uint8_t *h_store(const char *dev, int shared, int create)
{
	char path[VDUSE_NAME_MAX + 32];
	void *p;
	int fd;

	if (!shared)
		return calloc(1, H_SECTORS << 9);
	snprintf(path, sizeof(path), "/tmp/shim-store-%s", dev);
	fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0),
		  0600);
	if (fd < 0 || (create && ftruncate(fd, H_SECTORS << 9))) {
		perror(path);
		return NULL;
	}
	p = mmap(NULL, H_SECTORS << 9, PROT_READ | PROT_WRITE, MAP_SHARED,
		 fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

/* A pointer to [iova, iova + len) in the daemon, mapping its region once. */
static void *h_ptr(uint64_t iova, uint64_t len)
{
	struct vduse_iotlb_entry e = { .start = iova, .last = iova + len - 1 };
	struct h_map *m;
	void *p;
	int i, fd;

	if (!len || e.last < iova)
		return NULL;
	for (i = 0; i < h.nmaps; i++) {
		m = &h.maps[i];
		if (iova >= m->start && e.last <= m->last)
			return m->p + (iova - m->start);
	}
	if (h.nmaps == H_MAPS)
		return NULL;
	fd = ioctl(h.fd, VDUSE_IOTLB_GET_FD, &e);
	if (fd < 0)
		return NULL;
	p = mmap(NULL, e.last - e.start + 1, PROT_READ | PROT_WRITE,
		 MAP_SHARED, fd, e.offset);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	m = &h.maps[h.nmaps++];
	m->start = e.start;
	m->last = e.last;
	m->p = p;
	if (iova < m->start || iova + len - 1 > m->last)
		return NULL;
	return m->p + (iova - m->start);
}

/* EVENT_IDX: the driver kicks when avail->idx passes this. */
static uint16_t *h_avail_event(void)
{
	return (uint16_t *)&h.used->ring[h.num];
}

/* Map the ring; at DRIVER_OK (@start) its indices start at 0. */
static int h_ring_setup(int start)
{
	struct vduse_vq_info vi = { .index = 0 };

	if (ioctl(h.fd, VDUSE_VQ_GET_INFO, &vi) || !vi.num)
		return -1;
	h.num = vi.num;
	h.desc = h_ptr(vi.desc_addr, 16ULL * h.num);
	h.avail = h_ptr(vi.driver_addr, 6 + 2ULL * h.num);
	h.used = h_ptr(vi.device_addr, 6 + 8ULL * h.num);
	if (start) {
		h.last_avail = 0;
		h.used_idx = 0;
	}
	return h.desc && h.avail && h.used ? 0 : -1;
}

/* One request: header, data descriptors, status byte (no indirect tables). */
static uint32_t h_serve_one(uint16_t head)
{
	struct virtio_blk_outhdr hdr = { 0 };
	uint64_t pos = 0;
	uint32_t written = 0;
	uint8_t status = VIRTIO_BLK_S_OK;
	uint8_t *last = NULL;
	unsigned int i = head, n = 0;

	for (;;) {
		struct vring_desc d;
		uint8_t *p;

		if (i >= h.num || ++n > h.num)
			return 0;
		d = h.desc[i];
		p = h_ptr(d.addr, d.len);
		if (!p)
			return 0;
		if (n == 1) {
			if (d.len < sizeof(hdr))
				return 0;
			memcpy(&hdr, p, sizeof(hdr));
			pos = hdr.sector * 512;
		} else if (!(d.flags & VRING_DESC_F_NEXT)) {
			last = p + d.len - 1;
			written++;
			break;
		} else if (hdr.type == VIRTIO_BLK_T_IN ||
			   hdr.type == VIRTIO_BLK_T_OUT) {
			if (pos + d.len > (H_SECTORS << 9)) {
				status = VIRTIO_BLK_S_IOERR;
			} else if (hdr.type == VIRTIO_BLK_T_IN) {
				memcpy(p, h.store + pos, d.len);
				written += d.len;
			} else {
				memcpy(h.store + pos, p, d.len);
			}
			pos += d.len;
		} else if (hdr.type == VIRTIO_BLK_T_GET_ID) {
			memset(p, 0, d.len);
			memcpy(p, "hostile", d.len < 7 ? d.len : 7);
			written += d.len;
		}
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		i = d.next;
	}
	if (hdr.type != VIRTIO_BLK_T_IN && hdr.type != VIRTIO_BLK_T_OUT &&
	    hdr.type != VIRTIO_BLK_T_GET_ID && hdr.type != VIRTIO_BLK_T_FLUSH)
		status = VIRTIO_BLK_S_UNSUPP;
	*last = status;
	return written;
}

static void h_serve(void)
{
	uint16_t idx;
	uint32_t zero = 0;

	if (!h.num)
		return;
	for (;;) {
		idx = __atomic_load_n(&h.avail->idx, __ATOMIC_ACQUIRE);
		while (h.last_avail != idx) {
			uint16_t head = h.avail->ring[h.last_avail % h.num];
			struct vring_used_elem *u = &h.used->ring[h.used_idx % h.num];

			u->len = head < h.num ? h_serve_one(head) : 0;
			u->id = head;
			h.last_avail++;
			h.used_idx++;
			h.served++;
		}
		__atomic_store_n(&h.used->idx, h.used_idx, __ATOMIC_RELEASE);
		/* EVENT_IDX: kick me at the next request. */
		*h_avail_event() = h.last_avail;
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(&h.avail->idx, __ATOMIC_ACQUIRE) == h.last_avail)
			break;
	}
	ioctl(h.fd, VDUSE_VQ_INJECT_IRQ, &zero);
}

static int h_message(void)
{
	struct vduse_dev_request req;
	struct vduse_dev_response resp = { .result = VDUSE_REQ_RESULT_OK };

	if (read(h.fd, &req, sizeof(req)) != sizeof(req))
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	resp.request_id = req.request_id;
	if (req.type == VDUSE_SET_STATUS) {
		if (!req.s.status) {
			h.num = 0;
			h_unmap(0, ~0ULL);
		} else if ((req.s.status & VIRTIO_CONFIG_S_DRIVER_OK) &&
			   !h.num && h_ring_setup(1)) {
			fprintf(stderr, "hostile: cannot map the ring\n");
			resp.result = VDUSE_REQ_RESULT_FAILED;
		}
	} else if (req.type == VDUSE_UPDATE_IOTLB) {
		h_unmap(req.iova.start, req.iova.last);
		/* The ring may have been in what went away. */
		if (h.num && h_ring_setup(0))
			h.num = 0;
	}
	return write(h.fd, &resp, sizeof(resp)) == sizeof(resp) ? 0 : -1;
}

/*
 * One cycle through every descriptor that is free or has NEXT: a walk from
 * an in-flight head never ends.  virtio_ring (6.1) frees a chain by following
 * its own next links while the ring's NEXT flags say so, so the flags of
 * in-flight descriptors are kept: only the device's walk goes astray.
 */
static int h_longchain(uint16_t idx)
{
	uint8_t *busy = calloc(h.num, 1);
	uint16_t *cycle = calloc(h.num, sizeof(*cycle));
	unsigned int i, n = 0, k;
	uint16_t a;

	if (!busy || !cycle)
		return -1;
	for (a = h.last_avail; a != idx; a++) {
		unsigned int d = h.avail->ring[a % h.num];

		for (k = 0; d < h.num && k < h.num && !busy[d]; k++) {
			busy[d] = 1;
			if (!(h.desc[d].flags & VRING_DESC_F_NEXT))
				break;
			d = h.desc[d].next;
		}
	}
	for (i = 0; i < h.num; i++) {
		if (busy[i] && !(h.desc[i].flags & VRING_DESC_F_NEXT))
			continue;
		if (!busy[i])
			h.desc[i].flags = VRING_DESC_F_NEXT | VRING_DESC_F_WRITE;
		cycle[n++] = i;
	}
	for (k = 0; k < n; k++)
		h.desc[cycle[k]].next = cycle[(k + 1) % n];
	printf("hostile: a cycle of %u descriptors, ring of %u\n", n, h.num);
	free(busy);
	free(cycle);
	return 0;
}

static sigjmp_buf h_sigbus_jmp;

static void h_on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(h_sigbus_jmp, 1);
}

/* Rewrite the ring as @mode says; returns how many heads were in flight. */
static int h_corrupt(const char *mode)
{
	uint16_t idx = __atomic_load_n(&h.avail->idx, __ATOMIC_ACQUIRE);
	struct sigaction sa = { .sa_handler = h_on_sigbus };
	uint16_t a;
	unsigned int i;
	int n = (uint16_t)(idx - h.last_avail);

	/* A write the shim refuses faults: say so, and exit as planned. */
	sigaction(SIGBUS, &sa, NULL);
	if (sigsetjmp(h_sigbus_jmp, 1)) {
		printf("hostile: %s: ring write refused (SIGBUS)\n", mode);
		return n;
	}
	for (a = h.last_avail; a != idx; a++) {
		uint16_t head = h.avail->ring[a % h.num];
		struct vring_desc *d;

		if (head >= h.num)
			continue;
		d = &h.desc[head];
		if (!strcmp(mode, "selfloop")) {
			d->flags = VRING_DESC_F_NEXT | VRING_DESC_F_WRITE;
			d->next = head;
		} else if (!strcmp(mode, "indirect")) {
			/* NEXT kept: the driver's own walk stays sane. */
			d->addr = H_TABLE;
			d->len = 0xfffffff0;
			d->flags = VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT;
		}
	}
	if (!strcmp(mode, "longchain")) {
		if (h_longchain(idx))
			return -1;
	} else if (!strcmp(mode, "indirect")) {
		/* 64Ki descriptors in the bounce region, each linking on. */
		struct vring_desc *t = h_ptr(H_TABLE, 65536 * sizeof(*t));

		if (!t)
			return -1;
		for (i = 0; i < 65536; i++) {
			t[i].addr = 0;
			t[i].len = 1;
			t[i].flags = VRING_DESC_F_NEXT | VRING_DESC_F_WRITE;
			t[i].next = (i + 1) & 0xffff;
		}
	} else if (!strcmp(mode, "noevent")) {
		h.used->flags = VRING_USED_F_NO_NOTIFY;
		*h_avail_event() = idx - 1;
	} else if (!strcmp(mode, "inflate")) {
		/* The driver's own field: it writes it again at its next add. */
		__atomic_store_n(&h.avail->idx, (uint16_t)(idx + 0x8000),
				 __ATOMIC_RELEASE);
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return n;
}

/* Serve requests and messages until SIGUSR1. */
static int h_loop(int efd)
{
	struct pollfd pfd[2];

	pfd[0] = (struct pollfd){ .fd = h.fd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = efd, .events = POLLIN };
	while (!h_trigger) {
		uint64_t v;

		if (poll(pfd, 2, 100) < 0 && errno != EINTR)
			return 1;
		if ((pfd[0].revents & POLLIN) && h_message())
			return 1;
		if (pfd[0].revents & POLLERR) {
			fprintf(stderr, "hostile: device broken\n");
			return 1;
		}
		if (read(efd, &v, sizeof(v)) == sizeof(v) || h.num)
			h_serve();
	}
	return 0;
}

static int hostile(const char *dev, const char *mode, unsigned int qsize)
{
	struct vduse_vq_config vc = { .max_size = qsize };
	struct vduse_vq_eventfd ve = { .index = 0 };
	char path[VDUSE_NAME_MAX + 16];
	int crash = !strcmp(mode, "crash");
	struct dev_cfg c;
	int ctl, efd, i, n = 0;

	if (strcmp(mode, "noevent") && strcmp(mode, "selfloop") &&
	    strcmp(mode, "longchain") && strcmp(mode, "indirect") &&
	    strcmp(mode, "inflate") && !crash) {
		fprintf(stderr, "hostile: unknown mode %s\n", mode);
		return 2;
	}
	signal(SIGUSR1, h_on_usr1);
	h.store = h_store(dev, crash, 1);
	ctl = open("/dev/vduse/control", O_RDWR | O_CLOEXEC);
	if (!h.store || ctl < 0) {
		perror("hostile");
		return 1;
	}
	good_config(&c, dev);
	c.cfg.features |= 1ULL << VIRTIO_RING_F_EVENT_IDX;
	c.cfg.vq_num = 1;
	c.blk.capacity = H_SECTORS;
	if (create(ctl, &c)) {
		perror("hostile: CREATE_DEV");
		return 1;
	}
	close(ctl);
	snprintf(path, sizeof(path), "/dev/vduse/%s", dev);
	h.fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ve.fd = efd;
	if (h.fd < 0 || efd < 0 || ioctl(h.fd, VDUSE_VQ_SETUP, &vc) ||
	    ioctl(h.fd, VDUSE_VQ_SETUP_KICKFD, &ve)) {
		perror("hostile: set-up");
		return 1;
	}
	printf("hostile: ready\n");

	if (h_loop(efd))
		return 1;
	printf("hostile: served %lu requests; stopping\n", h.served);
	/* Wait (up to 3 s) for requests the driver made available. */
	for (i = 0; i < 30 && h.num; i++) {
		if (h.avail->idx != h.last_avail)
			break;
		usleep(100000);
	}
	usleep(500000);
	if (crash && h.num) {
		n = (uint16_t)(__atomic_load_n(&h.avail->idx, __ATOMIC_ACQUIRE) -
			       h.last_avail);
		/* Everything below last_avail is used: it is where to resume. */
		printf("hostile: crash: %d request(s) in flight, resume at avail index %u (used index %u)\n",
		       n, h.last_avail, h.used_idx);
		for (;;)
			pause();
	}
	if (h.num)
		n = h_corrupt(mode);
	printf("hostile: %s: %d request(s) in flight; exiting\n", mode, n);
	return h.num && n >= 0 ? 0 : 1;
}

/* The successor of a crashed daemon (hostile ... crash). */
static int resume(const char *dev, const char *want)
{
	struct vduse_vq_info vi = { .index = 0 };
	struct vduse_vq_eventfd ve = { .index = 0 };
	char path[VDUSE_NAME_MAX + 16];
	int efd;

	signal(SIGUSR1, h_on_usr1);
	snprintf(path, sizeof(path), "/dev/vduse/%s", dev);
	h.fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (!strcmp(want, "dead")) {
		expect("reopen of a dead device refused", h.fd, EIO);
		return failures ? 1 : 0;
	}
	if (!strncmp(want, "race:", 5)) {
		if (h.fd < 0 && errno == EIO) {
			printf("resume: refused (the device is dead)\n");
			return 3;
		}
		expect("reopen racing reconnect_timeout", h.fd, 0);
		if (h.fd < 0)
			return 1;
		printf("resume: reopened\n");
		/* The death, if it comes after the open, comes within MS. */
		usleep(atoi(want + 5) * 1000);
	} else {
		expect("reopen within the window", h.fd, 0);
		if (h.fd < 0)
			return 1;
	}
	expect("VQ_GET_INFO", ioctl(h.fd, VDUSE_VQ_GET_INFO, &vi), 0);
	expect("queue still ready", vi.ready ? 0 : -1, 0);
	printf("resume: VQ_GET_INFO avail index %u, wanted %s\n",
	       vi.split.avail_index, want);
	if (strncmp(want, "race:", 5))
		expect("VQ_GET_INFO avail index is where the crashed daemon stopped",
		       vi.split.avail_index == (unsigned int)atoi(want) ? 0 : -1, 0);
	/* A device that died after the reopen: nothing to serve. */
	if (!strncmp(want, "race:", 5) && failures)
		return 1;
	h.store = h_store(dev, 1, 0);
	if (!h.store || h_ring_setup(0)) {
		fprintf(stderr, "resume: cannot map the store or the ring\n");
		return 1;
	}
	/* Resume where the kernel says, even when wrong: the guest shows it. */
	h.last_avail = vi.split.avail_index;
	h.used_idx = __atomic_load_n(&h.used->idx, __ATOMIC_ACQUIRE);
	printf("resume: %u request(s) waiting, used index %u\n",
	       (uint16_t)(h.avail->idx - h.last_avail), h.used_idx);
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ve.fd = efd;
	expect("VQ_SETUP_KICKFD", ioctl(h.fd, VDUSE_VQ_SETUP_KICKFD, &ve), 0);
	printf("resume: ready\n");
	/* Kicks sent while nobody listened: look at the ring first. */
	h_serve();
	if (h_loop(efd))
		return 1;
	printf("resume: served %lu requests\n", h.served);
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
	if (argc == 5 && !strcmp(argv[1], "hostile"))
		return hostile(argv[2], argv[3], atoi(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "resume"))
		return resume(argv[2], argv[3]);
	fprintf(stderr, "usage: %s bad-ioctls | destroy NAME | silent NAME SECONDS |\n"
		"       hostile NAME MODE QSIZE | resume NAME AVAIL|dead\n",
		argv[0]);
	return 2;
}
