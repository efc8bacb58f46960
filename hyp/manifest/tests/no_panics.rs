//! Property tests: the parsers take whatever the boot loader hands them
//! (arbitrary bytes, arbitrary text) without panicking, and whatever they
//! accept satisfies the documented invariants.

use manifest::{
    write_bundle, Bundle, Manifest, DATA_ALIGN, DISK_SECTOR, ENTRY_LEN, HEADER_LEN,
    MAX_PASSTHROUGH, MAX_VCPUS, MEMORY_GRANULE,
};
use proptest::prelude::*;

/// Checks what `Bundle::parse` promises about a bundle it accepted.
fn check_accepted(bytes: &[u8], bundle: &Bundle<'_>) {
    assert!(bundle.total_size() <= bytes.len());
    let base = bytes.as_ptr() as usize;
    let table_end = HEADER_LEN + bundle.len() * ENTRY_LEN;
    let mut previous_end = table_end;
    let mut names = Vec::new();
    for (name, data) in bundle.entries() {
        assert!(!name.is_empty());
        assert!(!names.contains(&name), "duplicate {name:?}");
        names.push(name);
        let offset = data.as_ptr() as usize - base;
        assert_eq!(offset % DATA_ALIGN, 0);
        assert!(offset >= previous_end);
        previous_end = offset + data.len();
        assert!(previous_end <= bundle.total_size());
    }
    assert!(bundle.get("manifest").is_some());
    let _ = bundle.manifest();
}

/// A valid bundle to mutate.
fn valid_bundle() -> Vec<u8> {
    write_bundle(
        "[[vm]]\nname = \"a\"\nvcpus = 1\nmemory = \"2M\"\nkernel = \"k\"\n",
        &[("k", &[0x5a; 3000][..]), ("initrd", &b"cpio"[..])],
    )
    .unwrap()
}

/// One mutation of a bundle.
#[derive(Debug, Clone)]
enum Mutation {
    /// Overwrite one byte, anywhere.
    Byte(usize, u8),
    /// Overwrite eight bytes in the header or entry table with a value
    /// likely to sit on a boundary.
    Word(usize, u64),
    /// Cut the bundle short.
    Truncate(usize),
}

fn mutation(len: usize) -> impl Strategy<Value = Mutation> {
    let table = HEADER_LEN + 3 * ENTRY_LEN;
    let interesting = prop_oneof![
        Just(0u64),
        Just(1u64),
        (0u64..4).prop_map(|page| page * 0x1000),
        0u64..0x3000,
        Just(u64::MAX),
        Just(u64::MAX - 0xfff),
        Just(len as u64),
        any::<u64>(),
    ];
    // The offset (0x30) or size (0x38) field of one of the three entries.
    let field = (0..3usize, 0..2usize)
        .prop_map(|(entry, which)| HEADER_LEN + entry * ENTRY_LEN + 0x30 + 8 * which);
    prop_oneof![
        4 => (0..len, any::<u8>()).prop_map(|(at, b)| Mutation::Byte(at, b)),
        4 => (0..table, any::<u8>()).prop_map(|(at, b)| Mutation::Byte(at, b)),
        2 => (0..table, interesting.clone()).prop_map(|(at, w)| Mutation::Word(at, w)),
        4 => (field, interesting).prop_map(|(at, w)| Mutation::Word(at, w)),
        1 => (0..len).prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match *mutation {
        Mutation::Byte(at, b) => {
            if let Some(slot) = bytes.get_mut(at) {
                *slot = b;
            }
        }
        Mutation::Word(at, w) => {
            for (i, b) in w.to_le_bytes().into_iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + i) {
                    *slot = b;
                }
            }
        }
        Mutation::Truncate(len) => bytes.truncate(len),
    }
}

/// A `key = value` line: mostly a valid value for the key, sometimes a value
/// from anywhere in the grammar, sometimes nothing (a missing key).
fn key_line(
    key: &'static str,
    valid: &'static str,
    wrong: &'static str,
) -> impl Strategy<Value = Option<String>> {
    let value = prop_oneof![
        30 => valid,
        3 => wrong,
        1 => "\"[a-z0-9 #\\\\\"-]{0,8}\"",
        1 => "(0x)?[0-9a-f_]{1,20}",
        1 => "\\[ ?(\"pl011\"|\"x\")?(, ?\"pl011\")? ?,? ?\\]?",
        1 => "[-+'{\\[\\]\"#a-z.=]{0,6}",
    ];
    let line = (value, "( #.*)?").prop_map(move |(v, comment)| format!("{key} = {v}{comment}"));
    prop_oneof![20 => line.prop_map(Some), 1 => Just(None)]
}

/// One `[[vm]]` section built from the grammar's pieces, in random order,
/// so the property reaches the value checks and often a valid VM rather than
/// stopping at the first unknown character.
fn section() -> impl Strategy<Value = Vec<String>> {
    let header = prop_oneof![
        8 => Just("[[vm]]".to_string()),
        1 => "\\[{1,2} ?[a-z]{0,3} ?\\]{0,2}",
    ];
    let keys = (
        key_line("name", "\"[a-c]{1,2}\"", "\"(|a b|[a-z]{33})\""),
        key_line("vcpus", "(1|2|8|0x4)", "(0|9|0x1_0000_0000|\"2\")"),
        key_line(
            "memory",
            "(\"(2|4|64)[MG]\"|0x200000|2_097_152)",
            "\"(0|1|3)[KM]?\"",
        ),
        key_line("kernel", "\"(k|kernel\\.bin)\"", "\"(|manifest)\""),
        key_line("initrd", "\"rootfs\\.cpio\"", "\"\\t\""),
        key_line("bootargs", "\"[a-z=, ]{0,10}\"", "1"),
        key_line("devices", "\\[(\"pl011\")?\\]", "\\[\"virtio\"\\]"),
        // Usually absent; when present, often a name another section has,
        // so chains, self references and cycles all come up.
        prop_oneof![
            2 => Just(None),
            1 => key_line("after", "\"[a-c]{1,2}\"", "\"(|a b)\""),
        ],
    );
    // The device keys, each usually absent; networks and MACs from small
    // sets, so ports share networks and MACs clash.
    let devices = (
        prop_oneof![
            2 => Just(None),
            1 => key_line("disk", "\"(0|1M|0x200)\\+(512|2M|1G)\"", "\"(0\\+0|1\\+512|17179869183G\\+1G|1M)\""),
        ],
        prop_oneof![
            3 => Just(None),
            1 => key_line("disk_access", "\"read-(only|write)\"", "\"(ro|)\""),
        ],
        prop_oneof![
            2 => Just(None),
            1 => key_line("network", "\"lan[01]\"", "\"(|LAN|a b)\""),
        ],
        prop_oneof![
            2 => Just(None),
            1 => key_line("mac", "\"02:00:00:00:00:0[12]\"", "\"(01:00:00:00:00:01|00:00:00:00:00:00|02:00)\""),
        ],
        prop_oneof![
            2 => Just(None),
            1 => key_line(
                "passthrough",
                "\\[(\"(0000:)?0[01]:0[0-9a-f]\\.[0-7]\", ?){0,3}\\]",
                "(\\[\"(00:20\\.0|00:00\\.8|0001:00:01\\.0|1:1\\.1)\"\\]|\\[\"00:01\\.0\", \"00:01\\.0\"\\]|true)",
            ),
        ],
        prop_oneof![
            2 => Just(None),
            1 => key_line("passthrough_required", "(true|false)", "(\"true\"|1|yes)"),
        ],
    );
    let junk = proptest::collection::vec(
        prop_oneof![
            8 => "[ \t]*(#.*)?\r?",
            1 => "memroy = \"2M\"",
            1 => "vcpus = 1",
            1 => ".{0,20}",
        ],
        0..2,
    );
    (header, keys, devices, junk).prop_flat_map(|(header, keys, io, junk)| {
        let (name, vcpus, memory, kernel, initrd, bootargs, devices, after) = keys;
        let (disk, disk_access, network, mac, passthrough, passthrough_required) = io;
        let body: Vec<String> = [
            name,
            vcpus,
            memory,
            kernel,
            initrd,
            bootargs,
            devices,
            after,
            disk,
            disk_access,
            network,
            mac,
            passthrough,
            passthrough_required,
        ]
        .into_iter()
        .flatten()
        .chain(junk)
        .collect();
        Just(body).prop_shuffle().prop_map(move |body| {
            let mut lines = vec![header.clone()];
            lines.extend(body);
            lines
        })
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(bundle) = Bundle::parse(&bytes) {
            check_accepted(&bytes, &bundle);
        }
    }

    #[test]
    fn arbitrary_bytes_behind_a_valid_header_never_panic(
        count in 0u32..4,
        total in 0u64..0x3000,
        table in proptest::collection::vec(any::<u8>(), 0..(3 * ENTRY_LEN)),
    ) {
        let mut bytes = b"HYPBNDL1".to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&count.to_le_bytes());
        bytes.extend_from_slice(&total.to_le_bytes());
        bytes.extend_from_slice(&table);
        bytes.resize(0x3000, 0);
        if let Ok(bundle) = Bundle::parse(&bytes) {
            check_accepted(&bytes, &bundle);
        }
    }

    #[test]
    fn mutated_bundles_never_panic(
        mutations in proptest::collection::vec(mutation(valid_bundle().len()), 1..6),
    ) {
        let mut bytes = valid_bundle();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if let Ok(bundle) = Bundle::parse(&bytes) {
            check_accepted(&bytes, &bundle);
        }
    }

    #[test]
    fn written_bundles_read_back(
        images in proptest::collection::btree_map("[a-z.]{1,48}", proptest::collection::vec(any::<u8>(), 0..5000), 0..8),
        text in ".{0,100}",
    ) {
        let images: Vec<(&str, &[u8])> = images
            .iter()
            .filter(|(name, _)| name.as_str() != "manifest")
            .map(|(name, data)| (name.as_str(), data.as_slice()))
            .collect();
        let bytes = write_bundle(&text, &images).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        check_accepted(&bytes, &bundle);
        prop_assert_eq!(bundle.manifest(), Ok(text.as_str()));
        let read: Vec<_> = bundle.entries().skip(1).collect();
        prop_assert_eq!(read, images);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        let _ = Manifest::parse(&text);
    }

    #[test]
    fn manifest_like_text_never_panics_and_accepted_vms_are_valid(
        sections in proptest::collection::vec(section(), 0..5),
        preamble in prop_oneof![8 => "(#.*\n)?", 1 => ".{0,10}\n"],
    ) {
        let text = format!("{preamble}{}", sections.concat().join("\n"));
        let line_count = text.split('\n').count() as u32;
        if let Ok(manifest) = Manifest::parse(&text) {
            for vm in &manifest.vms {
                prop_assert!(vm.line >= 1 && vm.line <= line_count);
                prop_assert!(!vm.name.is_empty());
                match &vm.spec {
                    Ok(spec) => {
                        prop_assert_eq!(&spec.name, &vm.name);
                        prop_assert!((1..=MAX_VCPUS).contains(&spec.vcpus));
                        prop_assert!(spec.memory >= MEMORY_GRANULE);
                        prop_assert_eq!(spec.memory % MEMORY_GRANULE, 0);
                        prop_assert!(!spec.kernel.is_empty());
                        if let Some(disk) = &spec.disk {
                            prop_assert!(disk.size > 0);
                            prop_assert_eq!(disk.offset % DISK_SECTOR, 0);
                            prop_assert_eq!(disk.size % DISK_SECTOR, 0);
                            prop_assert!(disk.offset.checked_add(disk.size).is_some());
                        }
                        if let Some(net) = &spec.net {
                            prop_assert!(!net.network.is_empty());
                            prop_assert_eq!(net.mac[0] & 1, 0);
                            prop_assert_ne!(net.mac, [0; 6]);
                            let same_port = manifest
                                .good_vms()
                                .filter(|other| other.net.as_ref().is_some_and(|o| o.network == net.network && o.mac == net.mac))
                                .count();
                            prop_assert_eq!(same_port, 1, "MAC shared on {}", net.network);
                        }
                        prop_assert!(spec.passthrough.len() <= MAX_PASSTHROUGH);
                        for (i, function) in spec.passthrough.iter().enumerate() {
                            prop_assert!(function.device() < 32 && function.function() < 8);
                            prop_assert!(!spec.passthrough[..i].contains(function), "{} twice", function);
                        }
                        // `after` leads through good VMs only, never back
                        // to where it started: every VM can start.
                        let mut current = spec;
                        let mut steps = 0;
                        while let Some(after) = &current.after {
                            prop_assert_ne!(after, &current.name);
                            let next = manifest.good_vms().find(|other| &other.name == after);
                            prop_assert!(next.is_some(), "{} waits for {}, not a good VM", current.name, after);
                            current = next.unwrap();
                            steps += 1;
                            prop_assert!(steps <= manifest.vms.len(), "an after cycle through {}", spec.name);
                        }
                    }
                    Err(error) => {
                        prop_assert!(error.line() >= vm.line && error.line() <= line_count);
                        prop_assert!(vm.error_message().is_some());
                    }
                }
            }
        }
    }
}
