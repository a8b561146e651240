// SPDX-License-Identifier: MIT
/*
 * vduse_device_set_umem(): the bounce region backed by the backend's
 * memory through VDUSE_IOTLB_REG_UMEM, against the fake kernel's model of
 * the real one's rules (fake_kernel.h), and each of the traps: EINVAL
 * until the bounce region exists, a registration left over (EEXIST),
 * RLIMIT_MEMLOCK (ENOMEM), a kernel without the ioctls (ENOTTY), memory
 * smaller than the region, and pages of an fd mapping gone stale.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"
#include "fake_kernel.h"
#include "sys.h"
#include "vduse_uapi.h"

#define BOUNCE		0x40000ull	/* 256 KiB at IOVA 0, below the rings */
#define BUF		0x3000ull	/* a buffer in it */
#define BUF_LEN		512u

static uint8_t *umem;
static size_t umem_size;

struct env {
	struct vduse_device *dev;
	struct vduse_vq *vq[2];
	struct sim_vq s[2];
};

static int setup(void **state)
{
	tu_setup(state);
	umem_size = 2 * BOUNCE;
	umem = aligned_alloc((size_t)sysconf(_SC_PAGESIZE), umem_size);
	assert_non_null(umem);
	memset(umem, 0xee, umem_size);
	return 0;
}

static int teardown(void **state)
{
	tu_teardown(state);
	free(umem);
	umem = NULL;
	return 0;
}

/* The device with the backend's memory set; the driver not started yet. */
static void create(struct env *e, size_t size)
{
	memset(e, 0, sizeof(*e));
	e->dev = tu_device_new("tu", 2, TU_QSIZE);
	if (size)
		assert_int_equal(vduse_device_set_umem(e->dev, umem, size), 0);
	e->vq[0] = vduse_device_vq(e->dev, 0);
	e->vq[1] = vduse_device_vq(e->dev, 1);
}

static void driver_ok(struct env *e)
{
	sim_vq_init_at(&e->s[0], 0, TU_QSIZE, TU_RING0, 0);
	sim_vq_init_at(&e->s[1], 1, TU_QSIZE, TU_RING1, 0);
	assert_int_equal(sim_driver_ok(e->dev, tu_base_features()), 0);
	assert_true(vduse_vq_started(e->vq[0]));
}

static void start(struct env *e, size_t size)
{
	create(e, size);
	driver_ok(e);
}

/* The driver puts one device-readable buffer at @iova on queue @q. */
static void request(struct env *e, unsigned int q, uint64_t iova,
		    uint8_t seed)
{
	struct sim_buf b = { .addr = iova, .len = BUF_LEN, .write = false };

	tu_fill(iova, seed, BUF_LEN);
	sim_publish(&e->s[q], sim_add_chain(&e->s[q], &b, 1));
}

/* The device pops it: the bytes it reads are the driver's. */
static struct vduse_vq_elem *serve(struct env *e, unsigned int q,
				   uint64_t iova)
{
	struct vduse_vq_elem *elem = tu_pop(e->vq[q]);

	assert_int_equal(elem->out_num, 1);
	tu_assert_iov_is(&elem->out_sg[0], iova, BUF_LEN);
	return elem;
}

static void done(struct env *e, unsigned int q, struct vduse_vq_elem *elem)
{
	assert_int_equal(vduse_vq_push(e->vq[q], elem, 0), 0);
	free(elem);
}

static bool in_umem(const void *p)
{
	return (const uint8_t *)p >= umem &&
	       (const uint8_t *)p < umem + umem_size;
}

static void finish(struct env *e)
{
	vduse_device_free(e->dev);
	e->dev = NULL;
	assert_int_equal(fk_live_maps(), 0);
	assert_int_equal(fk_live_fds(), 0);
	assert_int_equal(fk_umem_stale(), 0);
}

/* Registered on the first lookup in the region; requests read the umem. */
static void test_backs_bounce(void **state)
{
	struct vduse_vq_elem *elem;
	struct env e;

	start(&e, BOUNCE);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	/* Written to the kernel's bounce pages before the registration. */
	request(&e, 0, BUF, 1);
	elem = serve(&e, 0, BUF);
	assert_ptr_equal(fk_umem(), umem);
	assert_true(in_umem(elem->out_sg[0].iov_base));
	assert_ptr_equal(elem->out_sg[0].iov_base, umem + BUF);
	assert_true(tu_log_contains("registered (VDUSE_IOTLB_REG_UMEM)"));
	done(&e, 0, elem);
	/* After it the kernel bounces into the umem: both queues see it. */
	request(&e, 1, BUF + 0x1000, 2);
	elem = serve(&e, 1, BUF + 0x1000);
	assert_ptr_equal(elem->out_sg[0].iov_base, umem + BUF + 0x1000);
	done(&e, 1, elem);
	request(&e, 0, BOUNCE - BUF_LEN, 3);	/* the region's last bytes */
	elem = serve(&e, 0, BOUNCE - BUF_LEN);
	assert_ptr_equal(elem->out_sg[0].iov_base, umem + BOUNCE - BUF_LEN);
	done(&e, 0, elem);
	assert_int_equal(fk_ioctl_calls(VDUSE_LIB_IOTLB_REG_UMEM), 1);
	/* Nothing of the bounce region was mapped from the kernel's fd. */
	assert_int_equal(fk_live_maps_in(0, BOUNCE - 1), 0);
	finish(&e);
}

/*
 * Before the first streaming map there is no bounce region: nothing is
 * registered (REG_UMEM would fail with EINVAL), other regions work, and
 * the region registers once it exists.
 */
static void test_before_bounce_map(void **state)
{
	struct vduse_vq_elem *elem;
	struct env e;

	start(&e, BOUNCE);
	request(&e, 0, TU_DATA, 4);
	elem = serve(&e, 0, TU_DATA);
	assert_false(in_umem(elem->out_sg[0].iov_base));
	done(&e, 0, elem);
	assert_true(fk_ioctl_calls(VDUSE_LIB_IOTLB_GET_INFO) >= 1);
	assert_int_equal(fk_ioctl_calls(VDUSE_LIB_IOTLB_REG_UMEM), 0);
	assert_null(fk_umem());
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	request(&e, 0, BUF, 5);
	elem = serve(&e, 0, BUF);
	assert_true(in_umem(elem->out_sg[0].iov_base));
	done(&e, 0, elem);
	assert_ptr_equal(fk_umem(), umem);
	finish(&e);
}

/*
 * REG_UMEM fails with EINVAL (the region went away between GET_INFO and
 * it): not an error; the request is served from the fd, and the next
 * driver start registers.
 */
static void test_einval_retried(void **state)
{
	struct vduse_vq_elem *elem;
	struct env e;

	start(&e, BOUNCE);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	fk_fail_ioctl(VDUSE_LIB_IOTLB_REG_UMEM, -EINVAL, 0);
	request(&e, 0, BUF, 6);
	elem = serve(&e, 0, BUF);
	assert_false(in_umem(elem->out_sg[0].iov_base));
	done(&e, 0, elem);
	assert_null(fk_umem());
	assert_false(tu_log_contains("VDUSE_IOTLB_REG_UMEM of"));
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	fk_bounce_reset();
	driver_ok(&e);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	request(&e, 0, BUF, 7);
	elem = serve(&e, 0, BUF);
	assert_true(in_umem(elem->out_sg[0].iov_base));
	done(&e, 0, elem);
	assert_ptr_equal(fk_umem(), umem);
	finish(&e);
}

/*
 * While one queue has the bounce region mapped from the kernel's fd, no
 * other queue registers: that mapping's pages would go stale.
 */
static void test_no_stale_mapping(void **state)
{
	struct vduse_vq_elem *elem;
	struct env e;

	start(&e, BOUNCE);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	fk_fail_ioctl(VDUSE_LIB_IOTLB_REG_UMEM, -EINVAL, 0);
	request(&e, 0, BUF, 8);
	elem = serve(&e, 0, BUF);
	done(&e, 0, elem);
	assert_int_equal(fk_live_maps_in(0, BOUNCE - 1), 1);
	/* Queue 1 misses in the region while queue 0 still maps it. */
	request(&e, 1, BUF + 0x1000, 9);
	elem = serve(&e, 1, BUF + 0x1000);
	assert_false(in_umem(elem->out_sg[0].iov_base));
	done(&e, 1, elem);
	assert_int_equal(fk_ioctl_calls(VDUSE_LIB_IOTLB_REG_UMEM), 1);
	assert_null(fk_umem());
	assert_int_equal(fk_umem_stale(), 0);
	/* A reset unmaps them: the next start registers. */
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	fk_bounce_reset();
	assert_int_equal(fk_live_maps_in(0, BOUNCE - 1), 0);
	driver_ok(&e);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	request(&e, 1, BUF, 10);
	elem = serve(&e, 1, BUF);
	assert_true(in_umem(elem->out_sg[0].iov_base));
	done(&e, 1, elem);
	finish(&e);
}

/* A registration left over (EEXIST) is replaced by ours. */
static void test_eexist_replaced(void **state)
{
	uint8_t *other = aligned_alloc((size_t)sysconf(_SC_PAGESIZE), BOUNCE);
	struct vduse_lib_iova_umem stale = {
		.uaddr = (uintptr_t)other, .iova = 0, .size = BOUNCE,
	};
	struct vduse_vq_elem *elem;
	struct env e;

	assert_non_null(other);
	start(&e, BOUNCE);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	/* Another registration, as one a vdpa dev del/add left. */
	assert_int_equal(vduse_sys->ioctl(vduse_device_fd(e.dev),
					  VDUSE_LIB_IOTLB_REG_UMEM, &stale), 0);
	assert_ptr_equal(fk_umem(), other);
	request(&e, 0, BUF, 11);
	elem = serve(&e, 0, BUF);
	assert_ptr_equal(elem->out_sg[0].iov_base, umem + BUF);
	done(&e, 0, elem);
	assert_ptr_equal(fk_umem(), umem);
	assert_true(tu_log_contains("was left over: replacing it"));
	assert_int_equal(fk_ioctl_calls(VDUSE_LIB_IOTLB_DEREG_UMEM), 1);
	finish(&e);
	free(other);
}

/* RLIMIT_MEMLOCK too low (ENOMEM): said so, and served from the fd. */
static void test_enomem_fallback(void **state)
{
	struct vduse_vq_elem *elem;
	struct env e;

	fk_set_memlock(BOUNCE - 1);
	start(&e, BOUNCE);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	request(&e, 0, BUF, 12);
	elem = serve(&e, 0, BUF);
	assert_false(in_umem(elem->out_sg[0].iov_base));
	done(&e, 0, elem);
	assert_null(fk_umem());
	assert_true(tu_log_contains("RLIMIT_MEMLOCK"));
	/*
	 * Not tried again on every miss, even once nothing maps the region
	 * from the fd any more: the fd's mapping until a reset.
	 */
	request(&e, 1, BUF + 0x1000, 13);
	done(&e, 1, serve(&e, 1, BUF + 0x1000));
	assert_int_equal(sim_update_iotlb(e.dev, 0, BOUNCE - 1),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(fk_live_maps_in(0, BOUNCE - 1), 0);
	request(&e, 0, BUF, 13);
	done(&e, 0, serve(&e, 0, BUF));
	assert_int_equal(fk_ioctl_calls(VDUSE_LIB_IOTLB_REG_UMEM), 1);
	/* Exactly the limit is enough. */
	fk_set_memlock(BOUNCE);
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	fk_bounce_reset();
	driver_ok(&e);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	request(&e, 0, BUF, 14);
	elem = serve(&e, 0, BUF);
	assert_true(in_umem(elem->out_sg[0].iov_base));
	done(&e, 0, elem);
	finish(&e);
}

/* A kernel without the ioctls (ENOTTY): said once, served from the fd. */
static void test_enotty_fallback(void **state)
{
	struct vduse_vq_elem *elem;
	unsigned int infos;
	struct env e;

	fk_set_umem_ioctls(false);
	start(&e, BOUNCE);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	request(&e, 0, BUF, 15);
	elem = serve(&e, 0, BUF);
	assert_false(in_umem(elem->out_sg[0].iov_base));
	done(&e, 0, elem);
	assert_true(tu_log_contains("the kernel has no VDUSE_IOTLB_GET_INFO"));
	infos = fk_ioctl_calls(VDUSE_LIB_IOTLB_GET_INFO);
	assert_int_equal(infos, 1);
	/* Never asked again, not even after a reset. */
	tu_log_clear();
	request(&e, 1, BUF + 0x1000, 16);
	done(&e, 1, serve(&e, 1, BUF + 0x1000));
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	driver_ok(&e);
	request(&e, 0, BUF, 17);
	done(&e, 0, serve(&e, 0, BUF));
	assert_int_equal(fk_ioctl_calls(VDUSE_LIB_IOTLB_GET_INFO), infos);
	assert_false(tu_log_contains("the kernel has no"));
	finish(&e);
}

/* The 6.1 shim answers EOPNOTSUPP: the same as a kernel without them. */
static void test_eopnotsupp_fallback(void **state)
{
	struct vduse_vq_elem *elem;
	unsigned int infos;
	struct env e;

	start(&e, BOUNCE);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	fk_fail_ioctl(VDUSE_LIB_IOTLB_GET_INFO, -EOPNOTSUPP, 0);
	request(&e, 0, BUF, 24);
	elem = serve(&e, 0, BUF);
	assert_false(in_umem(elem->out_sg[0].iov_base));
	done(&e, 0, elem);
	assert_true(tu_log_contains("the kernel has no VDUSE_IOTLB_GET_INFO"));
	infos = fk_ioctl_calls(VDUSE_LIB_IOTLB_GET_INFO);
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	fk_bounce_reset();
	driver_ok(&e);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	request(&e, 0, BUF, 25);
	done(&e, 0, serve(&e, 0, BUF));
	assert_int_equal(fk_ioctl_calls(VDUSE_LIB_IOTLB_GET_INFO), infos);
	assert_null(fk_umem());
	finish(&e);
}

/* Memory one page smaller than the region: an error, served from the fd. */
static void test_too_small(void **state)
{
	struct vduse_vq_elem *elem;
	struct env e;

	start(&e, BOUNCE - (size_t)sysconf(_SC_PAGESIZE));
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	request(&e, 0, BUF, 18);
	elem = serve(&e, 0, BUF);
	assert_false(in_umem(elem->out_sg[0].iov_base));
	done(&e, 0, elem);
	assert_int_equal(fk_ioctl_calls(VDUSE_LIB_IOTLB_REG_UMEM), 0);
	assert_true(tu_log_contains("the memory for the bounce region has"));
	finish(&e);
}

/* A reset deregisters (the kernel copies back); the next start registers. */
static void test_reset_deregisters(void **state)
{
	struct vduse_vq_elem *elem;
	struct env e;

	start(&e, BOUNCE);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	request(&e, 0, BUF, 19);
	done(&e, 0, serve(&e, 0, BUF));
	assert_ptr_equal(fk_umem(), umem);
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	assert_null(fk_umem());
	assert_int_equal(fk_ioctl_calls(VDUSE_LIB_IOTLB_DEREG_UMEM), 1);
	fk_bounce_reset();
	driver_ok(&e);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	request(&e, 1, BUF, 20);
	elem = serve(&e, 1, BUF);
	assert_true(in_umem(elem->out_sg[0].iov_base));
	done(&e, 1, elem);
	assert_ptr_equal(fk_umem(), umem);
	assert_int_equal(fk_ioctl_calls(VDUSE_LIB_IOTLB_REG_UMEM), 2);
	finish(&e);
}

/* Freeing the device deregisters before it closes the fd. */
static void test_free_deregisters(void **state)
{
	struct env e;

	start(&e, BOUNCE);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	request(&e, 0, BUF, 21);
	done(&e, 0, serve(&e, 0, BUF));
	assert_ptr_equal(fk_umem(), umem);
	finish(&e);
	assert_null(fk_umem());
	assert_int_equal(fk_ioctl_calls(VDUSE_LIB_IOTLB_DEREG_UMEM), 1);
}

/* A region at IOVA 0 that is not the bounce region (VA mode): no REG. */
static void test_not_bounce(void **state)
{
	struct vduse_vq_elem *elem;
	struct env e;

	start(&e, BOUNCE);
	assert_int_equal(fk_region_add(0, BOUNCE, VDUSE_ACCESS_RW), 0);
	request(&e, 0, BUF, 22);
	elem = serve(&e, 0, BUF);
	assert_false(in_umem(elem->out_sg[0].iov_base));
	done(&e, 0, elem);
	assert_int_equal(fk_ioctl_calls(VDUSE_LIB_IOTLB_REG_UMEM), 0);
	finish(&e);
}

/* Without vduse_device_set_umem() nothing is asked of the kernel. */
static void test_off_by_default(void **state)
{
	struct env e;

	start(&e, 0);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);
	request(&e, 0, BUF, 23);
	done(&e, 0, serve(&e, 0, BUF));
	assert_int_equal(fk_ioctl_calls(VDUSE_LIB_IOTLB_GET_INFO), 0);
	finish(&e);
}

static void test_set_umem_args(void **state)
{
	long page = sysconf(_SC_PAGESIZE);
	struct env e;

	assert_int_equal(vduse_device_set_umem(NULL, umem, BOUNCE), -EINVAL);
	create(&e, 0);
	assert_int_equal(vduse_device_set_umem(e.dev, NULL, BOUNCE), -EINVAL);
	assert_int_equal(vduse_device_set_umem(e.dev, umem, 0), -EINVAL);
	assert_int_equal(vduse_device_set_umem(e.dev, umem + 1, BOUNCE),
			 -EINVAL);
	assert_int_equal(vduse_device_set_umem(e.dev, umem + page, BOUNCE),
			 0);
	assert_int_equal(vduse_device_set_umem(e.dev, umem, BOUNCE), -EBUSY);
	finish(&e);
}

/* Not once the driver started. */
static void test_set_umem_late(void **state)
{
	struct env e;

	start(&e, 0);
	assert_int_equal(vduse_device_set_umem(e.dev, umem, BOUNCE), -EBUSY);
	assert_true(tu_log_contains("before the driver starts"));
	finish(&e);
}

/*
 * Bound to vhost_vdpa, the device's IOVA space is a consumer's memory.
 * The kernel's bounce flag outlives an earlier virtio_vdpa binding, so it
 * may still report a consumer region [0, bounce size - 1] as the bounce
 * region: registering there would hand the backend's memory to requests
 * that point into the consumer's.  Neither an earlier nor a later
 * vduse_device_set_umem() may register.
 */
static void test_vhost_never(void **state)
{
	struct vduse_vq_elem *elem;
	struct env e;

	create(&e, BOUNCE);
	fk_vdpa_load_driver("vhost_vdpa");
	assert_int_equal(vduse_device_attach_driver(e.dev, VDUSE_DRIVER_VHOST),
			 0);
	driver_ok(&e);
	assert_int_equal(fk_bounce_map(BOUNCE), 0);	/* the stale flag */
	request(&e, 0, BUF, 6);
	elem = serve(&e, 0, BUF);
	assert_false(in_umem(elem->out_sg[0].iov_base));
	done(&e, 0, elem);
	assert_int_equal(fk_ioctl_calls(VDUSE_LIB_IOTLB_REG_UMEM), 0);
	assert_null(fk_umem());
	assert_true(tu_log_contains("the backend's memory will not back it"));
	finish(&e);
}

/* Set after the binding to vhost_vdpa: refused, with the reason. */
static void test_vhost_refused(void **state)
{
	struct env e;

	create(&e, 0);
	fk_vdpa_load_driver("vhost_vdpa");
	assert_int_equal(vduse_device_attach_driver(e.dev, VDUSE_DRIVER_VHOST),
			 0);
	assert_int_equal(vduse_device_set_umem(e.dev, umem, BOUNCE), -EINVAL);
	assert_true(tu_log_contains("bound to vhost_vdpa, which has no bounce region"));
	finish(&e);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_backs_bounce),
		T(test_before_bounce_map),
		T(test_einval_retried),
		T(test_no_stale_mapping),
		T(test_eexist_replaced),
		T(test_enomem_fallback),
		T(test_enotty_fallback),
		T(test_eopnotsupp_fallback),
		T(test_too_small),
		T(test_reset_deregisters),
		T(test_free_deregisters),
		T(test_not_bounce),
		T(test_off_by_default),
		T(test_set_umem_args),
		T(test_set_umem_late),
		T(test_vhost_never),
		T(test_vhost_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
