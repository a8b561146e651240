// SPDX-License-Identifier: MIT
/*
 * Logging for the examples.  The settings are written once before any
 * thread starts and only read afterwards.
 */
#include <stdarg.h>
#include <stdio.h>

#include "blk_log.h"

static const char *blk_log_prog = "vduse";
static int blk_log_max = VDUSE_LOG_INFO;

static const char *blk_log_tag(int level)
{
	switch (level) {
	case VDUSE_LOG_ERR:
		return "error: ";
	case VDUSE_LOG_WARN:
		return "warning: ";
	case VDUSE_LOG_DEBUG:
		return "debug: ";
	default:
		return "";
	}
}

/* The library's log handler.  One fprintf() per message keeps lines whole. */
static void blk_log_lib(int level, const char *msg, void *opaque)
{
	fprintf(stderr, "%s: libvduse: %s%s\n", blk_log_prog,
		blk_log_tag(level), msg);
}

void blk_log_init(const char *prog, bool verbose)
{
	blk_log_prog = prog;
	blk_log_max = verbose ? VDUSE_LOG_DEBUG : VDUSE_LOG_INFO;
	vduse_log_set_handler(blk_log_lib, NULL);
	vduse_log_set_level(blk_log_max);
}

void blk_log(int level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (level > blk_log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s%s\n", blk_log_prog, blk_log_tag(level), msg);
}
