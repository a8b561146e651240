/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvduse: build virtio devices in userspace on Linux through VDUSE.
 *
 * Conventions
 *  - Every call that can fail returns 0 (or a non-negative count) on success
 *    and a negative errno on failure.  Nothing is printed: messages go to the
 *    log handler set with vduse_log_set_handler().
 *  - Handles (struct vduse_device, struct vduse_vq, struct vduse_runner) are
 *    opaque.  Structures the caller fills in start with a size field that
 *    must be set to sizeof() of the structure as the caller knows it, so that
 *    the library can grow them without breaking the ABI.
 *
 * Threading (see docs/threading.md)
 *  - The device is driven by one "control" thread: vduse_device_process()
 *    and everything the device callbacks do happen there.
 *  - Each started virtqueue is serviced by exactly one thread at a time:
 *    vduse_vq_pop(), vduse_vq_push(), vduse_vq_notify(),
 *    vduse_vq_kick_drain(), the batch calls vduse_vq_pop_batch() and
 *    vduse_vq_push_batch(), and vduse_vq_disable_kicks() /
 *    vduse_vq_enable_kicks() on one queue must not run concurrently.
 *    Different queues may be serviced by different threads with no locking
 *    by the caller.
 *  - vduse_device_attach() and vduse_device_detach() block until the kernel
 *    has probed or removed the driver, which needs vduse_device_process() to
 *    run: call them from a thread other than the control thread (the runner
 *    does this for you).
 */
#ifndef LIBVDUSE_H
#define LIBVDUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vduse_device;
struct vduse_vq;
struct vduse_runner;

/* ------------------------------------------------------------------------ */
/* Library                                                                   */

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *vduse_version(void);

enum vduse_log_level {
	VDUSE_LOG_ERR = 3,
	VDUSE_LOG_WARN = 4,
	VDUSE_LOG_INFO = 6,
	VDUSE_LOG_DEBUG = 7,
};

/*
 * Log handler: called with a complete message (no trailing newline).  It may
 * be called from any thread that calls into the library, so it must be
 * thread-safe.  It is the one callback that may run with a library lock
 * held: it must not call into the library.  @opaque is the pointer given to
 * vduse_log_set_handler().
 */
typedef void (*vduse_log_fn)(int level, const char *msg, void *opaque);

/*
 * Set the process-wide log handler (NULL: discard messages) and the most
 * verbose level passed to it (default VDUSE_LOG_INFO).  Set these before
 * creating devices; changing them while other threads use the library is
 * not synchronised.
 */
void vduse_log_set_handler(vduse_log_fn fn, void *opaque);
void vduse_log_set_level(int level);

/* ------------------------------------------------------------------------ */
/* Device                                                                    */

/*
 * Device callbacks, all called on the control thread (from
 * vduse_device_process()), except queue_error.  Every member is optional.
 * No callback runs with a library lock held: each may call back into the
 * library (push in-flight elements, set the config, ...).
 */
struct vduse_device_ops {
	size_t size;		/* sizeof(struct vduse_device_ops) */

	/* The driver wrote a new device status (VIRTIO_CONFIG_S_* bits). */
	void (*status_changed)(struct vduse_device *dev, uint8_t status);

	/*
	 * A queue was started after DRIVER_OK: its rings are mapped and its
	 * kick fd is armed.  Return 0, or -errno to leave it stopped.  When a
	 * runner is attached, the runner has already started the queue's
	 * thread when this is called.
	 */
	int (*queue_start)(struct vduse_device *dev, struct vduse_vq *vq);

	/*
	 * A queue is being stopped (reset or DRIVER_OK cleared).  On return
	 * no thread may touch @vq any more: finish or abandon in-flight
	 * elements before returning.  With a runner, the queue thread has
	 * already exited when this is called; for a thread the runner left
	 * behind (see vduse_runner_ops.stop_slow_ms) it is called later, on
	 * the control thread, once that thread has ended.
	 */
	void (*queue_stop)(struct vduse_device *dev, struct vduse_vq *vq);

	/* The driver reset the device (status 0); queues are stopped. */
	void (*reset)(struct vduse_device *dev);

	/*
	 * A queue was found malformed (bad ring, bad descriptor, unmapped or
	 * read-only buffer) and is now broken: it yields no more elements
	 * until the device is reset.  @err is a negative errno.  Called from
	 * the thread that was servicing the queue, inside the pop, push or
	 * notify that found it, after the library dropped its locks: pushing
	 * the queue's in-flight elements from here is allowed.  A shortage of
	 * memory or fds never breaks a queue (see vduse_vq_pop()).
	 */
	void (*queue_error)(struct vduse_device *dev, struct vduse_vq *vq,
			    int err);

	/*
	 * The kernel asked the device to suspend (VDUSE_F_SUSPEND, Linux 7.3:
	 * vhost-vdpa's VHOST_VDPA_SUSPEND, e.g. a VMM about to migrate).
	 * Every started queue has been stopped first (queue_stop ran for it);
	 * no queue starts again until the driver resets the device.  On the
	 * thread in vduse_device_process().  NULL: nothing more to do.
	 */
	void (*suspend)(struct vduse_device *dev);
};

/* What vduse_device_new() creates. */
struct vduse_device_config {
	size_t size;		/* sizeof(struct vduse_device_config) */
	const char *name;	/* /dev/vduse/$name and the vDPA device name */
	uint32_t device_id;	/* virtio device id, e.g. VIRTIO_ID_BLOCK */
	uint32_t vendor_id;
	/*
	 * Offered virtio feature bits.  The library adds VIRTIO_F_VERSION_1
	 * and VIRTIO_F_ACCESS_PLATFORM, which VDUSE requires, and
	 * VIRTIO_RING_F_INDIRECT_DESC and VIRTIO_RING_F_EVENT_IDX, which it
	 * implements, unless VDUSE_DEVICE_F_NO_RING_FEATURES is in @flags.
	 * It also offers VIRTIO_F_RING_PACKED (packed virtqueues, behind the
	 * same pop/push calls) unless VDUSE_DEVICE_F_NO_RING_FEATURES or
	 * VDUSE_DEVICE_F_NO_PACKED is in @flags; an in-flight log records
	 * split and packed rings alike.  A kernel that refuses the packed
	 * bit (VDUSE_CREATE_DEV EINVAL) gets the device without it, and a
	 * vduse_device_open() with the same config then accepts the log
	 * that says so.
	 */
	uint64_t features;
	uint32_t num_queues;	/* 1 .. 65535 */
	uint32_t queue_size;	/* largest queue size, a power of 2, <= 32768 */
	const void *config;	/* initial config space */
	uint32_t config_size;
	uint32_t flags;		/* VDUSE_DEVICE_F_* */
	const struct vduse_device_ops *ops;
	void *opaque;		/* returned by vduse_device_opaque() */
	/*
	 * The in-flight log (docs/recovery.md), which vduse_device_open()
	 * needs to reconnect after a crash: a file the library creates or
	 * truncates (e.g. under /run), or, with VDUSE_DEVICE_F_LOG_FD in
	 * @flags, @log_fd: an open read-write fd of a file (a memfd kept by
	 * a supervisor, say) that stays the caller's.  Neither: no log, and
	 * pop and push cost nothing more.  Either is locked (flock) while
	 * the device is open: a second user gets -EBUSY.
	 */
	const char *log_path;
	int log_fd;
	/*
	 * Up to VDUSE_LOG_ID_MAX bytes that say what the backend serves (a
	 * backing file's device and inode numbers, say), recorded in the log
	 * at creation: vduse_device_open() refuses a different one, as it
	 * refuses a different config space, queue count or feature set.
	 */
	const void *log_id;
	uint32_t log_id_size;
	/*
	 * Virtqueue groups and address spaces (VDUSE API version 1): the
	 * device has @num_groups groups (0: one), queue i is in group
	 * @queue_group[i] (NULL: every queue in group 0), and there are
	 * @num_as address spaces (0: one).  The driver puts a group in an
	 * address space (VDUSE_SET_VQ_GROUP_ASID, e.g. vhost-vdpa's
	 * VHOST_VDPA_SET_GROUP_ASID; all in space 0 after a reset), and each
	 * queue then finds its buffers in its group's space.  More than one
	 * group or space on a kernel without API version 1 (before 7.2):
	 * vduse_device_new() fails with -EOPNOTSUPP.
	 */
	uint32_t num_groups;
	uint32_t num_as;
	const uint32_t *queue_group;
};

#define VDUSE_LOG_ID_MAX		64

#define VDUSE_DEVICE_F_NO_RING_FEATURES (1u << 0)
#define VDUSE_DEVICE_F_LOG_FD		(1u << 1)
#define VDUSE_DEVICE_F_NO_PACKED	(1u << 2)	/* split rings only */

/*
 * Create a device: negotiate the API version on /dev/vduse/control, create
 * the device, set up its queues and open /dev/vduse/$name.  Returns -ENODEV
 * when VDUSE is not loaded, -EEXIST when the name is taken, -EINVAL for a
 * bad config.
 */
int vduse_device_new(const struct vduse_device_config *cfg,
		     struct vduse_device **out);

/*
 * Reconnect to an existing device after the process that served it died
 * (docs/recovery.md): @cfg must be the one it was created with, including
 * its in-flight log.  The log is checked against @cfg (-ENOENT when it is
 * missing, -EINVAL when it does not match, -EBUSY when another process
 * holds it; each says why through the log handler), then
 * /dev/vduse/$name is opened (-ENOENT: no such device, -EBUSY: still open
 * elsewhere).  Nothing is asked of the driver: the first
 * vduse_device_process() finds the queues the driver has ready, maps their
 * rings and starts them (queue_start, as after DRIVER_OK) from the log.
 * Then vduse_vq_pop() returns every request that was in flight at the
 * crash again, in the order it was first popped, before any new one; the
 * backend executes each again and pushes it once.  vduse_device_free()
 * destroys the device as if it had been created here.
 */
int vduse_device_open(const struct vduse_device_config *cfg,
		      struct vduse_device **out);

/*
 * Stop every queue, unmap everything, close the device and destroy it in
 * the kernel.  Detach it first: the kernel refuses to destroy an attached
 * device (that failure is logged).  NULL is a no-op.
 */
void vduse_device_free(struct vduse_device *dev);

/* The device fd to poll for POLLIN; then call vduse_device_process(). */
int vduse_device_fd(const struct vduse_device *dev);

/*
 * Handle every message the kernel has queued (without blocking) and answer
 * it.  Returns the number of messages handled, or -errno.
 */
int vduse_device_process(struct vduse_device *dev);

/*
 * Attach to / detach from the vDPA bus (generic netlink "vdpa").  Both block
 * until the kernel's driver has probed or gone: call them from a thread
 * other than the one calling vduse_device_process().  Detach returns
 * -ENODEV, logged only at debug level, when the device is not on the bus
 * (never attached, or attached and detached by someone else, e.g. with
 * iproute2's `vdpa dev del`).  Attach returns -EEXIST, logged at info
 * level, when the device is on the bus already (a device reopened with
 * vduse_device_open() whose driver is still there).
 */
int vduse_device_attach(struct vduse_device *dev);
int vduse_device_detach(struct vduse_device *dev);

/*
 * Attach as vduse_device_attach() does, then make sure the device is bound
 * to the vDPA bus driver @driver: VDUSE_DRIVER_VIRTIO ("virtio_vdpa", a
 * host device such as /dev/vdX) or VDUSE_DRIVER_VHOST ("vhost_vdpa", a
 * /dev/vhost-vdpa-N for a VMM or a userspace virtio driver; see
 * docs/virtual-machines.md).  NULL: whichever driver the bus picks, as
 * vduse_device_attach().  When the bus bound another driver first, the
 * device is unbound from it and probed again with @driver as its sysfs
 * driver_override (needs Linux 5.19 or later and sysfs at /sys).
 * Returns -ENODEV, with a log message naming the module to load, when
 * @driver is not loaded (nothing was attached then); -EINVAL for a name
 * that is not a driver's; -EEXIST as vduse_device_attach() (a warning is
 * logged if the device has another driver: it is not rebound, as that
 * driver may have requests in flight).  On any other failure after the
 * device was attached, it is detached again before returning.  Same
 * threading as vduse_device_attach().
 */
#define VDUSE_DRIVER_VIRTIO	"virtio_vdpa"
#define VDUSE_DRIVER_VHOST	"vhost_vdpa"
int vduse_device_attach_driver(struct vduse_device *dev, const char *driver);

/*
 * The vhost-vdpa character device of an attached device bound to
 * vhost_vdpa, e.g. "/dev/vhost-vdpa-0", into @buf (@len bytes, NUL
 * included): the path to hand to the VMM.  Returns 0, -ENODEV when the
 * device has no vhost-vdpa node (not attached, or another driver), -ERANGE
 * when @len is too small.
 */
int vduse_device_vhost_node(const struct vduse_device *dev, char *buf,
			    size_t len);

const char *vduse_device_name(const struct vduse_device *dev);
void *vduse_device_opaque(const struct vduse_device *dev);
unsigned int vduse_device_num_queues(const struct vduse_device *dev);
/* NULL when @index is out of range. */
struct vduse_vq *vduse_device_vq(struct vduse_device *dev, unsigned int index);
/*
 * Negotiated features; valid once the driver set FEATURES_OK, 0 before and
 * after a reset.  An atomic read: any thread may call it, also while the
 * control thread handles the driver's messages.
 */
uint64_t vduse_device_features(const struct vduse_device *dev);
uint8_t vduse_device_status(const struct vduse_device *dev);
/*
 * The VDUSE API version the library chose with the kernel when the device
 * was created: the highest both speak (0 on 6.12, 1 from Linux 7.2).
 */
unsigned int vduse_device_api_version(const struct vduse_device *dev);
/*
 * The VDUSE features in use, as a mask of 1 << VDUSE_F_* bits of
 * <linux/vduse.h> (0: none; a kernel before 7.3 has none): those the
 * kernel offered and the library handles.
 */
uint64_t vduse_device_vduse_features(const struct vduse_device *dev);

/* Update the config space and, optionally, raise a config interrupt. */
int vduse_device_set_config(struct vduse_device *dev, uint32_t offset,
			    const void *buf, uint32_t len, bool notify);

/*
 * Back the kernel's bounce region with @size bytes of the backend's own
 * memory at @addr (page aligned; e.g. hugepages, or buffers the backend
 * registered with io_uring), through VDUSE_IOTLB_REG_UMEM (Linux 6.5 and
 * later).  Buffers the driver maps for streaming DMA are then copied by
 * the kernel into this memory, and requests' iovecs point into it.  Call
 * it once, before the driver starts (after vduse_device_new() or
 * vduse_device_open(), before DRIVER_OK): -EBUSY otherwise.  @size must
 * be at least the bounce size (/sys/class/vduse/NAME/bounce_size, 64 MiB
 * by default).  The memory must stay valid and mapped until
 * vduse_device_free().
 *
 * The registration happens when the bounce region first exists (the
 * driver's first streaming map), on the queue thread that looks it up,
 * and is undone at each reset and by vduse_device_free(); the next driver
 * start registers again.  It is an opt-in that never stops the device:
 * when the kernel lacks the ioctls, when pinning the pages exceeds
 * RLIMIT_MEMLOCK, or when @size is smaller than the bounce region, a
 * message says why and the region is mapped from the kernel as without
 * it.  Address space 0 only (API version 1's other address spaces have
 * no bounce region of their own here); a device bound to vhost_vdpa has
 * none in use: once vduse_device_attach_driver() bound it there nothing
 * is registered.  Returns 0, -EINVAL (NULL, zero size, unaligned @addr,
 * bound to vhost_vdpa), -EBUSY or -ENOMEM.
 */
int vduse_device_set_umem(struct vduse_device *dev, void *addr, size_t size);

/* ------------------------------------------------------------------------ */
/* Virtqueues                                                                */

/*
 * A popped request.  vduse_vq_pop() allocates @sz bytes with this structure
 * at their head, so a backend can embed it as the first member of its own
 * request structure; the iovecs follow in the same allocation, at or after
 * offset @sz (rounded up to the alignment of struct iovec), so the bytes
 * from sizeof(struct vduse_vq_elem) to @sz are the caller's (zeroed).
 * Release it with free() after vduse_vq_push().
 *
 * Mapping lifetime: the memory the iovecs point at stays mapped until the
 * element is pushed (or its queue stopped), whatever UPDATE_IOTLB messages
 * the kernel sends meanwhile, and no other element's iovecs alias it.  If
 * the driver remapped that IOVA in the meantime, the element still sees
 * the memory it had when it was popped.
 */
struct vduse_vq_elem {
	/*
	 * Pass back through push.  Below vduse_vq_size(): the head
	 * descriptor's index on a split ring, a slot the library keeps the
	 * driver's buffer id in on a packed one.
	 */
	uint32_t id;
	uint32_t out_num;	/* iovecs the device reads (driver to device) */
	uint32_t in_num;	/* iovecs the device writes (device to driver) */
	uint32_t reserved;
	struct iovec *out_sg;
	struct iovec *in_sg;
};

/*
 * Take the next available request.  Returns 0 and stores it in *elem,
 * -EAGAIN when the ring is empty (kick notifications are re-armed before
 * that is returned, so a new request will kick), -EIO when the queue is
 * broken or stopped, -EINVAL when @sz is smaller than the element,
 * -EOVERFLOW when it is larger than SIZE_MAX / 2.
 * -ENOMEM is a shortage that may pass (the element could not be allocated,
 * or a buffer or ring could not be mapped for lack of memory or fds):
 * nothing was consumed, the queue is not broken, and the library has
 * signalled the queue's kick fd, so that polling it wakes the caller to
 * retry (the runner does; a backend should stop popping until then).  A
 * malformed chain breaks the queue (see vduse_device_ops.queue_error) and
 * returns -EIO.
 */
int vduse_vq_pop(struct vduse_vq *vq, size_t sz, void **elem);

/*
 * Return a request to the driver with @len bytes written into its in_sg.
 * Every popped element must be pushed exactly once; pushing an id that is
 * not in flight returns -EINVAL, and -EIO comes back when the queue is
 * stopped or its rings are gone (broken).  The driver is not notified until
 * vduse_vq_notify(), so several pushes can share one interrupt.  When the
 * used ring cannot be mapped for a shortage, the completion is kept and
 * published (with an interrupt if the driver wants one) by the next pop,
 * push or notify on the queue, and the kick fd is signalled so that one
 * comes: push still returns 0 and the element may be freed.
 */
int vduse_vq_push(struct vduse_vq *vq, const struct vduse_vq_elem *elem,
		  uint32_t len);

/*
 * Inject an interrupt if the driver wants one for what was pushed since
 * the last notify (honours VIRTIO_RING_F_EVENT_IDX and
 * VRING_AVAIL_F_NO_INTERRUPT).  Returns 1 if an interrupt was injected, 0
 * if none was needed, or -errno.  An interrupt that could not be injected
 * is not lost: the next notify injects it.
 */
int vduse_vq_notify(struct vduse_vq *vq);

/*
 * The batch API: the fast path, with no allocation per request.
 *
 * vduse_vq_pop_batch() takes up to @max available requests and stores a
 * pointer to each in elems[0..n), in ring order, under one lock round trip
 * and with one avail_event store.  The elements are the library's: one per
 * descriptor head, allocated when the queue starts, so nothing is
 * allocated or freed per request.  An element stays valid, with its iovecs
 * and the memory they point at (see "Mapping lifetime" above), until it is
 * pushed; do not free it.  elem->id is below vduse_vq_size(), so a backend
 * keeps its own per-request state in an array indexed by it.  Elements of
 * both APIs may be pushed by either push call.  Threads: as vduse_vq_pop()
 * and vduse_vq_push(), the queue's one servicing thread.
 *
 * Returns the number popped (1..@max); fewer than @max means the ring was
 * found empty, and kick notifications were re-armed before the last look,
 * so a new request will kick (unless the backend turned kicks off with
 * vduse_vq_disable_kicks()).  When nothing was popped: -EAGAIN (empty,
 * re-armed likewise), -EIO (broken or stopped), -ENOMEM (a shortage that may pass,
 * as for vduse_vq_pop(): the kick fd was signalled) or -EINVAL (@max is
 * 0).  A malformed chain after the first elements breaks the queue: the
 * elements already taken are returned and must be pushed; the next call
 * returns -EIO.  A reconnect's requests to pop again come first, as with
 * vduse_vq_pop().
 */
int vduse_vq_pop_batch(struct vduse_vq *vq, struct vduse_vq_elem **elems,
		       unsigned int max);

/* vduse_vq_push_batch() flag: decide on and inject the interrupt. */
#define VDUSE_VQ_PUSH_NOTIFY	(1u << 0)

/*
 * Complete @n popped elements, elems[i] with lens[i] bytes written: their
 * used entries are written in order and made visible with one used->idx
 * store.  With VDUSE_VQ_PUSH_NOTIFY the call then does what
 * vduse_vq_notify() does, under the same lock: one interrupt decision for
 * the batch (and anything pushed before).  @n may be 0 (then it is a
 * notify).  Returns 0, or 1 when an interrupt was injected; -EINVAL when an
 * element is not in flight (or appears twice) or @flags is unknown, -EIO
 * when the queue is stopped or broken, -ENOMEM when a shortage left no room
 * to keep the completions: then none was pushed.  A used ring that cannot
 * be mapped for a shortage, or an interrupt that cannot be injected, is
 * handled as in vduse_vq_push() and vduse_vq_notify(): the completions are
 * kept and published later, the interrupt is kept for the next notify, the
 * kick fd is signalled so that the caller comes back, and 0 is returned.
 */
int vduse_vq_push_batch(struct vduse_vq *vq, struct vduse_vq_elem *const *elems,
			const uint32_t *lens, unsigned int n,
			unsigned int flags);

/*
 * Kick suppression while a queue is busy.  After vduse_vq_disable_kicks()
 * the driver is asked not to kick the queue (VRING_USED_F_NO_NOTIFY, or
 * with VIRTIO_RING_F_EVENT_IDX an avail_event it has already passed), and
 * pops that find the ring empty leave it so: the backend promises to come
 * back and pop on its own, e.g. when requests it has in flight complete.
 * Before it waits for the kick fd again it must call
 * vduse_vq_enable_kicks(), which asks for kicks and then looks at the ring
 * once more: 1 means requests arrived meanwhile (pop them; kicks stay on),
 * 0 that the ring is empty and the next request will kick.  Kicks are on
 * when a queue starts, also after a reconnect.  Both return -EIO when the
 * queue is stopped or broken, and -ENOMEM, with the kick fd signalled, for
 * a shortage that kept the rings from being mapped.  The queue's thread
 * only, like vduse_vq_pop().
 */
int vduse_vq_disable_kicks(struct vduse_vq *vq);
int vduse_vq_enable_kicks(struct vduse_vq *vq);

/* The eventfd the kernel signals when the driver kicks this queue. */
int vduse_vq_kick_fd(const struct vduse_vq *vq);

/* Consume pending kicks from the kick fd (non-blocking).  0 or -errno. */
int vduse_vq_kick_drain(struct vduse_vq *vq);

struct vduse_device *vduse_vq_device(const struct vduse_vq *vq);
unsigned int vduse_vq_index(const struct vduse_vq *vq);
/* The ring size the driver chose; 0 while the queue is stopped. */
unsigned int vduse_vq_size(const struct vduse_vq *vq);
bool vduse_vq_started(const struct vduse_vq *vq);
bool vduse_vq_broken(const struct vduse_vq *vq);
/* Requests popped and not yet pushed. */
unsigned int vduse_vq_inflight(const struct vduse_vq *vq);
/* A pointer the backend may keep with the queue. */
void vduse_vq_set_priv(struct vduse_vq *vq, void *priv);
void *vduse_vq_priv(const struct vduse_vq *vq);

/* ------------------------------------------------------------------------ */
/* Runner: a control thread plus one pthread per started queue               */

#define VDUSE_RUNNER_KICK	(1u << 0)	/* the kick fd fired (drained) */
#define VDUSE_RUNNER_POLL	(1u << 1)	/* the queue's poll fd is readable */
/*
 * The queue's poll fd reported POLLERR, POLLHUP or POLLNVAL.  The runner no
 * longer waits on it (so the thread does not spin) and passes this bit once;
 * kicks keep arriving.  POLL may come in the same call when the fd was also
 * readable.  The fd stays the backend's: close it or keep it, the runner
 * does not look at it again until the queue restarts.
 */
#define VDUSE_RUNNER_POLL_ERR	(1u << 2)

struct vduse_runner_ops {
	size_t size;		/* sizeof(struct vduse_runner_ops) */

	/*
	 * In the new queue thread, before any event.  Store per-queue state
	 * with vduse_vq_set_priv().  *poll_fd (initially -1) may be set to an
	 * fd the thread also waits on for POLLIN, e.g. an io_uring fd; it
	 * must stay open until queue_exit (see VDUSE_RUNNER_POLL_ERR).
	 * Return 0 or -errno (the queue then stays idle).
	 */
	int (*queue_init)(struct vduse_vq *vq, void *opaque, int *poll_fd);

	/*
	 * In the queue thread: @events is a mask of VDUSE_RUNNER_*.  Right
	 * after queue_init the runner calls it once with VDUSE_RUNNER_KICK,
	 * so requests made available before the queue started are seen.
	 */
	void (*queue_event)(struct vduse_vq *vq, void *opaque,
			    unsigned int events);

	/*
	 * In the queue thread, when the queue stops: complete (push) or
	 * abandon every in-flight element and release per-queue state.
	 * When the device stops several queues (reset, DRIVER_OK cleared,
	 * vduse_runner_free()), every queue thread is told first and their
	 * queue_exit calls run in parallel; the stop, and with it the answer
	 * to the kernel's message, waits for the slowest one.
	 */
	void (*queue_exit)(struct vduse_vq *vq, void *opaque);

	/*
	 * On the control thread, when it stops on its own because the device
	 * fd reported an error or vduse_device_process() failed; @err is the
	 * negative errno also returned by vduse_runner_status().  Nothing
	 * answers the kernel after this (its messages time out), while the
	 * queue threads keep running until vduse_runner_free().  Optional;
	 * it must not call vduse_runner_free().  vduse_runner_fd() reports
	 * the same event to an event loop.
	 */
	void (*control_failed)(struct vduse_runner *r, void *opaque, int err);

	/*
	 * A queue thread still running this many milliseconds after it was
	 * told to stop (0: 5000), e.g. in a queue_exit waiting for hung I/O,
	 * is left behind: an error naming the queue is logged and the queue
	 * stops without it, so the kernel's message is answered.  Its
	 * elements keep their buffers mapped until it ends; its pops and
	 * pushes fail with -EIO.  Once it has ended, the control thread logs
	 * it and calls the device's queue_stop; a DRIVER_OK that would start
	 * the queue again first waits for it.  vduse_runner_free() waits for
	 * every queue thread, with no limit.
	 */
	unsigned int stop_slow_ms;

	/*
	 * Optional: the backend owns the queue thread's wait, e.g. to wait
	 * for kicks and its I/O in one io_uring_enter().  When set, the
	 * runner calls it in the queue thread right after a successful
	 * queue_init, instead of its own poll() loop and queue_event: the
	 * backend serves the queue (requests may be waiting from before the
	 * kick fd was armed), waits on vduse_vq_kick_fd() itself (draining
	 * it, e.g. with vduse_vq_kick_drain() or by reading the eventfd) and
	 * on @stop_fd, an fd that becomes readable (POLLIN) when the thread
	 * must stop; it must not read or close @stop_fd.  Return 0 once
	 * @stop_fd is readable: the runner then calls queue_exit, and the
	 * stop_slow_ms limit counts from the stop request as usual.  Return
	 * -errno to hand the wait back to the runner (e.g. the backend's
	 * io_uring lacks a feature): it says so at debug level, goes on
	 * with its own loop and starts with a VDUSE_RUNNER_KICK queue_event,
	 * so the backend must leave its state fit for queue_event.  A return
	 * of 0 while @stop_fd is not readable is a backend bug: the runner
	 * logs it and the queue idles until it is told to stop.
	 */
	int (*queue_run)(struct vduse_vq *vq, void *opaque, int stop_fd);
};

/*
 * Create a runner for @dev.  A device has at most one runner (-EBUSY).
 * @opaque is passed to the runner callbacks.
 */
int vduse_runner_new(struct vduse_device *dev,
		     const struct vduse_runner_ops *ops, void *opaque,
		     struct vduse_runner **out);

/*
 * Start the control thread, which calls vduse_device_process().  Once it
 * has run, a runner cannot be started again (-EALREADY), even after its
 * control thread failed.
 */
int vduse_runner_start(struct vduse_runner *r);

/*
 * 0 while the control thread runs (or has not been started); once it has
 * stopped on its own, the negative errno why: -EIO or -EBADF when the
 * device fd reported POLLERR/POLLHUP or POLLNVAL, otherwise the error of
 * poll() or vduse_device_process().  Any thread.
 */
int vduse_runner_status(const struct vduse_runner *r);

/*
 * An eventfd, valid from vduse_runner_new() to vduse_runner_free(), that
 * becomes readable when the control thread stops on its own (then
 * vduse_runner_status() is negative).  Poll it for POLLIN next to the
 * application's other fds; do not read or close it.  Any thread.
 */
int vduse_runner_fd(const struct vduse_runner *r);

/*
 * Stop the control thread and every queue thread (each runs queue_exit,
 * all in parallel) and detach the runner from its device.  NULL is a
 * no-op.  Not from a runner callback.
 */
void vduse_runner_free(struct vduse_runner *r);

#ifdef __cplusplus
}
#endif

#endif /* LIBVDUSE_H */
