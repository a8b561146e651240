// SPDX-License-Identifier: MIT
/* Choosing the vDPA bus driver (vduse_device_attach_driver), the
 * vhost-vdpa node (vduse_device_vhost_node), and vhost-vdpa consumers
 * coming and going (VA mode). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_kernel.h"
#include "sim_driver.h"
#include "test_util.h"

static struct vduse_device *new_dev(const char *name)
{
	struct vduse_device_config c = tu_config(name, 1, 8);
	struct vduse_device *dev = NULL;

	assert_int_equal(vduse_device_new(&c, &dev), 0);
	return dev;
}

static void free_dev(struct vduse_device *dev)
{
	vduse_device_free(dev);
	assert_int_equal(fk_live_fds(), 0);
	assert_int_equal(fk_bad_closes(), 0);
}

/* Only the wanted driver is loaded: the bus binds it, no rebinding. */
static void test_vhost_direct(void **state)
{
	struct vduse_device *dev = new_dev("vh");
	char node[64];

	fk_vdpa_load_driver("vhost_vdpa");
	assert_int_equal(vduse_device_attach_driver(dev, VDUSE_DRIVER_VHOST), 0);
	assert_string_equal(fk_vdpa_bound(), "vhost_vdpa");
	assert_int_equal(fk_vdpa_binds(), 0);
	assert_true(tu_log_contains("bound to vhost_vdpa"));
	assert_int_equal(vduse_device_vhost_node(dev, node, sizeof(node)), 0);
	assert_string_equal(node, "/dev/vhost-vdpa-0");
	assert_int_equal(vduse_device_attach_driver(dev, VDUSE_DRIVER_VHOST),
			 -EALREADY);
	assert_int_equal(vduse_device_detach(dev), 0);
	assert_false(fk_vdpa_on_bus());
	assert_int_equal(vduse_device_vhost_node(dev, node, sizeof(node)),
			 -ENODEV);

	/* A second consumer generation: a new node number. */
	assert_int_equal(vduse_device_attach_driver(dev, VDUSE_DRIVER_VHOST), 0);
	assert_int_equal(vduse_device_vhost_node(dev, node, sizeof(node)), 0);
	assert_string_equal(node, "/dev/vhost-vdpa-1");
	assert_int_equal(vduse_device_detach(dev), 0);
	free_dev(dev);
}

/* The bus picks virtio_vdpa first: unbound, overridden, probed again. */
static void test_rebind(void **state)
{
	struct vduse_device *dev = new_dev("rb");
	char node[64];

	fk_vdpa_load_driver("virtio_vdpa");
	fk_vdpa_load_driver("vhost_vdpa");
	assert_int_equal(vduse_device_attach_driver(dev, VDUSE_DRIVER_VHOST), 0);
	assert_int_equal(fk_vdpa_binds(), 1);
	assert_string_equal(fk_vdpa_bound(), "vhost_vdpa");
	assert_int_equal(vduse_device_vhost_node(dev, node, sizeof(node)), 0);
	assert_string_equal(node, "/dev/vhost-vdpa-0");
	assert_int_equal(vduse_device_detach(dev), 0);

	/* Asking for the driver the bus picks anyway binds nothing more. */
	assert_int_equal(vduse_device_attach_driver(dev, VDUSE_DRIVER_VIRTIO), 0);
	assert_int_equal(fk_vdpa_binds(), 1);
	assert_string_equal(fk_vdpa_bound(), "virtio_vdpa");
	assert_int_equal(vduse_device_vhost_node(dev, node, sizeof(node)),
			 -ENODEV);
	assert_int_equal(vduse_device_detach(dev), 0);

	/* NULL: whatever the bus picks, as vduse_device_attach(). */
	assert_int_equal(vduse_device_attach_driver(dev, NULL), 0);
	assert_string_equal(fk_vdpa_bound(), "virtio_vdpa");
	assert_int_equal(fk_vdpa_binds(), 1);
	assert_int_equal(vduse_device_detach(dev), 0);
	free_dev(dev);
}

/* The wanted driver is not loaded: -ENODEV before anything is attached. */
static void test_not_loaded(void **state)
{
	struct vduse_device *dev = new_dev("nl");

	fk_vdpa_load_driver("virtio_vdpa");
	tu_log_clear();
	assert_int_equal(vduse_device_attach_driver(dev, VDUSE_DRIVER_VHOST),
			 -ENODEV);
	assert_true(tu_log_contains("modprobe vhost_vdpa"));
	assert_int_equal(fk_vdpa_added(), 0);

	fk_vdpa_set_no_bus(true);
	tu_log_clear();
	assert_int_equal(vduse_device_attach_driver(dev, VDUSE_DRIVER_VIRTIO),
			 -ENODEV);
	assert_true(tu_log_contains("no vDPA bus"));
	assert_int_equal(fk_vdpa_added(), 0);
	free_dev(dev);
}

/* Names: lowercase letters, digits, '_' and '-', 1 to 63 characters. */
static void test_names(void **state)
{
	struct vduse_device *dev = new_dev("nm");
	char name[65];

	fk_vdpa_load_driver("virtio_vdpa");
	assert_int_equal(vduse_device_attach_driver(dev, ""), -EINVAL);
	assert_int_equal(vduse_device_attach_driver(dev, "../vhost_vdpa"),
			 -EINVAL);
	assert_int_equal(vduse_device_attach_driver(dev, "vhost vdpa"),
			 -EINVAL);
	assert_int_equal(vduse_device_attach_driver(dev, "Vhost_vdpa"),
			 -EINVAL);
	assert_int_equal(vduse_device_attach_driver(NULL, VDUSE_DRIVER_VHOST),
			 -EINVAL);
	/* 64 characters: too long; 63: a name (not loaded here). */
	memset(name, 'a', 64);
	name[64] = '\0';
	assert_int_equal(vduse_device_attach_driver(dev, name), -EINVAL);
	name[63] = '\0';
	assert_int_equal(vduse_device_attach_driver(dev, name), -ENODEV);
	assert_int_equal(vduse_device_attach_driver(dev, "v-1_z"), -ENODEV);
	assert_int_equal(fk_vdpa_added(), 0);
	free_dev(dev);
}

/* Rebinding fails, or no driver takes the device: detached again. */
static void test_bind_fails(void **state)
{
	struct vduse_device *dev = new_dev("bf");

	fk_vdpa_load_driver("virtio_vdpa");
	fk_vdpa_load_driver("vhost_vdpa");
	fk_fail(FK_DEV_BIND, -EACCES, 0);
	tu_log_clear();
	assert_int_equal(vduse_device_attach_driver(dev, VDUSE_DRIVER_VHOST),
			 -EACCES);
	assert_true(tu_log_contains("binding to vhost_vdpa failed"));
	assert_int_equal(fk_vdpa_deleted(), 1);
	assert_false(fk_vdpa_on_bus());

	/* The bind went through but the driver did not take the device. */
	fk_vdpa_set_refuse(true);
	assert_int_equal(vduse_device_attach_driver(dev, VDUSE_DRIVER_VHOST),
			 -ENXIO);
	assert_int_equal(fk_vdpa_deleted(), 2);
	assert_false(fk_vdpa_on_bus());
	fk_vdpa_set_refuse(false);

	/* Not attached after either: a retry goes to the kernel. */
	assert_int_equal(vduse_device_attach_driver(dev, VDUSE_DRIVER_VHOST), 0);
	assert_string_equal(fk_vdpa_bound(), "vhost_vdpa");
	assert_int_equal(vduse_device_detach(dev), 0);
	free_dev(dev);
}

/* Reconnected to a device the bus still has: -EEXIST, never rebound. */
static void test_reconnected(void **state)
{
	struct vduse_device *dev = new_dev("rc");
	char node[64];

	fk_vdpa_load_driver("virtio_vdpa");
	fk_vdpa_load_driver("vhost_vdpa");
	fk_vdpa_put_on_bus("rc", "virtio_vdpa");
	fk_fail(FK_DEV_ADD, -EEXIST, 0);
	tu_log_clear();
	assert_int_equal(vduse_device_attach_driver(dev, VDUSE_DRIVER_VHOST),
			 -EEXIST);
	assert_true(tu_log_contains("already attached to virtio_vdpa"));
	assert_int_equal(fk_vdpa_binds(), 0);
	assert_string_equal(fk_vdpa_bound(), "virtio_vdpa");
	assert_int_equal(vduse_device_detach(dev), 0);

	/* The same driver: no warning. */
	fk_vdpa_put_on_bus("rc", "vhost_vdpa");
	fk_fail(FK_DEV_ADD, -EEXIST, 0);
	tu_log_clear();
	assert_int_equal(vduse_device_attach_driver(dev, VDUSE_DRIVER_VHOST),
			 -EEXIST);
	assert_false(tu_log_contains("already attached to"));
	assert_int_equal(vduse_device_vhost_node(dev, node, sizeof(node)), 0);
	assert_int_equal(vduse_device_detach(dev), 0);
	free_dev(dev);
}

/* The node's buffer: exactly the length with its NUL, or -ERANGE. */
static void test_node_buffer(void **state)
{
	struct vduse_device *dev = new_dev("nb");
	const char *want = "/dev/vhost-vdpa-0";
	char node[64];

	fk_vdpa_load_driver("vhost_vdpa");
	assert_int_equal(vduse_device_vhost_node(dev, node, sizeof(node)),
			 -ENODEV);	/* not attached */
	assert_int_equal(vduse_device_attach_driver(dev, VDUSE_DRIVER_VHOST), 0);
	assert_int_equal(vduse_device_vhost_node(dev, node, strlen(want)),
			 -ERANGE);
	assert_int_equal(vduse_device_vhost_node(dev, node, strlen(want) + 1),
			 0);
	assert_string_equal(node, want);
	assert_int_equal(vduse_device_vhost_node(dev, NULL, 8), -EINVAL);
	assert_int_equal(vduse_device_vhost_node(NULL, node, 8), -EINVAL);
	assert_int_equal(vduse_device_detach(dev), 0);
	free_dev(dev);
}

/*
 * vhost-vdpa consumers one after another, in VA mode: a consumer that goes
 * away empties its map first (its regions vanish from the kernel and one
 * UPDATE_IOTLB covers the whole space, as on 6.12) while the backend still
 * holds one of its elements; the element's buffers stay readable until it
 * is pushed (the push then finds the rings gone), and the reset follows.
 * The next consumer maps other memory at the same IOVAs: the device reads
 * the new bytes, never the old, and nothing of an earlier consumer stays
 * mapped or open.
 */
static void test_consumer_switch(void **state)
{
	struct sim_buf buf = { TU_DATA + 0x40, 64, false };
	uint8_t want[64];
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	for (int gen = 0; gen < 4; gen++) {
		struct vduse_vq_elem *a;

		tu_fill(TU_DATA + 0x40, (uint8_t)(0x10 + gen), sizeof(want));
		memcpy(want, fk_iova_ptr(TU_DATA + 0x40), sizeof(want));
		sim_publish(&e.s[0], sim_add_chain(&e.s[0], &buf, 1));
		a = tu_pop(e.vq[0]);
		assert_int_equal(a->out_num, 1);
		assert_int_equal(a->out_sg[0].iov_len, sizeof(want));
		assert_memory_equal(a->out_sg[0].iov_base, want, sizeof(want));

		/* The consumer goes: its memory leaves the IOTLB. */
		fk_region_del(0, UINT64_MAX);
		assert_int_equal(sim_update_iotlb(e.dev, 0, UINT64_MAX),
				 VDUSE_REQ_RESULT_OK);
		assert_true(fk_live_maps() > 0);	/* retired, held */
		assert_memory_equal(a->out_sg[0].iov_base, want, sizeof(want));
		assert_true(vduse_vq_push(e.vq[0], a, 0) < 0);
		free(a);
		assert_true(vduse_vq_broken(e.vq[0]));
		assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
		assert_int_equal(fk_live_maps(), 0);

		/* The next consumer: new memory at the same IOVAs. */
		tu_guest_memory();
		sim_vq_init_at(&e.s[0], 0, TU_QSIZE, TU_RING0, 0);
		sim_vq_init_at(&e.s[1], 1, TU_QSIZE, TU_RING1, 0);
		assert_int_equal(sim_driver_ok(e.dev, tu_base_features()),
				 VDUSE_REQ_RESULT_OK);
		assert_true(vduse_vq_started(e.vq[0]));
		assert_false(vduse_vq_broken(e.vq[0]));
	}
	/* The last consumer's bytes, through its own mappings. */
	tu_fill(TU_DATA + 0x40, 0x77, sizeof(want));
	memcpy(want, fk_iova_ptr(TU_DATA + 0x40), sizeof(want));
	sim_publish(&e.s[0], sim_add_chain(&e.s[0], &buf, 1));
	{
		struct vduse_vq_elem *a = tu_pop(e.vq[0]);

		assert_memory_equal(a->out_sg[0].iov_base, want, sizeof(want));
		assert_int_equal(vduse_vq_push(e.vq[0], a, 0), 0);
		free(a);
	}
	tu_env_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_vhost_direct, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_rebind, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_not_loaded, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_names, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_bind_fails, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_reconnected, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_node_buffer, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(test_consumer_switch, tu_setup, tu_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
