//! Lethe's own HTTP/1.1 client connection for upstream requests.
//!
//! # Why not hyper's
//! hyper's HTTP/1.1 client decodes a chunked body one chunk at a time and hands each chunk to
//! the body through a channel. Providers send one SSE event per chunk, so a stream of a hundred
//! events cost a hundred trips through that machinery even when one socket read had brought
//! them all. Here a body frame is everything one read brought: the chunk framing is taken off
//! in place and the data of every complete chunk is handed on at once. HTTP/2 still goes
//! through hyper (see `pool`).
//!
//! # What it accepts (RFC 9112)
//! - A response head of at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] fields, parsed by
//!   `httparse` (the parser hyper uses); obsolete line folding and invalid names are refused.
//!   Interim `1xx` heads are skipped; `101` is refused, Lethe never asks to switch protocols.
//! - The body's length from, in this order: no body (`HEAD`, `204`, `304`), `Transfer-Encoding`
//!   ending in `chunked`, any other `Transfer-Encoding` (read to the close), `Content-Length`
//!   (several differing values are refused), else read to the close.
//! - Chunk lines end in CRLF; a size has at most 16 hex digits; extensions and trailers are
//!   read and dropped, within [`MAX_HEAD`] bytes.
//!
//! A connection is kept for the next request only when its answer was HTTP/1.1, carried no
//! `Connection: close`, was framed by length or chunks (not both), and ended exactly where the
//! answer did. Anything malformed ends the connection and the body with an error; nothing of
//! it is ever printed.

use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::io::poll_read_buf;

/// Largest response head, and largest chunk extension or trailer section.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a response head.
pub const MAX_HEADERS: usize = 128;
/// Room made in the read buffer before each socket read.
const READ_SIZE: usize = 16 * 1024;

/// The transport: TCP, with TLS for `https` origins.
pub type Io = TokioIo<MaybeHttpsStream<TokioIo<TcpStream>>>;

/// The connection failed or the peer broke the protocol. Carries nothing the peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("upstream connection failed")]
pub struct Broken;

/// An open HTTP/1.1 connection with no request in flight.
pub struct Conn {
    /// The transport state (TLS included) is large and lives as long as the connection, so it
    /// is boxed once rather than moved with every hand-over.
    io: Box<Io>,
    /// Bytes read and not yet consumed. Consumed bytes are wiped at once (see
    /// [`Conn::consume`]), so the buffer is kept from one answer to the next.
    buf: BytesMut,
}

/// Why a request got no answer.
pub enum SendError {
    /// The request was not written whole, so the peer cannot have acted on it.
    Unsent,
    /// The request was written; the answer failed or was malformed.
    Failed,
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes remain.
    Length(u64),
    /// Chunked transfer coding, at this point of its framing.
    Chunked(Chunks),
    /// Everything up to the close.
    Close,
}

impl Conn {
    /// Wraps a connected transport.
    pub fn new(io: Io) -> Conn {
        Conn {
            io: Box::new(io),
            buf: BytesMut::new(),
        }
    }

    /// Whether the idle connection is still open and quiet: polled once, without waiting. A
    /// close, an error or bytes nobody asked for all make it unusable.
    pub fn usable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut probe = [0u8; 1];
        let mut read = ReadBuf::new(&mut probe);
        Pin::new(&mut *self.io)
            .poll_read(&mut cx, &mut read)
            .is_pending()
    }

    /// Writes `request` (a whole serialised request, see [`encode_request`]) and reads the
    /// answer's head. The body is read through the returned [`Body`].
    pub async fn send(
        mut self,
        request: &[u8],
        method: &Method,
    ) -> Result<(Response<()>, Body), SendError> {
        if self.io.write_all(request).await.is_err() || self.io.flush().await.is_err() {
            return Err(SendError::Unsent);
        }
        loop {
            // An empty buffer (the usual case right after writing) holds no head to parse.
            let parsed = if self.buf.is_empty() {
                Ok(None)
            } else {
                parse_head(&self.buf)
            };
            let head = match parsed {
                Ok(Some(head)) => head,
                Ok(None) if self.buf.len() > MAX_HEAD => return Err(SendError::Failed),
                Ok(None) => match std::future::poll_fn(|cx| self.poll_fill(cx)).await {
                    Ok(0) | Err(_) => return Err(SendError::Failed),
                    Ok(_) => continue,
                },
                Err(Broken) => return Err(SendError::Failed),
            };
            self.consume(head.len);
            let status = head.response.status();
            if status.is_informational() {
                if status == StatusCode::SWITCHING_PROTOCOLS {
                    return Err(SendError::Failed);
                }
                continue;
            }
            let (framing, keep_alive) =
                framing(method, &head.response).map_err(|Broken| SendError::Failed)?;
            let body = Body {
                conn: Some(self),
                framing,
                keep_alive,
                ended: false,
            };
            return Ok((head.response, body));
        }
    }

    /// Wipes the first `n` buffered bytes and drops them from the buffer, whose memory then
    /// holds nothing of them when the next read reuses it.
    fn consume(&mut self, n: usize) {
        crate::alloc::wipe(&mut self.buf[..n]);
        self.buf.advance(n);
    }

    /// Reads more bytes into the buffer; `Ok(0)` at the peer's close.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Broken>> {
        self.buf.reserve(READ_SIZE);
        let n = ready!(poll_read_buf(Pin::new(&mut *self.io), cx, &mut self.buf))
            .map_err(|_| Broken)?;
        Poll::Ready(Ok(n))
    }
}

/// Serialises a request head and body for HTTP/1.1: `path` in origin form, `host` as the
/// `Host` field, then `headers` (which must hold no `Host`), then the body.
pub fn encode_request(
    method: &Method,
    path: &str,
    host: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Vec<u8> {
    let fields: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(
        method.as_str().len() + path.len() + host.len() + fields + body.len() + 32,
    );
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A parsed response head and its length in bytes.
struct Head {
    response: Response<()>,
    len: usize,
}

/// Parses a response head from the start of `buf`: `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Broken> {
    // Left uninitialised: filling 128 empty fields first cost more than parsing a short head.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut parsed, buf, &mut fields)
        .map_err(|_| Broken)?
    {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let status = StatusCode::from_u16(parsed.code.ok_or(Broken)?).map_err(|_| Broken)?;
    let version = match parsed.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => return Err(Broken),
    };
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| Broken)?;
        let value = HeaderValue::from_bytes(field.value).map_err(|_| Broken)?;
        headers.append(name, value);
    }
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Some(Head { response, len }))
}

/// How the body of `response` (to a `method` request) is delimited, and whether the
/// connection can carry another request after it.
fn framing(method: &Method, response: &Response<()>) -> Result<(Framing, bool), Broken> {
    let headers = response.headers();
    let mut keep_alive = response.version() == Version::HTTP_11
        && !headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| has_token(v.as_bytes(), b"close"));
    let status = response.status();
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Length(0), keep_alive));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // A length beside a transfer coding is a smuggling attempt or a broken peer: the
        // coding wins and the connection is not reused.
        if headers.contains_key(header::CONTENT_LENGTH) {
            keep_alive = false;
        }
        let last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back();
        let chunked = last.is_some_and(|v| {
            v.as_bytes()
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        });
        if chunked {
            return Ok((Framing::Chunked(Chunks::new()), keep_alive));
        }
        return Ok((Framing::Close, false));
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let n = parse_length(part.trim_ascii()).ok_or(Broken)?;
            if length.is_some_and(|m| m != n) {
                return Err(Broken);
            }
            length = Some(n);
        }
    }
    match length {
        Some(n) => Ok((Framing::Length(n), keep_alive)),
        None => Ok((Framing::Close, false)),
    }
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// Whether the comma-separated list `value` holds `token` (any case).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Where a chunked body's framing is. Fed any split of the bytes, it takes the same steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunks {
    /// In a chunk-size line: the size so far and its digit count.
    Size {
        size: u64,
        digits: u8,
    },
    /// After the size, in an extension (dropped): its length so far.
    Extension {
        size: u64,
        len: usize,
    },
    /// The size line's CR was read; its LF is next.
    SizeLf {
        size: u64,
    },
    /// In a chunk's data: this many bytes remain.
    Data(u64),
    /// After a chunk's data: its CR, then its LF.
    DataCr,
    DataLf,
    /// In the trailer section: the current line's length and the section's length so far.
    Trailer {
        line: usize,
        total: usize,
    },
    /// A trailer line's CR was read.
    TrailerLf {
        line: usize,
        total: usize,
    },
    /// The last chunk and the trailers were read.
    Done,
}

impl Chunks {
    pub(crate) fn new() -> Chunks {
        Chunks::Size { size: 0, digits: 0 }
    }

    /// Takes the framing off the front of `input` and appends the chunk data to `out`. Stops
    /// at the end of `input` or of the body, and returns how many bytes it consumed.
    pub(crate) fn decode(&mut self, input: &[u8], out: &mut BytesMut) -> Result<usize, Broken> {
        let mut i = 0;
        while i < input.len() {
            let c = input[i];
            *self = match *self {
                Chunks::Data(left) => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(input.len() - i);
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    if left == 0 {
                        Chunks::DataCr
                    } else {
                        Chunks::Data(left)
                    }
                }
                Chunks::Done => return Ok(i),
                state => {
                    i += 1;
                    state.step(c)?
                }
            };
        }
        Ok(i)
    }

    /// One byte of framing.
    fn step(self, c: u8) -> Result<Chunks, Broken> {
        Ok(match self {
            Chunks::Size { size, digits } => match char::from(c).to_digit(16) {
                Some(d) if digits < 16 => Chunks::Size {
                    size: size << 4 | u64::from(d),
                    digits: digits + 1,
                },
                Some(_) => return Err(Broken),
                None if digits == 0 => return Err(Broken),
                None => match c {
                    b'\r' => Chunks::SizeLf { size },
                    b';' | b' ' | b'\t' => Chunks::Extension { size, len: 1 },
                    _ => return Err(Broken),
                },
            },
            Chunks::Extension { size, len } => match c {
                b'\r' => Chunks::SizeLf { size },
                b'\n' => return Err(Broken),
                _ if len >= MAX_HEAD => return Err(Broken),
                _ => Chunks::Extension { size, len: len + 1 },
            },
            Chunks::SizeLf { size } => match c {
                b'\n' if size == 0 => Chunks::Trailer { line: 0, total: 0 },
                b'\n' => Chunks::Data(size),
                _ => return Err(Broken),
            },
            Chunks::DataCr => match c {
                b'\r' => Chunks::DataLf,
                _ => return Err(Broken),
            },
            Chunks::DataLf => match c {
                b'\n' => Chunks::new(),
                _ => return Err(Broken),
            },
            Chunks::Trailer { line, total } => match c {
                b'\r' => Chunks::TrailerLf { line, total },
                b'\n' => return Err(Broken),
                _ if total >= MAX_HEAD => return Err(Broken),
                _ => Chunks::Trailer {
                    line: line + 1,
                    total: total + 1,
                },
            },
            Chunks::TrailerLf { line, total } => match c {
                b'\n' if line == 0 => Chunks::Done,
                b'\n' => Chunks::Trailer {
                    line: 0,
                    total: total + 2,
                },
                _ => return Err(Broken),
            },
            Chunks::Data(_) | Chunks::Done => self,
        })
    }
}

/// A response body read straight off its connection. Each frame is everything the last read
/// brought, framing removed.
pub struct Body {
    /// `None` once the body ended or failed.
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    ended: bool,
}

impl Body {
    /// The next piece of the body: `Ready(None)` at its end.
    pub fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Broken>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match self.framing {
                Framing::Length(0) => {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                Framing::Length(left) if !conn.buf.is_empty() => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(conn.buf.len());
                    self.framing = Framing::Length(left - take as u64);
                    // Copied out rather than split off, so that the buffer stays the
                    // connection's own and is reused for its next answer.
                    let data = Bytes::copy_from_slice(&conn.buf[..take]);
                    conn.consume(take);
                    return Poll::Ready(Some(Ok(data)));
                }
                // The connection ends with this body: its buffer is handed over as it is.
                Framing::Close if !conn.buf.is_empty() => {
                    return Poll::Ready(Some(Ok(conn.buf.split().freeze())));
                }
                Framing::Chunked(mut chunks) if !conn.buf.is_empty() => {
                    let mut out = BytesMut::with_capacity(conn.buf.len());
                    let used = match chunks.decode(&conn.buf, &mut out) {
                        Ok(used) => used,
                        Err(Broken) => return self.fail(),
                    };
                    conn.consume(used);
                    self.framing = Framing::Chunked(chunks);
                    if chunks == Chunks::Done {
                        self.ended = true;
                    }
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out.freeze())));
                    }
                    continue;
                }
                _ => {}
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if self.framing == Framing::Close => {
                    self.keep_alive = false;
                    self.ended = true;
                }
                Ok(0) | Err(Broken) => return self.fail(),
                Ok(_) => {}
            }
        }
    }

    fn fail(&mut self) -> Poll<Option<Result<Bytes, Broken>>> {
        self.conn = None;
        self.ended = true;
        Poll::Ready(Some(Err(Broken)))
    }

    /// Whether the body is known to have ended.
    pub fn is_end_stream(&self) -> bool {
        self.ended || self.framing == Framing::Length(0)
    }

    /// The body's length when it is known to be exact.
    pub fn exact_len(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        }
    }

    /// After the body has been read to its end: the connection, if it can carry another
    /// request (nothing left over, no close asked for).
    pub fn reusable(&mut self) -> Option<Conn> {
        if !self.ended || !self.keep_alive {
            return None;
        }
        // Every byte of this answer was wiped as it was consumed: an idle connection keeps its
        // buffer, and with it nothing of the answer.
        self.conn.take().filter(|conn| conn.buf.is_empty())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn head(text: &str) -> Response<()> {
        parse_head(text.as_bytes()).unwrap().unwrap().response
    }

    #[test]
    fn heads_parse_and_frame() {
        let r = head("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(framing(&Method::POST, &r), Ok((Framing::Length(12), true)));
        let r = head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n");
        assert_eq!(
            framing(&Method::POST, &r),
            Ok((Framing::Chunked(Chunks::new()), true))
        );
        let r = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(
            framing(&Method::POST, &r),
            Ok((Framing::Chunked(Chunks::new()), false))
        );
        let r = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(framing(&Method::POST, &r), Ok((Framing::Close, false)));
        let r =
            head("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\n");
        assert_eq!(framing(&Method::POST, &r), Ok((Framing::Length(1), false)));
        let r = head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n");
        assert_eq!(framing(&Method::POST, &r), Ok((Framing::Length(1), false)));
        let r = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(framing(&Method::POST, &r), Ok((Framing::Close, false)));
        let r = head("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n");
        assert_eq!(framing(&Method::POST, &r), Ok((Framing::Length(0), true)));
        let r = head("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
        assert_eq!(framing(&Method::HEAD, &r), Ok((Framing::Length(0), true)));
        // Repeated equal lengths are one length; differing ones or junk are refused.
        let r = head("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(framing(&Method::POST, &r), Ok((Framing::Length(3), true)));
        for bad in ["3, 4", "+3", "-1", "0x10", "", "99999999999999999999"] {
            let r = head(&format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n"));
            assert_eq!(framing(&Method::POST, &r), Err(Broken), "{bad:?}");
        }
    }

    #[test]
    fn heads_refuse_what_hyper_refuses() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n")
            .unwrap()
            .is_none());
        for bad in [
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 99 Odd\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(parse_head(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: v\r\n")).collect();
        let text = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert!(parse_head(text.as_bytes()).is_err());
    }

    /// Chunk-encodes `parts`, with an extension and a trailer when asked.
    fn chunked(parts: &[&[u8]], fancy: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts.iter().filter(|p| !p.is_empty()) {
            out.extend_from_slice(format!("{:X}", part.len()).as_bytes());
            if fancy {
                out.extend_from_slice(b";name=\"v\"");
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(part);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(if fancy {
            b"0\r\nX-Trailer: t\r\nY: u\r\n\r\n"
        } else {
            b"0\r\n\r\n"
        });
        out
    }

    /// Decodes `wire` fed in pieces of the given sizes (cycled).
    fn decode_split(wire: &[u8], sizes: &[usize]) -> Result<(Vec<u8>, usize), Broken> {
        let mut chunks = Chunks::new();
        let mut out = BytesMut::new();
        let mut at = 0;
        let mut k = 0;
        while at < wire.len() && chunks != Chunks::Done {
            let n = sizes[k % sizes.len()].max(1).min(wire.len() - at);
            k += 1;
            let used = chunks.decode(&wire[at..at + n], &mut out)?;
            at += used;
            if used < n {
                break;
            }
        }
        if chunks != Chunks::Done {
            return Err(Broken);
        }
        Ok((out.to_vec(), at))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_reads() {
        let mut seed = 0x1234_5678_9abc_def1;
        for round in 0..2000 {
            let n = (crate::xorshift(&mut seed) % 6) as usize;
            let parts: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let len = (crate::xorshift(&mut seed) % 40) as usize;
                    (0..len).map(|_| crate::xorshift(&mut seed) as u8).collect()
                })
                .collect();
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let wire = chunked(&refs, round % 2 == 1);
            let sizes: Vec<usize> = (0..3)
                .map(|_| 1 + (crate::xorshift(&mut seed) % 9) as usize)
                .collect();
            let mut extra = wire.clone();
            extra.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            let (data, used) = decode_split(&extra, &sizes).unwrap();
            assert_eq!(data, parts.concat());
            assert_eq!(used, wire.len(), "stops at the body's end");
        }
    }

    #[test]
    fn chunked_framing_errors_are_refused() {
        for bad in [
            &b"5\r\nabc\r\n0\r\n\r\n"[..],
            b"5\nabcde\r\n0\r\n\r\n",
            b"g\r\nx\r\n0\r\n\r\n",
            b"\r\n",
            b"11111111111111111\r\n",
            b"1\r\nab\r\n",
            b"0\r\nX: y\n\r\n",
            b"1;\n",
        ] {
            assert_eq!(decode_split(bad, &[64]), Err(Broken), "{bad:?}");
        }
        // A size line may carry up to 16 digits (leading zeros included).
        let ok = b"0000000000000001\r\nz\r\n0\r\n\r\n";
        assert_eq!(decode_split(ok, &[3]).unwrap().0, b"z");
        // Extensions and trailers are bounded.
        let mut long = b"1;".to_vec();
        long.resize(MAX_HEAD + 8, b'a');
        assert_eq!(decode_split(&long, &[4096]), Err(Broken));
    }

    #[test]
    fn requests_are_encoded_in_origin_form() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("a/b"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(2));
        let wire = encode_request(&Method::POST, "/v1/x?y=1", "h:9", &headers, b"{}");
        assert_eq!(
            wire,
            b"POST /v1/x?y=1 HTTP/1.1\r\nhost: h:9\r\ncontent-type: a/b\r\ncontent-length: 2\r\n\r\n{}"
        );
    }
}
