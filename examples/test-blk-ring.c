// SPDX-License-Identifier: MIT
/*
 * Unit tests for vduse-blk's io_uring engine (blk/blk_ring.c) against a
 * temporary file: requests that find the SQ full or that the kernel does
 * not take wait and are retried (never failed for that, never stranded),
 * the sticky flush error, write zeroes / discard on a file, and the calls
 * the queue code uses to reap without waiting and to wake itself.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/eventfd.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "blk/blk_log.h"
#include "blk/blk_ring.h"

#define DISK_BYTES	(1u << 20)
#define NIO		10

/* ------------------------------------------------------------------------ */
/* blk_log() for blk_ring.c: keep the messages for the tests to check.       */

static char t_log[8192];

void blk_log(int level, const char *fmt, ...)
{
	size_t len = strlen(t_log);
	va_list ap;

	(void)level;
	if (len + 2 >= sizeof(t_log))
		return;
	va_start(ap, fmt);
	vsnprintf(t_log + len, sizeof(t_log) - len - 1, fmt, ap);
	va_end(ap);
	strcat(t_log, "\n");
}

static unsigned int t_log_count(const char *needle)
{
	unsigned int n = 0;
	const char *p = t_log;

	while ((p = strstr(p, needle))) {
		n++;
		p++;
	}
	return n;
}

/* ------------------------------------------------------------------------ */
/* A request with its driver-side buffers                                    */

struct t_io {
	struct blk_io io;		/* first: the callback gets this */
	uint8_t hdr[16];
	uint8_t data[4096];
	uint8_t status;
	struct iovec out[2];
	struct iovec in[2];
	unsigned int ndone;		/* callbacks, must end up 1 */
	uint8_t done_status;
};

struct t_env {
	struct blk_disk disk;
	struct blk_flush_state flush;
	struct blk_backend be;
	struct blk_ring ring;
	int fd;
	unsigned int ndone;
	/* Injected io_uring_submit() failures. */
	int fail_err;			/* returned while fail_left > 0 */
	int fail_left;			/* < 0: for ever */
	unsigned int submits;		/* calls of the hook */
};

static struct t_env *t_env;

static int t_submit(struct io_uring *ring)
{
	t_env->submits++;
	if (t_env->fail_left) {
		if (t_env->fail_left > 0)
			t_env->fail_left--;
		return t_env->fail_err;
	}
	return io_uring_submit(ring);
}

static void t_done(struct blk_ring *r, struct blk_io *io, uint8_t status)
{
	struct t_io *t = (struct t_io *)io;

	(void)r;
	blk_req_set_status(&io->req, status);
	t->ndone++;
	t->done_status = status;
	t_env->ndone++;
}

static int t_setup(void **state)
{
	char path[] = "/tmp/test-blk-ring-XXXXXX";
	struct t_env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	e->fd = mkstemp(path);
	assert_true(e->fd >= 0);
	unlink(path);
	assert_int_equal(ftruncate(e->fd, DISK_BYTES), 0);
	assert_null(blk_disk_init(&e->disk, DISK_BYTES, 512, 1, 256, false,
				  "ring"));
	e->be = (struct blk_backend) {
		.disk = &e->disk, .fd = e->fd, .flush = &e->flush,
	};
	t_log[0] = 0;
	t_env = e;
	*state = e;
	return 0;
}

static int t_teardown(void **state)
{
	struct t_env *e = *state;

	close(e->fd);
	free(e);
	t_env = NULL;
	return 0;
}

static void t_ring(struct t_env *e, unsigned int entries)
{
	assert_int_equal(blk_ring_init(&e->ring, &e->be, entries, 0, t_done,
				       e), 0);
	e->ring.submit = t_submit;
	/* Through the ring, wherever TMPDIR is (test_sync_rw does the rest). */
	e->ring.sync_rw = false;
}

/* A request of @type at @sector with @len bytes of out data (or none). */
static struct t_io *t_io_new(struct t_env *e, uint32_t type,
			     uint64_t sector, const void *data, size_t len)
{
	struct t_io *t = calloc(1, sizeof(*t));
	struct virtio_blk_outhdr h = {
		.type = htole32(type),
		.sector = htole64(sector),
	};
	unsigned int out_num = 1;

	assert_non_null(t);
	memcpy(t->hdr, &h, sizeof(h));
	t->out[0] = (struct iovec){ t->hdr, sizeof(t->hdr) };
	if (len) {
		assert_true(len <= sizeof(t->data));
		memcpy(t->data, data, len);
		t->out[out_num++] = (struct iovec){ t->data, len };
	}
	t->status = 0xff;
	t->in[0] = (struct iovec){ &t->status, 1 };
	assert_int_equal(blk_req_parse(&e->disk, t->out, out_num, t->in, 1,
				       &t->io.req), 0);
	return t;
}

static struct t_io *t_write(struct t_env *e, uint64_t sector, uint8_t fill)
{
	uint8_t buf[512];

	memset(buf, fill, sizeof(buf));
	return t_io_new(e, VIRTIO_BLK_T_OUT, sector, buf, sizeof(buf));
}

/*
 * Run the event loop the way the runner does (it calls in only when the
 * poll fd is readable) until @want requests are done.
 */
static void t_run(struct t_env *e, unsigned int want)
{
	unsigned int i;

	for (i = 0; i < 100 && e->ndone < want; i++) {
		struct pollfd p = { .fd = blk_ring_fd(&e->ring),
				    .events = POLLIN };

		if (poll(&p, 1, 50) != 1)
			continue;
		blk_ring_poll(&e->ring);
		blk_ring_submit(&e->ring);
	}
	assert_int_equal(e->ndone, want);
}

static bool t_readable(struct t_env *e, int ms)
{
	struct pollfd p = { .fd = blk_ring_fd(&e->ring), .events = POLLIN };

	return poll(&p, 1, ms) == 1;
}

static void t_check_sector(struct t_env *e, uint64_t sector, uint8_t fill)
{
	uint8_t buf[512], want[512];

	memset(want, fill, sizeof(want));
	assert_int_equal(pread(e->fd, buf, sizeof(buf), sector * 512),
			 sizeof(buf));
	assert_memory_equal(buf, want, sizeof(buf));
}

/* ------------------------------------------------------------------------ */

/*
 * More requests than SQ entries while the kernel refuses every submit:
 * they wait (in the SQ and on the pending list), the poll fd wakes the
 * loop without any completion, and they all succeed once it accepts.
 */
static void test_sq_full_waits(void **state)
{
	struct t_env *e = *state;
	struct t_io *io[NIO];
	unsigned int i;

	t_ring(e, 4);
	e->fail_err = -EBUSY;
	e->fail_left = -1;
	for (i = 0; i < NIO; i++) {
		io[i] = t_write(e, 8 * i, 0x10 + i);
		blk_ring_start(&e->ring, &io[i]->io);
	}
	blk_ring_submit(&e->ring);
	assert_int_equal(e->ndone, 0);
	assert_int_equal(e->ring.inflight, 4);
	assert_int_equal(e->ring.npending, NIO - 4);
	assert_int_equal(t_log_count("io_uring_submit: Device or resource busy; 10 requests wait"), 1);

	/* Nothing is in the kernel; the retry timer still wakes us. */
	assert_true(t_readable(e, 1000));
	blk_ring_poll(&e->ring);
	blk_ring_submit(&e->ring);
	assert_int_equal(e->ndone, 0);
	assert_true(t_readable(e, 1000));
	/* Logged once per run of failures, not per retry. */
	assert_int_equal(t_log_count("io_uring_submit"), 1);

	e->fail_left = 0;
	t_run(e, NIO);
	for (i = 0; i < NIO; i++) {
		assert_int_equal(io[i]->ndone, 1);
		assert_int_equal(io[i]->done_status, VIRTIO_BLK_S_OK);
		assert_int_equal(io[i]->status, VIRTIO_BLK_S_OK);
		t_check_sector(e, 8 * i, 0x10 + i);
		free(io[i]);
	}
	assert_int_equal(e->ring.npending, 0);
	assert_int_equal(e->ring.inflight, 0);
	blk_ring_exit(&e->ring);
}

/* A lone request the kernel refuses (-EAGAIN) a few times. */
static void test_submit_eagain_idle(void **state)
{
	struct t_env *e = *state;
	struct t_io *t;

	t_ring(e, 4);
	e->fail_err = -EAGAIN;
	e->fail_left = 3;
	t = t_io_new(e, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
	blk_ring_start(&e->ring, &t->io);
	blk_ring_submit(&e->ring);
	assert_int_equal(e->ndone, 0);
	t_run(e, 1);
	assert_int_equal(t->ndone, 1);
	assert_int_equal(t->done_status, VIRTIO_BLK_S_OK);
	assert_true(e->submits >= 4);
	free(t);
	blk_ring_exit(&e->ring);
}

/* A full SQ on a ring that accepts: the pending requests follow. */
static void test_sq_full_no_failure(void **state)
{
	struct t_env *e = *state;
	struct t_io *io[NIO];
	unsigned int i;

	t_ring(e, 2);
	for (i = 0; i < NIO; i++) {
		io[i] = t_write(e, i, 0x40 + i);
		blk_ring_start(&e->ring, &io[i]->io);
	}
	blk_ring_submit(&e->ring);
	t_run(e, NIO);
	for (i = 0; i < NIO; i++) {
		assert_int_equal(io[i]->ndone, 1);
		assert_int_equal(io[i]->done_status, VIRTIO_BLK_S_OK);
		t_check_sector(e, i, 0x40 + i);
		free(io[i]);
	}
	assert_int_equal(t_log_count("io_uring_submit"), 0);
	blk_ring_exit(&e->ring);
}

/* Tear-down waits for requests still waiting for the kernel. */
static void test_drain_waits(void **state)
{
	struct t_env *e = *state;
	struct t_io *io[NIO];
	unsigned int i;

	t_ring(e, 4);
	e->fail_err = -EAGAIN;
	e->fail_left = -1;
	for (i = 0; i < NIO; i++) {
		io[i] = t_write(e, 8 * i, 0x70 + i);
		blk_ring_start(&e->ring, &io[i]->io);
	}
	blk_ring_submit(&e->ring);
	assert_int_equal(e->ndone, 0);
	e->fail_left = 5;
	blk_ring_drain(&e->ring);
	for (i = 0; i < NIO; i++) {
		assert_int_equal(io[i]->ndone, 1);
		assert_int_equal(io[i]->done_status, VIRTIO_BLK_S_OK);
		t_check_sector(e, 8 * i, 0x70 + i);
		free(io[i]);
	}
	blk_ring_exit(&e->ring);
}

/* A kernel that never takes anything: tear-down fails each request once. */
static void test_drain_gives_up(void **state)
{
	struct t_env *e = *state;
	struct t_io *io[6];
	unsigned int i;

	t_ring(e, 4);
	e->fail_err = -EAGAIN;
	e->fail_left = -1;
	for (i = 0; i < 6; i++) {
		io[i] = t_write(e, i, 1);
		blk_ring_start(&e->ring, &io[i]->io);
	}
	blk_ring_drain(&e->ring);
	for (i = 0; i < 6; i++) {
		assert_int_equal(io[i]->ndone, 1);
		assert_int_equal(io[i]->done_status, VIRTIO_BLK_S_IOERR);
		free(io[i]);
	}
	assert_int_equal(e->ring.inflight, 0);
	assert_int_equal(t_log_count("6 requests failed"), 1);
	blk_ring_exit(&e->ring);
}

static uint8_t t_flush(struct t_env *e)
{
	struct t_io *t = t_io_new(e, VIRTIO_BLK_T_FLUSH, 0, NULL, 0);
	unsigned int before = e->ndone;
	uint8_t st;

	blk_ring_start(&e->ring, &t->io);
	blk_ring_submit(&e->ring);
	t_run(e, before + 1);
	assert_int_equal(t->ndone, 1);
	st = t->status;
	free(t);
	return st;
}

/*
 * Once an fdatasync failed (here: on a pipe, EINVAL), every later FLUSH
 * fails, also when fdatasync works again; logged once.
 */
static void test_flush_sticky(void **state)
{
	struct t_env *e = *state;
	int pipefd[2];
	struct t_io *w;

	t_ring(e, 4);
	assert_int_equal(t_flush(e), VIRTIO_BLK_S_OK);
	assert_int_equal(pipe(pipefd), 0);
	e->be.fd = pipefd[0];
	assert_int_equal(t_flush(e), VIRTIO_BLK_S_IOERR);
	e->be.fd = e->fd;
	assert_int_equal(t_flush(e), VIRTIO_BLK_S_IOERR);
	assert_int_equal(t_flush(e), VIRTIO_BLK_S_IOERR);
	assert_int_equal(t_log_count("flush failed: Invalid argument; every later flush fails too"), 1);
	/* Writes still work. */
	w = t_write(e, 0, 0x5a);
	blk_ring_start(&e->ring, &w->io);
	blk_ring_submit(&e->ring);
	t_run(e, e->ndone + 1);
	assert_int_equal(w->status, VIRTIO_BLK_S_OK);
	free(w);
	close(pipefd[0]);
	close(pipefd[1]);
	blk_ring_exit(&e->ring);
}

/* A DISCARD or WRITE_ZEROES request of one segment. */
static struct t_io *t_range(struct t_env *e, uint32_t type, uint64_t sector,
			    uint32_t sectors, uint32_t flags)
{
	struct virtio_blk_discard_write_zeroes s = {
		.sector = htole64(sector),
		.num_sectors = htole32(sectors),
		.flags = htole32(flags),
	};

	return t_io_new(e, type, 0, &s, sizeof(s));
}

static uint8_t t_run_one(struct t_env *e, struct t_io *t)
{
	uint8_t st;

	blk_ring_start(&e->ring, &t->io);
	blk_ring_submit(&e->ring);
	t_run(e, e->ndone + (t->ndone ? 0 : 1));
	assert_int_equal(t->ndone, 1);
	st = t->status;
	free(t);
	return st;
}

/* Write zeroes and discard on a regular file; zero sectors are OK. */
static void test_ranges_on_file(void **state)
{
	struct t_env *e = *state;
	struct t_io *w;

	t_ring(e, 4);
	for (unsigned int i = 0; i < 4; i++) {
		w = t_write(e, 16 + i, 0xee);
		assert_int_equal(t_run_one(e, w), VIRTIO_BLK_S_OK);
	}
	assert_int_equal(t_run_one(e, t_range(e, VIRTIO_BLK_T_WRITE_ZEROES,
					       16, 1, 0)), VIRTIO_BLK_S_OK);
	t_check_sector(e, 16, 0);
	t_check_sector(e, 17, 0xee);
	assert_int_equal(t_run_one(e, t_range(e, VIRTIO_BLK_T_WRITE_ZEROES,
					       17, 1,
					       VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)),
			 VIRTIO_BLK_S_OK);
	t_check_sector(e, 17, 0);
	assert_int_equal(t_run_one(e, t_range(e, VIRTIO_BLK_T_DISCARD, 18, 2,
					       0)), VIRTIO_BLK_S_OK);
	/* Zero sectors, also at the very end of the disk. */
	assert_int_equal(t_run_one(e, t_range(e, VIRTIO_BLK_T_WRITE_ZEROES,
					       5, 0, 0)), VIRTIO_BLK_S_OK);
	assert_int_equal(t_run_one(e, t_range(e, VIRTIO_BLK_T_WRITE_ZEROES,
					       DISK_BYTES / 512, 0, 0)),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(t_run_one(e, t_range(e, VIRTIO_BLK_T_DISCARD, 5, 0,
					       0)), VIRTIO_BLK_S_OK);
	blk_ring_exit(&e->ring);
}

/*
 * blk_ring_ready() and blk_ring_reap(): completions are taken straight
 * from the CQ, counted, and each request finishes once.
 */
static void test_reap_ready(void **state)
{
	struct t_env *e = *state;
	struct t_io *io[NIO];
	unsigned int i, n = 0;

	t_ring(e, 16);
	assert_false(blk_ring_ready(&e->ring));
	assert_int_equal(blk_ring_reap(&e->ring), 0);
	for (i = 0; i < NIO; i++) {
		io[i] = t_write(e, i, 0x60 + i);
		blk_ring_start(&e->ring, &io[i]->io);
	}
	blk_ring_submit(&e->ring);
	for (i = 0; i < 100 && n < NIO; i++) {
		if (!blk_ring_ready(&e->ring)) {
			t_readable(e, 50);
			continue;
		}
		n += blk_ring_reap(&e->ring);
		assert_int_equal(e->ndone, n);
	}
	assert_int_equal(n, NIO);
	assert_false(blk_ring_ready(&e->ring));
	assert_int_equal(e->ring.inflight, 0);
	for (i = 0; i < NIO; i++) {
		assert_int_equal(io[i]->ndone, 1);
		assert_int_equal(io[i]->done_status, VIRTIO_BLK_S_OK);
		t_check_sector(e, i, 0x60 + i);
		free(io[i]);
	}
	blk_ring_exit(&e->ring);
}

/*
 * A memory-backed file: blk_ring_memory_backed() says so for a memfd and
 * not for procfs, and with sync_rw a READ or WRITE is done inside
 * blk_ring_start(), even while the kernel refuses every submit.
 */
static void test_sync_rw(void **state)
{
	struct t_env *e = *state;
	struct t_io *w, *rd;
	int mfd, pfd;

	mfd = memfd_create("test-blk-ring", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	assert_true(blk_ring_memory_backed(mfd));
	pfd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	assert_true(pfd >= 0);
	assert_false(blk_ring_memory_backed(pfd));
	close(pfd);
	assert_int_equal(ftruncate(mfd, DISK_BYTES), 0);
	close(e->fd);
	e->fd = mfd;
	e->be.fd = mfd;

	assert_int_equal(blk_ring_init(&e->ring, &e->be, 4, 0, t_done, e), 0);
	e->ring.submit = t_submit;
	assert_true(e->ring.sync_rw);
	e->fail_err = -EBUSY;
	e->fail_left = -1;

	w = t_write(e, 3, 0x5a);
	blk_ring_start(&e->ring, &w->io);
	assert_int_equal(w->ndone, 1);
	assert_int_equal(w->done_status, VIRTIO_BLK_S_OK);
	t_check_sector(e, 3, 0x5a);

	rd = t_io_new(e, VIRTIO_BLK_T_IN, 3, NULL, 0);
	/* t_io_new() gives a READ no data buffer: add one before parsing. */
	rd->in[0] = (struct iovec){ rd->data, 512 };
	rd->in[1] = (struct iovec){ &rd->status, 1 };
	assert_int_equal(blk_req_parse(&e->disk, rd->out, 1, rd->in, 2,
				       &rd->io.req), 0);
	blk_ring_start(&e->ring, &rd->io);
	assert_int_equal(rd->ndone, 1);
	assert_int_equal(rd->status, VIRTIO_BLK_S_OK);
	assert_int_equal(rd->data[0], 0x5a);
	assert_int_equal(rd->data[511], 0x5a);

	blk_ring_submit(&e->ring);
	assert_int_equal(e->ring.inflight, 0);
	assert_int_equal(e->submits, 0);
	assert_int_equal(e->ndone, 2);
	free(w);
	free(rd);
	blk_ring_exit(&e->ring);
}

/* blk_ring_wake(): the poll fd is readable with nothing in flight, once. */
static void test_wake(void **state)
{
	struct t_env *e = *state;

	t_ring(e, 4);
	assert_false(t_readable(e, 20));
	blk_ring_wake(&e->ring);
	assert_true(t_readable(e, 1000));
	blk_ring_poll(&e->ring);
	assert_false(t_readable(e, 20));
	assert_false(e->ring.retry_armed);
	assert_int_equal(e->ndone, 0);
	blk_ring_exit(&e->ring);
}

static bool t_fd_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/*
 * be->ring_wait: blk_ring_wait() sleeps in the ring until a kick (which
 * it consumes), the retry timer, a request's completion or the stop fd
 * (which it leaves readable) wakes it.
 */
static void test_ring_wait(void **state)
{
	struct t_env *e = *state;
	int kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct t_io *w;

	assert_true(kick >= 0 && stop >= 0);
	alarm(10);	/* a wait that never ends fails the test */
	e->be.ring_wait = true;
	t_ring(e, 8);
	assert_true(e->ring.own_wait);

	/* A kick wakes it and is consumed. */
	assert_int_equal(eventfd_write(kick, 1), 0);
	assert_int_equal(blk_ring_wait(&e->ring, kick, stop), 0);
	blk_ring_poll(&e->ring);
	assert_true(e->ring.kicked);
	assert_false(e->ring.stopped);
	assert_false(e->ring.kick_armed);
	assert_false(t_fd_readable(kick));
	e->ring.kicked = false;

	/* The retry timer wakes it (blk_ring_wake()). */
	blk_ring_wake(&e->ring);
	assert_int_equal(blk_ring_wait(&e->ring, kick, stop), 0);
	blk_ring_poll(&e->ring);
	assert_false(e->ring.retry_armed);
	assert_false(e->ring.kicked);

	/*
	 * A request's completion wakes it; the kick read stays armed.  With
	 * wait_submits, blk_ring_submit() leaves the SQE to the wait.
	 */
	e->ring.wait_submits = true;
	w = t_write(e, 5, 0x33);
	blk_ring_start(&e->ring, &w->io);
	blk_ring_submit(&e->ring);
	assert_int_equal(e->submits, 0);
	assert_int_equal(io_uring_sq_ready(&e->ring.ring), 1);
	while (!w->ndone) {
		assert_int_equal(blk_ring_wait(&e->ring, kick, stop), 0);
		blk_ring_poll(&e->ring);
	}
	assert_int_equal(w->done_status, VIRTIO_BLK_S_OK);
	t_check_sector(e, 5, 0x33);
	assert_true(e->ring.kick_armed);
	assert_false(e->ring.kicked);

	/* A kick after the read was armed. */
	assert_int_equal(eventfd_write(kick, 1), 0);
	while (!e->ring.kicked) {
		assert_int_equal(blk_ring_wait(&e->ring, kick, stop), 0);
		blk_ring_poll(&e->ring);
	}
	assert_false(t_fd_readable(kick));

	/* The stop fd: seen, and left readable for the runner. */
	assert_int_equal(eventfd_write(stop, 1), 0);
	while (!e->ring.stopped) {
		assert_int_equal(blk_ring_wait(&e->ring, kick, stop), 0);
		blk_ring_poll(&e->ring);
	}
	assert_true(t_fd_readable(stop));
	alarm(0);
	free(w);
	blk_ring_exit(&e->ring);
	close(kick);
	close(stop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sq_full_waits, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_ring_wait, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_submit_eagain_idle,
						t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_sq_full_no_failure,
						t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_drain_waits, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_drain_gives_up, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_flush_sticky, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_ranges_on_file, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_reap_ready, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_wake, t_setup,
						t_teardown),
		cmocka_unit_test_setup_teardown(test_sync_rw, t_setup,
						t_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
