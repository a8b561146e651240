/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk request parsing and device configuration, shared by the
 * examples.  Pure logic: nothing here does I/O, allocates or prints, so it
 * can be unit tested (examples/test-blk-req.c).
 *
 * Everything a request carries comes from the driver and is untrusted:
 * lengths, sectors and segment counts are checked here before the backend
 * touches the file.
 */
#ifndef BLK_REQ_H
#define BLK_REQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <linux/virtio_blk.h>

#define BLK_SECTOR_SHIFT	9
#define BLK_SECTOR_SIZE		(1u << BLK_SECTOR_SHIFT)
#define BLK_OUTHDR_SIZE		16u	/* struct virtio_blk_outhdr */
#define BLK_SEG_SIZE		16u	/* struct virtio_blk_discard_write_zeroes */
#define BLK_ID_BYTES		20u	/* VIRTIO_BLK_ID_BYTES */

/* Limits this device advertises for discard and write zeroes. */
#define BLK_MAX_DISCARD_SECTORS	(1u << 21)	/* 1 GiB per segment */
#define BLK_MAX_DISCARD_SEG	16u

/*
 * The emulated disk.  Filled once at start-up and then only read, so the
 * queue threads can share it without locking.
 */
struct blk_disk {
	uint64_t capacity;	/* in 512-byte sectors */
	uint32_t block_size;	/* logical block size in bytes */
	uint32_t num_queues;
	uint32_t queue_size;
	bool read_only;
	bool discard;		/* offer DISCARD and WRITE_ZEROES */
	char serial[BLK_ID_BYTES];	/* zero padded, not NUL terminated */
};

/*
 * Check the options that do not depend on the backing file.  Returns NULL
 * when they are fine or a static message saying what is wrong.
 */
const char *blk_disk_check(uint32_t block_size, uint32_t num_queues,
			   uint32_t queue_size, const char *serial);

/*
 * Fill @d from the backing size in bytes and the options, after checking
 * them.  Returns NULL on success or a static message saying what is wrong.
 */
const char *blk_disk_init(struct blk_disk *d, uint64_t size_bytes,
			  uint32_t block_size, uint32_t num_queues,
			  uint32_t queue_size, bool read_only,
			  const char *serial);

/*
 * What O_DIRECT on the backing file needs, as the start-up code found it.
 */
struct blk_dio_info {
	bool statx_dio;		/* statx() reported STATX_DIOALIGN */
	uint32_t dio_offset_align;	/* from statx(); 0: no direct I/O */
	uint32_t logical_block;	/* block device: BLKSSZGET, else 0 */
	uint32_t fs_block;	/* st_blksize */
};

/*
 * The file offset alignment O_DIRECT needs: statx()'s when the kernel
 * gives it, else a block device's logical block size, else the filesystem
 * block size.  0 means the file does not support direct I/O.
 */
uint32_t blk_dio_align(const struct blk_dio_info *info);

/*
 * Can a disk with @block_size be served with O_DIRECT on a file that needs
 * @align?  Every request is block aligned, so the block size must be a
 * multiple of the alignment.  Returns NULL or a static message.
 */
const char *blk_dio_check(uint32_t block_size, uint32_t align);

/* The virtio-blk feature bits (1ull << VIRTIO_BLK_F_*) to offer. */
uint64_t blk_disk_features(const struct blk_disk *d);

/* The config space, little endian, for the features above. */
void blk_disk_config(const struct blk_disk *d, struct virtio_blk_config *cfg);

/* What a request asks for, once parsed. */
enum blk_op {
	BLK_OP_DONE,		/* nothing to do: complete with req.status */
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,
	BLK_OP_GET_ID,
	BLK_OP_DISCARD,
	BLK_OP_WRITE_ZEROES,
};

struct blk_req {
	enum blk_op op;
	uint8_t status;		/* VIRTIO_BLK_S_* for BLK_OP_DONE */
	uint8_t *status_ptr;	/* the status byte in the driver's buffer */
	uint64_t offset;	/* byte offset in the disk (READ, WRITE) */
	/*
	 * Data buffers: for READ and GET_ID the in iovecs without the status
	 * byte, for WRITE the out iovecs without the header, for DISCARD and
	 * WRITE_ZEROES the segments (out iovecs without the header).  They point
	 * into the element's own iovec array, which parsing trims in place.
	 */
	struct iovec *iov;
	unsigned int iov_cnt;
	size_t len;		/* bytes in iov */
	unsigned int nseg;	/* DISCARD, WRITE_ZEROES: segment count */
};

/* A DISCARD or WRITE_ZEROES segment, checked, in bytes. */
struct blk_range {
	uint64_t offset;
	uint64_t len;
	bool unmap;		/* WRITE_ZEROES may deallocate */
};

/*
 * Parse a request whose buffers are @out (driver to device) and @in
 * (device to driver).  The iovec arrays are modified in place.  Returns 0
 * with @r filled (possibly BLK_OP_DONE with an error status), or -EINVAL
 * when there is no status byte to answer in: complete the element with
 * length 0.
 */
int blk_req_parse(const struct blk_disk *d, struct iovec *out,
		  unsigned int out_num, struct iovec *in, unsigned int in_num,
		  struct blk_req *r);

/*
 * Read and check segment @i of a parsed DISCARD or WRITE_ZEROES request
 * (the segments are r->iov).  Returns VIRTIO_BLK_S_OK with @range filled,
 * or the status to fail the request with.  The driver may change the
 * buffer at any time, so the backend calls this again right before using
 * a segment.
 */
uint8_t blk_req_range(const struct blk_disk *d, const struct blk_req *r,
		      unsigned int i, struct blk_range *range);

/* How one DISCARD or WRITE_ZEROES segment is carried out. */
enum blk_range_how {
	BLK_RANGE_NONE,		/* no way left: fail the request */
	BLK_RANGE_SKIP,		/* zero sectors: nothing to do */
	BLK_RANGE_PUNCH,	/* file: fallocate(PUNCH_HOLE | KEEP_SIZE) */
	BLK_RANGE_ZERO,		/* file: fallocate(ZERO_RANGE | KEEP_SIZE) */
	BLK_RANGE_BLKDISCARD,	/* block device: ioctl(BLKDISCARD) */
	/*
	 * Block device: BLKZEROOUT, i.e. blkdev_issue_zeroout() without
	 * unmapping, which writes zeroes where the device has no faster way.
	 * Done as fallocate(ZERO_RANGE) on the device, which the kernel
	 * implements with that same call, so it runs in io_uring instead of
	 * blocking the queue thread in an ioctl.
	 */
	BLK_RANGE_BLKZEROOUT,
};

/*
 * The way to carry out @range of a DISCARD or WRITE_ZEROES request (@op)
 * on a block device (@blkdev) or a regular file, skipping the ways in
 * @tried (a mask of 1 << BLK_RANGE_*) that turned out unsupported.
 */
enum blk_range_how blk_range_how(enum blk_op op, const struct blk_range *range,
				 bool blkdev, unsigned int tried);

/* What to do once a segment's operation returned. */
enum blk_range_next {
	BLK_RANGE_NEXT_OK,	/* the segment is done */
	BLK_RANGE_NEXT_AGAIN,	/* interrupted: the same way again */
	BLK_RANGE_NEXT_OTHER,	/* unsupported: blk_range_how() again */
	BLK_RANGE_NEXT_FAIL,	/* fail the request with IOERR */
};

/*
 * Decide after @how returned @res (0 or -errno) for a segment of @op.  An
 * unsupported discard is done (it is a hint and promises no zeroes); an
 * unsupported write zeroes tries the next way (*@tried records it) and
 * fails when there is none, it never reports zeroes it did not write.
 */
enum blk_range_next blk_range_next(enum blk_op op, enum blk_range_how how,
				   int res, const struct blk_range *range,
				   bool blkdev, unsigned int *tried);

/*
 * The device's flush state, shared by every queue.  Once an fdatasync()
 * failed, the kernel may have dropped dirty pages that an acknowledged
 * write put there, and a later fdatasync() can succeed without them: so
 * every later FLUSH fails too (as QEMU's file-posix does).
 */
struct blk_flush_state {
	atomic_int err;		/* the first failure's -errno, or 0 */
};

/*
 * The status for a FLUSH whose fdatasync() returned @res (not -EINTR or
 * -EAGAIN: retry those).  *@first is set when this call recorded the
 * first failure (log it then, once).
 */
uint8_t blk_flush_result(struct blk_flush_state *f, int res, bool *first);

/*
 * Copy the serial into a GET_ID request's buffer (at most BLK_ID_BYTES,
 * zero padded) and set r->len to the bytes written.
 */
void blk_req_get_id(const struct blk_disk *d, struct blk_req *r);

/*
 * The length to push back for a completed request: the bytes written into
 * the in buffers, including the status byte.
 */
uint32_t blk_req_used_len(const struct blk_req *r);

/* Store @status in the request's status byte. */
void blk_req_set_status(struct blk_req *r, uint8_t status);

/*
 * iovec helpers (exposed for the backends and the tests).  blk_iov_size()
 * saturates at SIZE_MAX instead of wrapping.
 */
size_t blk_iov_size(const struct iovec *iov, unsigned int cnt);
size_t blk_iov_to_buf(const struct iovec *iov, unsigned int cnt, size_t off,
		      void *buf, size_t len);
size_t blk_iov_from_buf(const struct iovec *iov, unsigned int cnt,
			size_t off, const void *buf, size_t len);
void blk_iov_memset(const struct iovec *iov, unsigned int cnt, int c);
/*
 * Drop @bytes from the front of *@iov, moving *@iov forward and adjusting
 * the first remaining entry in place.  Returns the bytes dropped (less than
 * @bytes if the array was shorter).
 */
size_t blk_iov_skip(struct iovec **iov, unsigned int *cnt, size_t bytes);
/* Drop @bytes from the end; returns the bytes dropped. */
size_t blk_iov_trim(struct iovec *iov, unsigned int *cnt, size_t bytes);

#endif /* BLK_REQ_H */
