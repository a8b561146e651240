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

/* iovec helpers (exposed for the backends and the tests). */
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
