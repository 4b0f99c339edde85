//! A minimal blocking RESP2 client: enough to wait for PING, authenticate, and let tests send raw
//! commands or plant bytes. Written by hand on purpose: the kit must check the shared tier with a
//! client that shares no code (and so no bugs) with the redis crate the tier itself uses.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Replies larger than this are refused: the kit only talks to servers it started, but a reply it
/// cannot parse must never turn into a huge allocation.
pub const MAX_REPLY_BYTES: usize = 64 << 20;
/// Most elements accepted in one array reply (same reason as [`MAX_REPLY_BYTES`]).
pub const MAX_ARRAY_LEN: usize = 1 << 20;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Simple(String),
    /// `-ERR ...`: the server refused the command (the text starts with its code, e.g. `NOPERM`).
    Error(String),
    /// `:1`
    Int(i64),
    /// `$n` bulk string; `None` for the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*n` array; `None` for the null array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The bulk or simple string as UTF-8 text, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Reply::Simple(s) => Some(s),
            Reply::Bulk(Some(b)) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// True for an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// A blocking connection speaking RESP2.
pub struct RespConn {
    reader: BufReader<TcpStream>,
}

impl RespConn {
    /// Connects to `addr` with `timeout` for the connect and for each read and write.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(RespConn { reader: BufReader::new(stream) })
    }

    /// The underlying socket (to change timeouts, or shut it down).
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Sends one command and reads its reply. An error reply is `Ok(Reply::Error(..))`.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Reply> {
        self.send(args)?;
        self.read_reply()
    }

    /// Sends one command without reading its reply (for pipelining).
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<()> {
        let buf = encode(args);
        self.reader.get_mut().write_all(&buf)
    }

    /// Reads the next reply.
    pub fn read_reply(&mut self) -> io::Result<Reply> {
        read_reply(&mut self.reader, 0)
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut buf = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        buf.extend_from_slice(a);
        buf.extend_from_slice(b"\r\n");
    }
    buf
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    // Bounded so a peer that never sends CRLF cannot grow the line without limit.
    r.take(MAX_REPLY_BYTES as u64).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
    }
    if !line.ends_with(b"\r\n") {
        return Err(bad("reply line without CRLF".into()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| bad("reply line is not UTF-8".into()))
}

fn parse_len(s: &str, max: usize) -> io::Result<Option<usize>> {
    let n: i64 = s.parse().map_err(|_| bad(format!("bad length {s:?}")))?;
    match n {
        -1 => Ok(None),
        n if n < 0 || n as u64 > max as u64 => Err(bad(format!("length {n} out of bounds"))),
        n => Ok(Some(n as usize)),
    }
}

fn read_reply(r: &mut impl BufRead, depth: usize) -> io::Result<Reply> {
    if depth > 32 {
        return Err(bad("reply nested too deep".into()));
    }
    let line = read_line(r)?;
    let (kind, rest) = line.split_at(line.len().min(1));
    match kind {
        "+" => Ok(Reply::Simple(rest.to_string())),
        "-" => Ok(Reply::Error(rest.to_string())),
        ":" => rest.parse().map(Reply::Int).map_err(|_| bad(format!("bad integer {rest:?}"))),
        "$" => match parse_len(rest, MAX_REPLY_BYTES)? {
            None => Ok(Reply::Bulk(None)),
            Some(n) => {
                let mut buf = vec![0; n + 2];
                r.read_exact(&mut buf)?;
                if !buf.ends_with(b"\r\n") {
                    return Err(bad("bulk string without CRLF".into()));
                }
                buf.truncate(n);
                Ok(Reply::Bulk(Some(buf)))
            }
        },
        "*" => match parse_len(rest, MAX_ARRAY_LEN)? {
            None => Ok(Reply::Array(None)),
            Some(n) => {
                (0..n).map(|_| read_reply(r, depth + 1)).collect::<io::Result<_>>().map(|v| Reply::Array(Some(v)))
            }
        },
        _ => Err(bad(format!("unknown reply type in {line:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> io::Result<Reply> {
        read_reply(&mut BufReader::new(bytes), 0)
    }

    #[test]
    fn parses_each_reply_kind() {
        assert_eq!(parse(b"+PONG\r\n").unwrap(), Reply::Simple("PONG".into()));
        assert_eq!(parse(b"-NOPERM no\r\n").unwrap(), Reply::Error("NOPERM no".into()));
        assert_eq!(parse(b":-7\r\n").unwrap(), Reply::Int(-7));
        assert_eq!(parse(b"$3\r\na\r\n\r\n").unwrap(), Reply::Bulk(Some(b"a\r\n".to_vec())));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n$1\r\nx\r\n:1\r\n").unwrap(),
            Reply::Array(Some(vec![Reply::Bulk(Some(b"x".to_vec())), Reply::Int(1)]))
        );
    }

    #[test]
    fn refuses_lengths_past_the_bounds() {
        let at = format!("${}\r\n", MAX_REPLY_BYTES + 1);
        assert!(parse(at.as_bytes()).is_err());
        let arr = format!("*{}\r\n", MAX_ARRAY_LEN + 1);
        assert!(parse(arr.as_bytes()).is_err());
        assert!(parse(b"$-2\r\n").is_err());
        assert!(parse(b"+no crlf").is_err());
        assert!(parse(b"").is_err());
    }

    #[test]
    fn accepts_lengths_at_the_bounds() {
        // At the bound the length is accepted: what fails is the missing payload, not the check.
        let at = format!("${MAX_REPLY_BYTES}\r\n");
        assert_eq!(parse(at.as_bytes()).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let arr = format!("*{MAX_ARRAY_LEN}\r\n");
        assert_eq!(parse(arr.as_bytes()).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let over = format!("${}\r\n", MAX_REPLY_BYTES + 1);
        assert_eq!(parse(over.as_bytes()).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn encodes_binary_arguments() {
        assert_eq!(encode(&[&b"SET"[..], b"k", b"a\r\nb"]), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n".to_vec());
    }
}
