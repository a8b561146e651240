/* SPDX-License-Identifier: MIT */
/*
 * Logging for the examples: messages go to stderr as "PROG: message".  The
 * library's own messages arrive through its log handler and get a
 * "libvduse" tag.
 */
#ifndef BLK_LOG_H
#define BLK_LOG_H

#include <stdbool.h>

#include <libvduse.h>

/*
 * Set the program name and verbosity, and install the library's log
 * handler.  Call once, before any other thread starts.
 */
void blk_log_init(const char *prog, bool verbose);

/* Log at a VDUSE_LOG_* level; thread-safe. */
void blk_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define blk_err(...)	blk_log(VDUSE_LOG_ERR, __VA_ARGS__)
#define blk_warn(...)	blk_log(VDUSE_LOG_WARN, __VA_ARGS__)
#define blk_info(...)	blk_log(VDUSE_LOG_INFO, __VA_ARGS__)
#define blk_dbg(...)	blk_log(VDUSE_LOG_DEBUG, __VA_ARGS__)

#endif /* BLK_LOG_H */
