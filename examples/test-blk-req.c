// SPDX-License-Identifier: MIT
/*
 * Unit tests for the examples' virtio-blk request parsing (blk/blk_req.c).
 */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "blk/blk_req.h"

#define MIB (1ull << 20)
#define DISK_SECTORS (MIB >> BLK_SECTOR_SHIFT)

/* Driver-side buffers of one request, built by the tests. */
struct t_req {
	uint8_t hdr[64];
	uint8_t data[8192];
	uint8_t status[4];
	struct iovec out[8];
	struct iovec in[8];
	unsigned int out_num;
	unsigned int in_num;
};

static struct blk_disk t_disk(uint32_t block_size, bool ro)
{
	struct blk_disk d;

	assert_null(blk_disk_init(&d, MIB, block_size, 2, 256, ro, "serial-1"));
	return d;
}

static void t_hdr(struct t_req *t, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = {
		.type = htole32(type),
		.sector = htole64(sector),
	};

	memcpy(t->hdr, &h, sizeof(h));
}

static void t_out(struct t_req *t, void *base, size_t len)
{
	t->out[t->out_num++] = (struct iovec){ base, len };
}

static void t_in(struct t_req *t, void *base, size_t len)
{
	t->in[t->in_num++] = (struct iovec){ base, len };
}

static int t_parse(const struct blk_disk *d, struct t_req *t,
		   struct blk_req *r)
{
	return blk_req_parse(d, t->out, t->out_num, t->in, t->in_num, r);
}

/* A request that must be completed at once with @status. */
static void t_expect_done(const struct blk_disk *d, struct t_req *t,
			  uint8_t status)
{
	struct blk_req r;

	assert_int_equal(t_parse(d, t, &r), 0);
	assert_int_equal(r.op, BLK_OP_DONE);
	assert_int_equal(r.status, status);
	assert_int_equal(blk_req_used_len(&r), 1);
}

/* ------------------------------------------------------------------------ */

static void test_disk_init(void **state)
{
	struct blk_disk d;

	assert_null(blk_disk_init(&d, MIB, 512, 1, 256, false, NULL));
	assert_int_equal(d.capacity, DISK_SECTORS);
	assert_true(d.discard);
	assert_int_equal(d.serial[0], 0);
	assert_non_null(blk_disk_init(&d, MIB, 1024 + 512, 1, 256, false, ""));
	assert_non_null(blk_disk_init(&d, MIB, 256, 1, 256, false, ""));
	assert_non_null(blk_disk_init(&d, MIB, 8192, 1, 256, false, ""));
	assert_non_null(blk_disk_init(&d, MIB, 512, 1, 100, false, ""));
	assert_non_null(blk_disk_init(&d, MIB, 512, 1, 2, false, ""));
	assert_null(blk_disk_init(&d, MIB, 512, 1, 32768, false, ""));
	assert_non_null(blk_disk_init(&d, MIB, 512, 1, 65536, false, ""));
	assert_non_null(blk_disk_init(&d, MIB, 512, 0, 256, false, ""));
	assert_non_null(blk_disk_init(&d, MIB, 512, 257, 256, false, ""));
	assert_non_null(blk_disk_init(&d, 0, 512, 1, 256, false, ""));
	assert_non_null(blk_disk_init(&d, MIB + 1, 512, 1, 256, false, ""));
	assert_non_null(blk_disk_init(&d, MIB + 512, 4096, 1, 256, false, ""));
	assert_null(blk_disk_init(&d, MIB, 512, 1, 256, false,
				  "01234567890123456789"));
	assert_memory_equal(d.serial, "01234567890123456789", 20);
	assert_non_null(blk_disk_init(&d, MIB, 512, 1, 256, false,
				      "012345678901234567890"));
}

static void test_config(void **state)
{
	struct blk_disk d = t_disk(4096, false);
	struct virtio_blk_config c;
	uint64_t f = blk_disk_features(&d);

	blk_disk_config(&d, &c);
	assert_int_equal(le64toh(c.capacity), DISK_SECTORS);
	assert_int_equal(le32toh(c.blk_size), 4096);
	assert_int_equal(le32toh(c.seg_max), 254);
	assert_int_equal(le16toh(c.num_queues), 2);
	assert_int_equal(le32toh(c.max_discard_seg), BLK_MAX_DISCARD_SEG);
	assert_int_equal(le32toh(c.discard_sector_alignment), 8);
	assert_int_equal(c.write_zeroes_may_unmap, 1);
	assert_true(f & (1ull << VIRTIO_BLK_F_DISCARD));
	assert_true(f & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	assert_true(f & (1ull << VIRTIO_BLK_F_FLUSH));
	assert_true(f & (1ull << VIRTIO_BLK_F_MQ));
	assert_false(f & (1ull << VIRTIO_BLK_F_RO));

	d = t_disk(512, true);
	f = blk_disk_features(&d);
	blk_disk_config(&d, &c);
	assert_true(f & (1ull << VIRTIO_BLK_F_RO));
	assert_false(f & (1ull << VIRTIO_BLK_F_DISCARD));
	assert_false(f & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	assert_int_equal(c.max_discard_seg, 0);
	assert_int_equal(c.write_zeroes_may_unmap, 0);
}

static void test_iov_helpers(void **state)
{
	uint8_t a[4] = { 1, 2, 3, 4 }, b[2] = { 5, 6 }, c[3] = { 7, 8, 9 };
	struct iovec v[4] = { { a, 4 }, { NULL, 0 }, { b, 2 }, { c, 3 } };
	struct iovec *p = v;
	unsigned int n = 4;
	uint8_t buf[16];

	assert_int_equal(blk_iov_size(v, 4), 9);
	assert_int_equal(blk_iov_to_buf(v, 4, 3, buf, 4), 4);
	assert_memory_equal(buf, ((uint8_t[]){ 4, 5, 6, 7 }), 4);
	assert_int_equal(blk_iov_to_buf(v, 4, 8, buf, 4), 1);
	assert_int_equal(blk_iov_from_buf(v, 4, 5, "xyz", 3), 3);
	assert_int_equal(b[1], 'x');
	assert_memory_equal(c, "yz", 2);

	assert_int_equal(blk_iov_skip(&p, &n, 5), 5);
	assert_ptr_equal(p, &v[2]);
	assert_int_equal(n, 2);
	assert_ptr_equal(p[0].iov_base, b + 1);
	assert_int_equal(p[0].iov_len, 1);
	assert_int_equal(blk_iov_trim(p, &n, 2), 2);
	assert_int_equal(n, 2);
	assert_int_equal(p[1].iov_len, 1);
	assert_int_equal(blk_iov_trim(p, &n, 1), 1);
	assert_int_equal(n, 1);
	assert_int_equal(blk_iov_skip(&p, &n, 10), 1);
	assert_int_equal(n, 0);
	assert_int_equal(blk_iov_trim(p, &n, 1), 0);
}

/* Read with data in three buffers and the status byte alone. */
static void test_read_simple(void **state)
{
	struct blk_disk d = t_disk(512, false);
	struct t_req t = { 0 };
	struct blk_req r;

	t_hdr(&t, VIRTIO_BLK_T_IN, 8);
	t_out(&t, t.hdr, 16);
	t_in(&t, t.data, 512);
	t_in(&t, t.data + 512, 1024);
	t_in(&t, t.data + 2048, 512);
	t_in(&t, t.status, 1);
	assert_int_equal(t_parse(&d, &t, &r), 0);
	assert_int_equal(r.op, BLK_OP_READ);
	assert_int_equal(r.offset, 8 * 512);
	assert_int_equal(r.len, 2048);
	assert_int_equal(r.iov_cnt, 3);
	assert_ptr_equal(r.iov, t.in);
	assert_ptr_equal(r.status_ptr, t.status);
	assert_int_equal(blk_req_used_len(&r), 2049);
	blk_req_set_status(&r, VIRTIO_BLK_S_OK);
	assert_int_equal(t.status[0], VIRTIO_BLK_S_OK);
}

/* The status byte shares the last buffer with data; empty buffers trail. */
static void test_read_shared_status(void **state)
{
	struct blk_disk d = t_disk(512, false);
	struct t_req t = { 0 };
	struct blk_req r;

	t_hdr(&t, VIRTIO_BLK_T_IN, 0);
	t_out(&t, t.hdr, 16);
	t_in(&t, t.data, 512);
	t_in(&t, t.data + 512, 513);
	t_in(&t, t.data + 4096, 0);
	assert_int_equal(t_parse(&d, &t, &r), 0);
	assert_int_equal(r.op, BLK_OP_READ);
	assert_int_equal(r.len, 1024);
	assert_int_equal(r.iov_cnt, 2);
	assert_int_equal(r.iov[1].iov_len, 512);
	assert_ptr_equal(r.status_ptr, t.data + 1024);

	/* All of it in one buffer. */
	memset(&t, 0, sizeof(t));
	t_hdr(&t, VIRTIO_BLK_T_IN, 0);
	t_out(&t, t.hdr, 16);
	t_in(&t, t.data, 4097);
	assert_int_equal(t_parse(&d, &t, &r), 0);
	assert_int_equal(r.len, 4096);
	assert_int_equal(r.iov_cnt, 1);
	assert_ptr_equal(r.status_ptr, t.data + 4096);
}

/* The header is split over two buffers, the second also holds data. */
static void test_write_split_header(void **state)
{
	struct blk_disk d = t_disk(512, false);
	struct t_req t = { 0 };
	struct blk_req r;

	t_hdr(&t, VIRTIO_BLK_T_OUT, 16);
	memcpy(t.data, t.hdr + 8, 8);
	t_out(&t, t.hdr, 8);
	t_out(&t, t.data, 8 + 512);
	t_out(&t, t.data + 1024, 1024);
	t_in(&t, t.status, 1);
	assert_int_equal(t_parse(&d, &t, &r), 0);
	assert_int_equal(r.op, BLK_OP_WRITE);
	assert_int_equal(r.offset, 16 * 512);
	assert_int_equal(r.len, 1536);
	assert_int_equal(r.iov_cnt, 2);
	assert_ptr_equal(r.iov[0].iov_base, t.data + 8);
	assert_int_equal(r.iov[0].iov_len, 512);
	assert_int_equal(blk_req_used_len(&r), 1);
}

static void test_no_status(void **state)
{
	struct blk_disk d = t_disk(512, false);
	struct t_req t = { 0 };
	struct blk_req r;

	t_hdr(&t, VIRTIO_BLK_T_FLUSH, 0);
	t_out(&t, t.hdr, 16);
	assert_int_equal(t_parse(&d, &t, &r), -EINVAL);
	t_in(&t, t.status, 0);
	assert_int_equal(t_parse(&d, &t, &r), -EINVAL);
}

static void test_bad_header(void **state)
{
	struct blk_disk d = t_disk(512, false);
	struct t_req t = { 0 };

	t_hdr(&t, VIRTIO_BLK_T_IN, 0);
	t_out(&t, t.hdr, 15);
	t_in(&t, t.data, 513);
	t_expect_done(&d, &t, VIRTIO_BLK_S_IOERR);
}

static void t_rw(struct t_req *t, uint32_t type, uint64_t sector,
		 size_t len)
{
	memset(t, 0, sizeof(*t));
	t_hdr(t, type, sector);
	t_out(t, t->hdr, 16);
	if (type == VIRTIO_BLK_T_OUT || type == VIRTIO_BLK_T_DISCARD ||
	    type == VIRTIO_BLK_T_WRITE_ZEROES)
		t_out(t, t->data, len);
	else
		t_in(t, t->data, len);
	t_in(t, t->status, 1);
}

static void test_ranges(void **state)
{
	struct blk_disk d = t_disk(512, false);
	struct blk_disk d4k = t_disk(4096, false);
	struct t_req t;
	struct blk_req r;

	/* The last sector is fine, one past it is not. */
	t_rw(&t, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, 512);
	assert_int_equal(t_parse(&d, &t, &r), 0);
	assert_int_equal(r.op, BLK_OP_READ);
	t_rw(&t, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, 1024);
	t_expect_done(&d, &t, VIRTIO_BLK_S_IOERR);
	t_rw(&t, VIRTIO_BLK_T_OUT, DISK_SECTORS, 512);
	t_expect_done(&d, &t, VIRTIO_BLK_S_IOERR);
	/* A sector that overflows when converted to bytes. */
	t_rw(&t, VIRTIO_BLK_T_IN, UINT64_MAX - 1, 512);
	t_expect_done(&d, &t, VIRTIO_BLK_S_IOERR);
	/* Lengths must be whole blocks, offsets block aligned. */
	t_rw(&t, VIRTIO_BLK_T_IN, 0, 100);
	t_expect_done(&d, &t, VIRTIO_BLK_S_IOERR);
	t_rw(&t, VIRTIO_BLK_T_IN, 1, 4096);
	t_expect_done(&d4k, &t, VIRTIO_BLK_S_IOERR);
	t_rw(&t, VIRTIO_BLK_T_IN, 8, 512);
	t_expect_done(&d4k, &t, VIRTIO_BLK_S_IOERR);
	t_rw(&t, VIRTIO_BLK_T_IN, 8, 4096);
	assert_int_equal(t_parse(&d4k, &t, &r), 0);
	assert_int_equal(r.op, BLK_OP_READ);
	/* Empty transfers are valid. */
	t_rw(&t, VIRTIO_BLK_T_OUT, 0, 0);
	assert_int_equal(t_parse(&d, &t, &r), 0);
	assert_int_equal(r.op, BLK_OP_WRITE);
	assert_int_equal(r.len, 0);
}

static void test_read_only(void **state)
{
	struct blk_disk d = t_disk(512, true);
	struct t_req t;
	struct blk_req r;

	t_rw(&t, VIRTIO_BLK_T_OUT, 0, 512);
	t_expect_done(&d, &t, VIRTIO_BLK_S_IOERR);
	t_rw(&t, VIRTIO_BLK_T_DISCARD, 0, 16);
	t_expect_done(&d, &t, VIRTIO_BLK_S_IOERR);
	t_rw(&t, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16);
	t_expect_done(&d, &t, VIRTIO_BLK_S_IOERR);
	t_rw(&t, VIRTIO_BLK_T_IN, 0, 512);
	assert_int_equal(t_parse(&d, &t, &r), 0);
	assert_int_equal(r.op, BLK_OP_READ);
	t_rw(&t, VIRTIO_BLK_T_FLUSH, 0, 0);
	assert_int_equal(t_parse(&d, &t, &r), 0);
	assert_int_equal(r.op, BLK_OP_FLUSH);
}

static void test_types(void **state)
{
	struct blk_disk d = t_disk(512, false);
	struct t_req t;
	struct blk_req r;

	t_rw(&t, VIRTIO_BLK_T_FLUSH, 0, 0);
	assert_int_equal(t_parse(&d, &t, &r), 0);
	assert_int_equal(r.op, BLK_OP_FLUSH);
	assert_int_equal(blk_req_used_len(&r), 1);
	t_rw(&t, 2 /* SCSI */, 0, 0);
	t_expect_done(&d, &t, VIRTIO_BLK_S_UNSUPP);
	t_rw(&t, VIRTIO_BLK_T_SECURE_ERASE, 0, 0);
	t_expect_done(&d, &t, VIRTIO_BLK_S_UNSUPP);
	t_rw(&t, 0x80000001u, 0, 512);
	t_expect_done(&d, &t, VIRTIO_BLK_S_UNSUPP);
}

static void test_get_id(void **state)
{
	struct blk_disk d = t_disk(512, false);
	struct t_req t;
	struct blk_req r;

	t_rw(&t, VIRTIO_BLK_T_GET_ID, 0, BLK_ID_BYTES);
	memset(t.data, 0xff, BLK_ID_BYTES);
	assert_int_equal(t_parse(&d, &t, &r), 0);
	assert_int_equal(r.op, BLK_OP_GET_ID);
	blk_req_get_id(&d, &r);
	assert_int_equal(r.len, BLK_ID_BYTES);
	assert_memory_equal(t.data, "serial-1\0\0\0\0\0\0\0\0\0\0\0\0", 20);
	assert_int_equal(blk_req_used_len(&r), 21);

	/* A short buffer gets what fits. */
	t_rw(&t, VIRTIO_BLK_T_GET_ID, 0, 4);
	assert_int_equal(t_parse(&d, &t, &r), 0);
	blk_req_get_id(&d, &r);
	assert_int_equal(r.len, 4);
	assert_memory_equal(t.data, "seri", 4);
	assert_int_equal(blk_req_used_len(&r), 5);
}

static void t_seg(struct t_req *t, unsigned int i, uint64_t sector,
		  uint32_t sectors, uint32_t flags)
{
	struct virtio_blk_discard_write_zeroes s = {
		.sector = htole64(sector),
		.num_sectors = htole32(sectors),
		.flags = htole32(flags),
	};

	memcpy(t->data + i * sizeof(s), &s, sizeof(s));
}

static void test_discard(void **state)
{
	struct blk_disk d = t_disk(512, false);
	struct blk_range range;
	struct t_req t;
	struct blk_req r;

	t_rw(&t, VIRTIO_BLK_T_DISCARD, 0, 32);
	t_seg(&t, 0, 0, 8, 0);
	t_seg(&t, 1, DISK_SECTORS - 8, 8, 0);
	assert_int_equal(t_parse(&d, &t, &r), 0);
	assert_int_equal(r.op, BLK_OP_DISCARD);
	assert_int_equal(r.nseg, 2);
	assert_int_equal(blk_req_range(&d, &r, 1, &range), VIRTIO_BLK_S_OK);
	assert_int_equal(range.offset, MIB - 4096);
	assert_int_equal(range.len, 4096);
	assert_false(range.unmap);
	assert_int_equal(blk_req_range(&d, &r, 2, &range),
			 VIRTIO_BLK_S_IOERR);

	/* Bad segment counts. */
	t_rw(&t, VIRTIO_BLK_T_DISCARD, 0, 0);
	t_expect_done(&d, &t, VIRTIO_BLK_S_IOERR);
	t_rw(&t, VIRTIO_BLK_T_DISCARD, 0, 17);
	t_expect_done(&d, &t, VIRTIO_BLK_S_IOERR);
	t_rw(&t, VIRTIO_BLK_T_DISCARD, 0, 16 * (BLK_MAX_DISCARD_SEG + 1));
	t_expect_done(&d, &t, VIRTIO_BLK_S_IOERR);

	/* Out of range, too long, and flags discard must not have. */
	t_rw(&t, VIRTIO_BLK_T_DISCARD, 0, 16);
	t_seg(&t, 0, DISK_SECTORS - 8, 9, 0);
	t_expect_done(&d, &t, VIRTIO_BLK_S_IOERR);
	t_seg(&t, 0, UINT64_MAX, 1, 0);
	t_expect_done(&d, &t, VIRTIO_BLK_S_IOERR);
	t_seg(&t, 0, 0, BLK_MAX_DISCARD_SECTORS + 1, 0);
	t_expect_done(&d, &t, VIRTIO_BLK_S_IOERR);
	t_seg(&t, 0, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	t_expect_done(&d, &t, VIRTIO_BLK_S_UNSUPP);
}

static void test_write_zeroes(void **state)
{
	struct blk_disk d = t_disk(512, false);
	struct blk_range range;
	struct t_req t;
	struct blk_req r;

	/* Segments split over two buffers. */
	memset(&t, 0, sizeof(t));
	t_hdr(&t, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	t_seg(&t, 0, 16, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	t_seg(&t, 1, 32, 8, 0);
	t_out(&t, t.hdr, 16);
	t_out(&t, t.data, 20);
	t_out(&t, t.data + 20, 12);
	t_in(&t, t.status, 1);
	assert_int_equal(t_parse(&d, &t, &r), 0);
	assert_int_equal(r.op, BLK_OP_WRITE_ZEROES);
	assert_int_equal(r.nseg, 2);
	assert_int_equal(blk_req_range(&d, &r, 0, &range), VIRTIO_BLK_S_OK);
	assert_true(range.unmap);
	assert_int_equal(range.offset, 16 * 512);
	assert_int_equal(blk_req_range(&d, &r, 1, &range), VIRTIO_BLK_S_OK);
	assert_false(range.unmap);
	assert_int_equal(range.offset, 32 * 512);
	assert_int_equal(range.len, 4096);

	/* Unknown flags. */
	t_rw(&t, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16);
	t_seg(&t, 0, 0, 8, 2);
	t_expect_done(&d, &t, VIRTIO_BLK_S_UNSUPP);
}

/* iovec lengths that wrap a size_t do not make a small, valid request. */
static void test_iov_size_overflow(void **state)
{
	struct blk_disk d = t_disk(512, false);
	struct t_req t;
	struct blk_req r;

	struct iovec v[2] = { { NULL, SIZE_MAX / 2 + 1 },
			      { NULL, SIZE_MAX / 2 + 1 + 512 } };
	struct iovec w[2] = { { NULL, SIZE_MAX - 1 }, { NULL, 1 } };

	assert_int_equal(blk_iov_size(v, 2), SIZE_MAX);
	assert_int_equal(blk_iov_size(w, 2), SIZE_MAX);	/* just fits */
	w[1].iov_len = 2;
	assert_int_equal(blk_iov_size(w, 2), SIZE_MAX);

	/* A read whose buffers sum to 2^64 + 512 bytes. */
	memset(&t, 0, sizeof(t));
	t_hdr(&t, VIRTIO_BLK_T_IN, 0);
	t_out(&t, t.hdr, 16);
	t_in(&t, t.data, SIZE_MAX / 2 + 1);
	t_in(&t, t.data, SIZE_MAX / 2 + 1 + 512);
	t_in(&t, t.status, 1);
	assert_int_equal(t_parse(&d, &t, &r), 0);
	assert_int_equal(r.op, BLK_OP_DONE);
	assert_int_equal(r.status, VIRTIO_BLK_S_IOERR);
}

static void test_dio(void **state)
{
	struct blk_dio_info i = { .statx_dio = true, .dio_offset_align = 2048,
				  .logical_block = 4096, .fs_block = 4096 };

	/* statx first, then BLKSSZGET, then the fs block size. */
	assert_int_equal(blk_dio_align(&i), 2048);
	i.dio_offset_align = 0;
	assert_int_equal(blk_dio_align(&i), 0);	/* no direct I/O */
	i.statx_dio = false;
	assert_int_equal(blk_dio_align(&i), 4096);
	i.logical_block = 512;
	assert_int_equal(blk_dio_align(&i), 512);
	i.logical_block = 0;
	i.fs_block = 1024;
	assert_int_equal(blk_dio_align(&i), 1024);
	i.fs_block = 0;
	assert_int_equal(blk_dio_align(&i), 512);

	/* The block size against the alignment, on both sides. */
	assert_string_equal(blk_dio_check(4096, 0),
			    "the backing file does not support direct I/O");
	assert_null(blk_dio_check(512, 512));
	assert_null(blk_dio_check(4096, 512));
	assert_null(blk_dio_check(4096, 4096));
	assert_null(blk_dio_check(2048, 2048));
	assert_string_equal(blk_dio_check(1024, 2048),
			    "the block size is below the backing file's direct I/O alignment");
	assert_string_equal(blk_dio_check(2048, 2049),
			    "the block size is below the backing file's direct I/O alignment");
	assert_string_equal(blk_dio_check(4096, 3072),
			    "the block size is not a multiple of the backing file's direct I/O alignment");
}

static void test_range_how(void **state)
{
	struct blk_range zero = { 0, 0, false }, plain = { 0, 512, false };
	struct blk_range unmap = { 0, 512, true };
	const unsigned int punch = 1u << BLK_RANGE_PUNCH;
	const unsigned int zr = 1u << BLK_RANGE_ZERO;

	/* Zero sectors: nothing to do, on files and devices. */
	assert_int_equal(blk_range_how(BLK_OP_WRITE_ZEROES, &zero, false, 0),
			 BLK_RANGE_SKIP);
	assert_int_equal(blk_range_how(BLK_OP_WRITE_ZEROES, &zero, true, 0),
			 BLK_RANGE_SKIP);
	assert_int_equal(blk_range_how(BLK_OP_DISCARD, &zero, true, 0),
			 BLK_RANGE_SKIP);

	/* Files. */
	assert_int_equal(blk_range_how(BLK_OP_DISCARD, &plain, false, 0),
			 BLK_RANGE_PUNCH);
	assert_int_equal(blk_range_how(BLK_OP_DISCARD, &plain, false, punch),
			 BLK_RANGE_NONE);
	assert_int_equal(blk_range_how(BLK_OP_WRITE_ZEROES, &plain, false, 0),
			 BLK_RANGE_ZERO);
	assert_int_equal(blk_range_how(BLK_OP_WRITE_ZEROES, &plain, false,
				       zr), BLK_RANGE_PUNCH);
	assert_int_equal(blk_range_how(BLK_OP_WRITE_ZEROES, &unmap, false, 0),
			 BLK_RANGE_PUNCH);
	assert_int_equal(blk_range_how(BLK_OP_WRITE_ZEROES, &unmap, false,
				       punch), BLK_RANGE_ZERO);
	assert_int_equal(blk_range_how(BLK_OP_WRITE_ZEROES, &unmap, false,
				       punch | zr), BLK_RANGE_NONE);

	/* Block devices: never PUNCH_HOLE. */
	assert_int_equal(blk_range_how(BLK_OP_DISCARD, &plain, true, 0),
			 BLK_RANGE_BLKDISCARD);
	assert_int_equal(blk_range_how(BLK_OP_WRITE_ZEROES, &plain, true, 0),
			 BLK_RANGE_BLKZEROOUT);
	assert_int_equal(blk_range_how(BLK_OP_WRITE_ZEROES, &unmap, true, 0),
			 BLK_RANGE_BLKZEROOUT);
	assert_int_equal(blk_range_how(BLK_OP_WRITE_ZEROES, &unmap, true,
				       1u << BLK_RANGE_BLKZEROOUT),
			 BLK_RANGE_NONE);
	assert_int_equal(blk_range_how(BLK_OP_READ, &plain, false, 0),
			 BLK_RANGE_NONE);
}

static void test_range_next(void **state)
{
	struct blk_range plain = { 0, 512, false }, unmap = { 0, 512, true };
	unsigned int tried = 0;

	assert_int_equal(blk_range_next(BLK_OP_WRITE_ZEROES, BLK_RANGE_ZERO,
					0, &plain, false, &tried),
			 BLK_RANGE_NEXT_OK);
	assert_int_equal(blk_range_next(BLK_OP_WRITE_ZEROES, BLK_RANGE_ZERO,
					-EINTR, &plain, false, &tried),
			 BLK_RANGE_NEXT_AGAIN);
	assert_int_equal(blk_range_next(BLK_OP_DISCARD, BLK_RANGE_PUNCH,
					-EAGAIN, &plain, false, &tried),
			 BLK_RANGE_NEXT_AGAIN);
	assert_int_equal(blk_range_next(BLK_OP_WRITE_ZEROES, BLK_RANGE_ZERO,
					-EIO, &plain, false, &tried),
			 BLK_RANGE_NEXT_FAIL);
	assert_int_equal(tried, 0);

	/* Discard is a hint: unsupported is done (no zeroes promised). */
	assert_int_equal(blk_range_next(BLK_OP_DISCARD, BLK_RANGE_PUNCH,
					-EOPNOTSUPP, &plain, false, &tried),
			 BLK_RANGE_NEXT_OK);
	assert_int_equal(blk_range_next(BLK_OP_DISCARD, BLK_RANGE_BLKDISCARD,
					-EOPNOTSUPP, &plain, true, &tried),
			 BLK_RANGE_NEXT_OK);
	assert_int_equal(blk_range_next(BLK_OP_DISCARD, BLK_RANGE_BLKDISCARD,
					-EINVAL, &plain, true, &tried),
			 BLK_RANGE_NEXT_FAIL);

	/* Write zeroes on a file: the other way, then failure. */
	assert_int_equal(blk_range_next(BLK_OP_WRITE_ZEROES, BLK_RANGE_PUNCH,
					-EOPNOTSUPP, &unmap, false, &tried),
			 BLK_RANGE_NEXT_OTHER);
	assert_int_equal(tried, 1u << BLK_RANGE_PUNCH);
	assert_int_equal(blk_range_how(BLK_OP_WRITE_ZEROES, &unmap, false,
				       tried), BLK_RANGE_ZERO);
	assert_int_equal(blk_range_next(BLK_OP_WRITE_ZEROES, BLK_RANGE_ZERO,
					-EOPNOTSUPP, &unmap, false, &tried),
			 BLK_RANGE_NEXT_FAIL);

	/* Write zeroes on a device: EOPNOTSUPP is never success. */
	tried = 0;
	assert_int_equal(blk_range_next(BLK_OP_WRITE_ZEROES,
					BLK_RANGE_BLKZEROOUT, -EOPNOTSUPP,
					&plain, true, &tried),
			 BLK_RANGE_NEXT_FAIL);
}

static void test_flush_sticky(void **state)
{
	struct blk_flush_state f = { 0 };
	bool first;

	assert_int_equal(blk_flush_result(&f, 0, &first), VIRTIO_BLK_S_OK);
	assert_false(first);
	assert_int_equal(blk_flush_result(&f, -EIO, &first),
			 VIRTIO_BLK_S_IOERR);
	assert_true(first);
	/* A later fdatasync that succeeds does not make it OK again. */
	assert_int_equal(blk_flush_result(&f, 0, &first), VIRTIO_BLK_S_IOERR);
	assert_false(first);
	assert_int_equal(blk_flush_result(&f, -ENOSPC, &first),
			 VIRTIO_BLK_S_IOERR);
	assert_false(first);	/* logged once */
	assert_int_equal(atomic_load(&f.err), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disk_init),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_iov_helpers),
		cmocka_unit_test(test_read_simple),
		cmocka_unit_test(test_read_shared_status),
		cmocka_unit_test(test_write_split_header),
		cmocka_unit_test(test_no_status),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_read_only),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_get_id),
		cmocka_unit_test(test_discard),
		cmocka_unit_test(test_write_zeroes),
		cmocka_unit_test(test_iov_size_overflow),
		cmocka_unit_test(test_dio),
		cmocka_unit_test(test_range_how),
		cmocka_unit_test(test_range_next),
		cmocka_unit_test(test_flush_sticky),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
