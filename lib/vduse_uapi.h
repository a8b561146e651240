/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The parts of the VDUSE uAPI newer than the distribution's <linux/vduse.h>
 * (Debian 12 ships the 6.1 header: API version 0, no VDUSE features).
 * Written from the ABI of Linux 7.3: ioctl numbers, bit numbers, message
 * types and the byte layout of each payload.  Where the system header has a
 * definition, it wins (the #ifndef guards); message types and payloads get
 * names of our own, since an enum constant cannot be tested for.
 */
#ifndef VDUSE_LIB_UAPI_H
#define VDUSE_LIB_UAPI_H

#include <stdint.h>
#include <sys/ioctl.h>
#include <linux/vduse.h>

/*
 * API version 1 (Linux 7.2 and later): virtqueue groups and address
 * spaces.  The create config carries ngroups and nas (both at least 1),
 * VQ_SETUP a group, UPDATE_IOTLB an address space id, and IOTLB_GET_FD2
 * looks up an IOVA in one address space.
 */
#ifdef VDUSE_API_VERSION_1
#define VDUSE_LIB_HEADER_HAS_V1		1	/* config has ngroups, nas */
#else
#define VDUSE_API_VERSION_1		1
#endif
/* The highest API version this library speaks. */
#define VDUSE_LIB_API_MAX		1

/*
 * VDUSE features: a second bit mask, on the control fd, next to the API
 * version.  GET_FEATURES reads what the kernel offers, SET_FEATURES what
 * the devices this control fd creates next will use.  A kernel without
 * them refuses both ioctls.
 */
#ifndef VDUSE_GET_FEATURES
#define VDUSE_GET_FEATURES		_IOR(VDUSE_BASE, 0x04, uint64_t)
#endif
#ifndef VDUSE_SET_FEATURES
#define VDUSE_SET_FEATURES		_IOW(VDUSE_BASE, 0x05, uint64_t)
#endif
/* The kernel asks before it enables or disables a queue (SET_VQ_READY). */
#ifndef VDUSE_F_QUEUE_READY
#define VDUSE_F_QUEUE_READY		0
#endif
/* The kernel asks the device to stop processing (SUSPEND). */
#ifndef VDUSE_F_SUSPEND
#define VDUSE_F_SUSPEND			1
#endif

/*
 * Message types after UPDATE_IOTLB (2), in the kernel's numbering.
 *   SET_VQ_GROUP_ASID (API 1): payload { u32 group; u32 asid; }
 *   SET_VQ_READY (VDUSE_F_QUEUE_READY): payload { u32 num; u32 ready; }
 *   SUSPEND (VDUSE_F_SUSPEND): no payload.
 * Each payload starts where the request's union starts.
 */
#define VDUSE_LIB_REQ_SET_VQ_GROUP_ASID	3
#define VDUSE_LIB_REQ_SET_VQ_READY	4
#define VDUSE_LIB_REQ_SUSPEND		5

struct vduse_lib_vq_group_asid {
	uint32_t group;
	uint32_t asid;
};

struct vduse_lib_vq_ready {
	uint32_t num;		/* queue index */
	uint32_t ready;		/* 1: enable, 0: disable */
};

/*
 * VDUSE_IOTLB_GET_FD2 (API 1): as IOTLB_GET_FD, for an IOVA of one address
 * space.  The first 32 bytes are IOTLB_GET_FD's entry; 80 bytes in all.
 */
struct vduse_lib_iotlb_entry2 {
	uint64_t offset;
	uint64_t start;
	uint64_t last;
	uint8_t perm;
	uint8_t pad0[7];
	uint32_t asid;
	uint32_t reserved[11];
};

#ifndef VDUSE_IOTLB_GET_FD2
#define VDUSE_IOTLB_GET_FD2 \
	_IOWR(VDUSE_BASE, 0x1b, struct vduse_lib_iotlb_entry2)
#endif

/*
 * API 1 puts ngroups and nas in the create config, in the two u32s the 6.1
 * header calls reserved[0] and reserved[1].  (VQ_SETUP's group, a u32 at
 * byte 8, stays 0 here: one group.)
 */
#ifdef VDUSE_LIB_HEADER_HAS_V1
#define VDUSE_LIB_CONFIG_NGROUPS(c)	((c)->ngroups)
#define VDUSE_LIB_CONFIG_NAS(c)		((c)->nas)
#else
#define VDUSE_LIB_CONFIG_NGROUPS(c)	((c)->reserved[0])
#define VDUSE_LIB_CONFIG_NAS(c)		((c)->reserved[1])
#endif

_Static_assert(sizeof(struct vduse_lib_iotlb_entry2) == 80,
	       "IOTLB_GET_FD2 entry is 80 bytes");
_Static_assert(sizeof(struct vduse_lib_vq_ready) == 8,
	       "SET_VQ_READY payload is 8 bytes");
_Static_assert(sizeof(struct vduse_lib_vq_group_asid) == 8,
	       "SET_VQ_GROUP_ASID payload is 8 bytes");

/*
 * Memory of the process backing the bounce region (Linux 6.5 and later;
 * Debian's 6.12, 7.2 and 7.3 have it; Debian 12's 6.1 header declares it
 * with reserved[3] of u64 where 7.3 has the asid, but its kernel does
 * not).  Our own names, so that either header builds.  REG_UMEM and DEREG_UMEM take
 * { u64 uaddr; u64 iova; u64 size; u32 asid; u32 reserved[5]; } (48
 * bytes): the whole bounce region, iova 0, uaddr page aligned.  GET_INFO
 * takes { u64 start; u64 last; u64 capability; u32 asid; u32 reserved[5]; }
 * (48 bytes) and answers the first region overlapping [start, last];
 * capability bit 0 says it is the bounce region, which may be registered.
 * The asid is read at API version 1 only (reserved, so 0, before).
 */
struct vduse_lib_iova_umem {
	uint64_t uaddr;
	uint64_t iova;
	uint64_t size;
	uint32_t asid;
	uint32_t reserved[5];
};

struct vduse_lib_iova_info {
	uint64_t start;
	uint64_t last;
	uint64_t capability;
	uint32_t asid;
	uint32_t reserved[5];
};

#define VDUSE_LIB_IOVA_CAP_UMEM		(1ULL << 0)
#define VDUSE_LIB_IOTLB_REG_UMEM \
	_IOW(VDUSE_BASE, 0x18, struct vduse_lib_iova_umem)
#define VDUSE_LIB_IOTLB_DEREG_UMEM \
	_IOW(VDUSE_BASE, 0x19, struct vduse_lib_iova_umem)
#define VDUSE_LIB_IOTLB_GET_INFO \
	_IOWR(VDUSE_BASE, 0x1a, struct vduse_lib_iova_info)

_Static_assert(sizeof(struct vduse_lib_iova_umem) == 48,
	       "REG_UMEM/DEREG_UMEM argument is 48 bytes");
_Static_assert(sizeof(struct vduse_lib_iova_info) == 48,
	       "IOTLB_GET_INFO argument is 48 bytes");

#endif
