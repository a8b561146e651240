// SPDX-License-Identifier: MIT
/* Shared helpers for the unit tests (see test_util.h). */
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_kernel.h"
#include "test_util.h"

struct tu_cb tu_cb;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[64][512];
static unsigned int log_n;

uint64_t tu_base_features(void)
{
	return TU_F(VIRTIO_F_VERSION_1) | TU_F(VIRTIO_F_ACCESS_PLATFORM) |
	       TU_F(VIRTIO_RING_F_INDIRECT_DESC);
}

uint64_t tu_event_idx_feature(void)
{
	return TU_F(VIRTIO_RING_F_EVENT_IDX);
}

static void on_log(int level, const char *msg, void *opaque)
{
	(void)level;
	(void)opaque;
	pthread_mutex_lock(&log_lock);
	snprintf(log_buf[log_n % 64], sizeof(log_buf[0]), "%s", msg);
	log_n++;
	pthread_mutex_unlock(&log_lock);
}

bool tu_log_contains(const char *needle)
{
	unsigned int i, n;
	bool found = false;

	pthread_mutex_lock(&log_lock);
	n = log_n < 64 ? log_n : 64;
	for (i = 0; i < n && !found; i++)
		found = strstr(log_buf[i], needle) != NULL;
	pthread_mutex_unlock(&log_lock);
	return found;
}

unsigned int tu_log_count(void)
{
	unsigned int n;

	pthread_mutex_lock(&log_lock);
	n = log_n;
	pthread_mutex_unlock(&log_lock);
	return n;
}

void tu_log_clear(void)
{
	pthread_mutex_lock(&log_lock);
	log_n = 0;
	pthread_mutex_unlock(&log_lock);
}

static void cb_status(struct vduse_device *dev, uint8_t status)
{
	tu_cb.status_changed++;
	tu_cb.last_status = status;
}

static int cb_start(struct vduse_device *dev, struct vduse_vq *vq)
{
	tu_cb.queue_start++;
	return tu_cb.on_start ? tu_cb.on_start(vq) : 0;
}

static void cb_stop(struct vduse_device *dev, struct vduse_vq *vq)
{
	/* Atomic: for a queue left behind by the runner it comes late, on
	 * the control thread, while the test polls it. */
	__atomic_add_fetch(&tu_cb.queue_stop, 1, __ATOMIC_SEQ_CST);
}

static void cb_reset(struct vduse_device *dev)
{
	tu_cb.reset++;
}

static void cb_error(struct vduse_device *dev, struct vduse_vq *vq, int err)
{
	tu_cb.queue_error++;
	tu_cb.last_error = err;
	tu_cb.error_vq = vq;
	if (tu_cb.on_error)
		tu_cb.on_error(vq, err);
}

const struct vduse_device_ops tu_ops = {
	.size = sizeof(struct vduse_device_ops),
	.status_changed = cb_status,
	.queue_start = cb_start,
	.queue_stop = cb_stop,
	.reset = cb_reset,
	.queue_error = cb_error,
};

int tu_setup(void **state)
{
	(void)state;
	fk_setup();
	memset(&tu_cb, 0, sizeof(tu_cb));
	tu_log_clear();
	vduse_log_set_handler(on_log, NULL);
	vduse_log_set_level(VDUSE_LOG_INFO);
	return 0;
}

int tu_teardown(void **state)
{
	(void)state;
	vduse_log_set_handler(NULL, NULL);
	fk_teardown();
	return 0;
}

struct vduse_device_config tu_config(const char *name, unsigned int nq,
				     unsigned int qsize)
{
	struct vduse_device_config c = {
		.size = sizeof(c),
		.name = name,
		.device_id = 2,		/* block */
		.vendor_id = 0x1af4,
		.num_queues = nq,
		.queue_size = qsize,
		.ops = &tu_ops,
	};

	return c;
}

void tu_guest_memory(void)
{
	assert_int_equal(fk_region_add(TU_RING_BASE, TU_RING_SIZE,
				       VDUSE_ACCESS_RW), 0);
	assert_int_equal(fk_region_add(TU_DATA, TU_DATA_SIZE,
				       VDUSE_ACCESS_RW), 0);
}

struct vduse_device *tu_device_new(const char *name, unsigned int nq,
				   unsigned int qsize)
{
	struct vduse_device_config c = tu_config(name, nq, qsize);
	struct vduse_device *dev = NULL;

	tu_guest_memory();
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	return dev;
}

void tu_env_start(struct tu_env *e, uint64_t features, uint16_t start)
{
	tu_env_start_partial(e, features, start);
	assert_true(vduse_vq_started(e->vq[0]));
	assert_true(vduse_vq_started(e->vq[1]));
}

void tu_env_start_partial(struct tu_env *e, uint64_t features,
			  uint16_t start)
{
	memset(e, 0, sizeof(*e));
	e->dev = tu_device_new("tu", 2, TU_QSIZE);
	sim_vq_init_at(&e->s[0], 0, TU_QSIZE, TU_RING0, start);
	sim_vq_init_at(&e->s[1], 1, TU_QSIZE, TU_RING1, start);
	assert_int_equal(sim_driver_ok(e->dev, features), VDUSE_REQ_RESULT_OK);
	e->vq[0] = vduse_device_vq(e->dev, 0);
	e->vq[1] = vduse_device_vq(e->dev, 1);
	assert_non_null(e->vq[0]);
	assert_non_null(e->vq[1]);
	assert_int_equal(vduse_device_features(e->dev), features);
}

void tu_env_free(struct tu_env *e)
{
	vduse_device_free(e->dev);
	e->dev = NULL;
	assert_int_equal(fk_live_maps(), 0);
	assert_int_equal(fk_live_fds(), 0);
	assert_int_equal(fk_bad_closes(), 0);
}

struct vduse_vq_elem *tu_pop(struct vduse_vq *vq)
{
	void *elem = NULL;

	assert_int_equal(vduse_vq_pop(vq, sizeof(struct vduse_vq_elem), &elem),
			 0);
	assert_non_null(elem);
	return elem;
}

void tu_fill(uint64_t iova, uint8_t seed, size_t len)
{
	uint8_t *p = fk_iova_ptr(iova);

	assert_non_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

void tu_assert_iov_is(const struct iovec *iov, uint64_t iova, size_t len)
{
	assert_int_equal(iov->iov_len, len);
	assert_memory_equal(iov->iov_base, fk_iova_ptr(iova), len);
}
