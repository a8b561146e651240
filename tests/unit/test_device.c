// SPDX-License-Identifier: MIT
/* Device lifecycle, config space, attach/detach and the message loop. */
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_kernel.h"
#include "vduse_uapi.h"
#include "test_util.h"
#include "sim_driver.h"

static void check_no_leaks(void)
{
	assert_int_equal(fk_live_fds(), 0);
	assert_int_equal(fk_live_maps(), 0);
	assert_int_equal(fk_bad_closes(), 0);
}

static void test_new_free(void **state)
{
	static const uint8_t cfgspace[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	struct vduse_device_config c = tu_config("blk0", 3, 128);
	const struct vduse_dev_config *kc;
	struct vduse_device *dev = NULL;
	int tag;

	c.features = 1ull << 9;		/* a device-specific bit */
	c.config = cfgspace;
	c.config_size = sizeof(cfgspace);
	c.opaque = &tag;
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_non_null(dev);

	kc = fk_created_config();
	assert_non_null(kc);
	assert_string_equal(kc->name, "blk0");
	assert_int_equal(kc->device_id, 2);
	assert_int_equal(kc->vendor_id, 0x1af4);
	assert_int_equal(kc->vq_num, 3);
	assert_int_equal(kc->config_size, sizeof(cfgspace));
	assert_memory_equal(kc->config, cfgspace, sizeof(cfgspace));
	assert_true(kc->features & (1ull << 9));
	assert_true(kc->features & TU_F(VIRTIO_F_VERSION_1));
	assert_true(kc->features & TU_F(VIRTIO_F_ACCESS_PLATFORM));
	assert_true(kc->features & TU_F(VIRTIO_RING_F_INDIRECT_DESC));
	assert_true(kc->features & TU_F(VIRTIO_RING_F_EVENT_IDX));
	assert_int_equal(fk_api_version_set(), 0);
	for (unsigned int i = 0; i < 3; i++)
		assert_int_equal(fk_vq_max_size(i), 128);
	assert_int_equal(fk_vq_max_size(3), 0);

	assert_string_equal(vduse_device_name(dev), "blk0");
	assert_ptr_equal(vduse_device_opaque(dev), &tag);
	assert_int_equal(vduse_device_num_queues(dev), 3);
	assert_true(vduse_device_fd(dev) >= 0);
	assert_non_null(vduse_device_vq(dev, 2));
	assert_null(vduse_device_vq(dev, 3));
	assert_int_equal(vduse_vq_index(vduse_device_vq(dev, 2)), 2);
	assert_ptr_equal(vduse_vq_device(vduse_device_vq(dev, 2)), dev);
	assert_false(vduse_vq_started(vduse_device_vq(dev, 0)));
	assert_int_equal(vduse_vq_size(vduse_device_vq(dev, 0)), 0);
	/* control fd, device fd and one kick eventfd per queue */
	assert_int_equal(fk_live_fds(), 2 + 3);

	vduse_device_free(dev);
	assert_int_equal(fk_destroyed(), 1);
	assert_false(fk_dev_exists("blk0"));
	check_no_leaks();
}

static void test_no_ring_features(void **state)
{
	struct vduse_device_config c = tu_config("plain", 1, 8);
	struct vduse_device *dev;
	uint64_t f;

	c.flags = VDUSE_DEVICE_F_NO_RING_FEATURES;
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	f = fk_created_config()->features;
	assert_int_equal(f, TU_F(VIRTIO_F_VERSION_1) |
			    TU_F(VIRTIO_F_ACCESS_PLATFORM));
	vduse_device_free(dev);
	check_no_leaks();
}

static void test_no_control(void **state)
{
	struct vduse_device_config c = tu_config("x", 1, 8);
	struct vduse_device *dev = (void *)&c;

	fk_set_control_missing(true);
	assert_int_equal(vduse_device_new(&c, &dev), -ENODEV);
	assert_null(dev);
	assert_true(tu_log_contains("/dev/vduse/control"));
	assert_true(tu_log_contains("not loaded"));
	check_no_leaks();
}

static void test_eexist(void **state)
{
	struct vduse_device_config c = tu_config("dup", 1, 8);
	struct vduse_device *a, *b = NULL;

	assert_int_equal(vduse_device_new(&c, &a), 0);
	tu_log_clear();
	assert_int_equal(vduse_device_new(&c, &b), -EEXIST);
	assert_null(b);
	assert_true(tu_log_contains("exists"));
	/* The failed create must not destroy the device it collided with. */
	assert_int_equal(fk_destroyed(), 0);
	assert_true(fk_dev_exists("dup"));
	assert_int_equal(fk_live_fds(), 2 + 1);
	vduse_device_free(a);
	assert_int_equal(fk_destroyed(), 1);
	check_no_leaks();
}

static void test_bad_configs(void **state)
{
	static const char cfg[8];
	char longname[VDUSE_NAME_MAX + 1];
	struct vduse_device *dev;
	struct vduse_device_config c;
	unsigned int i;

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;

	for (i = 0;; i++) {
		c = tu_config("ok", 1, 8);
		switch (i) {
		case 0: c.name = ""; break;
		case 1: c.name = "a/b"; break;
		case 2: c.name = longname; break;
		case 3: c.name = NULL; break;
		case 4: c.name = ".."; break;
		case 5: c.name = "control"; break;
		case 6: c.queue_size = 3; break;
		case 7: c.queue_size = 0; break;
		case 8: c.queue_size = 65536; break;
		case 9: c.queue_size = 100; break;
		case 10: c.num_queues = 0; break;
		case 11: c.num_queues = 65536; break;
		case 12: c.config_size = 8; c.config = NULL; break;
		case 13: c.config = cfg; c.config_size = 4097; break;
		case 14: c.size = 0; break;
		default: goto done;
		}
		dev = (void *)&c;
		tu_log_clear();
		assert_int_equal(vduse_device_new(&c, &dev), -EINVAL);
		assert_null(dev);
		if (i != 14)
			assert_true(tu_log_count() > 0);
	}
done:
	/* Nothing reached the kernel. */
	assert_int_equal(fk_calls(FK_OPEN), 0);
	assert_int_equal(vduse_device_new(NULL, &dev), -EINVAL);
	c = tu_config("ok", 1, 8);
	assert_int_equal(vduse_device_new(&c, NULL), -EINVAL);
	/* The limits themselves are accepted. */
	longname[VDUSE_NAME_MAX - 1] = 0;
	c.name = longname;
	c.queue_size = 32768;
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	vduse_device_free(dev);
	check_no_leaks();
}

/* Every failure along vduse_device_new() unwinds completely. */
static void test_new_error_paths(void **state)
{
	static const struct { int op; unsigned long req; unsigned int skip; int err; } f[] = {
		{ -1, VDUSE_GET_API_VERSION, 0, -ENOTTY },
		{ -1, VDUSE_SET_API_VERSION, 0, -EINVAL },
		{ -1, VDUSE_CREATE_DEV, 0, -EPERM },
		{ -1, VDUSE_VQ_SETUP, 1, -EINVAL },
		{ FK_EVENTFD, 0, 2, -EMFILE },
		{ FK_OPEN, 0, 0, -EACCES },	/* the control node */
		{ FK_OPEN, 0, 1, -EACCES },	/* the device node */
	};
	struct vduse_device_config c = tu_config("err", 4, 8);
	struct vduse_device *dev;
	unsigned int i;

	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		bool created = f[i].req == VDUSE_VQ_SETUP ||
			       f[i].op == FK_EVENTFD ||
			       (f[i].op == FK_OPEN && f[i].skip == 1);
		unsigned int destroyed = fk_destroyed();

		if (f[i].op < 0)
			fk_fail_ioctl(f[i].req, f[i].err, f[i].skip);
		else
			fk_fail(f[i].op, f[i].err, f[i].skip);
		dev = (void *)&c;
		assert_int_equal(vduse_device_new(&c, &dev), f[i].err);
		assert_null(dev);
		assert_int_equal(fk_destroyed(), destroyed + created);
		assert_false(fk_dev_exists("err"));
		check_no_leaks();
	}
}

/* A 6.12 kernel: API 0 and no VDUSE_GET_FEATURES; nothing newer is used. */
static void test_uapi_v0(void **state)
{
	struct vduse_device_config c = tu_config("u0", 1, 8);
	const struct vduse_dev_config *kc;
	struct vduse_device *dev;

	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_int_equal(fk_api_version_set(), 0);
	assert_int_equal(vduse_device_api_version(dev), 0);
	assert_int_equal(vduse_device_vduse_features(dev), 0);
	assert_int_equal(fk_ioctl_calls(VDUSE_GET_FEATURES), 1);
	assert_int_equal(fk_ioctl_calls(VDUSE_SET_FEATURES), 0);
	kc = fk_created_config();
	assert_int_equal(VDUSE_LIB_CONFIG_NGROUPS(kc), 0);
	assert_int_equal(VDUSE_LIB_CONFIG_NAS(kc), 0);
	assert_true(tu_log_contains("u0: VDUSE API version 0 (kernel: 0), VDUSE features none (kernel: none)"));
	vduse_device_free(dev);
	check_no_leaks();
}

/* 7.3: API version 1 with one group in one address space. */
static void test_uapi_v1(void **state)
{
	struct vduse_device_config c = tu_config("u1", 2, 8);
	const struct vduse_dev_config *kc;
	struct vduse_device *dev;

	fk_set_uapi(1, true, TU_F(VDUSE_F_QUEUE_READY) | TU_F(VDUSE_F_SUSPEND));
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_int_equal(fk_api_version_set(), 1);
	assert_int_equal(vduse_device_api_version(dev), 1);
	kc = fk_created_config();
	assert_int_equal(VDUSE_LIB_CONFIG_NGROUPS(kc), 1);
	assert_int_equal(VDUSE_LIB_CONFIG_NAS(kc), 1);
	assert_int_equal(vduse_device_vduse_features(dev),
			 fk_vduse_features_set());
	assert_true(tu_log_contains("u1: VDUSE API version 1 (kernel: 1)"));
	assert_true(tu_log_contains("(kernel: QUEUE_READY,SUSPEND)"));
	vduse_device_free(dev);
	check_no_leaks();
}

/*
 * A kernel newer than the library gets the library's highest version and
 * none of the features it does not know; one that offers 1 and refuses it
 * gets 0.
 */
static void test_uapi_newer_and_refused(void **state)
{
	struct vduse_device_config c = tu_config("u2", 1, 8);
	struct vduse_device *dev;

	fk_set_uapi(5, true, 1ULL << 40);
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_int_equal(vduse_device_api_version(dev), 1);
	assert_int_equal(fk_api_version_set(), 1);
	assert_int_equal(vduse_device_vduse_features(dev), 0);
	assert_int_equal(fk_ioctl_calls(VDUSE_SET_FEATURES), 0);
	assert_true(tu_log_contains("VDUSE features none (kernel: bit40)"));
	vduse_device_free(dev);

	fk_set_uapi(1, false, 0);
	fk_fail_ioctl(VDUSE_SET_API_VERSION, -EINVAL, 0);
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_int_equal(vduse_device_api_version(dev), 0);
	assert_int_equal(fk_api_version_set(), 0);
	assert_int_equal(VDUSE_LIB_CONFIG_NGROUPS(fk_created_config()), 0);
	assert_true(tu_log_contains("using API version 0"));
	vduse_device_free(dev);
	check_no_leaks();
}

/* A message of a type the 6.1 header does not name: payload @a, @b. */
static int send_msg(struct vduse_device *dev, uint32_t type, uint32_t a,
		    uint32_t b)
{
	struct vduse_dev_request req = { .type = type };
	struct vduse_lib_vq_ready r = { .num = a, .ready = b };
	struct vduse_dev_response resp;
	uint32_t id;

	memcpy(&req.vq_state, &r, sizeof(r));	/* the payload's start */
	id = fk_push_msg(&req);
	vduse_device_process(dev);
	assert_true(fk_response(id, &resp));
	return (int)resp.result;
}

#define VQ_READY(dev, q, on) send_msg(dev, VDUSE_LIB_REQ_SET_VQ_READY, q, on)
#define SUSPEND(dev) send_msg(dev, VDUSE_LIB_REQ_SUSPEND, 0, 0)
#define STARTED(dev, q) vduse_vq_started(vduse_device_vq(dev, q))
#define OK VDUSE_REQ_RESULT_OK
#define FAILED VDUSE_REQ_RESULT_FAILED

static unsigned int suspends;

static void cb_suspend(struct vduse_device *dev)
{
	(void)dev;
	suspends++;
}

/*
 * 7.3's VDUSE_F_QUEUE_READY and VDUSE_F_SUSPEND: a queue the driver enables
 * after DRIVER_OK starts then, even before the kernel reports it ready, and
 * stops when disabled; SUSPEND stops every queue until a reset and keeps
 * the state GET_VQ_STATE reports.
 */
static void test_queue_ready_and_suspend(void **state)
{
	struct vduse_device_config c = tu_config("qr", 2, TU_QSIZE);
	struct vduse_device_ops ops = tu_ops;
	const uint64_t both = TU_F(VDUSE_F_QUEUE_READY) | TU_F(VDUSE_F_SUSPEND);
	struct vduse_device *dev;
	struct sim_vq s[2];
	uint16_t idx = 0;

	ops.suspend = cb_suspend;
	suspends = 0;
	c.ops = &ops;
	fk_set_uapi(1, true, both);
	assert_int_equal(fk_region_add(TU_RING_BASE, TU_RING_SIZE,
				       VDUSE_ACCESS_RW), 0);
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_int_equal(vduse_device_vduse_features(dev), both);
	assert_int_equal(fk_vduse_features_set(), both);
	assert_true(tu_log_contains("VDUSE features QUEUE_READY,SUSPEND (kernel: QUEUE_READY,SUSPEND)"));
	sim_vq_init_at(&s[0], 0, TU_QSIZE, TU_RING0, 7);
	sim_vq_init_at(&s[1], 1, TU_QSIZE, TU_RING1, 9);
	/* The kernel does not report queue 1 ready. */
	fk_set_vq_info(1, TU_QSIZE, s[1].desc, s[1].avail, s[1].used, 9, false);

	/* Before DRIVER_OK an enable is only recorded. */
	assert_int_equal(VQ_READY(dev, 0, 1), OK);
	assert_int_equal(tu_cb.queue_start, 0);
	assert_int_equal(sim_driver_ok(dev, TU_F(VIRTIO_F_VERSION_1)), OK);
	assert_true(STARTED(dev, 0));
	assert_false(STARTED(dev, 1));
	assert_int_equal(tu_cb.queue_start, 1);

	/* After it, the message starts and stops the queue. */
	assert_int_equal(VQ_READY(dev, 1, 1), OK);
	assert_true(STARTED(dev, 1));
	assert_int_equal(tu_cb.queue_start, 2);
	assert_int_equal(VQ_READY(dev, 1, 0), OK);
	assert_false(STARTED(dev, 1));
	assert_true(STARTED(dev, 0));
	assert_int_equal(tu_cb.queue_stop, 1);
	assert_int_equal(VQ_READY(dev, 1, 1), OK);
	assert_true(STARTED(dev, 1));
	/* Queue indices are checked: 1 is the last of 2. */
	assert_int_equal(VQ_READY(dev, 2, 1), FAILED);
	assert_true(tu_log_contains("SET_VQ_READY for queue 2 of 2"));

	/* SUSPEND stops both, and nothing starts them again... */
	assert_int_equal(SUSPEND(dev), OK);
	assert_int_equal(suspends, 1);
	assert_false(STARTED(dev, 0));
	assert_false(STARTED(dev, 1));
	assert_int_equal(tu_cb.queue_stop, 3);
	assert_int_equal(sim_get_vq_state(dev, 0, &idx), OK);
	assert_int_equal(idx, 7);
	assert_int_equal(VQ_READY(dev, 0, 1), OK);
	assert_false(STARTED(dev, 0));
	/* ...but a reset. */
	assert_int_equal(sim_set_status(dev, 0), OK);
	fk_set_vq_info(1, TU_QSIZE, s[1].desc, s[1].avail, s[1].used, 9, true);
	assert_int_equal(sim_driver_ok(dev, TU_F(VIRTIO_F_VERSION_1)), OK);
	assert_true(STARTED(dev, 0));
	assert_true(STARTED(dev, 1));
	vduse_device_free(dev);
	check_no_leaks();
}

/*
 * Without the VDUSE features (a kernel before 7.3, or one that refuses
 * SET_FEATURES) their messages are unknown requests, answered FAILED.
 */
static void test_vduse_features_fallback(void **state)
{
	struct vduse_device_config c = tu_config("nf", 1, 8);
	struct vduse_device *dev;

	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_int_equal(VQ_READY(dev, 0, 1), FAILED);
	assert_true(tu_log_contains("unknown request type 4"));
	assert_int_equal(SUSPEND(dev), FAILED);
	assert_true(tu_log_contains("unknown request type 5"));
	vduse_device_free(dev);

	fk_set_uapi(1, true, TU_F(VDUSE_F_QUEUE_READY) | TU_F(VDUSE_F_SUSPEND));
	fk_fail_ioctl(VDUSE_SET_FEATURES, -EINVAL, 0);
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_int_equal(vduse_device_vduse_features(dev), 0);
	assert_true(tu_log_contains("VDUSE_SET_FEATURES 0x3: Invalid argument; using none"));
	assert_int_equal(SUSPEND(dev), FAILED);
	vduse_device_free(dev);
	check_no_leaks();
}

/* UPDATE_IOTLB of [start, last] in address space @asid (API 1). */
static int update_iotlb_as(struct vduse_device *dev, uint32_t asid,
			   uint64_t start, uint64_t last)
{
	struct vduse_dev_request req = { .type = VDUSE_UPDATE_IOTLB };
	struct vduse_dev_response resp;
	uint32_t id;

	req.iova.start = start;
	req.iova.last = last;
	memcpy((char *)&req.iova + 16, &asid, sizeof(asid));
	id = fk_push_msg(&req);
	vduse_device_process(dev);
	assert_true(fk_response(id, &resp));
	return (int)resp.result;
}

#define GROUP_ASID(dev, g, as) \
	send_msg(dev, VDUSE_LIB_REQ_SET_VQ_GROUP_ASID, g, as)

/*
 * API 1: two groups in two address spaces.  Queue 1 (group 1), once the
 * driver puts group 1 in space 1, finds its ring there (IOTLB_GET_FD2 with
 * asid 1), and an UPDATE_IOTLB of space 1 unmaps only what it mapped.
 */
static void test_groups_and_address_spaces(void **state)
{
	static const uint32_t groups[2] = { 0, 1 };
	struct vduse_device_config c = tu_config("as", 2, TU_QSIZE);
	const struct vduse_dev_config *kc;
	struct vduse_device *dev;
	unsigned int both, after;
	struct sim_vq s[2];

	c.num_groups = 2;
	c.num_as = 2;
	c.queue_group = groups;
	fk_set_uapi(1, true, 0);
	assert_int_equal(fk_region_add(TU_RING_BASE, TU_RING_SIZE,
				       VDUSE_ACCESS_RW), 0);
	assert_int_equal(fk_region_add_as(1, TU_RING_BASE, TU_RING_SIZE,
					  VDUSE_ACCESS_RW), 0);
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	kc = fk_created_config();
	assert_int_equal(VDUSE_LIB_CONFIG_NGROUPS(kc), 2);
	assert_int_equal(VDUSE_LIB_CONFIG_NAS(kc), 2);
	assert_int_equal(fk_vq_group(0), 0);
	assert_int_equal(fk_vq_group(1), 1);

	/* Group and space numbers are checked: 1 is the last of each. */
	assert_int_equal(GROUP_ASID(dev, 2, 0), FAILED);
	assert_int_equal(GROUP_ASID(dev, 0, 2), FAILED);
	assert_true(tu_log_contains("group 0 of 2, address space 2 of 2"));
	assert_int_equal(GROUP_ASID(dev, 1, 1), OK);

	sim_vq_init_at(&s[0], 0, TU_QSIZE, TU_RING0, 0);
	sim_vq_init_at(&s[1], 1, TU_QSIZE, TU_RING1, 0);
	assert_int_equal(sim_driver_ok(dev, TU_F(VIRTIO_F_VERSION_1)), OK);
	assert_true(STARTED(dev, 0));
	assert_true(STARTED(dev, 1));
	assert_int_equal(fk_getfd2_asids(), 3);	/* both spaces looked up */
	both = fk_live_maps();
	assert_true(both >= 2);

	/* Space 1 changes: queue 0's mapping (space 0) stays. */
	assert_int_equal(update_iotlb_as(dev, 1, 0, UINT64_MAX), OK);
	after = fk_live_maps();
	assert_true(after > 0 && after < both);
	assert_int_equal(update_iotlb_as(dev, 0, 0, UINT64_MAX), OK);
	assert_true(fk_live_maps() < after);

	vduse_device_free(dev);
	check_no_leaks();
}

/* More than one group or space needs API 1; queue groups are checked. */
static void test_groups_need_api_1(void **state)
{
	static const uint32_t groups[2] = { 0, 2 };
	struct vduse_device_config c = tu_config("g0", 2, 8);
	struct vduse_device *dev = (void *)&c;

	c.num_groups = 2;
	assert_int_equal(vduse_device_new(&c, &dev), -EOPNOTSUPP);
	assert_null(dev);
	assert_true(tu_log_contains("need VDUSE API version 1 (the kernel has 0)"));
	assert_false(fk_dev_exists("g0"));

	fk_set_uapi(1, false, 0);
	c.queue_group = groups;
	assert_int_equal(vduse_device_new(&c, &dev), -EINVAL);
	assert_true(tu_log_contains("queue 1 in group 2 of 2"));
	check_no_leaks();
}

static void test_free_null_and_version(void **state)
{
	const char *v = vduse_version();
	unsigned int a, b, c;
	char end;

	vduse_device_free(NULL);
	vduse_runner_free(NULL);
	assert_int_equal(fk_calls(FK_CLOSE), 0);
	assert_non_null(v);
	assert_true(strlen(v) > 0);
	assert_int_equal(sscanf(v, "%u.%u.%u%c", &a, &b, &c, &end), 3);
}

static void test_set_config(void **state)
{
	uint8_t space[16] = { 0 }, got[256];
	static const uint8_t data[8] = { 0xa0, 0xa1, 0xa2, 0xa3,
					 0xa4, 0xa5, 0xa6, 0xa7 };
	struct vduse_device_config c = tu_config("cfg", 1, 8);
	struct vduse_device *dev;
	uint32_t off, len;

	c.config = space;
	c.config_size = sizeof(space);
	assert_int_equal(vduse_device_new(&c, &dev), 0);

	assert_int_equal(vduse_device_set_config(dev, 4, data, 8, false), 0);
	assert_true(fk_last_set_config(&off, &len, got, sizeof(got)));
	assert_int_equal(off, 4);
	assert_int_equal(len, 8);
	assert_memory_equal(got, data, 8);
	assert_int_equal(fk_config_irqs(), 0);

	assert_int_equal(vduse_device_set_config(dev, 8, data, 8, true), 0);
	assert_int_equal(fk_config_irqs(), 1);
	assert_true(fk_last_set_config(&off, &len, got, sizeof(got)));
	assert_int_equal(off, 8);

	/* Bounds: nothing reaches the kernel. */
	assert_int_equal(vduse_device_set_config(dev, 17, data, 0, true), -EINVAL);
	assert_int_equal(vduse_device_set_config(dev, 9, data, 8, true), -EINVAL);
	assert_int_equal(vduse_device_set_config(dev, 0, data, 17, true), -EINVAL);
	assert_int_equal(vduse_device_set_config(dev, UINT32_MAX, data, 2, true),
			 -EINVAL);
	assert_int_equal(vduse_device_set_config(dev, 4, data, UINT32_MAX, false),
			 -EINVAL);
	assert_int_equal(vduse_device_set_config(dev, 0, NULL, 4, true), -EINVAL);
	assert_int_equal(vduse_device_set_config(NULL, 0, data, 4, true), -EINVAL);
	assert_int_equal(fk_ioctl_calls(VDUSE_DEV_SET_CONFIG), 2);
	assert_int_equal(fk_config_irqs(), 1);

	/* Exactly at the end: allowed. */
	assert_int_equal(vduse_device_set_config(dev, 8, data, 8, false), 0);

	/* Kernel errors propagate. */
	fk_fail_ioctl(VDUSE_DEV_SET_CONFIG, -EIO, 0);
	assert_int_equal(vduse_device_set_config(dev, 0, data, 4, true), -EIO);
	assert_int_equal(fk_config_irqs(), 1);
	fk_fail_ioctl(VDUSE_DEV_INJECT_CONFIG_IRQ, -ENODEV, 0);
	assert_int_equal(vduse_device_set_config(dev, 0, data, 4, true), -ENODEV);

	vduse_device_free(dev);
	check_no_leaks();
}

/* A zero-length update with no buffer, on a device without config space. */
static void test_set_config_empty(void **state)
{
	struct vduse_device_config c = tu_config("cfg0", 1, 8);
	struct vduse_device *dev;

	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_int_equal(vduse_device_set_config(dev, 0, NULL, 0, true), 0);
	assert_int_equal(fk_config_irqs(), 1);
	vduse_device_free(dev);
	check_no_leaks();
}

static void test_attach_detach(void **state)
{
	struct vduse_device_config c = tu_config("att", 1, 8);
	struct vduse_device *dev;

	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_int_equal(vduse_device_attach(dev), 0);
	assert_int_equal(fk_vdpa_added(), 1);
	assert_string_equal(fk_vdpa_last_name(), "att");
	assert_string_equal(fk_vdpa_last_mgmtdev(), "vduse");
	assert_int_equal(vduse_device_attach(dev), -EALREADY);
	assert_int_equal(fk_vdpa_added(), 1);

	fk_fail(FK_DEV_DEL, -EBUSY, 0);
	tu_log_clear();
	assert_int_equal(vduse_device_detach(dev), -EBUSY);
	assert_true(tu_log_count() > 0);
	assert_int_equal(vduse_device_detach(dev), 0);
	assert_int_equal(fk_vdpa_deleted(), 1);
	assert_string_equal(fk_vdpa_last_name(), "att");

	fk_fail(FK_DEV_ADD, -EPERM, 0);
	tu_log_clear();
	assert_int_equal(vduse_device_attach(dev), -EPERM);
	assert_true(tu_log_contains("att"));
	/* Not attached after the failure: a retry goes to the kernel. */
	assert_int_equal(vduse_device_attach(dev), 0);
	assert_int_equal(fk_vdpa_added(), 2);
	assert_int_equal(vduse_device_detach(dev), 0);

	/* On the bus already (a reconnected device): -EEXIST, not an error,
	 * and the handle counts as attached. */
	fk_fail(FK_DEV_ADD, -EEXIST, 0);
	tu_log_clear();
	assert_int_equal(vduse_device_attach(dev), -EEXIST);
	assert_true(tu_log_contains("already attached"));
	assert_int_equal(vduse_device_attach(dev), -EALREADY);
	assert_int_equal(vduse_device_detach(dev), 0);
	assert_int_equal(vduse_device_attach(NULL), -EINVAL);
	assert_int_equal(vduse_device_detach(NULL), -EINVAL);

	vduse_device_free(dev);
	check_no_leaks();
}

static void test_process_messages(void **state)
{
	struct vduse_device_config c = tu_config("msg", 1, 8);
	struct vduse_dev_request req = { .type = 0x7777 };
	struct vduse_dev_response resp;
	struct vduse_device *dev;
	uint32_t id1, id2;

	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_int_equal(vduse_device_process(dev), 0);	/* nothing queued */

	id1 = fk_push_msg(&req);
	req = (struct vduse_dev_request){ .type = VDUSE_UPDATE_IOTLB };
	req.iova.start = 0x2000;
	req.iova.last = 0x1000;
	id2 = fk_push_msg(&req);
	assert_int_equal(vduse_device_process(dev), 2);
	assert_int_equal(fk_pending_msgs(), 0);
	assert_true(fk_response(id1, &resp));
	assert_int_equal(resp.result, VDUSE_REQ_RESULT_FAILED);
	assert_true(fk_response(id2, &resp));
	assert_int_equal(resp.result, VDUSE_REQ_RESULT_FAILED);

	/* Status changes are reported and the status is readable. */
	assert_int_equal(sim_set_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(vduse_device_status(dev), VIRTIO_CONFIG_S_ACKNOWLEDGE);
	assert_int_equal(tu_cb.status_changed, 1);
	assert_int_equal(tu_cb.last_status, VIRTIO_CONFIG_S_ACKNOWLEDGE);

	/* Read and write errors come back as -errno. */
	fk_fail(FK_READ, -EIO, 0);
	assert_int_equal(vduse_device_process(dev), -EIO);
	req = (struct vduse_dev_request){ .type = VDUSE_UPDATE_IOTLB };
	fk_push_msg(&req);
	fk_fail(FK_WRITE, -EPIPE, 0);
	assert_int_equal(vduse_device_process(dev), -EPIPE);
	/* -ENOENT: the kernel timed out; not fatal, the loop goes on. */
	fk_push_msg(&req);
	fk_push_msg(&req);
	fk_fail(FK_WRITE, -ENOENT, 0);
	assert_int_equal(vduse_device_process(dev), 2);
	assert_true(tu_log_contains("timed out"));
	assert_int_equal(vduse_device_process(NULL), -EINVAL);

	vduse_device_free(dev);
	check_no_leaks();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_new_free, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_no_ring_features, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_no_control, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_eexist, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_bad_configs, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_new_error_paths, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_uapi_v0, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_uapi_v1, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_uapi_newer_and_refused, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_queue_ready_and_suspend, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_vduse_features_fallback, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_groups_and_address_spaces, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_groups_need_api_1, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_free_null_and_version, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_set_config, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_set_config_empty, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_attach_detach, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_process_messages, tu_setup, tu_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
