/* SPDX-License-Identifier: MIT */
/* Shared helpers for the unit tests: log capture, callback counters and a
 * ready-to-use device with two started queues. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <cmocka.h>

#include "libvduse.h"
#include "sim_driver.h"

/* Guest memory layout of tu_env. */
#define TU_QSIZE	256u
#define TU_RING_BASE	0x100000ull	/* 64 KiB, RW: both rings */
#define TU_RING_SIZE	0x10000ull
#define TU_RING0	TU_RING_BASE
#define TU_RING1	(TU_RING_BASE + 0x8000)
#define TU_DATA		0x200000ull	/* 1 MiB, RW: buffers */
#define TU_DATA_SIZE	0x100000ull

#define TU_F(bit)	(1ull << (bit))
/* VERSION_1 | ACCESS_PLATFORM | INDIRECT_DESC; add EVENT_IDX per test. */
uint64_t tu_base_features(void);
uint64_t tu_event_idx_feature(void);

/* What the device callbacks saw. */
struct tu_cb {
	unsigned int status_changed, queue_start, queue_stop, reset;
	unsigned int queue_error;
	int last_error;
	struct vduse_vq *error_vq;
	uint8_t last_status;
	/* Called from the queue_error callback when set. */
	void (*on_error)(struct vduse_vq *vq, int err);
	/* When set, the queue_start callback returns what this returns. */
	int (*on_start)(struct vduse_vq *vq);
};
extern struct tu_cb tu_cb;
extern const struct vduse_device_ops tu_ops;

/* Log capture (installed by tu_setup). */
bool tu_log_contains(const char *needle);
unsigned int tu_log_count(void);
void tu_log_clear(void);

/* cmocka fixtures: fresh fake kernel, log capture, zeroed counters. */
int tu_setup(void **state);
int tu_teardown(void **state);

struct vduse_device_config tu_config(const char *name, unsigned int nq,
				     unsigned int qsize);

/* The guest's standard memory in the fake kernel: the rings' region at
 * TU_RING_BASE and the data region at TU_DATA, both read-write. */
void tu_guest_memory(void);
/* That memory, and device @name with @nq queues of at most @qsize
 * (asserts success). */
struct vduse_device *tu_device_new(const char *name, unsigned int nq,
				   unsigned int qsize);

struct tu_env {
	struct vduse_device *dev;
	struct vduse_vq *vq[2];
	struct sim_vq s[2];
};

/* Device "tu" with 2 queues of TU_QSIZE; rings at TU_RING0/1 with avail and
 * used indices at @start; FEATURES_OK and DRIVER_OK with @features. */
void tu_env_start(struct tu_env *e, uint64_t features, uint16_t start);
/* The same, without checking that both queues started. */
void tu_env_start_partial(struct tu_env *e, uint64_t features,
			  uint16_t start);
/* Free the device and check that no fd and no mapping is left. */
void tu_env_free(struct tu_env *e);

/* Pop one element of the standard size (assert success). */
struct vduse_vq_elem *tu_pop(struct vduse_vq *vq);

/* Fill @len bytes of guest memory at @iova with a pattern seeded by @seed. */
void tu_fill(uint64_t iova, uint8_t seed, size_t len);
/* An iovec is @len bytes long and its bytes equal guest memory at @iova. */
void tu_assert_iov_is(const struct iovec *iov, uint64_t iova, size_t len);

#endif
