//! Synthetic arm64 Image files for the tests.

#![allow(dead_code)]

/// The fields of a header to build; `Default` is a current (v5.8+) Linux
/// kernel: text_offset 0, 4K pages, 2 MiB effective size, 1 MiB file.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub code0: u32,
    pub code1: u32,
    pub text_offset: u64,
    pub image_size: u64,
    pub flags: u64,
    pub magic: u32,
    pub file_len: usize,
}

impl Default for Header {
    fn default() -> Self {
        Self {
            // `add x13, x18, #0x16` ("MZ") and `b primary_entry`, as Linux has.
            code0: 0x91005a4d,
            code1: 0x14000000 | 0x100,
            text_offset: 0,
            image_size: 2 << 20,
            flags: 0b0010,
            magic: 0x644d_5241,
            file_len: 1 << 20,
        }
    }
}

impl Header {
    /// The file: the header followed by zeros up to `file_len` (or the
    /// header cut to `file_len` if shorter).
    pub fn build(&self) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[0..4].copy_from_slice(&self.code0.to_le_bytes());
        h[4..8].copy_from_slice(&self.code1.to_le_bytes());
        h[8..16].copy_from_slice(&self.text_offset.to_le_bytes());
        h[16..24].copy_from_slice(&self.image_size.to_le_bytes());
        h[24..32].copy_from_slice(&self.flags.to_le_bytes());
        h[56..60].copy_from_slice(&self.magic.to_le_bytes());
        h[60..64].copy_from_slice(&0x40u32.to_le_bytes());
        h.resize(self.file_len, 0);
        h
    }
}
