/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef VDUSE_LIB_LOG_H
#define VDUSE_LIB_LOG_H

#include "libvduse.h"

void vduse_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define vduse_err(...)		vduse_log(VDUSE_LOG_ERR, __VA_ARGS__)
#define vduse_warn(...)		vduse_log(VDUSE_LOG_WARN, __VA_ARGS__)
#define vduse_info(...)		vduse_log(VDUSE_LOG_INFO, __VA_ARGS__)
#define vduse_dbg(...)		vduse_log(VDUSE_LOG_DEBUG, __VA_ARGS__)

#endif
