//! Where each request on a connection starts, and whether its head is one
//! actix-http would refuse without a word (pure: no I/O).
//!
//! A [`Scanner`] follows an HTTP/1.1 connection's bytes from the client:
//! a request head, then its body framed as RFC 9112 §6 says (a
//! `Content-Length`, or `Transfer-Encoding: chunked` with its chunk-size
//! lines and trailers), then the next head. Each head is held back until
//! it is whole and judged with the parser actix-http itself uses
//! (`httparse`, with actix-http's 96 headers and 128 KiB), so that what
//! actix-http would answer with a bare status gets a JSON one instead:
//!
//! | the head | actix-http | here |
//! |---|---|---|
//! | a URI over [`MAX_URI`] bytes (the `http` crate's limit) | `400`, no body | `414` |
//! | over 128 KiB, or over 96 header fields | `431`, no body | `431` |
//! | not HTTP (`httparse` refuses it) | `400`, no body | `400`, naming the fault |
//!
//! Bodies are not looked at, only counted, so a body that happens to hold
//! something like a request line is never judged. Framing the scanner does
//! not follow (an `Upgrade`, `CONNECT`, a transfer coding other than
//! chunked last, conflicting or unreadable lengths) makes it step aside
//! for the rest of the connection ([`State::Opaque`]): actix-http then
//! answers alone, as before.

/// The longest URI the `http` crate parses (`u16::MAX - 1`).
pub const MAX_URI: usize = 65_534;

/// actix-http's limit on a request head's bytes (`MAX_BUFFER_SIZE`).
pub const MAX_HEAD: usize = 131_072;

/// actix-http's limit on a request's header fields (`MAX_HEADERS`).
pub const MAX_HEADERS: usize = 96;

/// The most of a request line looked at before it ends: the longest URI,
/// a method and the version around it.
const MAX_LINE: usize = MAX_URI + 64;

/// The longest chunk-size line followed (with its extensions).
const MAX_CHUNK_LINE: usize = 4096;

/// What to do with the front of the bytes not yet passed on.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Pass this many bytes on (possibly 0, after a change of state).
    Pass(usize),
    /// Nothing can be passed until more bytes arrive.
    More,
    /// The request that starts here is refused with this answer.
    Refuse(Refusal),
}

/// A request refused before actix-http saw it.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(status: u16, reason: &'static str, message: String) -> Self {
        Self {
            status,
            reason,
            message,
        }
    }

    fn uri(len: usize) -> Self {
        Self::new(
            414,
            "URI Too Long",
            format!("request URI of {len} bytes or more: the longest accepted is {MAX_URI} bytes"),
        )
    }

    fn head(what: String) -> Self {
        Self::new(431, "Request Header Fields Too Large", what)
    }

    /// The whole HTTP answer (the connection is closed after it).
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = protocol::ErrorReply::new(self.message.clone()).to_json();
        let head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            self.status,
            self.reason,
            body.len()
        );
        [head.into_bytes(), body.into_bytes()].concat()
    }
}

/// Where in the connection's bytes the scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// At the start of a request head (or of empty lines before one).
    Head,
    /// In a body with this many bytes still to come.
    Body(u64),
    /// At a chunk-size line.
    ChunkSize,
    /// In a chunk with this many bytes still to come.
    ChunkData(u64),
    /// At the line end after a chunk's data.
    ChunkEnd,
    /// In the trailer fields after the last chunk.
    Trailers,
    /// Framing not followed: everything passes.
    Opaque,
}

/// Follows one connection (see the module docs).
#[derive(Debug)]
pub struct Scanner {
    state: State,
}

impl Default for Scanner {
    fn default() -> Self {
        Self { state: State::Head }
    }
}

impl Scanner {
    pub fn state(&self) -> State {
        self.state
    }

    /// Judges the front of `bytes` (the bytes not yet passed on, from
    /// where the scanner is) and moves past what it passes.
    pub fn step(&mut self, bytes: &[u8]) -> Step {
        if bytes.is_empty() {
            return Step::More;
        }
        match self.state {
            State::Head => self.head(bytes),
            State::Body(left) => self.count(left, bytes, State::Body, State::Head),
            State::ChunkData(left) => self.count(left, bytes, State::ChunkData, State::ChunkEnd),
            State::ChunkSize => match line(bytes, MAX_CHUNK_LINE) {
                Line::Whole(end) => {
                    self.state = match chunk_size(&bytes[..end]) {
                        Some(0) => State::Trailers,
                        Some(n) => State::ChunkData(n),
                        None => State::Opaque,
                    };
                    Step::Pass(end)
                }
                Line::Partial => Step::More,
                Line::Overlong => self.opaque(),
            },
            State::ChunkEnd => match line(bytes, MAX_CHUNK_LINE) {
                Line::Whole(end) => {
                    self.state = State::ChunkSize;
                    Step::Pass(end)
                }
                Line::Partial => Step::More,
                Line::Overlong => self.opaque(),
            },
            State::Trailers => match line(bytes, MAX_HEAD) {
                Line::Whole(end) => {
                    if is_empty_line(&bytes[..end]) {
                        self.state = State::Head;
                    }
                    Step::Pass(end)
                }
                Line::Partial => Step::More,
                Line::Overlong => self.opaque(),
            },
            State::Opaque => Step::Pass(bytes.len()),
        }
    }

    /// Passes what `bytes` hold of `left` bytes still to come: the state
    /// is `within` what is left after them, or `after` once none is.
    fn count(&mut self, left: u64, bytes: &[u8], within: fn(u64) -> State, after: State) -> Step {
        let n = usize::try_from(left).map_or(bytes.len(), |left| left.min(bytes.len()));
        self.state = match left - n as u64 {
            0 => after,
            rest => within(rest),
        };
        Step::Pass(n)
    }

    fn opaque(&mut self) -> Step {
        self.state = State::Opaque;
        Step::Pass(0)
    }

    fn head(&mut self, bytes: &[u8]) -> Step {
        // Empty lines before a request are allowed (RFC 9112 §2.2).
        match bytes {
            [b'\n', ..] => return Step::Pass(1),
            [b'\r', b'\n', ..] => return Step::Pass(2),
            [b'\r'] => return Step::More,
            _ => {}
        }
        if let Some(refusal) = request_line(bytes) {
            return Step::Refuse(refusal);
        }
        // Slots left uninitialised, as actix-http leaves its own.
        let mut fields =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(bytes, &mut fields) {
            Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => {
                return Step::Refuse(too_big(len))
            }
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if bytes.len() >= MAX_HEAD => {
                return Step::Refuse(too_big(bytes.len()))
            }
            Ok(httparse::Status::Partial) => return Step::More,
            Err(httparse::Error::TooManyHeaders) => {
                return Step::Refuse(Refusal::head(format!(
                    "more than {MAX_HEADERS} header fields in the request"
                )))
            }
            Err(e) => {
                return Step::Refuse(Refusal::new(
                    400,
                    "Bad Request",
                    format!("malformed request head: {e}"),
                ))
            }
        };
        if req.path.is_some_and(|p| p.len() > MAX_URI) {
            return Step::Refuse(Refusal::uri(req.path.map_or(0, str::len)));
        }
        self.state = framing(req.method.unwrap_or(""), req.headers);
        Step::Pass(len)
    }
}

fn too_big(len: usize) -> Refusal {
    Refusal::head(format!(
        "request head of {len} bytes or more: the largest accepted is {MAX_HEAD} bytes"
    ))
}

/// A too-long URI in a request line, whole or still arriving.
fn request_line(bytes: &[u8]) -> Option<Refusal> {
    let end = bytes.iter().position(|&b| b == b'\n');
    let line = &bytes[..end.unwrap_or(bytes.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let first = line.iter().position(|&b| b == b' ')?;
    let uri = match end {
        // Method, URI, version: the URI ends at the last space.
        Some(_) => {
            let last = line.iter().rposition(|&b| b == b' ')?;
            last.checked_sub(first + 1)?
        }
        // Still arriving: the URI is at least what follows the method.
        None if line.len() > MAX_LINE || line.len() - first - 1 > MAX_URI => line.len() - first - 1,
        None => return None,
    };
    (uri > MAX_URI).then(|| Refusal::uri(uri))
}

/// The body framing a request head declares (RFC 9112 §6.1-6.3).
fn framing(method: &str, headers: &[httparse::Header<'_>]) -> State {
    if method.eq_ignore_ascii_case("CONNECT") {
        return State::Opaque;
    }
    let mut chunked: Option<bool> = None;
    let mut length: Option<u64> = None;
    for h in headers {
        let name = h.name.as_bytes();
        // Only these three names matter; most fields are ruled out by length.
        match name.len() {
            7 if name.eq_ignore_ascii_case(b"upgrade") => return State::Opaque,
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                // The last coding of the last field decides.
                chunked = Some(
                    h.value
                        .rsplit(|&b| b == b',')
                        .next()
                        .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked")),
                );
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let v = h.value.trim_ascii();
                let parsed = std::str::from_utf8(v)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok());
                match (parsed, length) {
                    (None, _) => return State::Opaque,
                    (Some(n), Some(m)) if n != m => return State::Opaque,
                    (Some(n), _) => length = Some(n),
                }
            }
            _ => {}
        }
    }
    match (chunked, length) {
        (Some(true), _) => State::ChunkSize,
        (Some(false), _) => State::Opaque,
        (None, Some(n)) if n > 0 => State::Body(n),
        (None, _) => State::Head,
    }
}

enum Line {
    /// A line ending (after its `\n`) at this offset.
    Whole(usize),
    Partial,
    /// Longer than followed.
    Overlong,
}

fn line(bytes: &[u8], max: usize) -> Line {
    match bytes.iter().take(max).position(|&b| b == b'\n') {
        Some(end) => Line::Whole(end + 1),
        None if bytes.len() >= max => Line::Overlong,
        None => Line::Partial,
    }
}

fn is_empty_line(line: &[u8]) -> bool {
    matches!(line, b"\n" | b"\r\n")
}

/// A chunk-size line's size (its hex digits, before any extension).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits: &[u8] = line
        .split(|&b| b == b';' || b == b'\r' || b == b'\n')
        .next()?;
    let digits = std::str::from_utf8(digits).ok()?.trim();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `bytes` through a scanner as one piece: the bytes passed and
    /// the refusal, if any.
    fn scan(bytes: &[u8]) -> (usize, Option<Refusal>, State) {
        let mut s = Scanner::default();
        let mut at = 0;
        loop {
            match s.step(&bytes[at..]) {
                Step::Pass(n) => at += n,
                Step::More => return (at, None, s.state()),
                Step::Refuse(r) => return (at, Some(r), s.state()),
            }
        }
    }

    fn get(uri: &str) -> Vec<u8> {
        format!("GET {uri} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
    }

    #[test]
    fn ordinary_requests_pass_whole_one_after_another() {
        let mut bytes = get("/execute?name=W1");
        bytes.extend(get("/health"));
        bytes.extend(b"\r\n");
        bytes.extend(get("/x"));
        assert_eq!(scan(&bytes), (bytes.len(), None, State::Head));
    }

    #[test]
    fn a_head_is_held_until_it_is_whole() {
        let bytes = get("/execute?name=W1");
        for cut in 1..bytes.len() {
            assert_eq!(scan(&bytes[..cut]), (0, None, State::Head), "cut at {cut}");
        }
        // A lone CR before a request waits for its LF.
        assert_eq!(scan(b"\r"), (0, None, State::Head));
    }

    #[test]
    fn a_too_long_uri_is_a_414_whole_or_arriving() {
        let at_limit = get(&format!("/{}", "a".repeat(MAX_URI - 1)));
        assert_eq!(scan(&at_limit).0, at_limit.len());
        let over = get(&format!("/{}", "a".repeat(MAX_URI)));
        let (passed, refusal, _) = scan(&over);
        assert_eq!(passed, 0);
        let refusal = refusal.expect("refused");
        assert_eq!(refusal.status, 414);
        assert!(
            refusal.message.contains("65535 bytes"),
            "{}",
            refusal.message
        );
        // Known too long before the line ends.
        let long = get(&format!("/{}", "a".repeat(100_000)));
        assert_eq!(scan(&long[..MAX_URI + 10]).1.map(|r| r.status), Some(414));
        assert_eq!(scan(&long[..MAX_URI]).1, None);
        // After an ordinary request on the same connection.
        let mut two = get("/health");
        two.extend(&long);
        let (passed, refusal, _) = scan(&two);
        assert_eq!(passed, get("/health").len());
        assert_eq!(refusal.map(|r| r.status), Some(414));
    }

    #[test]
    fn a_head_over_actix_limits_is_a_431() {
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        while big.len() <= MAX_HEAD {
            big.extend(format!("X-Filler: {}\r\n", "f".repeat(1000)).as_bytes());
        }
        let partial = scan(&big);
        assert_eq!(partial.1.map(|r| r.status), Some(431));
        // 96 fields pass, 97 do not.
        let fields = |n: usize| {
            let mut h = b"GET / HTTP/1.1\r\n".to_vec();
            for i in 0..n {
                h.extend(format!("X-{i}: v\r\n").as_bytes());
            }
            h.extend(b"\r\n");
            h
        };
        assert_eq!(scan(&fields(MAX_HEADERS)).1, None);
        let refusal = scan(&fields(MAX_HEADERS + 1)).1.expect("refused");
        assert_eq!(refusal.status, 431);
        assert!(
            refusal.message.contains("96 header fields"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn a_malformed_head_is_a_400_naming_the_fault() {
        let refusal = scan(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
            .1
            .expect("refused");
        assert_eq!(refusal.status, 400);
        assert!(
            refusal.message.starts_with("malformed request head: "),
            "{}",
            refusal.message
        );
        assert_eq!(scan(b"\x01\x02\r\n\r\n").1.map(|r| r.status), Some(400));
    }

    #[test]
    fn a_body_is_counted_not_read() {
        // A body that looks like a request with a too-long URI.
        let inner = get(&format!("/{}", "a".repeat(MAX_URI + 5)));
        let mut bytes = format!(
            "POST /invoke/f HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            inner.len()
        )
        .into_bytes();
        bytes.extend(&inner);
        bytes.extend(get("/next"));
        assert_eq!(scan(&bytes), (bytes.len(), None, State::Head));
        // In pieces: the body passes as it comes.
        let head_len = bytes.len() - inner.len() - get("/next").len();
        let mut s = Scanner::default();
        assert_eq!(s.step(&bytes[..head_len + 10]), Step::Pass(head_len));
        assert_eq!(s.step(&bytes[head_len..head_len + 10]), Step::Pass(10));
        assert_eq!(s.state(), State::Body(inner.len() as u64 - 10));
    }

    #[test]
    fn chunked_bodies_are_followed_to_the_next_head() {
        let inner = get(&format!("/{}", "a".repeat(MAX_URI + 5)));
        let mut bytes = b"POST /f HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec();
        bytes.extend(format!("{:x};ext=1\r\n", inner.len()).as_bytes());
        bytes.extend(&inner);
        bytes.extend(b"\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n");
        bytes.extend(get("/next"));
        assert_eq!(scan(&bytes), (bytes.len(), None, State::Head));
    }

    #[test]
    fn framing_not_followed_steps_aside() {
        for head in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
        ] {
            let mut bytes = head.as_bytes().to_vec();
            bytes.extend(get(&format!("/{}", "a".repeat(MAX_URI + 5))));
            assert_eq!(scan(&bytes), (bytes.len(), None, State::Opaque), "{head}");
        }
        // Equal repeated lengths are one length.
        let same = b"POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc";
        assert_eq!(scan(same), (same.len(), None, State::Head));
    }

    #[test]
    fn a_huge_declared_length_is_counted_not_allocated() {
        let bytes = b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\nabc";
        assert_eq!(scan(bytes), (bytes.len(), None, State::Body(u64::MAX - 3)));
        let chunk = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n";
        // 16 hex digits is past what is followed: step aside.
        assert_eq!(scan(chunk).2, State::Opaque);
    }

    #[test]
    fn the_refusal_is_a_whole_json_answer() {
        let bytes = Refusal::uri(70_000).to_bytes();
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        assert!(body.starts_with("{\"Error\":true"), "{body}");
    }
}
