// SPDX-License-Identifier: MIT
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"
#include "inflight_log.h"
#include "crash_child.h"

int crash_child(struct vduse_device *dev, void (*script)(struct vduse_vq *vq),
		unsigned long at, unsigned long *points)
{
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		vduse_crash_points = 0;
		vduse_crash_countdown = at;
		script(vduse_device_vq(dev, 0));
		*points = vduse_crash_points;
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}
