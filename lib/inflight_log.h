/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The in-flight log: a file the backend names (or an fd it gives), mapped
 * MAP_SHARED, that records per queue what a successor process needs to
 * complete every request exactly once after a crash.  The layout and the
 * write order are described in docs/recovery.md; the rules, in short:
 *
 *  - every store to the log is one aligned store of at most 8 bytes, made
 *    in program order (release stores), so a process killed at any
 *    instruction leaves each field either old or new;
 *  - split pop (the log's P-th):  seq[h] = P;  head[h] = INFLIGHT(pop
 *          index);  avail_seq = {pop index + 1, P + 1}
 *  - split push: used->ring[u] = {h, len};  head[h] = DONE(pop index, u);
 *          used->idx = u + 1 (in guest memory);  used_idx = u + 1;
 *          head[h] = FREE
 *  - packed pop (slot s), the log's P-th: copies of the buffer's ring
 *          descriptors (its first in first[s], the rest in pool
 *          entries), seq[s] = P;
 *          head[s] = INFLIGHT(pop position, first pool entry);
 *          avail_seq = {next avail position, P + 1}
 *  - packed push: used descriptor's id and len at used position u;
 *          head[s] = DONE(pop, u, the flags' AVAIL/USED bits found at u);
 *          its flags (the driver sees it);  used_idx = next used position;
 *          head[s] = FREE
 *  - recovery (vduse_ilog_recover_vq) reconciles the log with the used
 *    ring, which lives in guest memory and survives the crash.
 *
 * Nothing here is synced to disk: the log survives a crash of the process,
 * not of the machine.
 */
#ifndef VDUSE_LIB_INFLIGHT_LOG_H
#define VDUSE_LIB_INFLIGHT_LOG_H

#include <stdint.h>

#include "libvduse.h"

#define VDUSE_ILOG_MAGIC		"VDUSELOG"
#define VDUSE_ILOG_VERSION	3u

/* Host byte order: the log never leaves the machine that wrote it. */
struct vduse_ilog_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size;	/* sizeof(struct vduse_ilog_header) */
	char name[256];		/* VDUSE_NAME_MAX */
	uint32_t device_id;
	uint32_t num_queues;
	uint32_t queue_size;	/* largest ring size: entries in heads[] */
	uint32_t vq_stride;	/* bytes from one queue record to the next */
	uint64_t features;	/* offered, as given to VDUSE_CREATE_DEV */
	uint64_t file_size;
	/* The config space given at creation: its size and FNV-1a hash. */
	uint32_t config_size;
	uint32_t id_size;	/* bytes of id[] the backend gave */
	uint64_t config_hash;
	uint8_t id[VDUSE_LOG_ID_MAX];	/* the backend's log_id */
	uint64_t reserved[8];
};

struct vduse_ilog_vq {
	/* Ring size while the queue is started, 0 while it is stopped. */
	uint32_t num;
	/*
	 * avail_idx: unused (the next avail entry is in avail_seq).  used_idx:
	 * split, used->idx as last published; packed, the device's next used
	 * position with its wrap counter in bit 15.
	 */
	uint16_t avail_idx;
	uint16_t used_idx;
	uint64_t desc_addr, avail_addr, used_addr;
	uint32_t layout;	/* VDUSE_ILOG_SPLIT or VDUSE_ILOG_PACKED */
	uint32_t reserved32;
	/*
	 * The next available entry to consume (split: the avail index;
	 * packed: the device's next avail position | wrap << 15) in bits
	 * 0-15 and the number of buffers popped so far in bits 16-63, in
	 * one store.
	 */
	uint64_t avail_seq;
	uint64_t reserved[2];
	/*
	 * queue_size entries, VDUSE_ILOG_*; then, for packed rings,
	 * struct vduse_ilog_desc first[queue_size] and pool[queue_size];
	 * then uint64_t seq[queue_size], each head's or slot's pop number
	 * (vduse_ilog_first(), vduse_ilog_pool(), vduse_ilog_seq()).
	 */
	uint64_t heads[];
};

#define VDUSE_ILOG_SPLIT	0u
#define VDUSE_ILOG_PACKED	1u

/*
 * A packed ring descriptor as the device read it when it popped the
 * buffer: the driver may write over the ring copy while the buffer is in
 * flight.  first[s].id is the buffer id; a pool entry's id is the pool
 * entry of the chain's next descriptor (VDUSE_ILOG_NONE: none).
 */
struct vduse_ilog_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

#define VDUSE_ILOG_NONE		0xffffu

static inline struct vduse_ilog_desc *
vduse_ilog_first(struct vduse_ilog_vq *l, unsigned int queue_size)
{
	return (struct vduse_ilog_desc *)&l->heads[queue_size];
}

static inline struct vduse_ilog_desc *
vduse_ilog_pool(struct vduse_ilog_vq *l, unsigned int queue_size)
{
	return vduse_ilog_first(l, queue_size) + queue_size;
}

static inline uint64_t *vduse_ilog_seq(struct vduse_ilog_vq *l,
				       unsigned int queue_size)
{
	return (uint64_t *)(vduse_ilog_pool(l, queue_size) + queue_size);
}

#define VDUSE_ILOG_AVAIL_SEQ(pos, seq)	((uint64_t)(pos) | ((seq) << 16))

/*
 * A head's (split) or slot's (packed) entry: bits 0-15 the avail index
 * (packed: position | wrap << 15) it was popped from, bits 16-31 the used index (packed: position | wrap << 15)
 * it was written at (DONE), bits 32-33 the state.  Packed only: bits
 * 34-35 the AVAIL and USED bits of the ring descriptor's flags at the
 * used position before the device published there (DONE), bits 48-63
 * the pool entry of the chain's second descriptor (VDUSE_ILOG_NONE).
 */
#define VDUSE_ILOG_FREE		0ull
#define VDUSE_ILOG_INFLIGHT	1ull
#define VDUSE_ILOG_DONE		2ull
#define VDUSE_ILOG_STATE(e)	(((e) >> 32) & 3)
#define VDUSE_ILOG_POP(e)	((uint16_t)(e))
#define VDUSE_ILOG_USED(e)	((uint16_t)((e) >> 16))
#define VDUSE_ILOG_OLD(e)	((unsigned int)((e) >> 34) & 3)
#define VDUSE_ILOG_LINK(e)	((uint16_t)((e) >> 48))
#define VDUSE_ILOG_ENTRY(state, pop, used) \
	(((uint64_t)(state) << 32) | ((uint64_t)(uint16_t)(used) << 16) | \
	 (uint16_t)(pop))
#define VDUSE_ILOG_PENTRY(state, pop, used, old, link) \
	(VDUSE_ILOG_ENTRY(state, pop, used) | ((uint64_t)((old) & 3) << 34) | \
	 ((uint64_t)(uint16_t)(link) << 48))
/* A packed position with its wrap counter, as the log keeps it. */
#define VDUSE_ILOG_POS(pos, wrap) \
	((uint16_t)((pos) | ((wrap) ? 0x8000u : 0)))

struct vduse_ilog {
	struct vduse_ilog_header *hdr;
	size_t size;
	int fd;			/* ours (a path was given), or -1 */
};

struct vduse_device;
struct vduse_device_config;
struct vduse_vq;

/*
 * Crash points, for the unit tests only: a build with
 * VDUSE_LIB_CRASH_POINTS kills the process (SIGKILL) just before the
 * vduse_crash_countdown-th store to the log or to the used ring made while
 * a log is configured.  Production builds compile them out.
 */
#ifdef VDUSE_LIB_CRASH_POINTS
extern unsigned long vduse_crash_countdown;
extern unsigned long vduse_crash_points;	/* points passed so far */
void vduse_crash_point(void);
#else
static inline void vduse_crash_point(void)
{
}
#endif

static inline void vduse_ilog_store(uint64_t *p, uint64_t v)
{
	vduse_crash_point();
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline void vduse_ilog_store16(uint16_t *p, uint16_t v)
{
	vduse_crash_point();
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/*
 * Split pop: the head's pop number, the head is in flight, then the avail
 * index moves past it and the count of pops on (one store).  The pop
 * number orders the heads to pop again: a head may stay in flight while
 * the avail index runs any distance ahead.
 */
static inline void vduse_ilog_pop(struct vduse_ilog_vq *l, unsigned int head,
				 uint16_t avail_idx, unsigned int queue_size)
{
	uint64_t pops = __atomic_load_n(&l->avail_seq, __ATOMIC_RELAXED) >> 16;

	vduse_crash_point();
	vduse_ilog_seq(l, queue_size)[head] = pops;
	vduse_ilog_store(&l->heads[head],
			VDUSE_ILOG_ENTRY(VDUSE_ILOG_INFLIGHT, avail_idx, 0));
	vduse_ilog_store(&l->avail_seq,
			VDUSE_ILOG_AVAIL_SEQ((uint16_t)(avail_idx + 1),
					     pops + 1));
}

/* Push, after the used entry was written at @used_idx and before it is
 * published. */
static inline void vduse_ilog_done(struct vduse_ilog_vq *l, unsigned int head,
				  uint16_t used_idx)
{
	uint64_t e = __atomic_load_n(&l->heads[head], __ATOMIC_RELAXED);

	vduse_ilog_store(&l->heads[head],
			VDUSE_ILOG_ENTRY(VDUSE_ILOG_DONE, VDUSE_ILOG_POP(e),
					used_idx));
}

/* Packed push, after the used descriptor's id and len were written at
 * @used (position | wrap << 15), where the flags' AVAIL and USED bits were
 * @old, and before its flags publish it. */
static inline void vduse_ilog_done_packed(struct vduse_ilog_vq *l,
					 unsigned int slot, uint16_t used,
					 unsigned int old)
{
	uint64_t e = __atomic_load_n(&l->heads[slot], __ATOMIC_RELAXED);

	vduse_ilog_store(&l->heads[slot],
			VDUSE_ILOG_PENTRY(VDUSE_ILOG_DONE, VDUSE_ILOG_POP(e),
					  used, old, VDUSE_ILOG_LINK(e)));
}

/* Push, after used->idx was published (packed: the used descriptor). */
static inline void vduse_ilog_used(struct vduse_ilog_vq *l, uint16_t used_idx)
{
	vduse_ilog_store16(&l->used_idx, used_idx);
}

static inline void vduse_ilog_free(struct vduse_ilog_vq *l, unsigned int head)
{
	vduse_ilog_store(&l->heads[head], VDUSE_ILOG_FREE);
}

/* Create (truncate) and initialise the log @c names for a new device. */
int vduse_ilog_create(struct vduse_device *dev,
		     const struct vduse_device_config *c);
/* Open the log of an existing device and check it against @dev. */
int vduse_ilog_attach(struct vduse_device *dev,
		     const struct vduse_device_config *c);
void vduse_ilog_close(struct vduse_device *dev);

struct vduse_ilog_vq *vduse_ilog_vq(struct vduse_device *dev,
				  unsigned int index);
/* The queue started afresh (indices in @vq) / stopped. */
void vduse_ilog_vq_start(struct vduse_vq *vq);
void vduse_ilog_vq_stop(struct vduse_vq *vq);
/*
 * The queue was started by a reconnect with its rings mapped: reconcile
 * its log record with the used ring, set vq->last_avail_idx and
 * vq->used_idx, and list the requests to pop again.  Locked.  0 or -errno
 * (logged).
 */
int vduse_ilog_recover_vq(struct vduse_vq *vq);

#endif
