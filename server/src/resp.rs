//! RESP requests in, RESP2/RESP3 replies out.
//!
//! The request parser is hand-written on purpose. `redis-protocol` (6.x), the maintained crate,
//! has no limits (its codec takes only a RESP2/RESP3 flag) and keeps no state between reads: on
//! an incomplete frame its `decode` returns nothing and the caller parses the whole buffer again
//! after the next read, which is quadratic for a large array sent slowly. This parser keeps its
//! place (the arguments read so far, how far the current line was searched), so each byte is
//! looked at once, and it checks every limit when a header arrives, before it allocates or waits
//! for the bytes that header announces.
//!
//! Errors are worded as Redis words them, and each one ends the connection, as in Redis.

use bytes::{Buf, Bytes, BytesMut};

/// Redis's longest inline request (and longest header line), 64 KiB.
pub const INLINE_MAX: usize = 64 * 1024;

/// Most argument slots made for a multibulk command before its arguments arrive.
const ARGS_UP_FRONT: usize = 64;

/// Limits of one connection's requests (tighter before AUTH).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most arguments in one command.
    pub max_args: usize,
    /// Longest bulk argument, in bytes.
    pub max_bulk: usize,
    /// Most bytes of one command plus the unparsed input held for a client.
    pub max_buffer: usize,
    /// Whether these are the limits of a client that has not authenticated yet (the errors
    /// then say "unauthenticated", as Redis's do).
    pub unauthenticated: bool,
}

/// A request the parser refuses; the connection is closed after the error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoError {
    /// `*` followed by no number, or more arguments than allowed.
    InvalidMultibulkLength,
    /// More than the unauthenticated argument limit before AUTH.
    UnauthenticatedMultibulkLength,
    /// `$` followed by no number, a negative one, or one over the bulk limit; an inline argument
    /// over the bulk limit.
    InvalidBulkLength,
    /// A bulk (or inline argument) over the unauthenticated bulk limit before AUTH.
    UnauthenticatedBulkLength,
    /// An argument of a multibulk request did not start with `$`.
    ExpectedDollar(u8),
    /// An inline request longer than [`INLINE_MAX`] without a newline.
    TooBigInline,
    /// A `*` header longer than [`INLINE_MAX`] without a line end.
    TooBigMultibulkCount,
    /// A `$` header longer than [`INLINE_MAX`] without a line end.
    TooBigBulkCount,
    /// An inline request whose quotes do not close.
    UnbalancedQuotes,
    /// The command being received and the unparsed input exceed the query buffer limit.
    QueryBufferLimit,
}

impl ProtoError {
    /// The error text of the reply, without the leading `-ERR `.
    pub fn message(&self) -> String {
        let m = match self {
            ProtoError::InvalidMultibulkLength => "invalid multibulk length",
            ProtoError::UnauthenticatedMultibulkLength => "unauthenticated multibulk length",
            ProtoError::InvalidBulkLength => "invalid bulk length",
            ProtoError::UnauthenticatedBulkLength => "unauthenticated bulk length",
            ProtoError::ExpectedDollar(b) => {
                let c = if b.is_ascii_graphic() || *b == b' ' { *b as char } else { '?' };
                return format!("Protocol error: expected '$', got '{c}'");
            }
            ProtoError::TooBigInline => "too big inline request",
            ProtoError::TooBigMultibulkCount => "too big mbulk count string",
            ProtoError::TooBigBulkCount => "too big bulk count string",
            ProtoError::UnbalancedQuotes => "unbalanced quotes in request",
            ProtoError::QueryBufferLimit => "query buffer limit reached",
        };
        format!("Protocol error: {m}")
    }
}

/// The arguments of one command, the name first.
pub type Args = Vec<Bytes>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the first byte of a command.
    Start,
    /// In a multibulk request: `left` arguments to go, the next one's `$` header expected.
    Header { left: usize },
    /// In a multibulk request: a bulk of `len` bytes (plus CRLF) expected, then `left` more.
    Bulk { len: usize, left: usize },
}

/// An incremental request parser: feed it the connection's buffer after every read.
#[derive(Debug)]
pub struct Parser {
    state: State,
    args: Args,
    /// How far the current line has been searched for its end already.
    scanned: usize,
    /// Bytes of the current command already taken out of the buffer.
    taken: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Parser { state: State::Start, args: Vec::with_capacity(8), scanned: 0, taken: 0 }
    }
}

impl Parser {
    /// A parser between commands.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next complete command in `buf` (taken out of it), `None` when more bytes are needed.
    /// Empty commands (an empty line, `*0`, `*-1`) are skipped, as Redis skips them.
    pub fn next(&mut self, buf: &mut BytesMut, limits: &Limits) -> Result<Option<Args>, ProtoError> {
        loop {
            match self.state {
                State::Start => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    if buf[0] != b'*' {
                        match self.inline(buf, limits)? {
                            None => return Ok(None),
                            // An empty line is no command.
                            Some(args) if args.is_empty() => continue,
                            Some(args) => return Ok(Some(args)),
                        }
                    }
                    let Some(n) = self.line(buf, ProtoError::TooBigMultibulkCount)? else { return Ok(None) };
                    let n = n.ok_or(ProtoError::InvalidMultibulkLength)?;
                    if n <= 0 {
                        self.done();
                        continue;
                    }
                    if n as u64 > limits.max_args as u64 {
                        return Err(if limits.unauthenticated {
                            ProtoError::UnauthenticatedMultibulkLength
                        } else {
                            ProtoError::InvalidMultibulkLength
                        });
                    }
                    // The count is a claim: room for a few arguments now, the rest made as they
                    // arrive (bounded by the query buffer), so `*<max_args>` alone costs little.
                    self.args.reserve((n as usize).min(ARGS_UP_FRONT));
                    self.state = State::Header { left: n as usize };
                }
                State::Header { left } => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    if buf[0] != b'$' {
                        return Err(ProtoError::ExpectedDollar(buf[0]));
                    }
                    let Some(len) = self.line(buf, ProtoError::TooBigBulkCount)? else { return Ok(None) };
                    let len = match len {
                        Some(l) if l >= 0 && (l as u64) <= limits.max_bulk as u64 => l as usize,
                        Some(l) if l >= 0 && limits.unauthenticated => {
                            return Err(ProtoError::UnauthenticatedBulkLength)
                        }
                        _ => return Err(ProtoError::InvalidBulkLength),
                    };
                    if self.taken + len + 2 > limits.max_buffer {
                        return Err(ProtoError::QueryBufferLimit);
                    }
                    // The limits hold, so a large bulk may now have its room made at once
                    // rather than by repeated doubling while it arrives.
                    if buf.len() < len + 2 {
                        buf.reserve(len + 2 - buf.len());
                    }
                    self.state = State::Bulk { len, left: left - 1 };
                }
                State::Bulk { len, left } => {
                    if buf.len() < len + 2 {
                        return Ok(None);
                    }
                    let arg = buf.split_to(len).freeze();
                    // Redis does not check the two bytes after a bulk either.
                    buf.advance(2);
                    self.taken += len + 2;
                    self.args.push(arg);
                    if left == 0 {
                        let args = std::mem::replace(&mut self.args, Vec::with_capacity(8));
                        self.done();
                        return Ok(Some(args));
                    }
                    self.state = State::Header { left };
                }
            }
        }
    }

    /// Bytes of the command being received that have left the buffer already (they count
    /// toward the query buffer limit).
    pub fn pending(&self) -> usize {
        self.taken
    }

    fn done(&mut self) {
        self.state = State::Start;
        self.taken = 0;
        self.scanned = 0;
        self.args.clear();
    }

    /// A `*n` or `$n` header line: `Ok(None)` when incomplete, `Ok(Some(None))` when it holds
    /// no valid number. The line ends at `\r` plus one byte, as in Redis.
    fn line(&mut self, buf: &mut BytesMut, too_long: ProtoError) -> Result<Option<Option<i64>>, ProtoError> {
        let from = self.scanned.max(1);
        let Some(cr) = memchr(b'\r', &buf[from.min(buf.len())..]).map(|i| i + from) else {
            self.scanned = buf.len();
            if buf.len() > INLINE_MAX {
                return Err(too_long);
            }
            return Ok(None);
        };
        if cr > INLINE_MAX {
            return Err(too_long);
        }
        if cr + 2 > buf.len() {
            self.scanned = cr;
            return Ok(None);
        }
        let n = parse_int(&buf[1..cr]);
        buf.advance(cr + 2);
        self.taken += cr + 2;
        self.scanned = 0;
        Ok(Some(n))
    }

    /// One inline line: `None` when incomplete, its arguments (maybe none) otherwise.
    fn inline(&mut self, buf: &mut BytesMut, limits: &Limits) -> Result<Option<Args>, ProtoError> {
        let from = self.scanned.min(buf.len());
        let Some(nl) = memchr(b'\n', &buf[from..]).map(|i| i + from) else {
            self.scanned = buf.len();
            if buf.len() > INLINE_MAX {
                return Err(ProtoError::TooBigInline);
            }
            return Ok(None);
        };
        if nl > INLINE_MAX {
            return Err(ProtoError::TooBigInline);
        }
        // An inline command meets the limits a multibulk one does, whether it arrived in one
        // read or in many.
        if nl + 1 > limits.max_buffer {
            return Err(ProtoError::QueryBufferLimit);
        }
        let line = buf.split_to(nl + 1);
        self.scanned = 0;
        let mut text = &line[..nl];
        if text.last() == Some(&b'\r') {
            text = &text[..text.len() - 1];
        }
        let args = match split_args(text, limits.max_args) {
            Err(ProtoError::InvalidMultibulkLength) if limits.unauthenticated => {
                return Err(ProtoError::UnauthenticatedMultibulkLength)
            }
            r => r?,
        };
        if args.iter().any(|a| a.len() > limits.max_bulk) {
            return Err(if limits.unauthenticated {
                ProtoError::UnauthenticatedBulkLength
            } else {
                ProtoError::InvalidBulkLength
            });
        }
        Ok(Some(args))
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

/// A decimal integer as Redis's `string2ll` reads it: an optional `-`, digits, no leading zero,
/// no sign or space anywhere else; `None` otherwise or on overflow.
pub fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    // The magnitude in a u64: i64::MIN's is one more than i64::MAX.
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if neg {
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline request into arguments as Redis's `sdssplitargs` does: spaces separate,
/// "double quotes" take `\n \r \t \b \a \xHH` escapes, 'single quotes' take `\'`, and a closing
/// quote must be followed by a space or the end.
pub fn split_args(line: &[u8], max_args: usize) -> Result<Args, ProtoError> {
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && is_space(line[p]) {
            p += 1;
        }
        if p == line.len() {
            return Ok(args);
        }
        if args.len() == max_args {
            return Err(ProtoError::InvalidMultibulkLength);
        }
        let mut cur = Vec::new();
        let (mut dq, mut sq) = (false, false);
        loop {
            let c = line.get(p).copied();
            if dq {
                let Some(c) = c else { return Err(ProtoError::UnbalancedQuotes) };
                match (c, line.get(p + 1).copied()) {
                    (b'\\', Some(b'x'))
                        if line.len() > p + 3 && hex(line[p + 2]).is_some() && hex(line[p + 3]).is_some() =>
                    {
                        cur.push(hex(line[p + 2]).unwrap_or(0) * 16 + hex(line[p + 3]).unwrap_or(0));
                        p += 3;
                    }
                    (b'\\', Some(e)) => {
                        cur.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        p += 1;
                    }
                    (b'"', next) => {
                        if next.is_some_and(|n| !is_space(n)) {
                            return Err(ProtoError::UnbalancedQuotes);
                        }
                        p += 1;
                        break;
                    }
                    (c, _) => cur.push(c),
                }
            } else if sq {
                let Some(c) = c else { return Err(ProtoError::UnbalancedQuotes) };
                match (c, line.get(p + 1).copied()) {
                    (b'\\', Some(b'\'')) => {
                        cur.push(b'\'');
                        p += 1;
                    }
                    (b'\'', next) => {
                        if next.is_some_and(|n| !is_space(n)) {
                            return Err(ProtoError::UnbalancedQuotes);
                        }
                        p += 1;
                        break;
                    }
                    (c, _) => cur.push(c),
                }
            } else {
                match c {
                    None => break,
                    Some(c) if is_space(c) => break,
                    Some(b'"') => dq = true,
                    Some(b'\'') => sq = true,
                    Some(c) => cur.push(c),
                }
            }
            p += 1;
        }
        args.push(Bytes::from(cur));
    }
}

/// A reply, written in the client's protocol version by [`Reply::encode`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`-style status.
    Status(&'static str),
    /// An error; the text starts with its code (`ERR ...`, `NOAUTH ...`).
    Error(String),
    /// An integer.
    Int(i64),
    /// A binary-safe string.
    Bulk(Bytes),
    /// No value (`$-1` in RESP2, `_` in RESP3).
    Null,
    /// An array.
    Array(Vec<Reply>),
    /// A map in RESP3, flat key/value pairs in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A double in RESP3, its decimal text as a bulk in RESP2.
    Double(f64),
}

impl Reply {
    /// An error reply from its text.
    pub fn err(text: impl Into<String>) -> Reply {
        Reply::Error(text.into())
    }

    /// A bulk string from text.
    pub fn text(s: impl Into<String>) -> Reply {
        Reply::Bulk(Bytes::from(s.into()))
    }

    /// Writes the reply in RESP2 (`proto` 2) or RESP3 (`proto` 3).
    pub fn encode(&self, proto: u8, out: &mut BytesMut) {
        match self {
            Reply::Status(s) => {
                out.extend_from_slice(b"+");
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Error(e) => write_error(out, e),
            Reply::Int(n) => write_len(out, b':', *n),
            Reply::Bulk(b) => write_bulk(out, b),
            Reply::Null => write_null(out, proto),
            Reply::Array(items) => {
                write_len(out, b'*', items.len() as i64);
                for i in items {
                    i.encode(proto, out);
                }
            }
            Reply::Map(pairs) => {
                if proto >= 3 {
                    write_len(out, b'%', pairs.len() as i64);
                } else {
                    write_len(out, b'*', 2 * pairs.len() as i64);
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Double(d) => {
                let text = format_double(*d);
                if proto >= 3 {
                    out.extend_from_slice(b",");
                    out.extend_from_slice(text.as_bytes());
                    out.extend_from_slice(b"\r\n");
                } else {
                    write_bulk(out, text.as_bytes());
                }
            }
        }
    }
}

fn format_double(d: f64) -> String {
    if d.is_nan() {
        "nan".into()
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        d.to_string()
    }
}

/// `<kind><n>\r\n`.
pub fn write_len(out: &mut BytesMut, kind: u8, n: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(b.format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A bulk string.
pub fn write_bulk(out: &mut BytesMut, data: &[u8]) {
    write_len(out, b'$', data.len() as i64);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The null reply of the protocol version.
pub fn write_null(out: &mut BytesMut, proto: u8) {
    out.extend_from_slice(if proto >= 3 { b"_\r\n" } else { b"$-1\r\n" });
}

/// An error; line breaks in the text become spaces so the reply stays one line.
pub fn write_error(out: &mut BytesMut, text: &str) {
    out.extend_from_slice(b"-");
    out.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOSE: Limits = Limits { max_args: 1024, max_bulk: 1 << 20, max_buffer: 4 << 20, unauthenticated: false };

    fn parse_all(input: &[u8]) -> Result<Vec<Args>, ProtoError> {
        let mut p = Parser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(a) = p.next(&mut buf, &LOOSE)? {
            out.push(a);
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline() {
        let got = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\nset a \"b c\"\n").unwrap();
        assert_eq!(
            got,
            vec![
                vec![Bytes::from("GET"), Bytes::from("k")],
                vec![Bytes::from("PING")],
                vec![Bytes::from("set"), Bytes::from("a"), Bytes::from("b c")]
            ]
        );
    }

    #[test]
    fn redis_wording() {
        assert_eq!(parse_all(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"), Err(ProtoError::ExpectedDollar(b'f')));
        assert_eq!(ProtoError::ExpectedDollar(b'f').message(), "Protocol error: expected '$', got 'f'");
        assert_eq!(parse_all(b"*1\r\n$-10\r\n"), Err(ProtoError::InvalidBulkLength));
        assert_eq!(parse_all(b"*1\r\n$blabla\r\n"), Err(ProtoError::InvalidBulkLength));
        assert_eq!(parse_all(b"*20000000\r\n"), Err(ProtoError::InvalidMultibulkLength));
        assert_eq!(parse_all(b"*-10\r\n*1\r\n$4\r\nPING\r\n").unwrap().len(), 1);
        assert_eq!(parse_all(b"*-9223372036854775808\r\n*1\r\n$4\r\nPING\r\n").unwrap().len(), 1);
        assert_eq!(parse_all(b"*-9223372036854775809\r\n"), Err(ProtoError::InvalidMultibulkLength));
        assert_eq!(parse_all(b"set \"\"\"a\"\"\" b\r\n"), Err(ProtoError::UnbalancedQuotes));
        assert_eq!(parse_all(b"set 'a\n"), Err(ProtoError::UnbalancedQuotes));
        assert_eq!(parse_all(b"*01\r\n"), Err(ProtoError::InvalidMultibulkLength));
    }

    /// Every 64-bit integer, i64::MIN included, as Redis's `string2ll` reads them.
    #[test]
    fn integers_cover_the_whole_i64_range() {
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int(b"-9223372036854775807"), Some(i64::MIN + 1));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"-1"), Some(-1));
        for bad in [
            &b"9223372036854775808"[..],
            b"-9223372036854775809",
            b"-",
            b"",
            b"-0",
            b"01",
            b"+1",
            b"1 ",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_int(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn inline_escapes() {
        let got = split_args(b"a \"\\x41\\n\" 'it\\'s' \"\\q\"", 10).unwrap();
        assert_eq!(got, vec![Bytes::from("a"), Bytes::from("A\n"), Bytes::from("it's"), Bytes::from("q")]);
        assert_eq!(split_args(b"a b c", 2), Err(ProtoError::InvalidMultibulkLength));
    }

    #[test]
    fn limits_are_checked_at_the_header() {
        let tight = Limits { max_args: 10, max_bulk: 16 * 1024, max_buffer: 1 << 20, unauthenticated: true };
        let mut p = Parser::new();
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(p.next(&mut buf, &tight), Err(ProtoError::UnauthenticatedMultibulkLength));
        let mut p = Parser::new();
        let mut buf = BytesMut::from(&b"*1\r\n$16385\r\n"[..]);
        assert_eq!(p.next(&mut buf, &tight), Err(ProtoError::UnauthenticatedBulkLength));
        let mut p = Parser::new();
        let mut buf = BytesMut::from(&b"*1\r\n$5000000\r\n"[..]);
        assert_eq!(p.next(&mut buf, &LOOSE), Err(ProtoError::InvalidBulkLength));
        let small = Limits { max_buffer: 100, ..LOOSE };
        let mut p = Parser::new();
        let mut buf = BytesMut::from(&b"*2\r\n$60\r\n"[..]);
        buf.extend_from_slice(&[b'a'; 62]);
        buf.extend_from_slice(b"$60\r\n");
        assert_eq!(p.next(&mut buf, &small), Err(ProtoError::QueryBufferLimit));
    }

    #[test]
    fn headers_without_end_are_bounded() {
        let mut big = vec![0u8];
        big.extend(std::iter::repeat_n(b'A', INLINE_MAX + 1));
        assert_eq!(parse_all(&big), Err(ProtoError::TooBigInline));
        big[0] = b'*';
        assert_eq!(parse_all(&big), Err(ProtoError::TooBigMultibulkCount));
        let mut bulk = b"*1\r\n$".to_vec();
        bulk.extend(std::iter::repeat_n(b'1', INLINE_MAX + 1));
        assert_eq!(parse_all(&bulk), Err(ProtoError::TooBigBulkCount));
    }

    #[test]
    fn encodes_both_versions() {
        let r = Reply::Map(vec![(Reply::text("score"), Reply::Double(0.5)), (Reply::text("n"), Reply::Null)]);
        let mut two = BytesMut::new();
        r.encode(2, &mut two);
        assert_eq!(&two[..], b"*4\r\n$5\r\nscore\r\n$3\r\n0.5\r\n$1\r\nn\r\n$-1\r\n");
        let mut three = BytesMut::new();
        r.encode(3, &mut three);
        assert_eq!(&three[..], b"%2\r\n$5\r\nscore\r\n,0.5\r\n$1\r\nn\r\n_\r\n");
        let mut e = BytesMut::new();
        Reply::err("ERR a\r\nb").encode(2, &mut e);
        assert_eq!(&e[..], b"-ERR a  b\r\n");
    }
}
