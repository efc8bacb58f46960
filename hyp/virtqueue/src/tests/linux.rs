//! Requests laid out as Linux 6.1's virtio_blk and virtio_ring lay them out:
//! `virtblk_add_req` adds the 16-byte `virtio_blk_outhdr`, the bio's
//! segments (one scatter-gather entry per page) and the 1-byte status as
//! separate scatter-gather entries; `virtqueue_add_split` puts them in
//! descriptors taken from its free list (or in an indirect table of
//! `total_sg` entries when `VIRTIO_F_INDIRECT_DESC` was negotiated and there
//! is more than one entry), publishes the head and kicks if
//! `virtqueue_kick_prepare` says so; `virtqueue_get_buf` reads the used ring
//! and `virtqueue_enable_cb` moves `used_event`. Also the layouts other
//! drivers use: header and data in one descriptor, data and status in one.

use std::vec;
use std::vec::Vec;

use super::blk::{header, VecDisk};
use super::{Driver, DATA, INDIRECT, NEXT, WRITE};
use crate::blk::{
    serial_from_str, BlkDevice, SEG_MAX, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT,
};
use crate::{GuestMemory, Queue, QueueFeatures};

/// Bytes in a guest page.
const PAGE: u64 = 4096;

/// The driver half of a split virtqueue as Linux's `vring_virtqueue` keeps
/// it.
struct LinuxVq {
    driver: Driver,
    /// Head of the free descriptor list (linked through `next`).
    free_head: u16,
    num_free: u16,
    /// Per head: the descriptors its chain holds (to give them back).
    chain_len: Vec<u16>,
    /// Next descriptor of each descriptor in the free list.
    free_next: Vec<u16>,
    last_used_idx: u16,
    /// `avail.idx` at the last kick (for `vring_need_event`).
    kicked_at: u16,
    /// Where the next indirect table goes.
    indirect_pool: u64,
}

impl LinuxVq {
    fn new(size: u16, features: QueueFeatures) -> Self {
        Self {
            driver: Driver::new(size, features),
            free_head: 0,
            num_free: size,
            chain_len: vec![0; size as usize],
            free_next: (1..=size).collect(),
            last_used_idx: 0,
            kicked_at: 0,
            indirect_pool: DATA + (2 << 20),
        }
    }

    /// `virtqueue_add_sgs`: device-readable entries, then device-writable
    /// ones. Returns the head, or `None` when there is no room (-ENOSPC).
    fn add_sgs(&mut self, out: &[(u64, u32)], inn: &[(u64, u32)]) -> Option<u16> {
        let total = out.len() + inn.len();
        let sgs = out
            .iter()
            .map(|&(a, l)| (a, l, 0))
            .chain(inn.iter().map(|&(a, l)| (a, l, WRITE)));
        let head = self.free_head;
        if self.driver.config.features.indirect_desc && total > 1 && self.num_free > 0 {
            // alloc_indirect_split: entry i links to i + 1.
            let table = self.indirect_pool;
            self.indirect_pool += 16 * total as u64;
            for (i, (addr, len, flags)) in sgs.enumerate() {
                let last = i + 1 == total;
                let flags = flags | if last { 0 } else { NEXT };
                self.driver
                    .desc_at(table, i as u16, addr, len, flags, i as u16 + 1);
            }
            self.driver
                .desc(head, table, 16 * total as u32, INDIRECT, 0);
            self.free_head = self.free_next[head as usize];
            self.num_free -= 1;
            self.chain_len[head as usize] = 1;
        } else {
            if usize::from(self.num_free) < total {
                return None;
            }
            let mut index = head;
            for (i, (addr, len, flags)) in sgs.enumerate() {
                let next = self.free_next[index as usize];
                let last = i + 1 == total;
                let flags = flags | if last { 0 } else { NEXT };
                // Linux leaves `next` of the last descriptor pointing into
                // the free list; the device must not follow it.
                self.driver.desc(index, addr, len, flags, next);
                if last {
                    self.free_head = next;
                }
                index = next;
            }
            self.num_free -= total as u16;
            self.chain_len[head as usize] = total as u16;
        }
        self.driver.stage(head);
        // virtio_wmb, then the index.
        self.driver.publish();
        Some(head)
    }

    /// `virtqueue_kick_prepare`.
    fn kick_prepare(&mut self) -> bool {
        let new = self.driver.avail_idx;
        let old = self.kicked_at;
        self.kicked_at = new;
        if self.driver.config.features.event_idx {
            let event = self.driver.avail_event();
            new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            // The device never sets VIRTQ_USED_F_NO_NOTIFY.
            let flags = self.driver.mem.get_u16(self.driver.config.device_ring);
            flags & 1 == 0
        }
    }

    /// `virtqueue_get_buf`: the next used (head, len), freeing its chain.
    fn get_buf(&mut self) -> Option<(u16, u32)> {
        if self.last_used_idx == self.driver.used_idx() {
            return None;
        }
        let (id, len) = self.driver.used(self.last_used_idx);
        self.last_used_idx = self.last_used_idx.wrapping_add(1);
        let head = id as u16;
        // detach_buf_split: the chain goes back on the free list's head.
        let count = self.chain_len[head as usize];
        // The chain's descriptors, through the links it was laid out with.
        let mut chain = vec![head];
        let mut index = head;
        for _ in 1..count {
            let raw = self.driver.mem.get(
                self.driver.config.desc_table + 16 * u64::from(index) + 14,
                2,
            );
            index = u16::from_le_bytes([raw[0], raw[1]]);
            chain.push(index);
        }
        for &d in chain.iter().rev() {
            self.free_next[d as usize] = self.free_head;
            self.free_head = d;
        }
        self.num_free += count;
        if self.driver.config.features.event_idx {
            // virtqueue_enable_cb: interrupt me at the next used entry.
            self.driver.set_used_event(self.last_used_idx);
        }
        Some((head, len))
    }
}

/// The device: pops everything on a kick, handles, returns, and says
/// whether it would interrupt.
struct Device {
    queue: Queue,
    blk: BlkDevice,
    disk: VecDisk,
    kicks: usize,
    interrupts: usize,
}

impl Device {
    fn notify(&mut self, mem: &impl GuestMemory) {
        self.kicks += 1;
        while let Some(chain) = self.queue.pop(mem).unwrap() {
            let written = self.blk.handle(&chain, mem, &mut self.disk).unwrap();
            self.queue.push_used(mem, chain.head(), written).unwrap();
        }
        if self.queue.needs_interrupt(mem).unwrap() {
            self.interrupts += 1;
        }
        assert_eq!(self.disk.violations, 0);
    }
}

/// A request as `virtblk_add_req` builds it, with the data in `pages`.
struct Request {
    request_type: u32,
    sector: u64,
    pages: Vec<(u64, u32)>,
    hdr: u64,
    status: u64,
}

impl Request {
    fn add(&self, vq: &mut LinuxVq) -> Option<u16> {
        vq.driver
            .mem
            .put(self.hdr, &header(self.request_type, self.sector));
        vq.driver.mem.put(self.status, &[0xff]);
        let mut out = vec![(self.hdr, 16)];
        let mut inn = vec![];
        if self.request_type == VIRTIO_BLK_T_OUT {
            out.extend(&self.pages);
        } else {
            inn.extend(&self.pages);
        }
        inn.push((self.status, 1));
        vq.add_sgs(&out, &inn)
    }
}

/// Runs `rounds` batches of Linux-shaped requests through the queue and
/// checks every byte against a model of the disk.
fn linux_session(features: QueueFeatures, size: u16) {
    const SECTORS: u64 = 4096;
    let mut vq = LinuxVq::new(size, features);
    let mut dev = Device {
        queue: vq.driver.queue(),
        blk: BlkDevice::new(SECTORS, false, serial_from_str("linux-session")),
        disk: VecDisk::new((SECTORS * 512) as usize),
        kicks: 0,
        interrupts: 0,
    };
    let mut model = dev.disk.data.clone();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Per request slot: its header, status and data pages.
    let slots = 8u64;
    let slot_base = |slot: u64| DATA + slot * 0x4_0000;
    let mut completed = 0;
    for _round in 0..60 {
        let mut batch: Vec<(u16, Request)> = vec![];
        for slot in 0..slots {
            let kind = next() % 10;
            let request_type = match kind {
                0 => VIRTIO_BLK_T_FLUSH,
                1 => VIRTIO_BLK_T_GET_ID,
                2..=5 => VIRTIO_BLK_T_IN,
                _ => VIRTIO_BLK_T_OUT,
            };
            let base = slot_base(slot);
            // 1 to 16 pages, sometimes partial (a multiple of 512), in
            // reverse order in memory to be sure they are scattered.
            let npages = if matches!(request_type, VIRTIO_BLK_T_IN | VIRTIO_BLK_T_OUT) {
                // As Linux limits them by seg_max, here to what an empty
                // queue of this size can take.
                1 + next() % u64::from(16.min(size - 2))
            } else {
                0
            };
            let mut pages: Vec<(u64, u32)> = (0..npages)
                .map(|p| {
                    let len = if p + 1 == npages {
                        512 * (1 + next() % 8) as u32
                    } else {
                        PAGE as u32
                    };
                    (base + 0x1000 + (16 - p) * PAGE, len)
                })
                .collect();
            if request_type == VIRTIO_BLK_T_GET_ID {
                pages.push((base + 0x800, 20));
            }
            let bytes: u64 = pages.iter().map(|p| u64::from(p.1)).sum();
            let sector = next() % (SECTORS - bytes / 512 + 1);
            if request_type == VIRTIO_BLK_T_OUT {
                for &(gpa, len) in &pages {
                    let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                    vq.driver.mem.put(gpa, &data);
                }
            }
            let request = Request {
                request_type,
                sector: if request_type == VIRTIO_BLK_T_IN || request_type == VIRTIO_BLK_T_OUT {
                    sector
                } else {
                    0
                },
                pages,
                hdr: base,
                status: base + 0x10,
            };
            match request.add(&mut vq) {
                Some(head) => batch.push((head, request)),
                None => break,
            }
        }
        if vq.kick_prepare() {
            dev.notify(&vq.driver.mem);
        }
        // Apply writes to the model in the order the device took them (the
        // device handles in ring order), then check every completion.
        let mut done = 0;
        while let Some((head, len)) = vq.get_buf() {
            let (_, request) = batch
                .iter()
                .find(|(h, _)| *h == head)
                .expect("a head that was offered");
            assert_eq!(vq.driver.mem.get(request.status, 1), [0], "status");
            let bytes: u32 = request.pages.iter().map(|p| p.1).sum();
            let mut offset = (request.sector * 512) as usize;
            match request.request_type {
                VIRTIO_BLK_T_IN => {
                    assert_eq!(len, bytes + 1);
                    for &(gpa, l) in &request.pages {
                        assert_eq!(
                            vq.driver.mem.get(gpa, l as usize),
                            model[offset..offset + l as usize]
                        );
                        offset += l as usize;
                    }
                }
                VIRTIO_BLK_T_OUT => {
                    assert_eq!(len, 1);
                    for &(gpa, l) in &request.pages {
                        let data = vq.driver.mem.get(gpa, l as usize);
                        model[offset..offset + l as usize].copy_from_slice(&data);
                        offset += l as usize;
                    }
                }
                VIRTIO_BLK_T_GET_ID => {
                    assert_eq!(len, 21);
                    let (gpa, _) = request.pages[0];
                    assert_eq!(vq.driver.mem.get(gpa, 20), serial_from_str("linux-session"));
                }
                _ => assert_eq!(len, 1),
            }
            done += 1;
        }
        assert_eq!(done, batch.len(), "every request completes");
        completed += done;
        assert_eq!(dev.disk.data, model, "disk matches the model");
    }
    // At least the first request of every round fits.
    assert!(completed >= 60);
    assert_eq!(vq.num_free, size);
    assert!(dev.interrupts > 0 && dev.interrupts <= dev.kicks);
}

#[test]
fn linux_requests_in_direct_descriptors() {
    linux_session(QueueFeatures::default(), 256);
    // A small queue: a batch ends at the first request there is no room
    // for.
    linux_session(QueueFeatures::default(), 16);
}

#[test]
fn linux_requests_in_indirect_tables() {
    linux_session(
        QueueFeatures {
            indirect_desc: true,
            event_idx: false,
        },
        256,
    );
}

#[test]
fn linux_requests_with_event_idx() {
    linux_session(
        QueueFeatures {
            indirect_desc: true,
            event_idx: true,
        },
        256,
    );
    linux_session(
        QueueFeatures {
            indirect_desc: false,
            event_idx: true,
        },
        32,
    );
}

#[test]
fn a_request_of_seg_max_segments_fits_the_queue() {
    // What Linux sends at the advertised limit: header + SEG_MAX pages +
    // status is exactly QUEUE_SIZE_MAX descriptors, direct or indirect.
    for indirect_desc in [false, true] {
        let features = QueueFeatures {
            indirect_desc,
            event_idx: false,
        };
        let mut vq = LinuxVq::new(crate::blk::QUEUE_SIZE_MAX, features);
        let mut queue = vq.driver.queue();
        let pages: Vec<(u64, u32)> = (0..u64::from(SEG_MAX))
            .map(|p| (DATA + 0x10_0000 + p * PAGE, PAGE as u32))
            .collect();
        let request = Request {
            request_type: VIRTIO_BLK_T_IN,
            sector: 0,
            pages,
            hdr: DATA,
            status: DATA + 0x10,
        };
        request.add(&mut vq).unwrap();
        let chain = queue.pop(&vq.driver.mem).unwrap().unwrap();
        assert_eq!(chain.writable().len() as u32, SEG_MAX + 1);
        let mut blk = BlkDevice::new(1 << 20, false, [0; 20]);
        let mut disk = VecDisk::new(4 << 20);
        let written = blk.handle(&chain, &vq.driver.mem, &mut disk).unwrap();
        assert_eq!(written, SEG_MAX * PAGE as u32 + 1);
    }
}

#[test]
fn header_and_data_in_one_descriptor() {
    // A write whose header and data share one readable buffer, the status
    // in its own; and a read whose data and status share one writable
    // buffer.
    let mut driver = Driver::new(8, QueueFeatures::default());
    let mut queue = driver.queue();
    let mut blk = BlkDevice::new(64, false, [0; 20]);
    let mut disk = VecDisk::new(64 * 512);
    let mut out = header(VIRTIO_BLK_T_OUT, 5).to_vec();
    out.extend((0..1024).map(|i| (i % 13) as u8));
    driver.mem.put(DATA, &out);
    driver.offer_chain(0, &[(DATA, 16 + 1024, false), (DATA + 0x1000, 1, true)]);
    let chain = queue.pop(&driver.mem).unwrap().unwrap();
    assert_eq!(blk.handle(&chain, &driver.mem, &mut disk), Ok(1));
    queue.push_used(&driver.mem, chain.head(), 1).unwrap();
    assert_eq!(driver.mem.get(DATA + 0x1000, 1), [0]);
    assert_eq!(disk.data[2560..3584], out[16..]);

    driver.mem.put(DATA + 0x2000, &header(VIRTIO_BLK_T_IN, 5));
    driver.offer_chain(
        2,
        &[(DATA + 0x2000, 16, false), (DATA + 0x3000, 1025, true)],
    );
    let chain = queue.pop(&driver.mem).unwrap().unwrap();
    assert_eq!(blk.handle(&chain, &driver.mem, &mut disk), Ok(1025));
    assert_eq!(driver.mem.get(DATA + 0x3000, 1024), out[16..]);
    assert_eq!(driver.mem.get(DATA + 0x3000 + 1024, 1), [0]);

    // Everything in one readable and one writable buffer, split mid-header
    // across two readable ones.
    driver.mem.put(DATA + 0x4000, &out[..7]);
    driver.mem.put(DATA + 0x5000, &out[7..]);
    driver.offer_chain(
        4,
        &[
            (DATA + 0x4000, 7, false),
            (DATA + 0x5000, 16 + 1024 - 7, false),
            (DATA + 0x6000, 1, true),
        ],
    );
    let chain = queue.pop(&driver.mem).unwrap().unwrap();
    assert_eq!(blk.handle(&chain, &driver.mem, &mut disk), Ok(1));
    assert_eq!(driver.mem.get(DATA + 0x6000, 1), [0]);
}
