// SPDX-License-Identifier: MIT
/* Shared helpers for the libFuzzer harnesses (see fuzz_common.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "libvduse.h"
#include "fuzz_common.h"
#include "fake_kernel.h"

#define LOG_KEEP	16

static char log_ring[LOG_KEEP][256];
static unsigned int log_n;
static bool log_verbose;

uint8_t fz_u8(struct fz_in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = in->p[0];
		in->p++;
		in->n--;
	}
	return v;
}

uint16_t fz_u16(struct fz_in *in)
{
	uint16_t v = fz_u8(in);

	return v | (uint16_t)(fz_u8(in) << 8);
}

uint32_t fz_u32(struct fz_in *in)
{
	uint32_t v = fz_u16(in);

	return v | ((uint32_t)fz_u16(in) << 16);
}

uint64_t fz_u64(struct fz_in *in)
{
	uint64_t v = fz_u32(in);

	return v | ((uint64_t)fz_u32(in) << 32);
}

void fz_fail(const char *file, int line, const char *cond,
	     const char *fmt, ...)
{
	unsigned int i, first;
	va_list ap;

	first = log_n > LOG_KEEP ? log_n - LOG_KEEP : 0;
	fprintf(stderr, "---- last library messages ----\n");
	for (i = first; i < log_n; i++)
		fprintf(stderr, "  %s\n", log_ring[i % LOG_KEEP]);
	fprintf(stderr, "%s:%d: check failed: %s: ", file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static void on_log(int level, const char *msg, void *opaque)
{
	(void)opaque;
	snprintf(log_ring[log_n % LOG_KEEP], sizeof(log_ring[0]), "<%d> %s",
		 level, msg);
	log_n++;
	if (log_verbose)
		fprintf(stderr, "libvduse <%d>: %s\n", level, msg);
}

void fz_log_init(void)
{
	log_verbose = getenv("FUZZ_VERBOSE") != NULL;
	vduse_log_set_handler(on_log, NULL);
	vduse_log_set_level(log_verbose ? VDUSE_LOG_DEBUG : VDUSE_LOG_INFO);
}

unsigned int fz_log_count(void)
{
	return log_n;
}

bool fz_log_contains(const char *needle)
{
	unsigned int i, first;

	first = log_n > LOG_KEEP ? log_n - LOG_KEEP : 0;
	for (i = first; i < log_n; i++)
		if (strstr(log_ring[i % LOG_KEEP], needle))
			return true;
	return false;
}

void fz_log_reset(void)
{
	log_n = 0;
}

static bool alias_one(volatile uint8_t *lib, volatile uint8_t *view)
{
	uint8_t old = *view;
	bool same;

	*view = (uint8_t)(old ^ 0x5a);
	same = *lib == (uint8_t)(old ^ 0x5a);
	*view = old;
	return same && *lib == old;
}

bool fz_alias(volatile uint8_t *lib, volatile uint8_t *view, size_t len)
{
	if (!len)
		return true;
	return alias_one(lib, view) &&
	       alias_one(lib + len - 1, view + len - 1);
}

void fz_fill(uint8_t *p, uint64_t iova, uint64_t len, uint64_t salt)
{
	uint64_t i;

	for (i = 0; i < len; i++)
		p[i] = fz_pattern((iova + i) ^ salt);
}

/* Every harness routes the library's log the same way. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_log_init();
	return 0;
}

void fz_free_device(struct vduse_device *dev)
{
	vduse_device_free(dev);
	FZ_CHECK(fk_live_maps() == 0, "%u mappings left", fk_live_maps());
	FZ_CHECK(fk_live_fds() == 0, "%u fds left", fk_live_fds());
	FZ_CHECK(fk_bad_closes() == 0, "close of an fd never handed out");
	fk_teardown();
}

const struct fz_region *fz_region_of(const struct fz_memory *m, uint64_t iova)
{
	unsigned int i;

	for (i = 0; i < m->nr; i++)
		if (iova - m->regions[i].start < m->regions[i].size)
			return m->unmapped && m->unmapped[i] ? NULL :
			       &m->regions[i];
	return NULL;
}

int fz_pieces(const struct fz_memory *m, uint64_t iova, uint64_t len,
	      unsigned int perm, struct fz_seg *out, unsigned int room)
{
	int n = 0;

	if (len && iova + len - 1 < iova)
		return -1;
	while (len) {
		const struct fz_region *r = fz_region_of(m, iova);
		uint64_t chunk;

		if (!r || (r->perm & perm) != perm)
			return -1;
		chunk = r->start + r->size - iova;	/* 0: 2^64 */
		if (!chunk || chunk > len)
			chunk = len;
		if (out && (unsigned int)n < room)
			out[n] = (struct fz_seg){ iova, chunk };
		n++;
		iova += chunk;
		len -= chunk;
	}
	return n;
}

void fz_read_guest(const struct fz_memory *m, uint64_t iova, void *dst,
		   uint64_t len)
{
	uint8_t *d = dst;

	while (len) {
		const struct fz_region *r = fz_region_of(m, iova);
		uint64_t chunk = r->start + r->size - iova;

		if (!chunk || chunk > len)
			chunk = len;
		memcpy(d, fk_iova_ptr(iova), chunk);
		d += chunk;
		iova += chunk;
		len -= chunk;
	}
}

/* The library's iovecs carry exactly the model's pieces, byte for byte. */
void fz_check_sg(const struct iovec *iov, unsigned int n,
		     const struct fz_seg *seg, unsigned int nseg, const char *what)
{
	unsigned int i = 0, j = 0;
	uint64_t io = 0, so = 0;

	while (i < n && !iov[i].iov_len)
		i++;
	while (j < nseg || i < n) {
		uint64_t chunk;

		FZ_CHECK(i < n && j < nseg, "%s: %u iovecs for %u pieces",
			 what, n, nseg);
		chunk = iov[i].iov_len - io;
		if (seg[j].len - so < chunk)
			chunk = seg[j].len - so;
		FZ_CHECK(fz_alias((uint8_t *)iov[i].iov_base + io,
				  fk_iova_ptr(seg[j].iova + so), chunk),
			 "%s: iovec %u is not guest IOVA 0x%llx", what, i,
			 (unsigned long long)(seg[j].iova + so));
		io += chunk;
		so += chunk;
		if (io == iov[i].iov_len) {
			i++;
			io = 0;
			while (i < n && !iov[i].iov_len)
				i++;
		}
		if (so == seg[j].len) {
			j++;
			so = 0;
		}
	}
}
