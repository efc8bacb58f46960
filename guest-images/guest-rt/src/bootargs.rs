//! Reading the bootargs: space-separated `key=value` words, where the last
//! `key=` counts and words without `=` are skipped. What the keys mean is
//! each guest's business; unknown keys are ignored, so the loader (or a
//! test runner) may add its own.

/// The value of the last `key=` in `bootargs`.
pub fn value<'a>(bootargs: &'a str, key: &str) -> Option<&'a str> {
    bootargs
        .split_ascii_whitespace()
        .filter_map(|word| word.split_once('='))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .next_back()
}

/// A decimal number, or a hex one with `0x`.
pub fn number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(digits) => u64::from_str_radix(digits, 16),
        None => text.parse(),
    }
    .ok()
}

/// A hex number, with or without `0x`.
pub fn hex(text: &str) -> Option<u64> {
    u64::from_str_radix(text.strip_prefix("0x").unwrap_or(text), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_value_counts() {
        let args = "console=ttyAMA0 test=psci flag iterations=4 iterations=0x10";
        assert_eq!(value(args, "test"), Some("psci"));
        assert_eq!(value(args, "iterations"), Some("0x10"));
        assert_eq!(value(args, "flag"), None);
        assert_eq!(value(args, "missing"), None);
        assert_eq!(value("", "test"), None);
        assert_eq!(value("a= b", "a"), Some(""));
    }

    #[test]
    fn numbers() {
        assert_eq!(number("4096"), Some(4096));
        assert_eq!(number("0x1000"), Some(4096));
        assert_eq!(number("1000h"), None);
        assert_eq!(number(""), None);
        assert_eq!(number("0x"), None);
        assert_eq!(number("-1"), None);
        assert_eq!(number("18446744073709551616"), None);
        assert_eq!(hex("1000"), Some(4096));
        assert_eq!(hex("0xdead"), Some(0xdead));
        assert_eq!(hex("xyz"), None);
    }
}
