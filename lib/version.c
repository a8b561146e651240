// SPDX-License-Identifier: LGPL-2.1-or-later
#include "libvduse.h"

const char *vduse_version(void)
{
	return LIBVDUSE_VERSION_STRING;
}
