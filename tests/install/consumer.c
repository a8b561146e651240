// SPDX-License-Identifier: MIT
/* A program that knows libvduse only through its installed header and .pc. */
#include <errno.h>
#include <libvduse.h>
#include <stdio.h>

int main(void)
{
	struct vduse_device_config cfg = {
		.size = sizeof(cfg),
		.name = "pkgconfig-test",
		.device_id = 2,
		.num_queues = 1,
		.queue_size = 64,
	};
	struct vduse_device *dev = NULL;
	int ret = vduse_device_new(&cfg, &dev);

	/* Without VDUSE on the host, the library must say so cleanly. */
	printf("libvduse %s %s\n", vduse_version(),
	       ret == -ENODEV ? "-ENODEV" : ret == -EACCES ? "-EACCES" :
	       ret == 0 ? "ok" : "unexpected");
	vduse_device_free(dev);
	return ret == 0 || ret == -ENODEV || ret == -EACCES ? 0 : 1;
}
