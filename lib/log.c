// SPDX-License-Identifier: LGPL-2.1-or-later
/* The log hook: the library never prints, it hands messages to the app. */
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static vduse_log_fn log_fn;
static void *log_opaque;
static int log_level = VDUSE_LOG_INFO;

void vduse_log_set_handler(vduse_log_fn fn, void *opaque)
{
	log_fn = fn;
	log_opaque = opaque;
}

void vduse_log_set_level(int level)
{
	log_level = level;
}

void vduse_log(int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!log_fn || level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_fn(level, msg, log_opaque);
}
