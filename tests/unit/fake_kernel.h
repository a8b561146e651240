/* SPDX-License-Identifier: MIT */
/*
 * A simulated VDUSE kernel behind struct vduse_sys.
 *
 * Every fd it hands out is a real fd (an eventfd, or a dup of the memfd
 * that backs guest memory) so that poll() works, but reads, writes and
 * ioctls on the control and device fds are served from the state below.
 * Guest memory is one memfd; IOVA regions are windows into it, and the
 * library's mmap through the fake really maps the memfd.
 */
#ifndef FAKE_KERNEL_H
#define FAKE_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <linux/vduse.h>

#define FK_MAX_QUEUES	8

enum fk_op {
	FK_OPEN, FK_CLOSE, FK_IOCTL, FK_READ, FK_WRITE, FK_MMAP, FK_MUNMAP,
	FK_EVENTFD, FK_DEV_ADD, FK_DEV_DEL, FK_DEV_BIND, FK_NR_OPS,
};

/* Install the fake (fresh state) / restore the real table and clean up. */
void fk_setup(void);
void fk_teardown(void);

/* Failure injection: after @skip successful calls, the next one fails. */
void fk_fail(enum fk_op op, int err, unsigned int skip);
void fk_fail_ioctl(unsigned long req, int err, unsigned int skip);

/* /dev/vduse/control does not exist (open returns -ENOENT). */
void fk_set_control_missing(bool missing);

/* Counters. */
unsigned int fk_calls(enum fk_op op);
unsigned int fk_ioctl_calls(unsigned long req);
unsigned int fk_live_fds(void);		/* opened and not yet closed */
unsigned int fk_bad_closes(void);	/* close of an fd we never gave */
unsigned int fk_live_maps(void);
unsigned int fk_live_maps_in(uint64_t start, uint64_t last);
/* mmaps refused because the IOTLB fd lacked close-on-exec. */
unsigned int fk_leaky_fds(void);

/* Device state the library created. */
bool fk_dev_exists(const char *name);
const struct vduse_dev_config *fk_created_config(void);	/* last CREATE_DEV */
unsigned int fk_destroyed(void);
uint64_t fk_api_version_set(void);
void fk_set_features(uint64_t features);	/* DEV_GET_FEATURES answer */
/*
 * The uAPI the kernel offers (default: API 0 and no VDUSE_GET_FEATURES,
 * as 6.12): GET_API_VERSION's answer, and whether GET/SET_FEATURES exist
 * and which VDUSE_F_* bits GET_FEATURES offers.  CREATE_DEV then checks
 * ngroups and nas as 7.3 does.
 */
void fk_set_uapi(uint64_t api_version, bool have_features, uint64_t offered);
uint64_t fk_vduse_features_set(void);	/* last SET_FEATURES, 0: none */
/* Bit n: IOTLB_GET_FD2 looked up an IOVA in address space n. */
uint64_t fk_getfd2_asids(void);
unsigned int fk_config_irqs(void);
/* Last DEV_SET_CONFIG: offset, length and up to 256 bytes of payload. */
bool fk_last_set_config(uint32_t *offset, uint32_t *length, void *buf,
			size_t cap);

/* Queues. */
void fk_set_vq_info(unsigned int index, uint32_t num, uint64_t desc,
		    uint64_t driver, uint64_t device, uint16_t avail_index,
		    bool ready);
/* The packed ring state VQ_GET_INFO reports (after fk_set_vq_info). */
void fk_set_vq_packed(unsigned int index, bool avail_wrap, uint16_t avail_idx,
		      bool used_wrap, uint16_t used_idx);
uint32_t fk_vq_max_size(unsigned int index);	/* from VQ_SETUP, 0 if none */
uint32_t fk_vq_group(unsigned int index);	/* from VQ_SETUP (API 1) */
int fk_vq_kickfd(unsigned int index);		/* last SETUP_KICKFD, -2: never */
unsigned int fk_vq_kickfd_calls(unsigned int index);
unsigned int fk_vq_irqs(unsigned int index);

/* Messages: the test queues requests, the library answers them. */
uint32_t fk_push_msg(struct vduse_dev_request *req);	/* sets request_id */
unsigned int fk_pending_msgs(void);
/* The answer to request @id; false if none yet. */
bool fk_response(uint32_t id, struct vduse_dev_response *resp);

/* vDPA bus. */
unsigned int fk_vdpa_added(void);
unsigned int fk_vdpa_deleted(void);
const char *fk_vdpa_last_name(void);
const char *fk_vdpa_last_mgmtdev(void);
/*
 * The bus's drivers (none at first), in registration order: a new device
 * goes to its driver_override, else to the first one.  vhost_vdpa gives it
 * vhost-vdpa-0, then -1, ...  no_bus: /sys/bus/vdpa is missing.  refuse:
 * no driver takes the device when probed.  put_on_bus: the device @name is
 * on the bus already, bound to @driver (a reconnect).
 */
void fk_vdpa_load_driver(const char *driver);
void fk_vdpa_set_no_bus(bool no_bus);
void fk_vdpa_set_refuse(bool refuse);
void fk_vdpa_put_on_bus(const char *name, const char *driver);
const char *fk_vdpa_bound(void);	/* "" when none */
bool fk_vdpa_on_bus(void);
unsigned int fk_vdpa_binds(void);	/* driver_override + probe calls */

/*
 * IOVA regions [iova, iova + size) with VDUSE_ACCESS_* permissions, each
 * backed by its own part of the memfd (regions adjacent in IOVA are not
 * adjacent in memory).  Returns 0 or -errno.
 */
int fk_region_add(uint64_t iova, uint64_t size, uint8_t perm);
/*
 * The same in address space @asid (API 1: found by IOTLB_GET_FD2 only;
 * fk_iova_ptr() sees address space 0 only).
 */
int fk_region_add_as(uint32_t asid, uint64_t iova, uint64_t size,
		     uint8_t perm);
/* Remove every region overlapping [start, last] from the "kernel". */
void fk_region_del(uint64_t start, uint64_t last);
/* The test's own read-write view of guest memory at @iova (NULL: none). */
void *fk_iova_ptr(uint64_t iova);

/*
 * The bounce region and VDUSE_IOTLB_REG_UMEM (as 6.12 to 7.3 have them).
 * fk_bounce_map(): the driver's first streaming map creates the bounce
 * region [0, size) in address space 0 (GET_INFO reports CAP_UMEM for it;
 * before it REG_UMEM fails with EINVAL).  fk_bounce_reset(): the kernel's
 * reset drops the region; a registration stays until DEREG_UMEM or the
 * device fd is closed.  REG_UMEM copies the region's bytes into the
 * memory, DEREG_UMEM (and close) back; while registered, fk_iova_ptr()
 * of the region points into the registered memory, as the kernel bounces
 * there.  fk_set_memlock(): REG_UMEM of more bytes fails with ENOMEM (0:
 * no limit).  fk_set_umem_ioctls(false): the three ioctls fail with ENOTTY.
 * fk_umem_stale(): registrations made while an mmap of the bounce region
 * was live (whose pages the real kernel leaves stale).
 */
int fk_bounce_map(uint64_t size);
void fk_bounce_reset(void);
void fk_set_umem_ioctls(bool have);
void fk_set_memlock(uint64_t bytes);
void *fk_umem(void);		/* the registered memory, NULL: none */
unsigned int fk_umem_stale(void);

/*
 * Every IOTLB_GET_FD answers @answer (start, last, offset, perm) with an fd
 * of the guest memory file, whatever IOVA was asked for, as an inconsistent
 * or extreme kernel would.  NULL restores the regions' answers.
 */
void fk_force_getfd(const struct vduse_iotlb_entry *answer);

#endif
