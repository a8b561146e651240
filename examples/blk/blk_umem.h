/* SPDX-License-Identifier: MIT */
/*
 * vduse-blk --umem: memory of ours for the device's bounce region
 * (vduse_device_set_umem()), hugepages when the system has them.
 */
#ifndef BLK_UMEM_H
#define BLK_UMEM_H

#include <stdbool.h>
#include <stddef.h>

#include "libvduse.h"

struct blk_umem {
	void *addr;		/* NULL: none */
	size_t len;		/* mapped */
	bool huge;		/* MAP_HUGETLB */
};

/*
 * Map the bounce size of device @name (its sysfs bounce_size) and hand it
 * to @dev, before the driver starts.  Returns 0 or -errno (said why).
 */
int blk_umem_set(const char *name, struct vduse_device *dev,
		 struct blk_umem *m);
/* After vduse_device_free(). */
void blk_umem_free(struct blk_umem *m);

#endif
