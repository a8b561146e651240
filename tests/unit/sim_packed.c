// SPDX-License-Identifier: MIT
/* A simulated packed-ring driver on the fake kernel (see sim_packed.h). */
#include <endian.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>

#include "fake_kernel.h"
#include "sim_packed.h"

#define F_AVAIL	(1u << VRING_PACKED_DESC_F_AVAIL)
#define F_USED	(1u << VRING_PACKED_DESC_F_USED)

static void *gp(uint64_t iova)
{
	void *p = fk_iova_ptr(iova);

	if (!p)
		abort();	/* the test laid its ring out of any region */
	return p;
}

uint64_t sim_pdesc_bytes(unsigned int num)
{
	return 16ull * num;
}

void sim_pvq_init(struct sim_pvq *s, unsigned int index, unsigned int num,
		  uint64_t base)
{
	memset(s, 0, sizeof(*s));
	s->index = index;
	s->num = num;
	s->desc = base;
	s->driver = base + sim_pdesc_bytes(num);
	s->device = s->driver + 4;
	s->avail_wrap = true;
	s->used_wrap = true;
	memset(gp(s->desc), 0, sim_pdesc_bytes(num) + 8);
	fk_set_vq_info(index, num, s->desc, s->driver, s->device, 0, true);
	fk_set_vq_packed(index, true, 0, true, 0);
}

uint16_t sim_pvq_avail_bits(const struct sim_pvq *s)
{
	return s->avail_wrap ? F_AVAIL : F_USED;
}

static struct vring_packed_desc *desc_at(struct sim_pvq *s, unsigned int pos)
{
	return gp(s->desc + 16ull * pos);
}

void sim_pvq_set_desc(struct sim_pvq *s, unsigned int pos, uint64_t addr,
		      uint32_t len, uint16_t id, uint16_t flags)
{
	struct vring_packed_desc *d = desc_at(s, pos);

	d->addr = htole64(addr);
	d->len = htole32(len);
	d->id = htole16(id);
	__atomic_store_n(&d->flags, htole16(flags), __ATOMIC_RELEASE);
}

static unsigned int add(struct sim_pvq *s, const struct sim_buf *bufs,
			unsigned int n, uint16_t id, uint16_t extra)
{
	unsigned int first = s->next_avail, i;
	uint16_t first_flags = 0;

	for (i = 0; i < n; i++) {
		struct vring_packed_desc *d = desc_at(s, s->next_avail);
		uint16_t flags = sim_pvq_avail_bits(s) | extra |
				 (bufs[i].write ? VRING_DESC_F_WRITE : 0) |
				 (i + 1 < n ? VRING_DESC_F_NEXT : 0);

		d->addr = htole64(bufs[i].addr);
		d->len = htole32(bufs[i].len);
		d->id = htole16(id);
		if (i == 0)
			first_flags = flags;
		else
			d->flags = htole16(flags);
		if (++s->next_avail == s->num) {
			s->next_avail = 0;
			s->avail_wrap = !s->avail_wrap;
		}
	}
	s->ndesc[id] = (uint16_t)n;
	__atomic_store_n(&desc_at(s, first)->flags, htole16(first_flags),
			 __ATOMIC_RELEASE);
	return first;
}

unsigned int sim_pvq_add(struct sim_pvq *s, const struct sim_buf *bufs,
			 unsigned int n, uint16_t id)
{
	return add(s, bufs, n, id, 0);
}

unsigned int sim_pvq_add_indirect(struct sim_pvq *s, uint64_t table,
				  const struct sim_buf *bufs, unsigned int n,
				  uint16_t id)
{
	struct sim_buf one = { .addr = table, .len = 16 * n };
	unsigned int i;

	for (i = 0; i < n; i++) {
		struct vring_packed_desc *d = gp(table + 16ull * i);

		d->addr = htole64(bufs[i].addr);
		d->len = htole32(bufs[i].len);
		d->id = 0;
		d->flags = htole16(bufs[i].write ? VRING_DESC_F_WRITE : 0);
	}
	return add(s, &one, 1, id, VRING_DESC_F_INDIRECT);
}

bool sim_pvq_get_used(struct sim_pvq *s, uint16_t *id, uint32_t *len)
{
	struct vring_packed_desc *d = desc_at(s, s->next_used);
	uint16_t flags = le16toh(__atomic_load_n(&d->flags, __ATOMIC_ACQUIRE));
	bool avail = flags & F_AVAIL, used = flags & F_USED;
	unsigned int pos;

	if (avail != used || used != s->used_wrap)
		return false;
	*id = le16toh(d->id);
	*len = le32toh(d->len);
	pos = s->next_used + (s->ndesc[*id] ? s->ndesc[*id] : 1);
	if (pos >= s->num) {
		pos -= s->num;
		s->used_wrap = !s->used_wrap;
	}
	s->next_used = (uint16_t)pos;
	return true;
}

void sim_pvq_set_driver_event(struct sim_pvq *s, uint16_t flags,
			      uint16_t off_wrap)
{
	struct vring_packed_desc_event *e = gp(s->driver);

	e->off_wrap = htole16(off_wrap);
	__atomic_store_n(&e->flags, htole16(flags), __ATOMIC_RELEASE);
}

uint16_t sim_pvq_device_flags(const struct sim_pvq *s)
{
	const struct vring_packed_desc_event *e = gp(s->device);

	return le16toh(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE));
}

int sim_get_vq_state_packed(struct vduse_device *dev, uint32_t index,
			    struct vduse_vq_state_packed *st)
{
	struct vduse_dev_request req = { .type = VDUSE_GET_VQ_STATE };
	struct vduse_dev_response resp;
	uint32_t id;

	req.vq_state.index = index;
	id = fk_push_msg(&req);
	if (dev)
		vduse_device_process(dev);
	if (!fk_response(id, &resp))
		return -1;
	if (resp.result == VDUSE_REQ_RESULT_OK && st)
		*st = resp.vq_state.packed;
	return (int)resp.result;
}
