// SPDX-License-Identifier: MIT
/* A simulated virtio driver on top of the fake kernel (see sim_driver.h). */
#define _GNU_SOURCE
#include <endian.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_kernel.h"
#include "sim_driver.h"

static void *gp(uint64_t iova)
{
	void *p = fk_iova_ptr(iova);

	if (!p)
		abort();	/* the test laid its ring out of any region */
	return p;
}

static void put16(uint64_t iova, uint16_t v)
{
	__atomic_store_n((uint16_t *)gp(iova), htole16(v), __ATOMIC_RELEASE);
}

static uint16_t get16(uint64_t iova)
{
	return le16toh(__atomic_load_n((uint16_t *)gp(iova), __ATOMIC_ACQUIRE));
}

static uint32_t get32(uint64_t iova)
{
	return le32toh(__atomic_load_n((uint32_t *)gp(iova), __ATOMIC_ACQUIRE));
}

uint64_t sim_desc_bytes(unsigned int num)
{
	return 16ull * num;
}

uint64_t sim_avail_bytes(unsigned int num)
{
	return 2ull * (3 + num);	/* flags, idx, ring[num], used_event */
}

uint64_t sim_used_bytes(unsigned int num)
{
	return 6ull + 8ull * num;	/* flags, idx, ring[num], avail_event */
}

void sim_vq_init(struct sim_vq *s, unsigned int index, unsigned int num,
		 uint64_t desc, uint64_t avail, uint64_t used, uint16_t start)
{
	memset(s, 0, sizeof(*s));
	s->index = index;
	s->num = num;
	s->desc = desc;
	s->avail = avail;
	s->used = used;
	s->avail_idx = start;
	s->last_used = start;
	memset(gp(desc), 0, sim_desc_bytes(num));
	memset(gp(avail), 0, sim_avail_bytes(num));
	memset(gp(used), 0, sim_used_bytes(num));
	put16(avail + 2, start);
	put16(used + 2, start);
	fk_set_vq_info(index, num, desc, avail, used, start, true);
}

void sim_vq_init_at(struct sim_vq *s, unsigned int index, unsigned int num,
		    uint64_t base, uint16_t start)
{
	uint64_t avail = base + sim_desc_bytes(num);
	uint64_t used = (avail + sim_avail_bytes(num) + 3) & ~3ull;

	sim_vq_init(s, index, num, base, avail, used, start);
}

static void write_desc(void *p, uint64_t addr, uint32_t len, uint16_t flags,
		       uint16_t next)
{
	struct vring_desc d = {
		.addr = htole64(addr),
		.len = htole32(len),
		.flags = htole16(flags),
		.next = htole16(next),
	};

	memcpy(p, &d, sizeof(d));
}

void sim_set_desc(struct sim_vq *s, unsigned int i, uint64_t addr,
		  uint32_t len, uint16_t flags, uint16_t next)
{
	write_desc(gp(s->desc + 16ull * i), addr, len, flags, next);
}

uint16_t sim_add_chain(struct sim_vq *s, const struct sim_buf *bufs,
		       unsigned int n)
{
	uint16_t head = s->next_desc % s->num;
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint16_t cur = (head + i) % s->num;
		uint16_t next = (cur + 1) % s->num;
		uint16_t flags = (bufs[i].write ? VRING_DESC_F_WRITE : 0) |
				 (i + 1 < n ? VRING_DESC_F_NEXT : 0);

		sim_set_desc(s, cur, bufs[i].addr, bufs[i].len, flags,
			     i + 1 < n ? next : 0);
	}
	s->next_desc = (head + n) % s->num;
	return head;
}

uint16_t sim_add_indirect(struct sim_vq *s, uint64_t table,
			  const struct sim_buf *bufs, unsigned int n)
{
	uint16_t head = s->next_desc % s->num;
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint16_t flags = (bufs[i].write ? VRING_DESC_F_WRITE : 0) |
				 (i + 1 < n ? VRING_DESC_F_NEXT : 0);

		write_desc(gp(table + 16ull * i), bufs[i].addr, bufs[i].len,
			   flags, i + 1 < n ? i + 1 : 0);
	}
	sim_set_desc(s, head, table, 16 * n, VRING_DESC_F_INDIRECT, 0);
	s->next_desc = (head + 1) % s->num;
	return head;
}

void sim_publish(struct sim_vq *s, uint16_t head)
{
	put16(s->avail + 4 + 2ull * (s->avail_idx % s->num), head);
	s->avail_idx++;
	put16(s->avail + 2, s->avail_idx);
}

void sim_set_avail_idx(struct sim_vq *s, uint16_t idx)
{
	s->avail_idx = idx;
	put16(s->avail + 2, idx);
}

void sim_set_avail_flags(struct sim_vq *s, uint16_t flags)
{
	put16(s->avail, flags);
}

void sim_set_used_event(struct sim_vq *s, uint16_t v)
{
	put16(s->avail + 4 + 2ull * s->num, v);
}

uint16_t sim_avail_event(const struct sim_vq *s)
{
	return get16(s->used + 4 + 8ull * s->num);
}

uint16_t sim_used_idx(const struct sim_vq *s)
{
	return get16(s->used + 2);
}

bool sim_get_used(struct sim_vq *s, uint32_t *id, uint32_t *len)
{
	uint64_t e;

	if (sim_used_idx(s) == s->last_used)
		return false;
	e = s->used + 4 + 8ull * (s->last_used % s->num);
	*id = get32(e);
	*len = get32(e + 4);
	s->last_used++;
	return true;
}

void sim_kick(const struct sim_vq *s)
{
	uint64_t one = 1;
	int fd = fk_vq_kickfd(s->index);

	if (fd < 0 || write(fd, &one, sizeof(one)) != sizeof(one))
		abort();
}

static int roundtrip(struct vduse_device *dev, struct vduse_dev_request *req,
		     struct vduse_dev_response *resp)
{
	uint32_t id = fk_push_msg(req);

	if (dev)
		vduse_device_process(dev);
	if (!fk_response(id, resp))
		return -1;
	return (int)resp->result;
}

int sim_set_status(struct vduse_device *dev, uint8_t status)
{
	struct vduse_dev_request req = { .type = VDUSE_SET_STATUS };
	struct vduse_dev_response resp;

	req.s.status = status;
	return roundtrip(dev, &req, &resp);
}

int sim_update_iotlb(struct vduse_device *dev, uint64_t start, uint64_t last)
{
	struct vduse_dev_request req = { .type = VDUSE_UPDATE_IOTLB };
	struct vduse_dev_response resp;

	req.iova.start = start;
	req.iova.last = last;
	return roundtrip(dev, &req, &resp);
}

int sim_get_vq_state(struct vduse_device *dev, uint32_t index,
		     uint16_t *avail_index)
{
	struct vduse_dev_request req = { .type = VDUSE_GET_VQ_STATE };
	struct vduse_dev_response resp;
	int ret;

	req.vq_state.index = index;
	ret = roundtrip(dev, &req, &resp);
	if (ret == VDUSE_REQ_RESULT_OK && avail_index)
		*avail_index = resp.vq_state.split.avail_index;
	return ret;
}

int sim_driver_ok(struct vduse_device *dev, uint64_t features)
{
	uint8_t s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		    VIRTIO_CONFIG_S_FEATURES_OK;
	int ret;

	fk_set_features(features);
	ret = sim_set_status(dev, s);
	if (ret == VDUSE_REQ_RESULT_OK)
		ret = sim_set_status(dev, s | VIRTIO_CONFIG_S_DRIVER_OK);
	return ret;
}
