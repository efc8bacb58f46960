//! One line of the manifest's TOML subset, turned into a [`Line`].
//!
//! The subset is line based on purpose: a value never spans lines, so a
//! mistake on one line cannot swallow the lines after it, and the parser can
//! attribute every error to one line and so to one `[[vm]]` section. Anything
//! TOML has that the subset does not (tables other than `[[vm]]`, inline
//! tables, quoted or dotted keys, literal or multi-line strings, floats,
//! dates, signed integers) is refused with a reason rather than
//! misread. Everything accepted means the same as it does in TOML 1.0.
//! Booleans (`true`, `false`) are accepted as values of their own, not in
//! arrays.

use alloc::string::String;
use alloc::vec::Vec;

/// Why a line is not part of the subset; shown after "syntax error: ".
pub(crate) type Reason = &'static str;

/// What one line holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'t> {
    /// Nothing but whitespace and perhaps a comment.
    Blank,
    /// A table header: a section boundary whether or not it is well formed,
    /// so a broken header still ends the section before it. `Ok` is
    /// `[[vm]]`; anything else is `Err` with the reason.
    Header(Result<(), Reason>),
    /// `key = value`.
    KeyValue {
        /// A bare key, `[A-Za-z0-9_-]+`.
        key: &'t str,
        /// The value, already unescaped.
        value: Value,
    },
}

/// A value of the subset.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// A basic (double-quoted) string, unescaped.
    Str(String),
    /// A non-negative integer, decimal or `0x` hex, underscores allowed
    /// between digits.
    Int(u64),
    /// An array of strings on one line.
    StrArray(Vec<String>),
    /// `true` or `false`.
    Bool(bool),
}

/// Classifies one line (without its line terminator).
///
/// # Errors
///
/// A key-value line that is not in the subset. A malformed table header is
/// not an error here but [`Line::Header`] with `Err`, because it still starts
/// a new section.
pub(crate) fn lex_line(line: &str) -> Result<Line<'_>, Reason> {
    let mut cursor = Cursor { text: line, pos: 0 };
    cursor.skip_whitespace();
    match cursor.peek() {
        None | Some(b'#') => Ok(Line::Blank),
        Some(b'[') => Ok(Line::Header(cursor.header())),
        Some(_) => cursor.key_value(),
    }
}

/// Parses an integer token: decimal without leading zeros, or `0x` hex; an
/// underscore may sit between two digits (TOML 1.0, "Integer").
///
/// # Errors
///
/// Not such a token, or too large for 64 bits.
pub(crate) fn parse_integer(token: &str) -> Result<u64, Reason> {
    let (digits, radix) = match token.strip_prefix("0x") {
        Some(hex) => (hex, 16),
        None => (token, 10),
    };
    if digits.is_empty() {
        return Err("an integer needs digits");
    }
    if radix == 10 && digits.len() > 1 && digits.starts_with('0') {
        return Err("decimal integers must not have leading zeros");
    }
    let mut value: u64 = 0;
    let mut previous_was_digit = false;
    for c in digits.chars() {
        if c == '_' {
            if !previous_was_digit {
                return Err("an underscore in an integer must sit between two digits");
            }
            previous_was_digit = false;
            continue;
        }
        let digit = c.to_digit(radix).ok_or(if radix == 16 {
            "not a hexadecimal integer"
        } else {
            "not an integer (floats are not supported)"
        })?;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or("integer too large for 64 bits")?;
        previous_was_digit = true;
    }
    if !previous_was_digit {
        return Err("an underscore in an integer must sit between two digits");
    }
    Ok(value)
}

/// A position in one line. `pos` only ever moves past ASCII bytes or whole
/// characters, so it is always a character boundary.
struct Cursor<'t> {
    text: &'t str,
    pos: usize,
}

impl<'t> Cursor<'t> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn rest(&self) -> &'t str {
        self.text.get(self.pos..).unwrap_or("")
    }

    /// Skips TOML whitespace: spaces and tabs.
    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Consumes `prefix` if the rest starts with it.
    fn eat(&mut self, prefix: &str) -> bool {
        if self.rest().starts_with(prefix) {
            self.pos += prefix.len();
            true
        } else {
            false
        }
    }

    /// Takes the longest run of ASCII bytes matching `accept`.
    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> &'t str {
        let start = self.pos;
        while self.peek().is_some_and(&accept) {
            self.pos += 1;
        }
        self.text.get(start..self.pos).unwrap_or("")
    }

    /// After a value or header: only whitespace and a comment may follow.
    fn end_of_line(&mut self, what: Reason) -> Result<(), Reason> {
        self.skip_whitespace();
        match self.peek() {
            None | Some(b'#') => Ok(()),
            Some(_) => Err(what),
        }
    }

    /// `[[vm]]`, with the whitespace TOML allows inside the brackets.
    fn header(&mut self) -> Result<(), Reason> {
        if !self.eat("[[") {
            return Err("only [[vm]] tables are supported (this is a [table])");
        }
        self.skip_whitespace();
        let name = self.take_while(is_bare_key_byte);
        self.skip_whitespace();
        if !self.eat("]]") {
            return Err("malformed table header; expected [[vm]]");
        }
        if name != "vm" {
            return Err("only [[vm]] tables are supported");
        }
        self.end_of_line("unexpected text after the table header")
    }

    /// `key = value`, then optional whitespace and comment.
    fn key_value(&mut self) -> Result<Line<'t>, Reason> {
        let key = self.take_while(is_bare_key_byte);
        if key.is_empty() {
            return Err(match self.peek() {
                Some(b'"' | b'\'') => "quoted keys are not supported",
                Some(b'=') => "missing key before `=`",
                _ => "expected `key = value`, a [[vm]] header or a comment",
            });
        }
        self.skip_whitespace();
        match self.peek() {
            Some(b'=') => self.pos += 1,
            Some(b'.') => return Err("dotted keys are not supported"),
            _ => return Err("expected `=` after the key"),
        }
        self.skip_whitespace();
        let value = self.value()?;
        self.end_of_line("unexpected text after the value")?;
        Ok(Line::KeyValue { key, value })
    }

    fn value(&mut self) -> Result<Value, Reason> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::Str),
            Some(b'[') => self.array().map(Value::StrArray),
            Some(b'0'..=b'9') => self.integer().map(Value::Int),
            Some(b'+' | b'-') => Err("signed numbers are not supported"),
            Some(b'\'') => Err("literal strings ('...') are not supported; use double quotes"),
            Some(b'{') => Err("inline tables are not supported"),
            None | Some(b'#') => Err("missing value after `=`"),
            Some(b't' | b'f') => self.boolean().map(Value::Bool),
            Some(_) => Err("expected a string, an integer, a boolean or an array of strings"),
        }
    }

    /// An integer token ends at whitespace, `,`, `]` or `#`; taking the
    /// characters of floats and dates too makes `1.5` one bad token rather
    /// than `1` followed by junk.
    fn integer(&mut self) -> Result<u64, Reason> {
        let token = self.take_while(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-' | b':')
        });
        parse_integer(token)
    }

    /// `true` or `false`: the whole token, so `trueish` is refused rather
    /// than read as `true` followed by junk.
    fn boolean(&mut self) -> Result<bool, Reason> {
        match self.take_while(is_bare_key_byte) {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("expected a string, an integer, a boolean or an array of strings"),
        }
    }

    /// A basic string: `"..."` with the escapes `\" \\ \n \t`.
    fn string(&mut self) -> Result<String, Reason> {
        // The opening quote.
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        loop {
            let Some((at, c)) = chars.next() else {
                return Err("unterminated string (a string must end on its line)");
            };
            match c {
                '"' => {
                    self.pos += at + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, '"')) => out.push('"'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some(_) => return Err("unsupported escape; use \\\" \\\\ \\n or \\t"),
                    None => return Err("unterminated string (a string must end on its line)"),
                },
                // TOML allows tab but no other control character in a basic string.
                '\t' => out.push(c),
                c if c.is_control() => return Err("control character in a string"),
                c => out.push(c),
            }
        }
    }

    /// `[ "a", "b" ]`, one line, a trailing comma allowed.
    fn array(&mut self) -> Result<Vec<String>, Reason> {
        // The opening bracket.
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_whitespace();
            match self.peek() {
                Some(b']') => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(b'"') => items.push(self.string()?),
                None | Some(b'#') => {
                    return Err("unterminated array (an array must end on its line)")
                }
                Some(_) => return Err("arrays may hold only strings"),
            }
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {}
                None | Some(b'#') => {
                    return Err("unterminated array (an array must end on its line)")
                }
                Some(_) => return Err("expected `,` or `]` in the array"),
            }
        }
    }
}

/// The characters of a TOML bare key.
fn is_bare_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn kv(key: &str, value: Value) -> Result<Line<'_>, Reason> {
        Ok(Line::KeyValue { key, value })
    }

    #[test]
    fn blank_and_comment_lines() {
        assert_eq!(lex_line(""), Ok(Line::Blank));
        assert_eq!(lex_line("   \t "), Ok(Line::Blank));
        assert_eq!(lex_line("  # a comment = [[vm]]"), Ok(Line::Blank));
    }

    #[test]
    fn vm_headers_with_and_without_inner_whitespace() {
        assert_eq!(lex_line("[[vm]]"), Ok(Line::Header(Ok(()))));
        assert_eq!(lex_line("  [[ vm ]]  # first"), Ok(Line::Header(Ok(()))));
    }

    #[test]
    fn other_headers_are_sections_in_error() {
        for line in [
            "[vm]", "[[vms]]", "[[vm]", "[[vm]] x", "[[vm.x]]", "[server]",
        ] {
            assert!(matches!(lex_line(line), Ok(Line::Header(Err(_)))), "{line}");
        }
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            lex_line(r#"name = "a\"b\\c\nd\te" # trailing"#),
            kv("name", Value::Str("a\"b\\c\nd\te".to_string()))
        );
        assert_eq!(lex_line("k=\"\""), kv("k", Value::Str(String::new())));
        assert_eq!(
            lex_line("k = \"# not a comment\""),
            kv("k", Value::Str("# not a comment".to_string()))
        );
        assert_eq!(
            lex_line("k = \"héllo\t\""),
            kv("k", Value::Str("héllo\t".to_string()))
        );
    }

    #[test]
    fn integers_in_decimal_hex_and_with_underscores() {
        assert_eq!(lex_line("k = 0"), kv("k", Value::Int(0)));
        assert_eq!(lex_line("k = 64_000"), kv("k", Value::Int(64_000)));
        assert_eq!(
            lex_line("k = 0x4000_0000"),
            kv("k", Value::Int(0x4000_0000))
        );
        assert_eq!(lex_line("k = 0xFf"), kv("k", Value::Int(255)));
        assert_eq!(
            lex_line("k = 18446744073709551615"),
            kv("k", Value::Int(u64::MAX))
        );
    }

    #[test]
    fn bad_integers() {
        for token in [
            "012",
            "1__0",
            "_1",
            "1_",
            "0x",
            "0x_1",
            "0xg",
            "1.5",
            "1e3",
            "18446744073709551616",
            "0X10",
        ] {
            assert!(parse_integer(token).is_err(), "{token}");
            assert!(lex_line(&alloc::format!("k = {token}")).is_err(), "{token}");
        }
    }

    #[test]
    fn booleans() {
        assert_eq!(lex_line("k = true"), kv("k", Value::Bool(true)));
        assert_eq!(lex_line("k=false # no"), kv("k", Value::Bool(false)));
    }

    #[test]
    fn arrays_of_strings() {
        assert_eq!(lex_line("d = []"), kv("d", Value::StrArray(vec![])));
        assert_eq!(
            lex_line(r#"d = [ "a" , "b", ]  # c"#),
            kv("d", Value::StrArray(vec!["a".to_string(), "b".to_string()]))
        );
    }

    #[test]
    fn unsupported_syntax_is_refused() {
        for line in [
            "k = [1, 2]",
            "k = [\"a\"",
            "k = [\"a\" \"b\"]",
            "k = [[\"a\"]]",
            "k = { a = 1 }",
            "k = 'lit'",
            "k = True",
            "k = trueish",
            "k = fals",
            "k = [true]",
            "k = true false",
            "k = -1",
            "k = +1",
            "k = 1979-05-27",
            "k = \"unterminated",
            "k = \"bad \\q escape\"",
            "k = \"\\",
            "k = \"ctl \u{1}\"",
            "k =",
            "k = # nothing",
            "k = \"a\" \"b\"",
            "k = 1 2",
            "\"quoted\" = 1",
            "a.b = 1",
            "= 1",
            "k 1",
            "k",
            "héllo = 1",
            "k = nan",
        ] {
            assert!(lex_line(line).is_err(), "{line}");
        }
    }
}
