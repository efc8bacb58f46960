//! Fuzzing the device side with arbitrary guests. Each case lays out
//! descriptor chains the way a driver would (in shuffled descriptor slots,
//! some through indirect tables, some starting with a virtio-blk header)
//! over random bytes in a small guest memory (low, at 1 GiB, or ending just
//! below 2^64), then corrupts it: random queue layouts, buffers of random
//! and extreme lengths and addresses, broken `next` links, stray bytes in
//! the rings and tables, random driver ring entries and `avail.idx`; and
//! drives it with a random sequence of device calls and guest moves,
//! sometimes with memory that changes under every read.
//!
//! Checked: nothing panics; every accepted chain's buffers lie inside guest
//! memory, readable before writable, at most `size` of them, lengths adding
//! up within 32 bits; the disk is never touched outside the device; a
//! written length never exceeds the writable part; the used ring says what
//! the queue says; a refused queue layout really is bad; and, with memory
//! that holds still, `pop` agrees with a separately written model of the
//! rules.
//!
//! The case count is `PROPTEST_CASES`, 100 000 by default: about 2 s with
//! the workspace's dev profile (opt-level 1) or in release on one core of
//! the project's machine; 1 000 000 cases take about 25 s in release.

use core::cell::Cell;
use std::vec::Vec;

use proptest::prelude::*;

use super::blk::{Op, VecDisk};
use super::VecMemory;
use crate::blk::{
    BlkDevice, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use crate::{Chain, GuestMemory, MemError, Queue, QueueConfig, QueueFeatures};

/// Cases to run: `PROPTEST_CASES`, or 100 000.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// Guest memory size.
const MEM: u64 = 0x4000;
/// Where indirect tables go (offset in guest memory), up to [`DATA_AREA`].
const TABLE_AREA: u64 = 0x1000;
/// Where buffers go (offset in guest memory), up to [`MEM`].
const DATA_AREA: u64 = 0x1800;
/// Capacity of the fuzzed disk, in sectors.
const DISK_SECTORS: u64 = 8;

/// One buffer of a chain, as random choices.
#[derive(Clone, Debug)]
struct BufSpec {
    len: (u8, u32),
    addr: (u8, u64),
}

/// One chain as a driver would lay it out.
#[derive(Clone, Debug)]
struct ChainSpec {
    bufs: Vec<BufSpec>,
    /// How many of `bufs` are device-readable (mod `bufs.len() + 1`).
    readable: u8,
    /// 0: all in an indirect table; 1: first direct, the rest indirect;
    /// else: all direct.
    indirect: u8,
    /// Request type choice and sector for a virtio-blk header written into
    /// the first buffer.
    header: (u8, u64),
    /// Whether the chain is shaped like a virtio-blk request: a 16-byte
    /// header, data in sectors readable or writable as the type needs, a
    /// status byte (the addresses stay random choices).
    blk_shaped: bool,
}

fn buf_spec() -> impl Strategy<Value = BufSpec> {
    (
        (prop_oneof![8 => 0u8..5, 1 => 5u8..7], any::<u32>()),
        (prop_oneof![12 => Just(0u8), 1 => 1u8..4], any::<u64>()),
    )
        .prop_map(|(len, addr)| BufSpec { len, addr })
}

fn chain_spec() -> impl Strategy<Value = ChainSpec> {
    (
        proptest::collection::vec(buf_spec(), 1..6),
        any::<u8>(),
        0u8..5,
        (0u8..6, any::<u64>()),
        prop::bool::weighted(0.4),
    )
        .prop_map(|(bufs, readable, indirect, header, blk_shaped)| ChainSpec {
            bufs,
            readable,
            indirect,
            header,
            blk_shaped,
        })
}

/// The length choice that means "exactly the value".
const EXACT_LEN: u8 = 7;

impl BufSpec {
    /// The buffer's (gpa, len) in memory from `base`.
    fn resolve(&self, base: u64) -> (u64, u32) {
        let (l, v) = self.len;
        let len = match l {
            0 => 16,
            1 => 1,
            2 => 512 * (1 + v % 4),
            3 => v % 64,
            4 => v % 3000,
            5 => u32::MAX - v % 4,
            _ => v,
        };
        let (a, v) = self.addr;
        let room = MEM - DATA_AREA;
        let gpa = match a {
            0 => base + DATA_AREA + v % (room.saturating_sub(u64::from(len)) + 1),
            // Around the end of memory.
            1 => (base + MEM)
                .wrapping_sub(u64::from(len))
                .wrapping_add(v % 3),
            // Below memory, or anywhere.
            2 => base.wrapping_sub(1 + v % 64),
            _ => v,
        };
        (gpa, len)
    }
}

/// What happens next: the device's calls and the guest's moves.
#[derive(Clone, Debug)]
enum Action {
    /// `pop`, then `handle` the chain as a block request.
    PopAndHandle,
    /// `pop` and keep the chain in flight.
    Pop,
    /// `push_used` of the oldest chain in flight.
    PushOldest(u32),
    /// `push_used` of a made-up head (in flight or not).
    PushAny(u16),
    NeedsInterrupt,
    /// The guest moves `avail.idx` on by this much.
    Publish(u16),
    /// The guest writes a byte somewhere in its memory.
    Scribble(u16, u8),
    /// The guest writes `avail.flags` or `used_event`.
    DriverField(bool, u16),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => Just(Action::PopAndHandle),
        3 => Just(Action::Pop),
        3 => any::<u32>().prop_map(Action::PushOldest),
        1 => any::<u16>().prop_map(Action::PushAny),
        2 => Just(Action::NeedsInterrupt),
        3 => prop_oneof![4 => 0u16..4, 1 => any::<u16>()].prop_map(Action::Publish),
        2 => (any::<u16>(), any::<u8>()).prop_map(|(o, b)| Action::Scribble(o, b)),
        1 => (any::<bool>(), any::<u16>()).prop_map(|(f, v)| Action::DriverField(f, v)),
    ]
}

/// One fuzz case.
#[derive(Clone, Debug)]
struct Case {
    /// Where guest memory starts: low, at 1 GiB, or ending 16 bytes below
    /// 2^64.
    base_choice: u8,
    size_shift: u8,
    features: QueueFeatures,
    /// Ring placement: 0..=5 the usual layout, else these offsets.
    layout: (u8, u16, u16, u16),
    chains: Vec<ChainSpec>,
    /// Shuffles the descriptor slots chains take.
    shuffle: u64,
    /// Driver ring entries past the laid-out chains: (choice, value).
    ring_extra: Vec<(u8, u16)>,
    avail_idx: (u8, u16),
    /// Corruptions: (what, where, value).
    mutations: Vec<(u8, u16, u64)>,
    seed: u64,
    /// Whether guest memory changes under the device's reads.
    chaos: bool,
    actions: Vec<Action>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (0u8..3, 0u8..7, any::<bool>(), any::<bool>()),
        (
            prop_oneof![12 => Just(0u8), 1 => 6u8..8],
            any::<u16>(),
            any::<u16>(),
            any::<u16>(),
        ),
        proptest::collection::vec(chain_spec(), 0..6),
        any::<u64>(),
        proptest::collection::vec((0u8..8, any::<u16>()), 0..4),
        (
            (0u8..8, any::<u16>()),
            any::<u64>(),
            prop::bool::weighted(0.2),
        ),
        proptest::collection::vec((0u8..8, any::<u16>(), any::<u64>()), 0..3),
        proptest::collection::vec(action(), 1..16),
    )
        .prop_map(
            |(
                (base_choice, size_shift, indirect_desc, event_idx),
                layout,
                chains,
                shuffle,
                ring_extra,
                (avail_idx, seed, chaos),
                mutations,
                actions,
            )| Case {
                base_choice,
                size_shift,
                features: QueueFeatures {
                    indirect_desc,
                    event_idx,
                },
                layout,
                chains,
                shuffle,
                ring_extra,
                avail_idx,
                mutations,
                seed,
                chaos,
                actions,
            },
        )
}

/// Writes one descriptor at `gpa` if it is inside memory.
fn put_desc(mem: &VecMemory, gpa: u64, addr: u64, len: u32, flags: u16, next: u16) {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&addr.to_le_bytes());
    raw[8..12].copy_from_slice(&len.to_le_bytes());
    raw[12..14].copy_from_slice(&flags.to_le_bytes());
    raw[14..].copy_from_slice(&next.to_le_bytes());
    let _ = mem.write(gpa, &raw);
}

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;

/// Lays the chains out in memory like a driver, then corrupts it; returns
/// the number of chains placed in the driver ring.
fn lay_out(case: &Case, mem: &VecMemory, base: u64, config: &QueueConfig) -> u16 {
    let size = config.size;
    let mut free: Vec<u16> = (0..size).collect();
    let mut state = case.shuffle | 1;
    for i in (1..free.len()).rev() {
        let j = (xorshift(&mut state) % (i as u64 + 1)) as usize;
        free.swap(i, j);
    }
    let desc_gpa = |index: u16| config.desc_table.wrapping_add(16 * u64::from(index));
    let mut table_cursor = base + TABLE_AREA;
    let mut heads = Vec::new();
    for spec in &case.chains {
        // A block request header in the first buffer, if it holds one.
        let (t, sector) = spec.header;
        let request_type = match t {
            0 | 1 => VIRTIO_BLK_T_IN,
            2 | 3 => VIRTIO_BLK_T_OUT,
            4 => VIRTIO_BLK_T_FLUSH,
            _ => VIRTIO_BLK_T_GET_ID,
        };
        let request_type = if sector % 16 == 0 {
            (sector >> 32) as u32
        } else {
            request_type
        };
        let count = spec.bufs.len();
        let bufs: Vec<(u64, u32, u16)> = if spec.blk_shaped && count >= 2 {
            // Header, data in sectors, status.
            let readable = if request_type == VIRTIO_BLK_T_OUT {
                count - 1
            } else {
                1
            };
            spec.bufs
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let len = match i {
                        0 => 16,
                        i if i + 1 == count => 1,
                        _ => 512 * (1 + b.len.1 % 2),
                    };
                    let mut b = b.clone();
                    b.len = (EXACT_LEN, len);
                    let (gpa, len) = b.resolve(base);
                    (gpa, len, if i < readable { 0 } else { F_WRITE })
                })
                .collect()
        } else {
            let readable = usize::from(spec.readable) % (count + 1);
            spec.bufs
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let (gpa, len) = b.resolve(base);
                    (gpa, len, if i < readable { 0 } else { F_WRITE })
                })
                .collect()
        };
        let mut header = [0u8; 16];
        header[..4].copy_from_slice(&request_type.to_le_bytes());
        header[8..].copy_from_slice(&(sector % (DISK_SECTORS + 2)).to_le_bytes());
        let _ = mem.write(bufs[0].0, &header);

        let direct = match spec.indirect {
            0 => 0,
            1 => 1,
            _ => bufs.len(),
        };
        let in_table = bufs.len() - direct;
        let needed = direct + usize::from(in_table > 0);
        if needed > free.len() || table_cursor + 16 * in_table as u64 > base + DATA_AREA {
            break;
        }
        let slots: Vec<u16> = free.drain(..needed).collect();
        for (i, &(gpa, len, write)) in bufs[..direct].iter().enumerate() {
            let last = i + 1 == needed;
            let next = slots.get(i + 1).copied().unwrap_or(slots[i]);
            put_desc(
                mem,
                desc_gpa(slots[i]),
                gpa,
                len,
                write | if last { 0 } else { F_NEXT },
                next,
            );
        }
        if in_table > 0 {
            let table = table_cursor;
            table_cursor += 16 * in_table as u64;
            for (i, &(gpa, len, write)) in bufs[direct..].iter().enumerate() {
                let last = i + 1 == in_table;
                let flags = write | if last { 0 } else { F_NEXT };
                put_desc(mem, table + 16 * i as u64, gpa, len, flags, i as u16 + 1);
            }
            put_desc(
                mem,
                desc_gpa(slots[needed - 1]),
                table,
                16 * in_table as u32,
                F_INDIRECT,
                0,
            );
        }
        heads.push(slots[0]);
    }
    let placed = heads.len() as u16;
    let ring_entry = |i: u16| config.driver_ring.wrapping_add(4 + 2 * u64::from(i % size));
    for (i, &head) in heads.iter().enumerate() {
        let _ = mem.write(ring_entry(i as u16), &head.to_le_bytes());
    }
    for (i, &(c, v)) in case.ring_extra.iter().enumerate() {
        let head = if c < 6 { v % (size + 1) } else { v };
        let _ = mem.write(ring_entry(placed + i as u16), &head.to_le_bytes());
    }
    let (c, v) = case.avail_idx;
    let avail_idx = match c {
        0..=3 => placed,
        4 => placed + (v % 3),
        5 => placed + case.ring_extra.len() as u16,
        6 => v % (size + 2),
        _ => v,
    };
    let _ = mem.write(config.driver_ring.wrapping_add(2), &avail_idx.to_le_bytes());

    for &(what, at, value) in &case.mutations {
        // `next` just inside or just past the table, half the time.
        let value = match what {
            1 if value & 1 == 0 => (value >> 1) % (u64::from(size) + 2),
            5..=7 => value % 8,
            _ => value,
        };
        let (gpa, bytes) = match what {
            // A byte of a descriptor.
            0 => (desc_gpa(at % size).wrapping_add(u64::from(at >> 12)), 1),
            // A descriptor's `next`.
            1 => (desc_gpa(at % size).wrapping_add(14), 2),
            // A descriptor's `len`.
            2 => (desc_gpa(at % size).wrapping_add(8), 4),
            // A byte of the indirect tables.
            3 => (
                base + TABLE_AREA + u64::from(at) % (DATA_AREA - TABLE_AREA),
                1,
            ),
            // A `next` in the indirect tables.
            5 => (base + TABLE_AREA + 16 * u64::from(at % 16) + 14, 2),
            // A descriptor's `flags`.
            6 => (desc_gpa(at % size).wrapping_add(12), 2),
            // `flags` in the indirect tables.
            7 => (base + TABLE_AREA + 16 * u64::from(at % 16) + 12, 2),
            // A driver ring entry.
            _ => (ring_entry(at), 2),
        };
        let _ = mem.write(gpa, &value.to_le_bytes()[..bytes]);
    }
    placed
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Guest memory that, in chaos mode, rewrites a random byte of the rings and
/// tables after each read (another vCPU scribbling while the device works).
struct FuzzMemory {
    inner: VecMemory,
    chaos: bool,
    rng: Cell<u64>,
}

impl FuzzMemory {
    fn disturb(&self) {
        if !self.chaos {
            return;
        }
        let mut state = self.rng.get();
        let r = xorshift(&mut state);
        self.rng.set(state);
        if r.is_multiple_of(2) {
            let offset = ((r >> 8) % DATA_AREA) as usize;
            self.inner.bytes.borrow_mut()[offset] = (r >> 32) as u8;
        }
    }
}

impl GuestMemory for FuzzMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let result = self.inner.read(gpa, buf);
        self.disturb();
        result
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.inner.write(gpa, data)
    }

    fn check_range(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.inner.check_range(gpa, len)
    }
}

/// A chain as the model sees it: head and (gpa, len, writable) buffers.
type ModelChain = (u16, Vec<(u64, u32, bool)>);

/// The rules of §2.7 written out again, plainly, over a snapshot of guest
/// memory: what `pop` must return (`Err(())` for any refusal).
fn model_pop(
    mem: &mut [u8],
    base: u64,
    config: &QueueConfig,
    next_avail: u16,
    in_flight: u32,
) -> Result<Option<ModelChain>, ()> {
    let end = base as u128 + mem.len() as u128;
    let size = config.size;
    // With EVENT_IDX an empty ring makes the device write `avail_event`
    // first, which a random layout may overlap with anything.
    let avail_idx_at = (config.driver_ring + 2 - base) as usize;
    let avail_idx = u16::from_le_bytes([mem[avail_idx_at], mem[avail_idx_at + 1]]);
    if avail_idx == next_avail && config.features.event_idx {
        let at = (config.device_ring + 4 + 8 * u64::from(size) - base) as usize;
        mem[at..at + 2].copy_from_slice(&next_avail.to_le_bytes());
    }
    let mem = &*mem;
    let inside =
        |gpa: u64, len: u64| (gpa as u128) >= base as u128 && gpa as u128 + len as u128 <= end;
    let bytes = |gpa: u64, len: usize| -> Result<&[u8], ()> {
        if !inside(gpa, len as u64) {
            return Err(());
        }
        let o = (gpa - base) as usize;
        Ok(&mem[o..o + len])
    };
    let u16_at = |gpa: u64| -> Result<u16, ()> {
        let b = bytes(gpa, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    };
    let avail_idx = u16_at(config.driver_ring + 2)?;
    let pending = avail_idx.wrapping_sub(next_avail);
    if pending > size {
        return Err(());
    }
    if pending == 0 {
        return Ok(None);
    }
    if in_flight >= u32::from(size) {
        return Err(());
    }
    let head = u16_at(config.driver_ring + 4 + 2 * u64::from(next_avail % size))?;
    if head >= size {
        return Err(());
    }
    let mut buffers: Vec<(u64, u32, bool)> = Vec::new();
    let mut table = config.desc_table;
    let mut entries = size;
    let mut in_indirect = false;
    let mut index = head;
    let mut total = 0u64;
    loop {
        let d = bytes(table + 16 * u64::from(index), 16)?;
        let addr = u64::from_le_bytes(d[..8].try_into().unwrap());
        let len = u32::from_le_bytes(d[8..12].try_into().unwrap());
        let flags = u16::from_le_bytes([d[12], d[13]]);
        let next = u16::from_le_bytes([d[14], d[15]]);
        if flags & 4 != 0 {
            let ok = !in_indirect
                && config.features.indirect_desc
                && flags & 1 == 0
                && len != 0
                && len % 16 == 0
                && len / 16 <= u32::from(size)
                && inside(addr, u64::from(len));
            if !ok {
                return Err(());
            }
            table = addr;
            entries = (len / 16) as u16;
            in_indirect = true;
            index = 0;
            continue;
        }
        if buffers.len() == usize::from(size) || !inside(addr, u64::from(len)) {
            return Err(());
        }
        let writable = flags & 2 != 0;
        if !writable && buffers.iter().any(|b| b.2) {
            return Err(());
        }
        total += u64::from(len);
        if total > u64::from(u32::MAX) {
            return Err(());
        }
        buffers.push((addr, len, writable));
        if flags & 1 == 0 {
            return Ok(Some((head, buffers)));
        }
        if next >= entries {
            return Err(());
        }
        index = next;
    }
}

/// The invariants every accepted chain keeps.
fn check_chain(chain: &Chain, base: u64, size: u16) -> Result<(), TestCaseError> {
    let end = base as u128 + MEM as u128;
    prop_assert!(chain.head() < size);
    let count = chain.readable().len() + chain.writable().len();
    prop_assert!(
        count <= usize::from(size),
        "{count} buffers in a queue of {size}"
    );
    for (part, total) in [
        (chain.readable(), chain.readable_len()),
        (chain.writable(), chain.writable_len()),
    ] {
        let mut sum = 0u64;
        for b in part {
            prop_assert!(b.gpa >= base, "buffer {b:?} below memory at {base:#x}");
            prop_assert!(
                b.gpa as u128 + u128::from(b.len) <= end,
                "buffer {b:?} beyond memory ending at {end:#x}"
            );
            sum += u64::from(b.len);
        }
        prop_assert_eq!(sum, u64::from(total));
    }
    prop_assert!(
        u64::from(chain.readable_len()) + u64::from(chain.writable_len()) <= u64::from(u32::MAX)
    );
    Ok(())
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let base = match case.base_choice {
        0 => 0,
        1 => 0x4000_0000,
        _ => 0u64.wrapping_sub(MEM + 16),
    };
    let size = 1u16 << case.size_shift;
    let n = u64::from(size);

    // Random bytes everywhere, then the structures over them.
    let mem = VecMemory::new(base, MEM as usize);
    {
        let mut state = case.seed | 1;
        let mut bytes = mem.bytes.borrow_mut();
        for chunk in bytes.chunks_mut(8) {
            let r = xorshift(&mut state).to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
    let (choice, d, a, u) = case.layout;
    let (desc_off, avail_off, used_off) = if choice <= 5 {
        let avail = 16 * n;
        let used = (avail + 6 + 2 * n).next_multiple_of(4);
        (0, avail, used)
    } else {
        (u64::from(d), u64::from(a), u64::from(u))
    };
    let config = QueueConfig {
        size,
        desc_table: base.wrapping_add(desc_off),
        driver_ring: base.wrapping_add(avail_off),
        device_ring: base.wrapping_add(used_off),
        features: case.features,
    };
    let mut queue = match Queue::new(config, &mem) {
        Ok(queue) => queue,
        Err(_) => {
            // Refused: the layout must really be bad.
            let aligned = desc_off % 16 == 0 && avail_off % 2 == 0 && used_off % 4 == 0;
            let fits = [
                (desc_off, 16 * n),
                (avail_off, 6 + 2 * n),
                (used_off, 6 + 8 * n),
            ]
            .iter()
            .all(|&(off, len)| off + len <= MEM);
            prop_assert!(!(aligned && fits), "a good layout was refused");
            return Ok(());
        }
    };
    lay_out(case, &mem, base, &config);

    let mem = FuzzMemory {
        inner: mem,
        chaos: case.chaos,
        rng: Cell::new(case.seed.rotate_left(17) | 1),
    };
    let mut blk = BlkDevice::new(DISK_SECTORS, case.seed.is_multiple_of(3), [0x41; 20]);
    let mut disk = VecDisk::new((DISK_SECTORS * 512) as usize);
    let mut in_flight: Vec<Chain> = Vec::new();
    for action in &case.actions {
        match *action {
            Action::Pop | Action::PopAndHandle => {
                let mut snapshot = (!case.chaos).then(|| mem.inner.bytes.borrow().clone());
                let (next_avail, flying) = (queue.next_avail(), queue.in_flight());
                let result = queue.pop(&mem);
                if let Some(snapshot) = snapshot.as_mut() {
                    let model = model_pop(snapshot, base, &config, next_avail, flying);
                    let got = result.as_ref().map_err(|_| ()).map(|chain| {
                        chain.as_ref().map(|c| {
                            let r = c.readable().iter().map(|b| (b.gpa, b.len, false));
                            let w = c.writable().iter().map(|b| (b.gpa, b.len, true));
                            (c.head(), r.chain(w).collect::<Vec<_>>())
                        })
                    });
                    prop_assert_eq!(got, model, "pop disagrees with the model: {:?}", result);
                }
                match result {
                    Ok(Some(chain)) => {
                        check_chain(&chain, base, size)?;
                        prop_assert_eq!(queue.next_avail(), next_avail.wrapping_add(1));
                        if matches!(action, Action::PopAndHandle) {
                            if let Ok(written) = blk.handle(&chain, &mem, &mut disk) {
                                prop_assert!(written <= chain.writable_len());
                                // The status byte went last, at the end of
                                // the writable part.
                                let status = chain.writable().iter().rev().find(|b| b.len > 0);
                                prop_assert!(status.is_some());
                                if let (Some(b), false) = (status, case.chaos) {
                                    let byte = mem.inner.get(b.gpa + u64::from(b.len) - 1, 1)[0];
                                    prop_assert!(byte <= 2, "status byte {byte}");
                                }
                            }
                            prop_assert_eq!(disk.violations, 0);
                            if blk.read_only() {
                                let wrote =
                                    disk.ops.iter().any(|op| matches!(op, Op::Write { .. }));
                                prop_assert!(!wrote, "a read-only disk was written");
                            }
                            prop_assert!(queue.push_used(&mem, chain.head(), 0).is_ok());
                        } else {
                            in_flight.push(chain);
                        }
                    }
                    Ok(None) => prop_assert_eq!(queue.next_avail(), next_avail),
                    Err(_) => {
                        prop_assert_eq!(queue.next_avail(), next_avail);
                        prop_assert_eq!(queue.in_flight(), flying);
                    }
                }
            }
            Action::PushOldest(written) => {
                if !in_flight.is_empty() {
                    let chain = in_flight.remove(0);
                    let written = written % (chain.writable_len().saturating_add(1));
                    let before = queue.next_used();
                    prop_assert!(queue.push_used(&mem, chain.head(), written).is_ok());
                    let slot = u64::from(before % size);
                    let elem = mem.inner.get(config.device_ring + 4 + 8 * slot, 8);
                    prop_assert_eq!(&elem[..4], &u32::from(chain.head()).to_le_bytes());
                    prop_assert_eq!(&elem[4..], &written.to_le_bytes());
                    prop_assert_eq!(
                        mem.inner.get_u16(config.device_ring + 2),
                        before.wrapping_add(1)
                    );
                }
            }
            Action::PushAny(head) => {
                let before = (queue.next_used(), queue.in_flight());
                if queue.push_used(&mem, head, 0).is_err() {
                    prop_assert_eq!((queue.next_used(), queue.in_flight()), before);
                } else {
                    prop_assert!(head < size && before.1 > 0);
                    // The queue counts one chain fewer in flight.
                    in_flight.pop();
                }
            }
            Action::NeedsInterrupt => {
                let _ = queue.needs_interrupt(&mem);
            }
            Action::Publish(step) => {
                let gpa = config.driver_ring + 2;
                let idx = mem.inner.get_u16(gpa).wrapping_add(step);
                mem.inner.put_u16(gpa, idx);
            }
            Action::Scribble(offset, byte) => {
                let offset = u64::from(offset) % MEM;
                mem.inner.put(base + offset, &[byte]);
            }
            Action::DriverField(flags, value) => {
                let gpa = if flags {
                    config.driver_ring
                } else {
                    config.driver_ring + 4 + 2 * n
                };
                mem.inner.put_u16(gpa, value);
            }
        }
        prop_assert!(queue.in_flight() <= u32::from(size));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    })]

    /// The whole device side against arbitrary guests.
    #[test]
    fn fuzz_queue_and_blk(case in case()) {
        run_case(&case)?;
    }
}
