//! The hypervisor's own options in the kernel command line.
//!
//! Options are whitespace-separated words; ours start with `hyp.`, as in
//! `hyp.fault=data-abort`. Everything else belongs to someone else and is
//! skipped. Quoting (`key="a b"`) is not supported: values are single words.

/// The prefix that marks an option as the hypervisor's.
pub const PREFIX: &str = "hyp.";

/// One `hyp.` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypOption<'a> {
    /// The name after `hyp.`, e.g. `fault`.
    pub key: &'a str,
    /// What follows the first `=`, or `None` for a bare `hyp.key`.
    pub value: Option<&'a str>,
}

/// The `hyp.` options of `bootargs`, in order.
///
/// A word that is exactly `hyp.` or starts `hyp.=` has no key and is skipped.
pub fn hyp_options(bootargs: &str) -> impl Iterator<Item = HypOption<'_>> {
    bootargs.split_ascii_whitespace().filter_map(|word| {
        let option = word.strip_prefix(PREFIX)?;
        let (key, value) = match option.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (option, None),
        };
        (!key.is_empty()).then_some(HypOption { key, value })
    })
}

/// The value of the last `hyp.key=value` in `bootargs`, as the last
/// occurrence wins on a Linux command line too. A bare `hyp.key` has the
/// value `""`.
pub fn value<'a>(bootargs: &'a str, key: &str) -> Option<&'a str> {
    hyp_options(bootargs)
        .filter(|o| o.key == key)
        .last()
        .map(|o| o.value.unwrap_or(""))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn all(bootargs: &str) -> Vec<(&str, Option<&str>)> {
        hyp_options(bootargs).map(|o| (o.key, o.value)).collect()
    }

    #[test]
    fn only_hyp_options_are_returned_in_order() {
        assert_eq!(
            all("console=ttyAMA0 hyp.fault=data-abort root=/dev/vda hyp.log=debug"),
            [("fault", Some("data-abort")), ("log", Some("debug"))]
        );
    }

    #[test]
    fn empty_and_whitespace_only_command_lines_have_no_options() {
        assert!(all("").is_empty());
        assert!(all(" \t\n ").is_empty());
    }

    #[test]
    fn bare_option_has_no_value_and_empty_value_is_kept() {
        assert_eq!(
            all("hyp.verbose hyp.name="),
            [("verbose", None), ("name", Some(""))]
        );
    }

    #[test]
    fn value_keeps_everything_after_the_first_equals() {
        assert_eq!(all("hyp.map=a=b"), [("map", Some("a=b"))]);
    }

    #[test]
    fn words_without_key_or_with_other_prefixes_are_skipped() {
        assert!(all("hyp. hyp.=x xhyp.fault=1 HYP.fault=1 hyp").is_empty());
    }

    #[test]
    fn tabs_and_newlines_separate_options() {
        assert_eq!(
            all("hyp.a=1\thyp.b=2\nhyp.c=3"),
            [("a", Some("1")), ("b", Some("2")), ("c", Some("3"))]
        );
    }

    #[test]
    fn last_occurrence_wins_in_value_lookup() {
        let args = "hyp.fault=none quiet hyp.fault=data-abort";
        assert_eq!(value(args, "fault"), Some("data-abort"));
        assert_eq!(value("hyp.trace", "trace"), Some(""));
        assert_eq!(value(args, "missing"), None);
        assert_eq!(value("fault=x", "fault"), None);
    }
}
