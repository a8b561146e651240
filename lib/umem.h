/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Memory of the backend's own backing the bounce region
 * (VDUSE_IOTLB_REG_UMEM), see vduse_device_set_umem() and
 * docs/architecture.md.
 *
 * The kernel has a bounce region only once the driver made its first
 * streaming DMA map (until then REG_UMEM fails with EINVAL), and drops it
 * at every reset; GET_INFO reports CAP_UMEM for it alone.  So registration
 * happens on an IOTLB miss in address space 0: the region holding the
 * IOVA is asked for with GET_INFO, and if it is the bounce region it is
 * registered there and then and looked up in the backend's memory.
 *
 * Stale pages.  After a registration the kernel bounces through the
 * backend's pages; pages of the bounce region already faulted into an
 * mmap of an IOTLB fd keep showing the kernel's old pages, silently.  So
 * the library never registers while any queue has the region mapped from
 * an fd: such mappings (those starting at IOVA 0) are counted in @fd_maps
 * while they are mapped, and every miss of a queue that may register runs
 * under @lock, so that no fd mapping can appear between the check and the
 * registration.
 *
 * Lock order: a queue's IOTLB lock, then @lock.  The control thread takes
 * @lock alone (reset, free).
 */
#ifndef VDUSE_LIB_UMEM_H
#define VDUSE_LIB_UMEM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vduse_umem_state {
	VDUSE_UMEM_IDLE,	/* not registered: try at the next miss */
	VDUSE_UMEM_REGISTERED,
	VDUSE_UMEM_FALLBACK,	/* refused: the fd's mapping until a reset */
	VDUSE_UMEM_TOO_SMALL,	/* smaller than the bounce region: never */
	VDUSE_UMEM_UNSUPPORTED,	/* the kernel lacks the ioctls: never */
	VDUSE_UMEM_OFF,		/* bound to vhost_vdpa: never */
};

struct vduse_umem {
	pthread_mutex_t lock;
	int dev_fd;
	const char *name;	/* the device's, for messages */
	uint8_t *addr;		/* page aligned */
	size_t size;
	enum vduse_umem_state state;
	uint64_t bounce_size;	/* 0 until GET_INFO showed the region */
	/* Mappings from an IOTLB fd that start at IOVA 0 (atomic). */
	unsigned int fd_maps;
};

int vduse_umem_new(int dev_fd, const char *name, void *addr, size_t size,
		   struct vduse_umem **out);
/* Deregister (if registered) and free; NULL is a no-op.  Control thread. */
void vduse_umem_free(struct vduse_umem *u);
/*
 * SET_STATUS 0: deregister, and try again after the next driver start.
 * NULL is a no-op.  Control thread, no queue lock held.
 */
void vduse_umem_reset(struct vduse_umem *u);

/*
 * The device is bound to vhost_vdpa: its address space is a consumer's,
 * and a region of it the kernel still reports as the bounce region (its
 * flag outlives a virtio_vdpa binding) must not be registered.  Deregister
 * (if registered) and never register again.  Control thread.
 */
void vduse_umem_off(struct vduse_umem *u);

/*
 * On an IOTLB miss at @iova, with u->lock held: 1 when @iova lies in the
 * registered bounce region (registering it now if it may be), with its
 * first and last IOVA and address in *start, *last and *base; 0 when the
 * miss is to be filled from an IOTLB fd as usual.
 */
int vduse_umem_lookup(struct vduse_umem *u, uint64_t iova, uint64_t *start,
		      uint64_t *last, uint8_t **base);

static inline void vduse_umem_fd_map(struct vduse_umem *u, int delta)
{
	__atomic_add_fetch(&u->fd_maps, (unsigned int)delta, __ATOMIC_RELAXED);
}

#endif
