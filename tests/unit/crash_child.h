/* SPDX-License-Identifier: MIT */
/*
 * The first process of a crash test (test_recovery*.c): forked, it serves
 * queue 0 of a device with the library's crash points armed
 * (lib/inflight_log.h) and is killed at the chosen one.
 */
#ifndef CRASH_CHILD_H
#define CRASH_CHILD_H

#include "libvduse.h"

/*
 * Fork a process that runs @script on queue 0 of @dev and dies by SIGKILL
 * at crash point @at (0: none).  Having lived through the script it
 * stores the number of points it passed in *@points, which must be
 * shared memory (MAP_SHARED), and exits 0.  Returns its waitpid status.
 */
int crash_child(struct vduse_device *dev, void (*script)(struct vduse_vq *vq),
		unsigned long at, unsigned long *points);

#endif
