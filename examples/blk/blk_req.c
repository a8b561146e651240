// SPDX-License-Identifier: MIT
/*
 * virtio-blk request parsing and device configuration (no I/O).
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "blk_req.h"

#define BLK_MIN_BLOCK_SIZE	512u
#define BLK_MAX_BLOCK_SIZE	4096u
#define BLK_MIN_QUEUE_SIZE	4u
#define BLK_MAX_QUEUE_SIZE	32768u
#define BLK_MAX_QUEUES		256u
/* Keep a request's length (plus the status byte) within a u32. */
#define BLK_MAX_REQ_BYTES	(1u << 31)

static bool blk_is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

/* ------------------------------------------------------------------------ */
/* Disk and config space                                                     */

const char *blk_disk_check(uint32_t block_size, uint32_t num_queues,
			   uint32_t queue_size, const char *serial)
{
	if (!blk_is_pow2(block_size) || block_size < BLK_MIN_BLOCK_SIZE ||
	    block_size > BLK_MAX_BLOCK_SIZE)
		return "block size must be a power of 2 from 512 to 4096";
	if (!blk_is_pow2(queue_size) || queue_size < BLK_MIN_QUEUE_SIZE ||
	    queue_size > BLK_MAX_QUEUE_SIZE)
		return "queue size must be a power of 2 from 4 to 32768";
	if (num_queues < 1 || num_queues > BLK_MAX_QUEUES)
		return "number of queues must be from 1 to 256";
	if (serial && strlen(serial) > BLK_ID_BYTES)
		return "the serial is longer than 20 bytes";
	return NULL;
}

const char *blk_disk_init(struct blk_disk *d, uint64_t size_bytes,
			  uint32_t block_size, uint32_t num_queues,
			  uint32_t queue_size, bool read_only,
			  const char *serial)
{
	size_t serial_len = serial ? strlen(serial) : 0;
	const char *msg;

	msg = blk_disk_check(block_size, num_queues, queue_size, serial);
	if (msg)
		return msg;
	if (size_bytes == 0)
		return "the backing file is empty";
	if (size_bytes % BLK_SECTOR_SIZE)
		return "the backing file's size is not a multiple of 512";
	if (size_bytes % block_size)
		return "the backing file's size is not a multiple of the block size";

	memset(d, 0, sizeof(*d));
	d->capacity = size_bytes >> BLK_SECTOR_SHIFT;
	d->block_size = block_size;
	d->num_queues = num_queues;
	d->queue_size = queue_size;
	d->read_only = read_only;
	d->discard = !read_only;
	if (serial_len)
		memcpy(d->serial, serial, serial_len);
	return NULL;
}

uint32_t blk_dio_align(const struct blk_dio_info *info)
{
	if (info->statx_dio)
		return info->dio_offset_align;
	if (info->logical_block)
		return info->logical_block;
	return info->fs_block ? info->fs_block : BLK_SECTOR_SIZE;
}

const char *blk_dio_check(uint32_t block_size, uint32_t align)
{
	if (!align)
		return "the backing file does not support direct I/O";
	if (block_size < align)
		return "the block size is below the backing file's direct I/O alignment";
	if (block_size % align)
		return "the block size is not a multiple of the backing file's direct I/O alignment";
	return NULL;
}

uint64_t blk_disk_features(const struct blk_disk *d)
{
	uint64_t f = 0;

	f |= 1ull << VIRTIO_BLK_F_SEG_MAX;
	f |= 1ull << VIRTIO_BLK_F_BLK_SIZE;
	f |= 1ull << VIRTIO_BLK_F_FLUSH;
	f |= 1ull << VIRTIO_BLK_F_MQ;
	if (d->read_only)
		f |= 1ull << VIRTIO_BLK_F_RO;
	if (d->discard) {
		f |= 1ull << VIRTIO_BLK_F_DISCARD;
		f |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	}
	return f;
}

void blk_disk_config(const struct blk_disk *d, struct virtio_blk_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->capacity = htole64(d->capacity);
	/* Header and status take one descriptor each. */
	cfg->seg_max = htole32(d->queue_size - 2);
	cfg->blk_size = htole32(d->block_size);
	cfg->num_queues = htole16(d->num_queues);
	if (d->discard) {
		cfg->max_discard_sectors = htole32(BLK_MAX_DISCARD_SECTORS);
		cfg->max_discard_seg = htole32(BLK_MAX_DISCARD_SEG);
		cfg->discard_sector_alignment =
			htole32(d->block_size >> BLK_SECTOR_SHIFT);
		cfg->max_write_zeroes_sectors =
			htole32(BLK_MAX_DISCARD_SECTORS);
		cfg->max_write_zeroes_seg = htole32(BLK_MAX_DISCARD_SEG);
		cfg->write_zeroes_may_unmap = 1;
	}
}

/* ------------------------------------------------------------------------ */
/* iovec helpers                                                             */

size_t blk_iov_size(const struct iovec *iov, unsigned int cnt)
{
	size_t len = 0;
	unsigned int i;

	for (i = 0; i < cnt; i++) {
		if (iov[i].iov_len > SIZE_MAX - len)
			return SIZE_MAX;
		len += iov[i].iov_len;
	}
	return len;
}

/* Copy between @len bytes of @buf and the iovecs from byte @off on. */
static size_t blk_iov_copy(const struct iovec *iov, unsigned int cnt,
			   size_t off, char *buf, size_t len, bool to_iov)
{
	size_t done = 0;
	unsigned int i;

	for (i = 0; i < cnt && done < len; i++) {
		char *base = iov[i].iov_base;
		size_t n;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		n = iov[i].iov_len - off;
		if (n > len - done)
			n = len - done;
		if (to_iov)
			memcpy(base + off, buf + done, n);
		else
			memcpy(buf + done, base + off, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t blk_iov_to_buf(const struct iovec *iov, unsigned int cnt, size_t off,
		      void *buf, size_t len)
{
	return blk_iov_copy(iov, cnt, off, buf, len, false);
}

size_t blk_iov_from_buf(const struct iovec *iov, unsigned int cnt,
			size_t off, const void *buf, size_t len)
{
	/* Only read through @buf when copying into the iovecs. */
	return blk_iov_copy(iov, cnt, off, (char *)buf, len, true);
}

void blk_iov_memset(const struct iovec *iov, unsigned int cnt, int c)
{
	unsigned int i;

	for (i = 0; i < cnt; i++)
		memset(iov[i].iov_base, c, iov[i].iov_len);
}

size_t blk_iov_skip(struct iovec **iov, unsigned int *cnt, size_t bytes)
{
	size_t done = 0;

	while (*cnt && done < bytes) {
		struct iovec *v = *iov;
		size_t want = bytes - done;

		if (v->iov_len > want) {
			v->iov_base = (char *)v->iov_base + want;
			v->iov_len -= want;
			return bytes;
		}
		done += v->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	return done;
}

size_t blk_iov_trim(struct iovec *iov, unsigned int *cnt, size_t bytes)
{
	size_t done = 0;

	while (*cnt && done < bytes) {
		struct iovec *v = &iov[*cnt - 1];
		size_t want = bytes - done;

		if (v->iov_len > want) {
			v->iov_len -= want;
			return bytes;
		}
		done += v->iov_len;
		(*cnt)--;
	}
	return done;
}

/* The last byte of the buffers, or NULL if they are all empty. */
static uint8_t *blk_iov_last_byte(const struct iovec *iov, unsigned int cnt)
{
	while (cnt--) {
		if (iov[cnt].iov_len)
			return (uint8_t *)iov[cnt].iov_base +
			       iov[cnt].iov_len - 1;
	}
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */

static void blk_req_done(struct blk_req *r, uint8_t status)
{
	r->op = BLK_OP_DONE;
	r->status = status;
}

/* Is [sector, sector + len bytes) inside the disk? */
static bool blk_range_ok(const struct blk_disk *d, uint64_t sector,
			 uint64_t len)
{
	uint64_t sectors = len >> BLK_SECTOR_SHIFT;

	return sector <= d->capacity && sectors <= d->capacity - sector;
}

static void blk_parse_rw(const struct blk_disk *d, struct blk_req *r,
			 enum blk_op op, uint64_t sector, struct iovec *iov,
			 unsigned int cnt)
{
	size_t len = blk_iov_size(iov, cnt);

	if (len > BLK_MAX_REQ_BYTES || len % d->block_size ||
	    !blk_range_ok(d, sector, len) ||
	    (sector << BLK_SECTOR_SHIFT) % d->block_size) {
		blk_req_done(r, VIRTIO_BLK_S_IOERR);
		return;
	}
	r->op = op;
	r->offset = sector << BLK_SECTOR_SHIFT;
	r->iov = iov;
	r->iov_cnt = cnt;
	r->len = len;
}

static void blk_parse_segs(const struct blk_disk *d, struct blk_req *r,
			   enum blk_op op, struct iovec *iov, unsigned int cnt)
{
	size_t len = blk_iov_size(iov, cnt);
	struct blk_range range;
	unsigned int i;
	uint8_t st;

	if (d->read_only) {
		blk_req_done(r, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (!d->discard) {
		blk_req_done(r, VIRTIO_BLK_S_UNSUPP);
		return;
	}
	if (len == 0 || len % BLK_SEG_SIZE ||
	    len / BLK_SEG_SIZE > BLK_MAX_DISCARD_SEG) {
		blk_req_done(r, VIRTIO_BLK_S_IOERR);
		return;
	}
	r->op = op;
	r->iov = iov;
	r->iov_cnt = cnt;
	r->len = len;
	r->nseg = len / BLK_SEG_SIZE;
	/* Refuse the whole request up front if any segment is bad. */
	for (i = 0; i < r->nseg; i++) {
		st = blk_req_range(d, r, i, &range);
		if (st != VIRTIO_BLK_S_OK) {
			blk_req_done(r, st);
			return;
		}
	}
}

int blk_req_parse(const struct blk_disk *d, struct iovec *out,
		  unsigned int out_num, struct iovec *in, unsigned int in_num,
		  struct blk_req *r)
{
	struct virtio_blk_outhdr hdr;
	uint64_t sector;
	uint32_t type;

	memset(r, 0, sizeof(*r));
	r->status_ptr = blk_iov_last_byte(in, in_num);
	if (!r->status_ptr)
		return -EINVAL;
	blk_iov_trim(in, &in_num, 1);

	if (blk_iov_to_buf(out, out_num, 0, &hdr, sizeof(hdr)) < sizeof(hdr)) {
		blk_req_done(r, VIRTIO_BLK_S_IOERR);
		return 0;
	}
	blk_iov_skip(&out, &out_num, sizeof(hdr));
	type = le32toh(hdr.type);
	sector = le64toh(hdr.sector);

	switch (type) {
	case VIRTIO_BLK_T_IN:
		blk_parse_rw(d, r, BLK_OP_READ, sector, in, in_num);
		break;
	case VIRTIO_BLK_T_OUT:
		if (d->read_only)
			blk_req_done(r, VIRTIO_BLK_S_IOERR);
		else
			blk_parse_rw(d, r, BLK_OP_WRITE, sector, out, out_num);
		break;
	case VIRTIO_BLK_T_FLUSH:
		r->op = BLK_OP_FLUSH;
		break;
	case VIRTIO_BLK_T_GET_ID:
		r->op = BLK_OP_GET_ID;
		r->iov = in;
		r->iov_cnt = in_num;
		r->len = blk_iov_size(in, in_num);
		break;
	case VIRTIO_BLK_T_DISCARD:
		blk_parse_segs(d, r, BLK_OP_DISCARD, out, out_num);
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		blk_parse_segs(d, r, BLK_OP_WRITE_ZEROES, out, out_num);
		break;
	default:
		blk_req_done(r, VIRTIO_BLK_S_UNSUPP);
		break;
	}
	return 0;
}

uint8_t blk_req_range(const struct blk_disk *d, const struct blk_req *r,
		      unsigned int i, struct blk_range *range)
{
	struct virtio_blk_discard_write_zeroes seg;
	uint64_t sector;
	uint32_t sectors, flags;

	if (i >= r->nseg ||
	    blk_iov_to_buf(r->iov, r->iov_cnt, (size_t)i * BLK_SEG_SIZE, &seg,
			   sizeof(seg)) < sizeof(seg))
		return VIRTIO_BLK_S_IOERR;
	sector = le64toh(seg.sector);
	sectors = le32toh(seg.num_sectors);
	flags = le32toh(seg.flags);

	if (flags & ~(uint32_t)VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
		return VIRTIO_BLK_S_UNSUPP;
	if (r->op == BLK_OP_DISCARD && flags)
		return VIRTIO_BLK_S_UNSUPP;
	if (sectors > BLK_MAX_DISCARD_SECTORS ||
	    !blk_range_ok(d, sector, (uint64_t)sectors << BLK_SECTOR_SHIFT))
		return VIRTIO_BLK_S_IOERR;

	range->offset = sector << BLK_SECTOR_SHIFT;
	range->len = (uint64_t)sectors << BLK_SECTOR_SHIFT;
	range->unmap = flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	return VIRTIO_BLK_S_OK;
}

/* ------------------------------------------------------------------------ */
/* Discard, write zeroes, flush                                              */

static bool blk_how_ok(enum blk_range_how how, unsigned int tried)
{
	return !(tried & (1u << how));
}

enum blk_range_how blk_range_how(enum blk_op op, const struct blk_range *range,
				 bool blkdev, unsigned int tried)
{
	enum blk_range_how first, second;

	if (!range->len)
		return BLK_RANGE_SKIP;
	if (op == BLK_OP_DISCARD) {
		first = blkdev ? BLK_RANGE_BLKDISCARD : BLK_RANGE_PUNCH;
		return blk_how_ok(first, tried) ? first : BLK_RANGE_NONE;
	}
	if (op != BLK_OP_WRITE_ZEROES)
		return BLK_RANGE_NONE;
	if (blkdev) {
		/* PUNCH_HOLE on a device is a zeroout that may not fall back
		 * to writing, so it is no use here. */
		first = BLK_RANGE_BLKZEROOUT;
		return blk_how_ok(first, tried) ? first : BLK_RANGE_NONE;
	}
	/* On a file a hole reads as zeros: either way is a write zeroes. */
	first = range->unmap ? BLK_RANGE_PUNCH : BLK_RANGE_ZERO;
	second = range->unmap ? BLK_RANGE_ZERO : BLK_RANGE_PUNCH;
	if (blk_how_ok(first, tried))
		return first;
	return blk_how_ok(second, tried) ? second : BLK_RANGE_NONE;
}

enum blk_range_next blk_range_next(enum blk_op op, enum blk_range_how how,
				   int res, const struct blk_range *range,
				   bool blkdev, unsigned int *tried)
{
	if (res >= 0)
		return BLK_RANGE_NEXT_OK;
	if (res == -EINTR || res == -EAGAIN)
		return BLK_RANGE_NEXT_AGAIN;
	if (res != -EOPNOTSUPP)
		return BLK_RANGE_NEXT_FAIL;
	if (op == BLK_OP_DISCARD)
		return BLK_RANGE_NEXT_OK;
	*tried |= 1u << how;
	if (blk_range_how(op, range, blkdev, *tried) == BLK_RANGE_NONE)
		return BLK_RANGE_NEXT_FAIL;
	return BLK_RANGE_NEXT_OTHER;
}

uint8_t blk_flush_result(struct blk_flush_state *f, int res, bool *first)
{
	int none = 0;

	*first = false;
	if (res < 0) {
		*first = atomic_compare_exchange_strong(&f->err, &none, res);
		return VIRTIO_BLK_S_IOERR;
	}
	return atomic_load(&f->err) ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
}

void blk_req_get_id(const struct blk_disk *d, struct blk_req *r)
{
	r->len = blk_iov_from_buf(r->iov, r->iov_cnt, 0, d->serial,
				  sizeof(d->serial));
}

uint32_t blk_req_used_len(const struct blk_req *r)
{
	switch (r->op) {
	case BLK_OP_READ:
	case BLK_OP_GET_ID:
		return (uint32_t)r->len + 1;
	default:
		return 1;
	}
}

void blk_req_set_status(struct blk_req *r, uint8_t status)
{
	*r->status_ptr = status;
}
