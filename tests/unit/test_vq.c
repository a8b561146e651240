// SPDX-License-Identifier: MIT
/* The data path on well-formed rings: pop, push, notify, event index,
 * index wrap-around, buffers across regions, IOTLB updates and resets. */
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "test_util.h"

#define POP_SZ	sizeof(struct vduse_vq_elem)

/* One request with a readable and a writable buffer, completed. */
static void roundtrip_one(struct tu_env *e, unsigned int q, uint8_t seed)
{
	struct sim_buf b[2] = {
		{ TU_DATA + 0x8000 * q, 32, false },
		{ TU_DATA + 0x8000 * q + 0x100, 16, true },
	};
	struct vduse_vq_elem *elem;
	uint16_t head;
	uint32_t id, len;

	tu_fill(b[0].addr, seed, 32);
	head = sim_add_chain(&e->s[q], b, 2);
	sim_publish(&e->s[q], head);
	elem = tu_pop(e->vq[q]);
	assert_int_equal(elem->id, head);
	assert_int_equal(elem->out_num, 1);
	assert_int_equal(elem->in_num, 1);
	tu_assert_iov_is(&elem->out_sg[0], b[0].addr, 32);
	memset(elem->in_sg[0].iov_base, seed, 16);
	assert_int_equal(vduse_vq_push(e->vq[q], elem, 16), 0);
	free(elem);
	assert_true(sim_get_used(&e->s[q], &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 16);
	assert_int_equal(((uint8_t *)fk_iova_ptr(b[1].addr))[15], seed);
}

static void test_normal_path(void **state)
{
	struct sim_buf b[4] = {
		{ TU_DATA, 16, false },
		{ TU_DATA + 0x1000, 100, false },
		{ TU_DATA + 0x2000, 64, true },
		{ TU_DATA + 0x3000, 1, true },
	};
	struct tu_env e;
	struct req { struct vduse_vq_elem elem; char tail[13]; } *r;
	void *p;
	uint16_t head, used0;
	uint32_t id, len;

	tu_env_start(&e, tu_base_features(), 0);
	tu_fill(b[0].addr, 1, 16);
	tu_fill(b[1].addr, 50, 100);
	memset(fk_iova_ptr(b[2].addr), 0, 64);
	head = sim_add_chain(&e.s[0], b, 4);
	sim_publish(&e.s[0], head);
	used0 = sim_used_idx(&e.s[0]);

	/* The element can be embedded at the head of a larger request. */
	assert_int_equal(vduse_vq_pop(e.vq[0], sizeof(*r), &p), 0);
	r = p;
	assert_int_equal(r->elem.id, head);
	assert_int_equal(r->elem.out_num, 2);
	assert_int_equal(r->elem.in_num, 2);
	assert_true((uintptr_t)r->elem.out_sg >= (uintptr_t)(r + 1));
	assert_int_equal((uintptr_t)r->elem.out_sg % _Alignof(struct iovec), 0);
	assert_ptr_equal(r->elem.in_sg, r->elem.out_sg + 2);
	memset(r->tail, 0x5a, sizeof(r->tail));	/* ours to use (ASan) */
	tu_assert_iov_is(&r->elem.out_sg[0], b[0].addr, 16);
	tu_assert_iov_is(&r->elem.out_sg[1], b[1].addr, 100);
	assert_int_equal(r->elem.in_sg[0].iov_len, 64);
	assert_int_equal(r->elem.in_sg[1].iov_len, 1);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 1);
	assert_int_equal(vduse_vq_size(e.vq[0]), TU_QSIZE);

	memcpy(r->elem.in_sg[0].iov_base, "written by the device", 22);
	*(uint8_t *)r->elem.in_sg[1].iov_base = 0x42;
	assert_memory_equal(fk_iova_ptr(b[2].addr), "written by the device", 22);
	assert_int_equal(*(uint8_t *)fk_iova_ptr(b[3].addr), 0x42);

	/* Nothing is published before push. */
	assert_int_equal(sim_used_idx(&e.s[0]), used0);
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &p), -EAGAIN);
	/* Nothing pushed since the queue started: no interrupt. */
	assert_int_equal(vduse_vq_notify(e.vq[0]), 0);
	assert_int_equal(fk_vq_irqs(0), 0);
	assert_int_equal(vduse_vq_push(e.vq[0], &r->elem, 23), 0);
	free(r);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 0);
	assert_int_equal(sim_used_idx(&e.s[0]), (uint16_t)(used0 + 1));
	assert_true(sim_get_used(&e.s[0], &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 23);

	assert_int_equal(fk_vq_irqs(0), 0);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 1);
	assert_int_equal(fk_vq_irqs(0), 1);
	assert_int_equal(fk_vq_irqs(1), 0);

	/* An element size smaller than the element itself is refused. */
	assert_int_equal(vduse_vq_pop(e.vq[0], 8, &p), -EINVAL);
	tu_env_free(&e);
}

static void test_indirect(void **state)
{
	struct sim_buf b[3] = {
		{ TU_DATA, 40, false },
		{ TU_DATA + 0x1000, 8, true },
		{ TU_DATA + 0x2000, 8, true },
	};
	struct vduse_vq_elem *elem;
	struct tu_env e;
	uint16_t head;

	tu_env_start(&e, tu_base_features(), 0);
	tu_fill(b[0].addr, 9, 40);
	head = sim_add_indirect(&e.s[0], TU_DATA + 0x10000, b, 3);
	sim_publish(&e.s[0], head);
	elem = tu_pop(e.vq[0]);
	assert_int_equal(elem->id, head);
	assert_int_equal(elem->out_num, 1);
	assert_int_equal(elem->in_num, 2);
	tu_assert_iov_is(&elem->out_sg[0], b[0].addr, 40);
	memset(elem->in_sg[1].iov_base, 0x77, 8);
	assert_int_equal(((uint8_t *)fk_iova_ptr(b[2].addr))[7], 0x77);
	assert_int_equal(vduse_vq_push(e.vq[0], elem, 8), 0);
	free(elem);
	assert_false(vduse_vq_broken(e.vq[0]));
	tu_env_free(&e);
}

static void test_batching(void **state)
{
	struct vduse_vq_elem *elem[5];
	struct tu_env e;
	uint32_t id, len;
	uint16_t heads[5];
	void *p;
	int i;

	tu_env_start(&e, tu_base_features(), 0);
	for (i = 0; i < 5; i++) {
		struct sim_buf b = { TU_DATA + 0x100 * i, 8, true };

		heads[i] = sim_add_chain(&e.s[0], &b, 1);
		sim_publish(&e.s[0], heads[i]);
	}
	for (i = 0; i < 5; i++)
		elem[i] = tu_pop(e.vq[0]);
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &p), -EAGAIN);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 5);
	/* Completed out of order. */
	for (i = 4; i >= 0; i--) {
		assert_int_equal(vduse_vq_push(e.vq[0], elem[i], i), 0);
		free(elem[i]);
	}
	assert_int_equal(fk_vq_irqs(0), 0);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 1);
	assert_int_equal(fk_vq_irqs(0), 1);
	/* Nothing new: no second interrupt. */
	assert_int_equal(vduse_vq_notify(e.vq[0]), 0);
	assert_int_equal(fk_vq_irqs(0), 1);
	for (i = 4; i >= 0; i--) {
		assert_true(sim_get_used(&e.s[0], &id, &len));
		assert_int_equal(id, heads[i]);
		assert_int_equal(len, i);
	}
	assert_false(sim_get_used(&e.s[0], &id, &len));
	tu_env_free(&e);
}

static void test_event_idx(void **state)
{
	struct tu_env e;
	uint16_t u;

	tu_env_start(&e, tu_base_features() | tu_event_idx_feature(), 0);
	/* The first notify always interrupts. */
	roundtrip_one(&e, 0, 1);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 1);

	/* The driver wants an interrupt only once used passes u + 5. */
	u = sim_used_idx(&e.s[0]);
	sim_set_used_event(&e.s[0], u + 5);
	roundtrip_one(&e, 0, 2);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 0);
	roundtrip_one(&e, 0, 3);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 0);
	assert_int_equal(fk_vq_irqs(0), 1);

	/* used_event = the entry just written: now it wants one. */
	u = sim_used_idx(&e.s[0]);
	sim_set_used_event(&e.s[0], u);
	roundtrip_one(&e, 0, 4);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 1);
	assert_int_equal(fk_vq_irqs(0), 2);

	/* Several pushes crossing used_event in one batch: one interrupt. */
	u = sim_used_idx(&e.s[0]);
	sim_set_used_event(&e.s[0], u + 1);
	roundtrip_one(&e, 0, 5);
	roundtrip_one(&e, 0, 6);
	roundtrip_one(&e, 0, 7);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 1);
	assert_int_equal(fk_vq_irqs(0), 3);

	/* With EVENT_IDX, the NO_INTERRUPT flag is not what counts. */
	sim_set_avail_flags(&e.s[0], VRING_AVAIL_F_NO_INTERRUPT);
	sim_set_used_event(&e.s[0], sim_used_idx(&e.s[0]));
	roundtrip_one(&e, 0, 8);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 1);
	tu_env_free(&e);
}

static void test_no_interrupt_flag(void **state)
{
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	sim_set_avail_flags(&e.s[0], VRING_AVAIL_F_NO_INTERRUPT);
	roundtrip_one(&e, 0, 1);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 0);
	roundtrip_one(&e, 0, 2);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 0);
	assert_int_equal(fk_vq_irqs(0), 0);
	sim_set_avail_flags(&e.s[0], 0);
	roundtrip_one(&e, 0, 3);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 1);
	assert_int_equal(fk_vq_irqs(0), 1);
	/* used_event is ignored without EVENT_IDX. */
	sim_set_used_event(&e.s[0], sim_used_idx(&e.s[0]) + 100);
	roundtrip_one(&e, 0, 4);
	assert_int_equal(vduse_vq_notify(e.vq[0]), 1);
	assert_int_equal(fk_vq_irqs(0), 2);
	tu_env_free(&e);
}

static void poison_avail_event(struct sim_vq *s)
{
	uint16_t *p = fk_iova_ptr(s->used + 4 + 8ull * s->num);

	*p = 0xdead;
}

static void test_avail_event(void **state)
{
	struct vduse_vq_elem *elem[3];
	struct tu_env e;
	void *p;
	int i;

	tu_env_start(&e, tu_base_features() | tu_event_idx_feature(), 100);
	for (i = 0; i < 3; i++) {
		struct sim_buf b = { TU_DATA + 0x100 * i, 8, true };

		sim_publish(&e.s[0], sim_add_chain(&e.s[0], &b, 1));
	}
	poison_avail_event(&e.s[0]);
	for (i = 0; i < 3; i++)
		elem[i] = tu_pop(e.vq[0]);
	assert_int_equal(sim_avail_event(&e.s[0]), 103);
	/* The ring runs empty: pop asks to be kicked for index 103. */
	poison_avail_event(&e.s[0]);
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &p), -EAGAIN);
	assert_int_equal(sim_avail_event(&e.s[0]), 103);
	for (i = 0; i < 3; i++) {
		assert_int_equal(vduse_vq_push(e.vq[0], elem[i], 0), 0);
		free(elem[i]);
	}
	tu_env_free(&e);

	/* Without EVENT_IDX the device never writes avail_event. */
	fk_teardown();
	tu_setup(NULL);
	tu_env_start(&e, tu_base_features(), 0);
	poison_avail_event(&e.s[0]);
	roundtrip_one(&e, 0, 1);
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &p), -EAGAIN);
	assert_int_equal(sim_avail_event(&e.s[0]), 0xdead);
	tu_env_free(&e);
}

/* Several hundred requests across the 16-bit index wrap. */
static void run_wrap(uint64_t features)
{
	const uint16_t start = 65535 - 100;
	struct vduse_vq_elem *elem[8];
	struct tu_env e;
	unsigned int done = 0, batch, i;
	uint16_t heads[8], st;
	uint32_t id, len;
	void *p;

	tu_env_start(&e, features, start);
	while (done < 600) {
		batch = 1 + done % 7;
		for (i = 0; i < batch; i++) {
			struct sim_buf b[2] = {
				{ TU_DATA + 0x40 * i, 16, false },
				{ TU_DATA + 0x1000 + 0x40 * i, 16, true },
			};

			tu_fill(b[0].addr, (uint8_t)(done + i), 16);
			heads[i] = sim_add_chain(&e.s[0], b, 2);
			sim_publish(&e.s[0], heads[i]);
		}
		for (i = 0; i < batch; i++) {
			elem[i] = tu_pop(e.vq[0]);
			assert_int_equal(elem[i]->id, heads[i]);
			tu_assert_iov_is(&elem[i]->out_sg[0], TU_DATA + 0x40 * i, 16);
		}
		assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &p), -EAGAIN);
		for (i = 0; i < batch; i++) {
			assert_int_equal(vduse_vq_push(e.vq[0], elem[i],
						       done + i), 0);
			free(elem[i]);
		}
		assert_true(vduse_vq_notify(e.vq[0]) >= 0);
		for (i = 0; i < batch; i++) {
			assert_true(sim_get_used(&e.s[0], &id, &len));
			assert_int_equal(id, heads[i]);
			assert_int_equal(len, done + i);
		}
		done += batch;
	}
	assert_int_equal(sim_used_idx(&e.s[0]), (uint16_t)(start + done));
	assert_int_equal(sim_get_vq_state(e.dev, 0, &st), VDUSE_REQ_RESULT_OK);
	assert_int_equal(st, (uint16_t)(start + done));
	if (features & tu_event_idx_feature())
		assert_int_equal(sim_avail_event(&e.s[0]), (uint16_t)(start + done));
	/* Without EVENT_IDX every batch interrupts. */
	else
		assert_true(fk_vq_irqs(0) >= 100);
	assert_false(vduse_vq_broken(e.vq[0]));
	tu_env_free(&e);
}

static void test_wrap(void **state)
{
	run_wrap(tu_base_features());
}

static void test_wrap_event_idx(void **state)
{
	run_wrap(tu_base_features() | tu_event_idx_feature());
}

#define RA	0x400000ull	/* three adjacent 4 KiB regions, then a gap */

static void test_cross_region(void **state)
{
	struct sim_buf b[2] = {
		{ RA + 0xf00, 0x200, false },		/* A..B */
		{ RA + 0x1f80, 0x100, true },		/* B..C */
	};
	struct vduse_vq_elem *elem;
	struct tu_env e;

	tu_env_start(&e, tu_base_features(), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(fk_region_add(RA + 0x1000 * i, 0x1000,
					       VDUSE_ACCESS_RW), 0);
	tu_fill(RA + 0xf00, 3, 0x100);
	tu_fill(RA + 0x1000, 4, 0x100);
	sim_publish(&e.s[0], sim_add_chain(&e.s[0], b, 2));
	elem = tu_pop(e.vq[0]);
	assert_int_equal(elem->out_num, 2);
	assert_int_equal(elem->in_num, 2);
	tu_assert_iov_is(&elem->out_sg[0], RA + 0xf00, 0x100);
	tu_assert_iov_is(&elem->out_sg[1], RA + 0x1000, 0x100);
	assert_int_equal(elem->in_sg[0].iov_len, 0x80);
	assert_int_equal(elem->in_sg[1].iov_len, 0x80);
	memset(elem->in_sg[0].iov_base, 0xaa, 0x80);
	memset(elem->in_sg[1].iov_base, 0xbb, 0x80);
	assert_int_equal(*(uint8_t *)fk_iova_ptr(RA + 0x1fff), 0xaa);
	assert_int_equal(*(uint8_t *)fk_iova_ptr(RA + 0x2000), 0xbb);
	assert_int_equal(*(uint8_t *)fk_iova_ptr(RA + 0x207f), 0xbb);
	assert_int_equal(fk_live_maps_in(RA, RA + 0x2fff), 3);
	assert_int_equal(vduse_vq_push(e.vq[0], elem, 0x100), 0);
	free(elem);
	tu_env_free(&e);
}

/* Rings and buffers are mapped when first used, and then cached. */
static void test_map_on_first_use(void **state)
{
	struct vduse_device_config c = tu_config("lazy", 1, 64);
	struct vduse_device *dev;
	struct vduse_vq *vq;
	struct vduse_vq_elem *elem;
	struct sim_vq s;
	unsigned int getfd;

	assert_int_equal(fk_region_add(0x10000, 0x1000, VDUSE_ACCESS_RO), 0);	/* desc */
	assert_int_equal(fk_region_add(0x20000, 0x1000, VDUSE_ACCESS_RO), 0);	/* avail */
	assert_int_equal(fk_region_add(0x30000, 0x1000, VDUSE_ACCESS_RW), 0);	/* used */
	assert_int_equal(fk_region_add(0x40000, 0x1000, VDUSE_ACCESS_RW), 0);	/* data */
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	vq = vduse_device_vq(dev, 0);
	sim_vq_init(&s, 0, 64, 0x10000, 0x20000, 0x30000, 0);
	assert_int_equal(fk_live_maps(), 0);
	assert_int_equal(sim_driver_ok(dev, tu_base_features()), VDUSE_REQ_RESULT_OK);
	assert_true(vduse_vq_started(vq));
	assert_int_equal(fk_live_maps(), 3);
	assert_int_equal(fk_live_maps_in(0x40000, 0x40fff), 0);
	getfd = fk_ioctl_calls(VDUSE_IOTLB_GET_FD);
	assert_int_equal(getfd, 3);
	/* The GET_FD fds are not kept open. */
	assert_int_equal(fk_live_fds(), 2 + 1);

	for (int i = 0; i < 3; i++) {
		struct sim_buf b = { 0x40000 + 0x100 * i, 0x10, i == 2 };

		sim_publish(&s, sim_add_chain(&s, &b, 1));
		elem = tu_pop(vq);
		assert_int_equal(vduse_vq_push(vq, elem, 0), 0);
		free(elem);
	}
	/* One GET_FD for the data region, then cache hits. */
	assert_int_equal(fk_ioctl_calls(VDUSE_IOTLB_GET_FD), getfd + 1);
	assert_int_equal(fk_live_maps_in(0x40000, 0x40fff), 1);
	vduse_device_free(dev);
	assert_int_equal(fk_live_maps(), 0);
	assert_int_equal(fk_live_fds(), 0);
}

/* 1000 regions, looked up in a scrambled order, twice. */
static void test_many_regions(void **state)
{
	enum { NR = 1000, BASE = 0x10000000 };
	struct tu_env e;
	unsigned int order[NR], i, getfd;
	void *p;

	tu_env_start(&e, tu_base_features(), 0);
	for (i = 0; i < NR; i++) {
		/* Every other region adjacent to the previous one. */
		uint64_t iova = BASE + (uint64_t)i * 0x1000 + (i / 2) * 0x1000;

		assert_int_equal(fk_region_add(iova, 0x1000, VDUSE_ACCESS_RW), 0);
		*(uint32_t *)fk_iova_ptr(iova + 0x10) = i * 2654435761u;
		order[i] = (i * 617) % NR;	/* 617 is prime to 1000 */
	}
	for (int pass = 0; pass < 2; pass++) {
		getfd = fk_ioctl_calls(VDUSE_IOTLB_GET_FD);
		for (i = 0; i < NR; i += 4) {
			struct sim_buf b[4];
			struct vduse_vq_elem *elem;

			for (int k = 0; k < 4; k++) {
				unsigned int r = order[i + k];

				b[k].addr = BASE + (uint64_t)r * 0x1000 +
					    (r / 2) * 0x1000 + 0x10;
				b[k].len = 4;
				b[k].write = false;
			}
			sim_publish(&e.s[0], sim_add_chain(&e.s[0], b, 4));
			elem = tu_pop(e.vq[0]);
			assert_int_equal(elem->out_num, 4);
			for (int k = 0; k < 4; k++)
				assert_int_equal(*(uint32_t *)elem->out_sg[k].iov_base,
						 order[i + k] * 2654435761u);
			assert_int_equal(vduse_vq_push(e.vq[0], elem, 0), 0);
			free(elem);
		}
		if (pass == 0)
			assert_int_equal(fk_ioctl_calls(VDUSE_IOTLB_GET_FD),
					 getfd + NR);
		else
			assert_int_equal(fk_ioctl_calls(VDUSE_IOTLB_GET_FD), getfd);
	}
	assert_int_equal(fk_live_maps_in(BASE, BASE + 0x1000000), NR);
	assert_int_equal(vduse_vq_pop(e.vq[0], POP_SZ, &p), -EAGAIN);
	tu_env_free(&e);
}

static void pop_touching(struct tu_env *e, const uint64_t *addrs, int n)
{
	struct vduse_vq_elem *elem;
	struct sim_buf b[8];

	for (int i = 0; i < n; i++) {
		b[i] = (struct sim_buf){ addrs[i], 8, false };
		tu_fill(addrs[i], (uint8_t)(i + 0x30), 8);
	}
	sim_publish(&e->s[0], sim_add_chain(&e->s[0], b, n));
	elem = tu_pop(e->vq[0]);
	assert_int_equal(elem->out_num, n);
	for (int i = 0; i < n; i++)
		tu_assert_iov_is(&elem->out_sg[i], addrs[i], 8);
	assert_int_equal(vduse_vq_push(e->vq[0], elem, 0), 0);
	free(elem);
}

static void test_update_iotlb(void **state)
{
	static const uint64_t addrs[4] = { RA, RA + 0x1000, RA + 0x2000, RA + 0x4000 };
	struct tu_env e;
	unsigned int getfd;

	tu_env_start(&e, tu_base_features(), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(fk_region_add(addrs[i], 0x1000, VDUSE_ACCESS_RW), 0);
	pop_touching(&e, addrs, 4);
	assert_int_equal(fk_live_maps_in(RA, RA + 0x4fff), 4);
	assert_int_equal(fk_live_maps_in(TU_RING_BASE, TU_RING_BASE), 2);	/* 2 queues */

	/* A range that covers neither region entirely, but overlaps A and B. */
	assert_int_equal(sim_update_iotlb(e.dev, RA + 0x800, RA + 0x1800),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(fk_live_maps_in(RA, RA + 0xfff), 0);
	assert_int_equal(fk_live_maps_in(RA + 0x1000, RA + 0x1fff), 0);
	assert_int_equal(fk_live_maps_in(RA + 0x2000, RA + 0x2fff), 1);
	assert_int_equal(fk_live_maps_in(RA + 0x4000, RA + 0x4fff), 1);
	assert_int_equal(fk_live_maps_in(TU_RING_BASE, TU_RING_BASE), 2);

	/* A single byte at the last byte of C; the gap after C is no-op. */
	assert_int_equal(sim_update_iotlb(e.dev, RA + 0x2fff, RA + 0x3fff),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(fk_live_maps_in(RA + 0x2000, RA + 0x2fff), 0);
	assert_int_equal(fk_live_maps_in(RA + 0x4000, RA + 0x4fff), 1);

	getfd = fk_ioctl_calls(VDUSE_IOTLB_GET_FD);
	pop_touching(&e, addrs, 4);
	assert_int_equal(fk_ioctl_calls(VDUSE_IOTLB_GET_FD), getfd + 3);

	/* Invalidate the rings: the next pop re-maps them. */
	getfd = fk_ioctl_calls(VDUSE_IOTLB_GET_FD);
	assert_int_equal(sim_update_iotlb(e.dev, TU_RING_BASE + 0x10,
					  TU_RING_BASE + 0x10),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(fk_live_maps_in(TU_RING_BASE, TU_RING_BASE), 0);
	pop_touching(&e, addrs, 2);
	assert_int_equal(fk_ioctl_calls(VDUSE_IOTLB_GET_FD), getfd + 1);
	assert_int_equal(fk_live_maps_in(TU_RING_BASE, TU_RING_BASE), 1);
	/* Nothing was pushed on queue 1: no interrupt, but its rings are
	 * re-mapped all the same. */
	assert_int_equal(vduse_vq_notify(e.vq[1]), 0);
	assert_int_equal(fk_live_maps_in(TU_RING_BASE, TU_RING_BASE), 2);
	roundtrip_one(&e, 1, 5);
	assert_false(vduse_vq_broken(e.vq[0]));
	assert_false(vduse_vq_broken(e.vq[1]));

	/* Everything, with a region moved in the kernel meanwhile. */
	assert_int_equal(sim_update_iotlb(e.dev, 0, UINT64_MAX), VDUSE_REQ_RESULT_OK);
	assert_int_equal(fk_live_maps(), 0);
	fk_region_del(RA, RA);
	assert_int_equal(fk_region_add(RA, 0x1000, VDUSE_ACCESS_RW), 0);
	pop_touching(&e, addrs, 4);
	tu_env_free(&e);
}

/*
 * The kernel merged the ring region and the data region into one before
 * telling us (no UPDATE_IOTLB yet).  Mapping the chain's buffer then drops
 * the cached ring mapping in the middle of the walk: pop must walk again
 * on fresh mappings, never read the unmapped ring.
 */
static void test_iotlb_changed_under_walk(void **state)
{
	const uint64_t span = TU_DATA + TU_DATA_SIZE - TU_RING_BASE;
	struct sim_buf b[2] = {
		{ TU_DATA + 0x100, 24, false },
		{ TU_DATA + 0x900, 40, true },
	};
	struct vduse_vq_elem *elem;
	uint8_t *ring, *data;
	struct tu_env e;
	uint32_t id, len;
	uint16_t head;

	tu_env_start(&e, tu_base_features(), 0);
	tu_fill(b[0].addr, 9, 24);
	head = sim_add_chain(&e.s[0], b, 2);
	sim_publish(&e.s[0], head);
	assert_int_equal(fk_live_maps_in(TU_RING_BASE, TU_RING_BASE), 2);
	assert_int_equal(fk_live_maps_in(TU_DATA, TU_DATA), 0);

	ring = malloc(TU_RING_SIZE);
	data = malloc(TU_DATA_SIZE);
	assert_non_null(ring);
	assert_non_null(data);
	memcpy(ring, fk_iova_ptr(TU_RING_BASE), TU_RING_SIZE);
	memcpy(data, fk_iova_ptr(TU_DATA), TU_DATA_SIZE);
	fk_region_del(TU_RING_BASE, TU_DATA + TU_DATA_SIZE - 1);
	assert_int_equal(fk_region_add(TU_RING_BASE, span, VDUSE_ACCESS_RW), 0);
	memcpy(fk_iova_ptr(TU_RING_BASE), ring, TU_RING_SIZE);
	memcpy(fk_iova_ptr(TU_DATA), data, TU_DATA_SIZE);
	free(ring);
	free(data);

	elem = tu_pop(e.vq[0]);
	assert_false(vduse_vq_broken(e.vq[0]));
	assert_int_equal(elem->id, head);
	assert_int_equal(elem->out_num, 1);
	assert_int_equal(elem->in_num, 1);
	tu_assert_iov_is(&elem->out_sg[0], b[0].addr, 24);
	memset(elem->in_sg[0].iov_base, 0x77, 40);
	assert_int_equal(*(uint8_t *)fk_iova_ptr(b[1].addr + 39), 0x77);
	assert_int_equal(vduse_vq_push(e.vq[0], elem, 40), 0);
	free(elem);
	assert_true(sim_get_used(&e.s[0], &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 40);
	tu_env_free(&e);
}

static void test_push_errors(void **state)
{
	struct vduse_vq_elem *elem, fake;
	struct tu_env e;
	uint16_t before;

	tu_env_start(&e, tu_base_features(), 0);
	struct sim_buf b = { TU_DATA, 8, true };

	sim_publish(&e.s[0], sim_add_chain(&e.s[0], &b, 1));
	elem = tu_pop(e.vq[0]);
	before = sim_used_idx(&e.s[0]);

	/* Never popped, out of range, and popped on another queue. */
	fake = *elem;
	fake.id = (elem->id + 1) % TU_QSIZE;
	assert_int_equal(vduse_vq_push(e.vq[0], &fake, 0), -EINVAL);
	fake.id = TU_QSIZE;
	assert_int_equal(vduse_vq_push(e.vq[0], &fake, 0), -EINVAL);
	fake.id = 0xffffffff;
	assert_int_equal(vduse_vq_push(e.vq[0], &fake, 0), -EINVAL);
	assert_int_equal(vduse_vq_push(e.vq[1], elem, 0), -EINVAL);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 1);
	assert_int_equal(sim_used_idx(&e.s[0]), before);

	/* Exactly once. */
	assert_int_equal(vduse_vq_push(e.vq[0], elem, 8), 0);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 0);
	assert_int_equal(vduse_vq_push(e.vq[0], elem, 8), -EINVAL);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 0);
	assert_int_equal(sim_used_idx(&e.s[0]), (uint16_t)(before + 1));
	assert_true(tu_log_contains("not in flight"));
	assert_false(vduse_vq_broken(e.vq[0]));
	free(elem);

	/* The head can be reused once it is back. */
	sim_publish(&e.s[0], 0);
	elem = tu_pop(e.vq[0]);
	assert_int_equal(elem->id, 0);
	assert_int_equal(vduse_vq_push(e.vq[0], elem, 8), 0);
	free(elem);
	tu_env_free(&e);
}

static void check_stopped(struct tu_env *e)
{
	void *p;

	for (int q = 0; q < 2; q++) {
		assert_false(vduse_vq_started(e->vq[q]));
		assert_int_equal(vduse_vq_size(e->vq[q]), 0);
		assert_int_equal(fk_vq_kickfd(q), VDUSE_EVENTFD_DEASSIGN);
		assert_int_equal(vduse_vq_pop(e->vq[q], POP_SZ, &p), -EIO);
		assert_int_equal(vduse_vq_notify(e->vq[q]), -EIO);
	}
	assert_int_equal(fk_live_maps(), 0);
}

static void test_reset(void **state)
{
	struct vduse_vq_elem *elem;
	struct tu_env e;
	struct sim_buf b = { TU_DATA, 8, true };

	tu_env_start(&e, tu_base_features() | tu_event_idx_feature(), 0);
	assert_int_equal(tu_cb.queue_start, 2);
	assert_int_equal(fk_vq_kickfd(0), vduse_vq_kick_fd(e.vq[0]));
	assert_int_equal(fk_vq_kickfd(1), vduse_vq_kick_fd(e.vq[1]));
	sim_publish(&e.s[0], sim_add_chain(&e.s[0], &b, 1));
	elem = tu_pop(e.vq[0]);
	assert_true(fk_live_maps() > 0);

	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	assert_int_equal(tu_cb.queue_stop, 2);
	assert_int_equal(tu_cb.reset, 1);
	assert_int_equal(vduse_device_status(e.dev), 0);
	assert_int_equal(vduse_device_features(e.dev), 0);
	check_stopped(&e);
	assert_int_equal(vduse_vq_inflight(e.vq[0]), 0);
	/* The abandoned element is refused after the reset. */
	assert_int_equal(vduse_vq_push(e.vq[0], elem, 0), -EIO);
	free(elem);

	/* Started again from the kernel's view of the ring. */
	sim_vq_init_at(&e.s[0], 0, TU_QSIZE, TU_RING0, 7);
	sim_vq_init_at(&e.s[1], 1, TU_QSIZE, TU_RING1, 7);
	assert_int_equal(sim_driver_ok(e.dev, tu_base_features()), VDUSE_REQ_RESULT_OK);
	assert_int_equal(tu_cb.queue_start, 4);
	assert_int_equal(fk_vq_kickfd(0), vduse_vq_kick_fd(e.vq[0]));
	roundtrip_one(&e, 0, 1);
	roundtrip_one(&e, 1, 2);
	assert_int_equal(sim_used_idx(&e.s[0]), 8);

	/* DRIVER_OK cleared without a reset: queues stop, no reset call. */
	assert_int_equal(sim_set_status(e.dev, VIRTIO_CONFIG_S_ACKNOWLEDGE |
					VIRTIO_CONFIG_S_DRIVER |
					VIRTIO_CONFIG_S_FEATURES_OK),
			 VDUSE_REQ_RESULT_OK);
	assert_int_equal(tu_cb.queue_stop, 4);
	assert_int_equal(tu_cb.reset, 1);
	check_stopped(&e);
	tu_env_free(&e);
	assert_int_equal(tu_cb.queue_stop, 4);	/* already stopped */
}

static void test_get_vq_state(void **state)
{
	struct tu_env e;
	uint16_t st = 0;

	tu_env_start(&e, tu_base_features(), 40000);
	assert_int_equal(sim_get_vq_state(e.dev, 0, &st), VDUSE_REQ_RESULT_OK);
	assert_int_equal(st, 40000);
	for (int i = 0; i < 3; i++)
		roundtrip_one(&e, 0, i);
	/* Made available but not popped: not counted. */
	sim_publish(&e.s[0], 0);
	assert_int_equal(sim_get_vq_state(e.dev, 0, &st), VDUSE_REQ_RESULT_OK);
	assert_int_equal(st, 40003);
	assert_int_equal(sim_get_vq_state(e.dev, 1, &st), VDUSE_REQ_RESULT_OK);
	assert_int_equal(st, 40000);
	assert_int_equal(sim_get_vq_state(e.dev, 2, &st), VDUSE_REQ_RESULT_FAILED);
	assert_int_equal(sim_get_vq_state(e.dev, UINT32_MAX, &st),
			 VDUSE_REQ_RESULT_FAILED);
	tu_env_free(&e);
}

/*
 * After a reset, until a queue starts again, GET_VQ_STATE gives the
 * kernel's state (what vhost-vdpa's SET_VRING_BASE set), not the indices
 * of the ring before the reset.
 */
static void test_get_vq_state_after_reset(void **state)
{
	struct tu_env e;
	uint16_t st = 0;

	tu_env_start(&e, tu_base_features(), 100);
	for (int i = 0; i < 3; i++)
		roundtrip_one(&e, 0, i);
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	fk_set_vq_info(0, TU_QSIZE, TU_RING0, 0, 0, 7, false);
	assert_int_equal(sim_get_vq_state(e.dev, 0, &st), VDUSE_REQ_RESULT_OK);
	assert_int_equal(st, 7);
	/* Started again: ours. */
	sim_vq_init_at(&e.s[0], 0, TU_QSIZE, TU_RING0, 7);
	sim_vq_init_at(&e.s[1], 1, TU_QSIZE, TU_RING1, 7);
	assert_int_equal(sim_driver_ok(e.dev, tu_base_features()),
			 VDUSE_REQ_RESULT_OK);
	roundtrip_one(&e, 0, 9);
	assert_int_equal(sim_get_vq_state(e.dev, 0, &st), VDUSE_REQ_RESULT_OK);
	assert_int_equal(st, 8);
	/* The kernel refusing VQ_GET_INFO: a failed answer, said why. */
	assert_int_equal(sim_set_status(e.dev, 0), VDUSE_REQ_RESULT_OK);
	fk_fail_ioctl(VDUSE_VQ_GET_INFO, -EIO, 0);
	assert_int_equal(sim_get_vq_state(e.dev, 1, &st),
			 VDUSE_REQ_RESULT_FAILED);
	assert_true(tu_log_contains("GET_VQ_STATE: VDUSE_VQ_GET_INFO of queue 1"));
	tu_env_free(&e);
}

static void test_kick_fd(void **state)
{
	struct tu_env e;
	uint64_t v;
	int fd;

	tu_env_start(&e, tu_base_features(), 0);
	fd = vduse_vq_kick_fd(e.vq[0]);
	assert_true(fd >= 0);
	assert_int_not_equal(fd, vduse_vq_kick_fd(e.vq[1]));
	assert_int_equal(vduse_vq_kick_drain(e.vq[0]), 0);	/* nothing */
	sim_kick(&e.s[0]);
	sim_kick(&e.s[0]);
	assert_int_equal(vduse_vq_kick_drain(e.vq[0]), 0);
	assert_int_equal(read(fd, &v, sizeof(v)), -1);		/* drained */
	fk_fail(FK_READ, -EBADF, 0);
	assert_int_equal(vduse_vq_kick_drain(e.vq[0]), -EBADF);
	vduse_vq_set_priv(e.vq[1], &e);
	assert_ptr_equal(vduse_vq_priv(e.vq[1]), &e);
	assert_null(vduse_vq_priv(e.vq[0]));
	tu_env_free(&e);
}

/* A queue that cannot start stays stopped; the device goes on. */
static void test_start_failures(void **state)
{
	struct vduse_device_config c = tu_config("sf", 3, 64);
	struct vduse_device *dev;
	struct sim_vq s;
	void *p;

	assert_int_equal(fk_region_add(TU_RING_BASE, TU_RING_SIZE, VDUSE_ACCESS_RW), 0);
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	sim_vq_init_at(&s, 0, 64, TU_RING0, 0);
	/* Queue 1: not ready.  Queue 2: rings outside any region. */
	fk_set_vq_info(1, 64, TU_RING1, TU_RING1 + 0x400, TU_RING1 + 0x800, 0,
		       false);
	fk_set_vq_info(2, 64, 0x7000000, 0x7001000, 0x7002000, 0, true);
	assert_int_equal(sim_driver_ok(dev, tu_base_features()), VDUSE_REQ_RESULT_OK);
	assert_true(vduse_vq_started(vduse_device_vq(dev, 0)));
	assert_false(vduse_vq_started(vduse_device_vq(dev, 1)));
	assert_false(vduse_vq_started(vduse_device_vq(dev, 2)));
	assert_true(tu_log_contains("cannot map rings"));
	assert_int_equal(vduse_vq_pop(vduse_device_vq(dev, 2), POP_SZ, &p), -EIO);
	assert_int_equal(tu_cb.queue_start, 1);
	assert_int_equal(fk_vq_kickfd_calls(1), 0);
	assert_int_equal(fk_vq_kickfd_calls(2), 0);
	vduse_device_free(dev);
	assert_int_equal(fk_live_maps(), 0);
	assert_int_equal(fk_live_fds(), 0);
}

/* Bad ring sizes from the kernel are refused. */
static void test_bad_queue_size(void **state)
{
	struct vduse_device_config c = tu_config("bs", 1, 64);
	struct vduse_device *dev;
	static const uint32_t bad[] = { 0, 3, 128 };

	assert_int_equal(fk_region_add(TU_RING_BASE, TU_RING_SIZE, VDUSE_ACCESS_RW), 0);
	assert_int_equal(vduse_device_new(&c, &dev), 0);
	for (unsigned int i = 0; i < 3; i++) {
		fk_set_vq_info(0, bad[i], TU_RING0, TU_RING0 + 0x1000,
			       TU_RING0 + 0x2000, 0, true);
		assert_int_equal(sim_driver_ok(dev, tu_base_features()),
				 VDUSE_REQ_RESULT_OK);
		assert_false(vduse_vq_started(vduse_device_vq(dev, 0)));
		assert_int_equal(sim_set_status(dev, 0), VDUSE_REQ_RESULT_OK);
	}
	assert_true(tu_log_contains("bad size"));
	vduse_device_free(dev);
	assert_int_equal(fk_live_fds(), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_normal_path),
		T(test_indirect),
		T(test_batching),
		T(test_event_idx),
		T(test_no_interrupt_flag),
		T(test_avail_event),
		T(test_wrap),
		T(test_wrap_event_idx),
		T(test_cross_region),
		T(test_map_on_first_use),
		T(test_many_regions),
		T(test_update_iotlb),
		T(test_iotlb_changed_under_walk),
		T(test_push_errors),
		T(test_reset),
		T(test_get_vq_state),
		T(test_get_vq_state_after_reset),
		T(test_kick_fd),
		T(test_start_failures),
		T(test_bad_queue_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
