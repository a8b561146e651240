// SPDX-License-Identifier: MIT
/*
 * Every call that returns an error says why through the log handler: the
 * message for each refusal of a caller's mistake, and
 * vduse_device_features() read from another thread while the control
 * thread negotiates and resets (an atomic read: ThreadSanitizer checks it).
 */
#include <errno.h>
#include <linux/virtio_config.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fake_kernel.h"
#include "test_util.h"
#include "sim_driver.h"

/* Returns @ret, expected, and a log line holding @msg. */
#define assert_err_says(call, ret, msg)					\
	do {								\
		tu_log_clear();						\
		assert_int_equal((call), (ret));			\
		if (!tu_log_contains(msg))				\
			fail_msg("no log line holds \"%s\"", (msg));	\
	} while (0)

static void test_config_size(void **state)
{
	struct vduse_device_config c = tu_config("sz", 1, 8);
	struct vduse_device_ops ops = tu_ops;
	struct vduse_device *dev = NULL;

	c.size = 4;
	assert_err_says(vduse_device_new(&c, &dev), -EINVAL,
			"vduse_device_config: .size is 4, not sizeof(struct vduse_device_config)");
	assert_null(dev);
	c.size = sizeof(c);
	ops.size = 0;
	c.ops = &ops;
	assert_err_says(vduse_device_new(&c, &dev), -EINVAL,
			"vduse_device_ops: .size is 0");
	assert_err_says(vduse_device_new(NULL, &dev), -EINVAL,
			"vduse_device_new/_open: cfg is NULL");
	assert_err_says(vduse_device_open(&c, NULL), -EINVAL,
			"vduse_device_new/_open: out is NULL");
	assert_int_equal(fk_live_fds(), 0);
}

static void test_set_config_range(void **state)
{
	uint8_t space[16] = { 0 }, data[8] = { 0 };
	struct vduse_device_config c = tu_config("cfg", 1, 8);
	struct vduse_device *dev;

	c.config = space;
	c.config_size = sizeof(space);
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_err_says(vduse_device_set_config(dev, 9, data, 8, true), -EINVAL,
			"cfg: set_config of 8 bytes at offset 9: the config space has 16");
	assert_err_says(vduse_device_set_config(dev, UINT32_MAX, data, 2, true),
			-EINVAL, "set_config of 2 bytes at offset 4294967295");
	assert_err_says(vduse_device_set_config(dev, 0, NULL, 4, true), -EINVAL,
			"vduse_device_set_config: buf is NULL");
	assert_err_says(vduse_device_set_config(NULL, 0, data, 4, true), -EINVAL,
			"vduse_device_set_config: dev is NULL");
	/* The boundary itself is allowed, and says nothing. */
	tu_log_clear();
	assert_int_equal(vduse_device_set_config(dev, 8, data, 8, false), 0);
	assert_int_equal(tu_log_count(), 0);
	vduse_device_free(dev);
}

static void test_attach_twice(void **state)
{
	struct vduse_device_config c = tu_config("att", 1, 8);
	struct vduse_device *dev;

	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_int_equal(vduse_device_attach(dev), 0);
	assert_err_says(vduse_device_attach(dev), -EALREADY,
			"att: already attached");
	assert_err_says(vduse_device_attach_driver(dev, "virtio_vdpa"),
			-EALREADY, "att: already attached");
	assert_err_says(vduse_device_attach(NULL), -EINVAL,
			"vduse_device_attach: dev is NULL");
	assert_err_says(vduse_device_detach(NULL), -EINVAL,
			"vduse_device_detach: dev is NULL");
	assert_err_says(vduse_device_process(NULL), -EINVAL,
			"vduse_device_process: dev is NULL");
	assert_int_equal(vduse_device_detach(dev), 0);
	vduse_device_free(dev);
}

static void test_vq_calls(void **state)
{
	struct tu_env e;
	struct vduse_vq_elem fake = { .id = 3 }, *pf = &fake, *elems[1];
	uint32_t len = 0;
	void *p;

	tu_env_start(&e, tu_base_features(), 0);
	assert_err_says(vduse_vq_pop(e.vq[0], sizeof(struct vduse_vq_elem) - 1,
				     &p), -EINVAL,
			"tu: queue 0: pop: sz 31 is smaller than struct vduse_vq_elem (32)");
	assert_err_says(vduse_vq_pop(e.vq[0], SIZE_MAX / 2 + 1, &p),
			-EOVERFLOW, "tu: queue 0: pop: sz 9223372036854775808 is larger than SIZE_MAX / 2");
	assert_err_says(vduse_vq_pop_batch(e.vq[1], elems, 0), -EINVAL,
			"tu: queue 1: pop_batch of 0 elements");
	assert_err_says(vduse_vq_push(e.vq[0], &fake, 0), -EINVAL,
			"tu: queue 0: push of id 3 that is not in flight");
	assert_err_says(vduse_vq_push_batch(e.vq[0], &pf, &len, 1, 2), -EINVAL,
			"tu: queue 0: push_batch: unknown flags 0x2");
	fk_fail(FK_READ, -EBADF, 0);
	assert_err_says(vduse_vq_kick_drain(e.vq[1]), -EBADF,
			"tu: queue 1: reading its kick fd: Bad file descriptor");
	/* An empty ring is no error worth a message: -EAGAIN is silent. */
	tu_log_clear();
	vduse_log_set_level(VDUSE_LOG_DEBUG);
	assert_int_equal(vduse_vq_pop(e.vq[0], sizeof(struct vduse_vq_elem), &p),
			 -EAGAIN);
	assert_int_equal(tu_log_count(), 0);
	vduse_log_set_level(VDUSE_LOG_INFO);
	tu_env_free(&e);
}

static void test_runner_calls(void **state)
{
	struct vduse_device_config c = tu_config("run", 1, 8);
	struct vduse_runner_ops ops = { .size = 2 };
	struct vduse_runner *r = NULL, *r2 = NULL;
	struct vduse_device *dev;

	assert_int_equal(vduse_device_new(&c, &dev), 0);
	assert_err_says(vduse_runner_new(dev, &ops, NULL, &r), -EINVAL,
			"run: runner: .size is 2, not sizeof(struct vduse_runner_ops)");
	assert_null(r);
	assert_err_says(vduse_runner_new(dev, NULL, NULL, &r), -EINVAL,
			"vduse_runner_new: ops is NULL");
	ops.size = sizeof(ops);
	assert_int_equal(vduse_runner_new(dev, &ops, NULL, &r), 0);
	/* A second runner: refused, and the first one is still ours. */
	assert_err_says(vduse_runner_new(dev, &ops, NULL, &r2), -EBUSY,
			"run: the device has a runner already");
	assert_null(r2);
	assert_err_says(vduse_runner_start(NULL), -EINVAL,
			"vduse_runner_start: r is NULL");
	vduse_runner_free(r);
	vduse_device_free(dev);
}

struct reader {
	struct vduse_device *dev;
	int stop;
	uint64_t seen;
};

static void *read_features(void *arg)
{
	struct reader *rd = arg;

	while (!__atomic_load_n(&rd->stop, __ATOMIC_ACQUIRE))
		rd->seen |= vduse_device_features(rd->dev);
	return NULL;
}

/*
 * vduse_device_features() from a thread other than the control thread,
 * while the control thread negotiates features and resets the device.
 */
static void test_features_any_thread(void **state)
{
	struct vduse_device_config c = tu_config("feat", 1, 8);
	uint64_t f = TU_F(VIRTIO_F_VERSION_1) | TU_F(VIRTIO_F_ACCESS_PLATFORM);
	struct reader rd = { 0 };
	pthread_t t;

	assert_int_equal(vduse_device_new(&c, &rd.dev), 0);
	fk_set_features(f);
	assert_int_equal(pthread_create(&t, NULL, read_features, &rd), 0);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(sim_set_status(rd.dev, VIRTIO_CONFIG_S_ACKNOWLEDGE |
						VIRTIO_CONFIG_S_DRIVER |
						VIRTIO_CONFIG_S_FEATURES_OK), 0);
		assert_int_equal(vduse_device_features(rd.dev), f);
		assert_int_equal(sim_set_status(rd.dev, 0), 0);
		assert_int_equal(vduse_device_features(rd.dev), 0);
	}
	__atomic_store_n(&rd.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	assert_true((rd.seen & ~f) == 0);
	vduse_device_free(rd.dev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_size, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_set_config_range, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_attach_twice, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_vq_calls, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_runner_calls, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_features_any_thread, tu_setup, tu_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
