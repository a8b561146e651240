/* SPDX-License-Identifier: MIT */
/*
 * A simulated virtio driver for packed virtqueues: writes descriptors into
 * the fake kernel's IOVA regions the way a driver does (the first
 * descriptor's flags last), and reads used descriptors back.
 */
#ifndef SIM_PACKED_H
#define SIM_PACKED_H

#include <stdbool.h>
#include <stdint.h>

#include "sim_driver.h"

struct sim_pvq {
	unsigned int index;
	unsigned int num;
	uint64_t desc, driver, device;	/* IOVAs: ring, driver/device areas */
	uint16_t next_avail;		/* next position the driver fills */
	bool avail_wrap;
	uint16_t next_used;		/* next position the driver reads */
	bool used_wrap;
	uint16_t ndesc[65536];		/* per buffer id: descriptors taken */
};

/* Bytes of the descriptor ring; each event area takes 4. */
uint64_t sim_pdesc_bytes(unsigned int num);

/*
 * Lay a ring out from @base (descriptors, then the driver area, then the
 * device area), zeroed, wrap counters 1 and positions 0, and tell the fake
 * kernel (VQ_GET_INFO answers, ready).
 */
void sim_pvq_init(struct sim_pvq *s, unsigned int index, unsigned int num,
		  uint64_t base);

/* The AVAIL/USED flag bits that make a descriptor available now. */
uint16_t sim_pvq_avail_bits(const struct sim_pvq *s);

/* Write the descriptor at @pos raw (no publishing order). */
void sim_pvq_set_desc(struct sim_pvq *s, unsigned int pos, uint64_t addr,
		      uint32_t len, uint16_t id, uint16_t flags);

/*
 * Make a buffer of @n descriptors with buffer id @id available at the
 * next positions, the first one's flags written last.  Returns the
 * position of its first descriptor.
 */
unsigned int sim_pvq_add(struct sim_pvq *s, const struct sim_buf *bufs,
			 unsigned int n, uint16_t id);
/* The same as one descriptor pointing at an indirect table at @table. */
unsigned int sim_pvq_add_indirect(struct sim_pvq *s, uint64_t table,
				  const struct sim_buf *bufs, unsigned int n,
				  uint16_t id);

/* Read the next used descriptor: true with its id and length. */
bool sim_pvq_get_used(struct sim_pvq *s, uint16_t *id, uint32_t *len);

void sim_pvq_set_driver_event(struct sim_pvq *s, uint16_t flags,
			      uint16_t off_wrap);
uint16_t sim_pvq_device_flags(const struct sim_pvq *s);

/* The packed state GET_VQ_STATE answers; the message's result. */
int sim_get_vq_state_packed(struct vduse_device *dev, uint32_t index,
			    struct vduse_vq_state_packed *st);

#endif
