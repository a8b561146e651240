/* SPDX-License-Identifier: MIT */
/*
 * A simulated virtio driver: writes split rings (virtio 1.x layout,
 * little-endian) into the fake kernel's IOVA regions, and drives the
 * device through the message path (SET_STATUS, UPDATE_IOTLB, ...).
 */
#ifndef SIM_DRIVER_H
#define SIM_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "libvduse.h"

struct sim_vq {
	unsigned int index;
	unsigned int num;
	uint64_t desc, avail, used;	/* IOVAs of the three parts */
	uint16_t avail_idx;		/* next avail index the driver writes */
	uint16_t last_used;		/* next used entry the driver reads */
	uint16_t next_desc;		/* descriptor allocator (wraps) */
};

struct sim_buf {
	uint64_t addr;
	uint32_t len;
	bool write;			/* device-writable */
};

/* Bytes the three parts of a ring of @num entries take. */
uint64_t sim_desc_bytes(unsigned int num);
uint64_t sim_avail_bytes(unsigned int num);
uint64_t sim_used_bytes(unsigned int num);

/*
 * Lay a ring out at @desc/@avail/@used (zeroed, indices set to @start)
 * and tell the fake kernel about it (VQ_GET_INFO answers, ready).
 */
void sim_vq_init(struct sim_vq *s, unsigned int index, unsigned int num,
		 uint64_t desc, uint64_t avail, uint64_t used, uint16_t start);
/* All three parts packed from @base (desc, avail, used 4-aligned). */
void sim_vq_init_at(struct sim_vq *s, unsigned int index, unsigned int num,
		    uint64_t base, uint16_t start);

/* Write descriptor @i raw. */
void sim_set_desc(struct sim_vq *s, unsigned int i, uint64_t addr,
		  uint32_t len, uint16_t flags, uint16_t next);
/* Write a chain into fresh descriptors; returns its head (unpublished). */
uint16_t sim_add_chain(struct sim_vq *s, const struct sim_buf *bufs,
		       unsigned int n);
/* Write the buffers as an indirect table at @table and one descriptor
 * pointing at it; returns that descriptor's index (unpublished). */
uint16_t sim_add_indirect(struct sim_vq *s, uint64_t table,
			  const struct sim_buf *bufs, unsigned int n);
/* Put @head in the avail ring and advance avail->idx. */
void sim_publish(struct sim_vq *s, uint16_t head);
void sim_set_avail_idx(struct sim_vq *s, uint16_t idx);
void sim_set_avail_flags(struct sim_vq *s, uint16_t flags);
void sim_set_used_event(struct sim_vq *s, uint16_t v);
uint16_t sim_avail_event(const struct sim_vq *s);
uint16_t sim_used_idx(const struct sim_vq *s);
/* Read the next used entry: true with the id and length, or false if none. */
bool sim_get_used(struct sim_vq *s, uint32_t *id, uint32_t *len);
/* Signal the queue's kick fd (the one the library gave the kernel). */
void sim_kick(const struct sim_vq *s);

/*
 * Messages.  Each queues one request, runs vduse_device_process() when
 * @dev is not NULL, and returns the response's result (or -1 if none).
 */
int sim_set_status(struct vduse_device *dev, uint8_t status);
int sim_update_iotlb(struct vduse_device *dev, uint64_t start, uint64_t last);
int sim_get_vq_state(struct vduse_device *dev, uint32_t index,
		     uint16_t *avail_index);
/* Features negotiated, then FEATURES_OK and DRIVER_OK: 0 if both OK. */
int sim_driver_ok(struct vduse_device *dev, uint64_t features);

#endif
