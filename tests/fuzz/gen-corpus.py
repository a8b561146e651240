#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora under tests/fuzz/corpus/ (run from anywhere).

Each seed is built with the input format its harness reads (see the
comment at the top of each fuzz_*.c): a few well-formed runs and a few
with one thing wrong, so that fuzzing starts next to both sides of every
check instead of having to discover the format.  Deterministic: running it
again rewrites the same files.
"""
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def u8(v):
    return struct.pack('<B', v & 0xff)


def u16(v):
    return struct.pack('<H', v & 0xffff)


def u32(v):
    return struct.pack('<I', v & 0xffffffff)


def u64(v):
    return struct.pack('<Q', v & 0xffffffffffffffff)


def write(harness, name, data):
    d = os.path.join(HERE, 'corpus', harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


# ---- fuzz-split-ring ----------------------------------------------------
# Descriptor: sel (base 0 RW, 1 RO, 2 WO, 3 IND, 4 RING, 5 TOP, 6 HOLE,
# 7 top-minus-off; 0x40 whole descriptors, 0x80 len |= 0xffff0000), flags,
# next, off, len.
NEXT, WRITE, INDIRECT = 1, 2, 4
RW, RO, WO, IND, RING, TOP, HOLE, TOPM = range(8)
IND_DESCS = 64
POP, PUSH, NOTIFY, PUBLISH, SETDESC, SETAVAIL, SUPPRESS, BOGUS, GVS = \
    0, 2, 3, 4, 5, 6, 7, 8, 9


def desc(sel=RW, flags=0, nxt=0, off=0, ln=16):
    return u8(sel) + u8(flags) + u16(nxt) + u16(off) + u16(ln)


def ring(features=0, log2=2, start=0, descs=(), avail=(), ind=(),
         publish=0, ops=b''):
    num = 1 << log2
    d = list(descs) + [desc()] * (num - len(descs))
    a = list(avail) + [0] * (num - len(avail))
    i = list(ind) + [desc()] * (IND_DESCS - len(ind))
    return (u8(features) + u8(log2) + u16(start) + b''.join(d[:num]) +
            b''.join(u16(x) for x in a[:num]) + b''.join(i) + u8(publish) +
            ops)


def op(code, *args):
    return u8(code) + b''.join(args)


def pop(extra=0):
    return op(POP, u8(extra))


def push(k=0, ln=0):
    return op(PUSH, u8(k), u16(ln))


def split_ring():
    h = 'fuzz-split-ring'
    EV, INDF = 1, 2
    # one readable and one writable buffer, popped, pushed, notified
    write(h, 'chain', ring(0, 2, 0,
          [desc(RW, NEXT, 1, 0, 64), desc(WO, WRITE, 0, 8, 32)], [0], [], 1,
          pop() + push(0, 32) + op(NOTIFY) + pop()))
    # the same around the 16-bit wrap, with EVENT_IDX
    write(h, 'chain-wrap-event-idx', ring(EV, 2, 0xfffe,
          [desc(RO, NEXT, 1, 0, 64), desc(RW, WRITE, 2, 0, 32),
           desc(WO, WRITE, 0, 0, 8)], [0, 0, 0, 0], [], 1,
          pop() + push(0, 1) + op(SUPPRESS, u8(0), u16(0xffff)) +
          op(NOTIFY) + op(PUBLISH, u8(1)) + pop() + push() + op(NOTIFY)))
    # an indirect table of three entries
    write(h, 'indirect', ring(INDF, 1, 7,
          [desc(IND, INDIRECT, 0, 0, 48)], [0], [
              desc(RW, NEXT, 1, 0, 16), desc(RO, NEXT, 2, 0, 16),
              desc(WO, WRITE, 0, 0, 16)], 1, pop() + push(0, 16)))
    # indirect without the feature, with NEXT, nested, odd size
    write(h, 'indirect-not-negotiated', ring(0, 1, 0,
          [desc(IND, INDIRECT, 0, 0, 16)], [0], [], 1, pop()))
    write(h, 'indirect-next', ring(INDF, 1, 0,
          [desc(IND, INDIRECT | NEXT, 1, 0, 16)], [0], [], 1, pop()))
    write(h, 'indirect-nested', ring(INDF, 1, 0,
          [desc(IND, INDIRECT, 0, 0, 32)], [0],
          [desc(RW, NEXT, 1), desc(IND, INDIRECT, 0, 0, 16)], 1, pop()))
    # a table of exactly queue_size entries (accepted), and one more
    write(h, 'indirect-max', ring(INDF, 1, 0,
          [desc(IND, INDIRECT, 0, 0, 4096)], [0], [desc(RW, 0, 0, 0, 1)], 1,
          pop() + push()))
    write(h, 'indirect-over-max', ring(INDF, 1, 0,
          [desc(RING, INDIRECT, 0, 0, 4112)], [0], [], 1, pop()))
    write(h, 'indirect-odd-size', ring(INDF, 1, 0,
          [desc(IND, INDIRECT, 0, 0, 24)], [0], [], 1, pop()))
    # a buffer across the RW/RO/WO boundary (two pieces, needs both perms)
    write(h, 'span-regions', ring(0, 2, 0,
          [desc(RW, 0, 0, 0xff0, 0x20), desc(RO, WRITE, 0, 0xff0, 0x20)],
          [0, 1], [], 2, pop() + pop()))
    # readable after writable, a loop, index and head out of range
    write(h, 'read-after-write', ring(0, 2, 0,
          [desc(WO, WRITE | NEXT, 1), desc(RW, 0, 0)], [0], [], 1, pop()))
    write(h, 'loop', ring(0, 2, 0,
          [desc(RW, NEXT, 1), desc(RW, NEXT, 0)], [0], [], 1, pop()))
    write(h, 'next-out-of-range', ring(0, 2, 0,
          [desc(RW, NEXT, 4)], [0], [], 1, pop()))
    write(h, 'head-out-of-range', ring(0, 2, 0, [], [4], [], 1, pop()))
    write(h, 'head-twice', ring(0, 2, 0, [desc(RW)], [0, 0], [], 2,
          pop() + pop()))
    write(h, 'avail-jump', ring(0, 2, 0, [], [], [], 5, pop()))
    # unmapped, wrong permission, wrap at the top of the IOVA space
    write(h, 'hole', ring(0, 1, 0, [desc(HOLE)], [0], [], 1, pop()))
    write(h, 'write-to-ro', ring(0, 1, 0, [desc(RO, WRITE)], [0], [], 1,
          pop()))
    write(h, 'top-exact', ring(0, 1, 0, [desc(TOP, 0, 0, 0xff0, 0x10)],
          [0], [], 1, pop() + push()))
    write(h, 'top-wrap', ring(0, 1, 0, [desc(TOP, 0, 0, 0xff0, 0x11)],
          [0], [], 1, pop()))
    # zero-length buffers, misaligned rings, a size the library refuses
    write(h, 'zero-length', ring(0, 1, 0, [desc(RW, NEXT, 1, 0, 0),
          desc(WO, WRITE, 0, 0, 0)], [0], [], 1, pop() + push()))
    write(h, 'misaligned-desc', ring(4, 2, 0, ops=pop()))
    write(h, 'bad-size', ring(32, 3, 0, ops=pop()))
    # a full ring of 256 one-descriptor chains, all popped then pushed
    n = 256
    write(h, 'full-ring', ring(EV, 8, 100,
          [desc(RW if i % 2 else WO, 0 if i % 2 else WRITE, 0, i * 8, 8)
           for i in range(n)], list(range(n)), [], 255,
          op(PUBLISH, u8(1)) + pop() * n + push(0) * n + op(NOTIFY) +
          op(GVS) + op(BOGUS, u16(3))))
    # random well-formed-ish rings
    rnd = random.Random(1)
    for k in range(8):
        log2 = rnd.randrange(0, 9)
        num = 1 << log2
        ds = []
        for i in range(num):
            fl = rnd.choice([0, NEXT, WRITE, WRITE | NEXT])
            ds.append(desc(rnd.choice([RW, RO, WO]), fl,
                           rnd.randrange(num), rnd.randrange(0x1000),
                           rnd.randrange(1, 0x200)))
        ops = b''.join(rnd.choice([pop(), pop(), push(rnd.randrange(4)),
                                   op(NOTIFY), op(PUBLISH, u8(1))])
                       for _ in range(24))
        write(h, 'random-%d' % k, ring(rnd.randrange(4), log2,
              rnd.randrange(65536), ds,
              [rnd.randrange(num) for _ in range(num)], [],
              rnd.randrange(num + 1), ops))


# ---- fuzz-messages ------------------------------------------------------
M_STATUS, M_GVS, M_SPURIOUS, M_REMAP, M_UNMAP = 0, 1, 2, 3, 4
M_ADD, M_POP, M_PUSH, M_NOTIFY = 5, 7, 9, 11
DRIVER_OK = 0x0f


def mop(code, q=0, *args):
    return u8(code | (0x80 if q else 0)) + b''.join(args)


def status(s, flags=0, start0=0, start1=0):
    return mop(M_STATUS, 0, u8(s), u8(flags), u16(start0), u16(start1))


def add(q, bufs):
    """bufs: (region 0/1, write, len8, off)"""
    out = u8(len(bufs) - 1)
    for r, w, ln, off in bufs:
        out += u8(r | (2 if w else 0)) + u8(ln) + u16(off)
    return mop(M_ADD, q, out)


def messages():
    h = 'fuzz-messages'
    up = status(DRIVER_OK)
    rw = add(0, [(0, False, 8, 0x100), (1, True, 4, 0x40)])
    # start, a request popped, its memory remapped (whole space), pushed
    write(h, 'remap-inflight', u8(0) + up + rw + mop(M_POP) +
          mop(M_REMAP, 0, u8(2), u8(1)) + add(0, [(0, False, 2, 0x100)]) +
          mop(M_POP) + mop(M_PUSH, 0, u8(0), u16(9)) +
          mop(M_PUSH, 0, u8(0), u16(1)) + mop(M_NOTIFY))
    # the rings move while requests are in flight
    write(h, 'remap-rings', u8(1) + up + rw + rw + mop(M_POP) +
          mop(M_REMAP, 0, u8(0), u8(0)) + mop(M_POP) +
          mop(M_PUSH, 0, u8(1), u16(3)) + mop(M_PUSH, 0, u8(0), u16(3)))
    # a buffer unmapped under a published request: the queue breaks
    write(h, 'unmap-breaks', u8(0) + up + rw + mop(M_UNMAP, 0, u8(0), u8(0))
          + mop(M_POP) + mop(M_UNMAP, 0, u8(0)) + status(0) + up +
          rw + mop(M_POP) + mop(M_PUSH, 0, u8(0), u16(0)))
    # reset with requests in flight on both queues, then start again
    write(h, 'reset-inflight', u8(3) + up + rw +
          add(1, [(1, True, 1, 0)]) + mop(M_POP) + mop(M_POP, 1) +
          mop(M_GVS, 0, u8(0x41)) + status(0) + status(DRIVER_OK, 0, 5, 9) +
          rw + mop(M_POP) + mop(M_PUSH, 0, u8(0), u16(1)))
    # queue 1 not ready, queue 0's start refused, DRIVER_OK cleared
    write(h, 'not-ready-refused', u8(0) + status(DRIVER_OK, 2 | 4) +
          mop(M_POP) + mop(M_POP, 1) + status(0x07) + status(DRIVER_OK))
    # batches of GET_VQ_STATE, bad indices, spurious UPDATE_IOTLB, unknown
    write(h, 'batch', u8(0) + up + rw + mop(M_POP) +
          mop(M_GVS, 0, u8(0)) + mop(M_GVS, 0, u8(3)) +
          mop(M_GVS, 0, u8(0x80), u32(0xffffffff)) +
          mop(M_SPURIOUS, 0, u8(1), u64(10), u64(5)) +
          mop(M_SPURIOUS, 0, u8(0), u64(0x30000), u16(0)) +
          mop(M_SPURIOUS, 0, u8(0xc0), u8(7)) +
          mop(M_PUSH, 0, u8(0), u16(2)) + mop(M_GVS, 0, u8(0x40)))
    rnd = random.Random(2)
    for k in range(6):
        body = u8(rnd.randrange(4)) + up
        for _ in range(40):
            q = rnd.randrange(2)
            body += rnd.choice([
                add(q, [(rnd.randrange(2), False, rnd.randrange(64),
                         rnd.randrange(0x2000))]),
                mop(M_POP, q), mop(M_POP, q),
                mop(M_PUSH, q, u8(rnd.randrange(4)), u16(rnd.randrange(99))),
                mop(M_NOTIFY, q),
                mop(M_REMAP, 0, u8(rnd.randrange(4)), u8(rnd.randrange(256))),
                mop(M_GVS, 0, u8(rnd.randrange(4))),
                status(rnd.choice([0, DRIVER_OK, 0x07, 0x4f]),
                       rnd.randrange(16), rnd.randrange(65536)),
            ])
        write(h, 'random-%d' % k, body)


# ---- fuzz-iotlb ---------------------------------------------------------
I_ADD, I_DEL, I_INV, I_LOOKUP, I_PTR, I_IOV, I_READ, I_PIN, I_UNPIN = \
    0, 1, 2, 3, 4, 5, 7, 8, 9


def addr_base(off):
    return u8(0) + u16(off)


def addr_top(back):
    return u8(2) + u16(back)


def ln(v):
    return u8(0) + u16(v)


def iotlb():
    h = 'fuzz-iotlb'

    def region(slot, size, perm, fine=None):
        sel = slot & 0x3f
        extra = b''
        if fine is not None:
            sel |= 0x40
            extra = u8(fine)
        return u8(I_ADD) + u8(sel) + u16(size - 1) + u8(perm) + extra

    three = (region(0, 0x400, 3) + region(1, 0x400, 1) +
             region(2, 0x400, 2))
    # lookups on both sides of each region edge, every permission
    edges = b''
    for a in (0, 0x3ff, 0x400, 0x7ff, 0x800, 0xbff, 0xc00):
        for p in range(4):
            edges += u8(I_LOOKUP) + addr_base(a) + u8(p)
    write(h, 'edges', three + edges)
    # a range across adjacent regions: ptr splits, iov pieces, read copies
    write(h, 'across', three +
          u8(I_PTR) + addr_base(0x3f0) + ln(0x20) + u8(1) +
          u8(I_IOV) + addr_base(0x3f0) + ln(0x20) + u8(1) + u8(0) + u8(5) +
          u8(I_IOV) + addr_base(0x3f0) + ln(0x420) + u8(0) + u8(1) + u8(1) +
          u8(I_READ) + addr_base(0x3f0) + ln(0x20))
    # invalidate a region's first and last byte, then translate again
    write(h, 'invalidate-edges', three +
          u8(I_LOOKUP) + addr_base(0) + u8(1) +
          u8(I_INV) + u8(0x00) + u8(I_LOOKUP) + addr_base(0) + u8(1) +
          u8(I_INV) + u8(0x60) + u8(I_LOOKUP) + addr_base(0x3ff) + u8(1) +
          u8(I_DEL) + u8(0x01) + u8(I_LOOKUP) + addr_base(0x400) + u8(1))
    # the top of the IOVA space: exact end and one byte past (wrap)
    write(h, 'top', u8(I_ADD) + u8(0x80) + u16(0xfff) + u8(3) +
          u8(I_PTR) + addr_top(0xfff) + ln(0x1000) + u8(3) +
          u8(I_PTR) + addr_top(0xfff) + ln(0x1001) + u8(3) +
          u8(I_IOV) + addr_top(0) + ln(2) + u8(1) + u8(0) + u8(4) +
          u8(I_READ) + addr_top(0xf) + ln(0x10))
    # elements pinned across a removal and a re-add of their region
    write(h, 'pinned', three +
          u8(I_PIN) + u8(1) + addr_base(0x10) + addr_base(0x410) +
          u8(I_DEL) + u8(0x00) + region(0, 0x400, 3) +
          u8(I_PIN) + u8(0) + addr_base(0x20) +
          u8(I_LOOKUP) + addr_base(0x30) + u8(1) +
          u8(I_UNPIN) + u8(0) + u8(I_DEL) + u8(0xff) + u8(I_UNPIN) + u8(0))
    # permission-less region, sub-page offsets, too few iovecs
    write(h, 'odd', region(4, 0x10, 0) + region(5, 0x300, 3, fine=0x33) +
          u8(I_LOOKUP) + addr_base(0x1000) + u8(0) +
          u8(I_IOV) + addr_base(0x1433) + ln(0x300) + u8(3) + u8(2) + u8(0))
    rnd = random.Random(3)
    for k in range(8):
        body = b''
        for _ in range(30):
            body += rnd.choice([
                region(rnd.randrange(32), rnd.randrange(1, 0x1000),
                       rnd.randrange(4)),
                u8(I_LOOKUP) + addr_base(rnd.randrange(0x8000)) +
                u8(rnd.randrange(4)),
                u8(I_IOV) + addr_base(rnd.randrange(0x8000)) +
                ln(rnd.randrange(0x2000)) + u8(rnd.randrange(4)) +
                u8(rnd.randrange(4)) + u8(rnd.randrange(12)),
                u8(I_DEL) + u8(rnd.randrange(0x80)),
                u8(I_PIN) + u8(rnd.randrange(4)) +
                b''.join(addr_base(rnd.randrange(0x8000)) for _ in range(4)),
                u8(I_UNPIN) + u8(rnd.randrange(8)),
            ])
        write(h, 'random-%d' % k, body)


# ---- fuzz-packed-ring ---------------------------------------------------
# Header: features (1 EVENT_IDX, 2 INDIRECT, 4/8/16 misaligned ring /
# driver area / device area, 32 leave elements in flight at the free),
# state (1 avail wrap, 2 used wrap, 4 raw), size % 260, avail index, used
# (raw: the used index; else how far used is behind avail).  Then the
# ring's descriptors and 64 indirect ones, each sel (as for split), flags
# (NEXT, WRITE, INDIRECT; bits 3-4: 0 available in the lap the device
# reaches it in, 1 the other lap, 2 looks used, 3 raw AVAIL 0x20 / USED
# 0x40; 0x80 reserved bits), id, off, len; then how far ahead of avail the
# driver's position is.
P_AV, P_OTHER, P_USEDLIKE, P_RAW = 0, 8, 16, 24
P_POP, P_POPB, P_PUSH, P_PUSHB, P_NOTIFY, P_ADD, P_SETDESC, P_EVENT, \
    P_KICKS, P_GVS, P_BOGUS, P_RESYNC, P_REMAP, P_UNMAP, P_RESTART = \
    0, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16
# Regions by index (remap: any; unmap: 1 + the byte % 5, never the ring).
R_RING, R_IND, R_RW, R_RO, R_WO, R_TOP = range(6)
EV_ENABLE, EV_DISABLE, EV_DESC = 0, 1, 2


def pdesc(sel=RW, flags=0, bid=0, off=0, ln=16):
    return u8(sel) + u8(flags) + u16(bid) + u16(off) + u16(ln)


def pring(features=0, num=4, state=1, a=0, b=0, descs=(), ind=(), drv=0,
          ops=b''):
    d = list(descs) + [pdesc(flags=P_OTHER)] * (num - len(descs))
    i = list(ind) + [pdesc()] * (IND_DESCS - len(ind))
    return (u8(features) + u8(state) + u16(num) + u16(a) + u16(b) +
            b''.join(d[:num]) + b''.join(i) + u8(drv) + ops)


def ppop(extra=0):
    return op(P_POP, u8(extra))


def ppush(k=0, ln=0):
    return op(P_PUSH, u8(k), u32(ln))


def ppushb(how, picks, extra=b''):
    return op(P_PUSHB, u8(how), u8(len(picks)),
              b''.join(u8(k) + u32(ln) for k, ln in picks), extra)


def padd(descs):
    return op(P_ADD, u8(len(descs) - 1), b''.join(descs))


def pevent(flags, off_wrap, in_ring=True):
    return op(P_EVENT, u8(flags | (0x40 if in_ring else 0)), u16(off_wrap))


def packed_ring():
    h = 'fuzz-packed-ring'
    EV, INDF, LEAVE = 1, 2, 32
    # a readable and a writable descriptor, popped, pushed, notified
    write(h, 'chain', pring(0, 4, 1, 0, 0,
          [pdesc(RW, NEXT, 9, 0, 64), pdesc(WO, WRITE, 7, 8, 32)], [], 2,
          ppop() + ppush(0, 32) + op(P_NOTIFY) + ppop() + op(P_GVS)))
    # a chain across the end of a ring of 3, EVENT_IDX, DESC events
    write(h, 'chain-wrap-event-idx', pring(EV, 3, 1, 2, 0,
          [pdesc(WO, WRITE | P_OTHER, 5, 0, 8),
           pdesc(flags=P_OTHER), pdesc(RO, NEXT, 1, 0, 64)], [], 2,
          pevent(EV_DESC, 0x0000) + ppop() + ppush(0, 1) + op(P_NOTIFY) +
          op(P_GVS) + padd([pdesc(RW, 0, 3)]) + ppop() + ppush() +
          op(P_NOTIFY)))
    # an indirect table of three
    write(h, 'indirect', pring(INDF, 5, 1, 3, 0,
          [pdesc()] * 3 + [pdesc(IND, INDIRECT, 40, 0, 48)], [
              pdesc(RW, 0), pdesc(RO, NEXT), pdesc(WO, WRITE)], 1,
          ppop() + ppush(0, 16) + op(P_GVS)))
    # indirect: not negotiated, with NEXT, nested, odd size, max, over max
    write(h, 'indirect-not-negotiated', pring(0, 2, 1, 0, 0,
          [pdesc(IND, INDIRECT, 0, 0, 16)], [], 1, ppop()))
    write(h, 'indirect-next', pring(INDF, 2, 1, 0, 0,
          [pdesc(IND, INDIRECT | NEXT, 0, 0, 16), pdesc()], [], 2, ppop()))
    write(h, 'indirect-nested', pring(INDF, 2, 1, 0, 0,
          [pdesc(IND, INDIRECT, 0, 0, 32)], [pdesc(RW, 0),
           pdesc(IND, INDIRECT, 0, 0, 16)], 1, ppop()))
    write(h, 'indirect-max', pring(INDF, 2, 1, 0, 0,
          [pdesc(IND, INDIRECT, 0, 0, 4096)], [pdesc(RW, 0, 0, 0, 1)], 1,
          ppop() + ppush()))
    write(h, 'indirect-over-max', pring(INDF, 2, 1, 0, 0,
          [pdesc(RING, INDIRECT, 0, 0, 4112)], [], 1, ppop()))
    write(h, 'indirect-odd-size', pring(INDF, 2, 1, 0, 0,
          [pdesc(IND, INDIRECT, 0, 0, 24)], [], 1, ppop()))
    write(h, 'indirect-after-chain', pring(INDF, 4, 1, 0, 0,
          [pdesc(RO, NEXT, 0, 0, 8), pdesc(IND, INDIRECT, 2, 0, 32)],
          [pdesc(RW, 0), pdesc(WO, WRITE)], 2, ppop() + ppush(0, 3)))
    # buffers across the RW/RO/WO boundary
    write(h, 'span-regions', pring(0, 4, 1, 0, 0,
          [pdesc(RW, 0, 0, 0xff0, 0x20), pdesc(RO, WRITE, 1, 0xff0, 0x20)],
          [], 2, ppop() + ppop()))
    # readable after writable; a zero-length writable one first is fine
    write(h, 'read-after-write', pring(0, 4, 1, 0, 0,
          [pdesc(WO, WRITE | NEXT), pdesc(RW, 0)], [], 2, ppop()))
    write(h, 'zero-length', pring(0, 4, 1, 0, 0,
          [pdesc(WO, WRITE | NEXT, 0, 0, 0), pdesc(RW, 0, 1, 0, 8)], [], 2,
          ppop() + ppush()))
    # a chain as long as the ring (accepted) and one longer (refused)
    write(h, 'chain-whole-ring', pring(0, 5, 1, 0, 0,
          [pdesc(RW, NEXT)] * 4 + [pdesc(RW, 0, 77)], [], 5,
          ppop() + op(P_GVS) + ppush(0, 5) + op(P_GVS)))
    write(h, 'chain-too-long', pring(0, 5, 1, 0, 0,
          [pdesc(RW, NEXT)] * 5, [], 5, ppop()))
    # two descriptors still in flight from before (the state): a chain
    # may fill the other four, not take five
    write(h, 'chain-fills-free', pring(0, 6, 1, 2, 2,
          [pdesc(RW, 0, 9), pdesc()] + [pdesc(RW, NEXT, 3)] * 3 +
          [pdesc(RW, 0, 3)], [], 4, ppop() + ppush(0, 1) + op(P_GVS)))
    write(h, 'chain-longer-than-free', pring(0, 6, 1, 2, 2,
          [pdesc(RW, 0, 9), pdesc()] + [pdesc(RW, NEXT, 3)] * 4, [], 4,
          ppop()))
    # a buffer id made available twice, then again after its push
    write(h, 'bufid-twice', pring(0, 4, 1, 0, 0,
          [pdesc(RW, 0, 42), pdesc(RW, 0, 42)], [], 2, ppop() + ppop()))
    write(h, 'bufid-again-after-push', pring(0, 4, 1, 0, 0,
          [pdesc(RW, 0, 42), pdesc(RW, 0, 42)], [], 2,
          ppop() + ppush() + ppop() + ppush()))
    # the full 16-bit id space
    write(h, 'bufid-65535', pring(0, 2, 1, 0, 0,
          [pdesc(RW, 0, 0xffff), pdesc(RW, 0, 0)], [], 2,
          ppop() + ppop() + ppush(1, 9) + ppush(0, 8)))
    # wrap-counter abuse: everything popped, then more made available
    write(h, 'ring-full', pring(0, 3, 1, 0, 0,
          [pdesc(RW, 0, 1), pdesc(RW, 0, 2), pdesc(RW, 0, 3)], [], 3,
          ppop() + ppop() + ppop() + padd([pdesc(RW, 0, 4)]) + ppop()))
    write(h, 'ring-full-from-state', pring(0, 4, 1, 0, 4,
          [pdesc(RW, 0, 1)], [], 1, ppop()))
    # what was in flight before (state): less room for a chain
    write(h, 'state-in-flight', pring(0, 7, 1, 5, 3,
          [pdesc(RW, NEXT, 0)] * 5 + [pdesc(RW, 0, 8), pdesc(RW, NEXT, 9)],
          [], 4, ppop() + ppush(0, 2) + op(P_GVS) + ppop()))
    # unmapped, wrong permission, the top of the IOVA space
    write(h, 'hole', pring(0, 1, 1, 0, 0, [pdesc(HOLE)], [], 1, ppop()))
    write(h, 'write-to-ro', pring(0, 1, 1, 0, 0, [pdesc(RO, WRITE)], [], 1,
          ppop()))
    write(h, 'top-exact', pring(0, 1, 1, 0, 0,
          [pdesc(TOP, 0, 0, 0xff0, 0x10)], [], 1, ppop() + ppush()))
    write(h, 'top-wrap', pring(0, 1, 1, 0, 0,
          [pdesc(TOP, 0, 0, 0xff0, 0x11)], [], 1, ppop()))
    # not available: the other lap, looks used, raw AVAIL=USED
    write(h, 'not-available', pring(0, 2, 1, 0, 0,
          [pdesc(RW, P_OTHER)], [], 0,
          ppop() + op(P_SETDESC, u16(0), u8(1), pdesc(RW, P_USEDLIKE)) +
          ppop() + op(P_SETDESC, u16(0), u8(1),
                      pdesc(RW, P_RAW | 0x20 | 0x40)) +
          ppop() + op(P_SETDESC, u16(0), u8(1), pdesc(RW, 0x80)) + ppop()))
    # misaligned areas, sizes and states the library refuses
    write(h, 'misaligned-desc', pring(4, 4, ops=ppop()))
    write(h, 'misaligned-driver', pring(8, 4, ops=ppop()))
    write(h, 'misaligned-device', pring(16, 4, ops=ppop()))
    write(h, 'size-0', pring(0, 0, ops=ppop()))
    write(h, 'size-257', pring(0, 257, ops=ppop()))
    write(h, 'state-impossible', pring(0, 4, 4 | 1 | 2, 1, 2, ops=ppop()))
    write(h, 'state-index-too-big', pring(0, 4, 4 | 1 | 2, 4, 0,
                                          ops=ppop()))
    # interrupts: DISABLE, ENABLE, DESC around the position, many laps
    ev_ops = b''
    # (round k uses position k % 6 of a ring of 3 counted over two laps:
    # 0x8002 and 0x0000 fire, 0x8001 is a lap behind and does not; then
    # 0x8001 is where the used position stops (no interrupt yet), and
    # fires in the next round)
    for flags, ow in ((EV_DISABLE, 0), (EV_ENABLE, 0), (EV_DESC, 0x8002),
                      (EV_DESC, 0x0000), (EV_DESC, 0x8001), (3, 0),
                      (EV_DESC, 0x8001), (EV_DESC, 0x8001)):
        ev_ops += (pevent(flags, ow) + padd([pdesc(RW, 0, 1)]) + ppop() +
                   ppush(0, 1) + op(P_NOTIFY) + op(P_NOTIFY))
    write(h, 'events', pring(EV, 3, 1, 0, 0, [], [], 0, ev_ops))
    write(h, 'events-no-event-idx', pring(0, 3, 1, 0, 0, [], [], 0, ev_ops))
    # more than a lap used between two notifies, the event a lap behind
    # or in this lap
    for name, ow in (('events-laps-behind', 0x0001), ('events-laps-this',
                                                      0x8002)):
        laps = b''
        for r in range(7):
            laps += padd([pdesc(RW, 0, r)]) + ppop() + ppush(0, r)
        write(h, name, pring(EV, 3, 1, 0, 0, [], [], 0,
              pevent(EV_DESC, ow) + laps + op(P_NOTIFY) + op(P_GVS)))
    # long chains and tables in a batch: more iovecs than an element's
    # own array holds
    write(h, 'batch-long-chains', pring(INDF, 16, 1, 0, 0,
          [pdesc(RO, NEXT, 0, 16 * i, 16) for i in range(9)] +
          [pdesc(WO, WRITE, 1)] + [pdesc(IND, INDIRECT, 2, 0, 16 * 20)] +
          [pdesc(RW, 0, 3)],
          [pdesc(RO, 0, 0, 32 * i, 32) for i in range(12)] +
          [pdesc(WO, WRITE, 0, 32 * i, 32) for i in range(8)], 12,
          op(P_POPB, u8(7)) + ppushb(1, [(2, 1), (0, 2), (0, 3)]) +
          op(P_GVS)))
    # the kernel moves memory under in-flight elements (whole-space or
    # exact invalidation), takes a region away and brings it back
    write(h, 'remap-inflight', pring(INDF, 4, 1, 0, 0,
          [pdesc(RW, 0, 1, 0x10, 32), pdesc(WO, WRITE, 2, 0, 8),
           pdesc(IND, INDIRECT, 3, 0, 32)],
          [pdesc(RO, 0, 0, 0x20, 8), pdesc(RW, WRITE, 0, 0x30, 8)], 3,
          ppop() + ppop() + op(P_REMAP, u8(R_RW), u8(1)) +
          op(P_REMAP, u8(R_WO), u8(0)) + op(P_REMAP, u8(R_IND), u8(0)) +
          ppop() + op(P_REMAP, u8(R_RO), u8(1)) + ppush(1, 8) +
          ppushb(1, [(0, 32), (0, 1)])))
    write(h, 'remap-ring', pring(EV, 4, 1, 0, 0,
          [pdesc(RW, 0, 1), pdesc(RW, 0, 2)], [], 2,
          ppop() + op(P_REMAP, u8(R_RING), u8(0)) + ppush(0, 4) +
          op(P_NOTIFY) + ppop() + op(P_REMAP, u8(R_RING), u8(1)) +
          op(P_KICKS, u8(0)) + ppush(0, 5) + op(P_GVS) +
          padd([pdesc(RW, 0, 3)]) + op(P_KICKS, u8(1)) + ppop()))
    write(h, 'unmap-inflight', pring(INDF, 4, 1, 0, 0,
          [pdesc(RO, 0, 1), pdesc(RW, 0, 2), pdesc(RO, 0, 3)], [], 3,
          ppop() + ppop() + op(P_UNMAP, u8(R_RO - 1), u8(0)) +
          op(P_UNMAP, u8(R_RW - 1), u8(1)) + ppush(0) + ppop() + ppush()))
    write(h, 'unmap-and-back', pring(INDF, 4, 1, 0, 0,
          [pdesc(IND, INDIRECT, 1, 0, 16), pdesc(RO, 0, 2)],
          [pdesc(RW, 0)], 2,
          op(P_UNMAP, u8(R_IND - 1), u8(0)) +
          op(P_UNMAP, u8(R_IND - 1), u8(0)) + ppop() +
          op(P_UNMAP, u8(R_RO - 1), u8(1)) + ppop()))
    # a reset with elements in flight, started again from GET_VQ_STATE's
    # state (what was in flight stays off limits) or from a fresh ring
    write(h, 'restart-inflight', pring(0, 5, 1, 0, 0,
          [pdesc(RW, NEXT, 1), pdesc(WO, WRITE, 1), pdesc(RO, 0, 2),
           pdesc(RW, 0, 3)], [], 4,
          ppop() + op(P_POPB, u8(1)) + ppush(0, 3) + op(P_RESTART, u8(0)) +
          padd([pdesc(RW, 0, 2)]) + ppop() +
          padd([pdesc(RW, NEXT, 4), pdesc(RW, 0, 4)]) + ppop() +
          op(P_RESTART, u8(1)) + op(P_RESYNC, u8(0)) +
          padd([pdesc(RW, 0, 5)]) + ppop() + ppush(0, 1)))
    write(h, 'restart-broken', pring(EV, 3, 1, 0, 0,
          [pdesc(HOLE, 0, 1)], [], 1,
          ppop() + op(P_RESTART, u8(1)) +
          op(P_SETDESC, u16(0), u8(1), pdesc(RW, 0, 1)) + ppop() +
          ppush(0, 2) + op(P_NOTIFY)))
    # kicks off and on around pops
    write(h, 'kicks', pring(0, 4, 1, 0, 0, [pdesc(RW, 0, 1)], [], 1,
          op(P_KICKS, u8(0)) + ppop() + ppop() + op(P_KICKS, u8(1)) +
          padd([pdesc(RW, 0, 2)]) + op(P_KICKS, u8(1)) + ppop()))
    # batches: pop all, push out of order, a duplicate, a stranger, flags
    write(h, 'batch', pring(EV, 6, 1, 0, 0,
          [pdesc(RW, NEXT, 0), pdesc(WO, WRITE, 1)] +
          [pdesc(RO, 0, 2 + i) for i in range(4)], [], 6,
          op(P_POPB, u8(10)) + ppushb(2, [(1, 4), (0, 5)], u8(1)) +
          ppushb(4, [(0, 1)], u16(9)) + ppushb(8, [(0, 1)], u8(3)) +
          ppushb(1, [(2, 7), (0, 6), (0, 5)]) + ppushb(1, [(0, 1)] * 2) +
          op(P_GVS)))
    write(h, 'batch-breaks', pring(0, 4, 1, 0, 0,
          [pdesc(RW, 0, 1), pdesc(RW, 0, 2), pdesc(HOLE, 0, 3)], [], 3,
          op(P_POPB, u8(3)) + op(P_POPB, u8(3)) + ppush(0) + ppush(0)))
    write(h, 'leave-in-flight', pring(LEAVE, 4, 1, 0, 0,
          [pdesc(RW, 0, 1), pdesc(RW, 0, 2)], [], 2,
          ppop() + op(P_POPB, u8(1))))
    # laps of rings of odd sizes, chains of 1 to 3, pushed out of order
    for num in (3, 5, 100, 255, 256):
        ops = b''
        for r in range(16):
            n = 1 + r % (2 if num == 3 else 3)
            ops += padd([pdesc(RW, NEXT, 1000 + r, 8 * r, 8)] * (n - 1) +
                        [pdesc(WO, WRITE, 1000 + r, 8 * r, 8)])
            ops += ppop() if r % 2 else op(P_POPB, u8(1))
            if r % 2:
                ops += ppushb(1, [(1, r), (0, r + 1)])
        write(h, 'laps-%d' % num, pring(EV if num % 2 else 0, num, 0,
              num - 2, 0, [], [], 0,
              op(P_RESYNC, u8(0)) + pevent(EV_DESC, 0x8000 | (num - 1)) +
              ops + op(P_GVS)))
    # random well-formed-ish rings
    rnd = random.Random(4)
    for k in range(8):
        num = rnd.choice([1, 2, 3, 7, 16, 64, 200, 256])
        ds = []
        for i in range(num):
            fl = rnd.choice([0, NEXT, WRITE, WRITE | NEXT, 0, P_OTHER])
            ds.append(pdesc(rnd.choice([RW, RO, WO]), fl,
                            rnd.randrange(8), rnd.randrange(0x1000),
                            rnd.randrange(1, 0x200)))
        ops = b''.join(rnd.choice([
            ppop(), ppop(), op(P_POPB, u8(rnd.randrange(8))),
            ppush(rnd.randrange(4), rnd.randrange(99)),
            ppushb(rnd.randrange(2), [(rnd.randrange(4), 1)] * 2),
            op(P_NOTIFY), padd([pdesc(RW, 0, rnd.randrange(16))]),
            pevent(rnd.randrange(3), rnd.randrange(65536))])
            for _ in range(24))
        write(h, 'random-%d' % k, pring(rnd.randrange(4), num,
              rnd.randrange(4), rnd.randrange(num), rnd.randrange(num + 1),
              ds, [], rnd.randrange(num + 1), ops))


if __name__ == '__main__':
    split_ring()
    packed_ring()
    messages()
    iotlb()
