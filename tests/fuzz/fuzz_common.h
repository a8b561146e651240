/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the libFuzzer harnesses: a reader that turns the fuzz
 * input into numbers (zeros once it runs out), a check that aborts with a
 * message, a silent log handler and an aliasing check between a pointer the
 * library handed out and the fake kernel's view of guest memory.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fz_in {
	const uint8_t *p;
	size_t n;
};

static inline bool fz_more(const struct fz_in *in)
{
	return in->n > 0;
}

uint8_t fz_u8(struct fz_in *in);
uint16_t fz_u16(struct fz_in *in);
uint32_t fz_u32(struct fz_in *in);
uint64_t fz_u64(struct fz_in *in);

/* Abort (a crash libFuzzer reports) when @cond does not hold. */
#define FZ_CHECK(cond, ...)						\
	do {								\
		if (!(cond))						\
			fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
	} while (0)

void fz_fail(const char *file, int line, const char *cond,
	     const char *fmt, ...)
	__attribute__((noreturn, format(printf, 4, 5)));

/*
 * Route the library's log to a ring of recent messages (printed by fz_fail)
 * and to stderr when FUZZ_VERBOSE is set in the environment.
 */
void fz_log_init(void);
/* Messages logged since the last fz_log_reset(). */
unsigned int fz_log_count(void);
bool fz_log_contains(const char *needle);
void fz_log_reset(void);

/*
 * Check that @lib (an address the library returned) and @view (the fake
 * kernel's view of the same guest bytes) are the same memory: a byte
 * changed through one is seen through the other.  Checks the first and
 * last of @len bytes.  Returns false if they are not.
 */
bool fz_alias(volatile uint8_t *lib, volatile uint8_t *view, size_t len);

/* A byte pattern that differs between nearby IOVAs (to spot offsets). */
static inline uint8_t fz_pattern(uint64_t iova)
{
	return (uint8_t)((iova * 0x9E3779B97F4A7C15ull) >> 56);
}

/* Fill @len bytes at @p, guest IOVA @iova, with fz_pattern(iova ^ @salt). */
void fz_fill(uint8_t *p, uint64_t iova, uint64_t len, uint64_t salt);

/*
 * The model's guest memory: IOVA regions with VDUSE_ACCESS_* permissions.
 * @unmapped (NULL: none) marks regions the kernel took away, which then
 * hold no IOVA.
 */
struct fz_region {
	uint64_t start, size;
	unsigned int perm;
};

struct fz_seg {
	uint64_t iova, len;
};

struct fz_memory {
	const struct fz_region *regions;
	unsigned int nr;
	const bool *unmapped;
};

/* The region holding @iova, or NULL. */
const struct fz_region *fz_region_of(const struct fz_memory *m, uint64_t iova);
/*
 * Split [iova, iova + len) into per-region pieces needing @perm.  Returns
 * the piece count, or -1 if a byte is unmapped, lacks @perm or the range
 * wraps.  Pieces are stored in @out while there is room.
 */
int fz_pieces(const struct fz_memory *m, uint64_t iova, uint64_t len,
	      unsigned int perm, struct fz_seg *out, unsigned int room);
struct iovec;
/*
 * The library's @n iovecs carry exactly the model's @nseg pieces, byte for
 * byte (the same memory as the fake kernel's view); @what names them.
 */
void fz_check_sg(const struct iovec *iov, unsigned int n,
		 const struct fz_seg *seg, unsigned int nseg, const char *what);
/* Copy guest bytes through the fake kernel's view (fz_pieces() said OK). */
void fz_read_guest(const struct fz_memory *m, uint64_t iova, void *dst,
		   uint64_t len);

struct vduse_device;
/*
 * Free @dev, check that it left no mapping, no fd and no bad close in the
 * fake kernel, and tear the fake kernel down.
 */
void fz_free_device(struct vduse_device *dev);

/* libFuzzer's entry points; fuzz_common.c has the shared initialisation. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
