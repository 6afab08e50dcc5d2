//! Query strings (`application/x-www-form-urlencoded`, as the original's
//! `/execute?name=W1` and `/configure?...`): percent-coding and pairs. The
//! balancer and the worker parse their requests with these, and the
//! balancer builds the worker's `/execute?name=` with them; and a call's own
//! shape ([`CallParams`]: `duration_ms`, `memory_mb`, `cpu_share`), which the
//! replayer sends, the balancer forwards and the worker runs.

use std::borrow::Cow;

/// The `(key, value)` pairs of a raw query string (no `?`), decoded, in
/// order; empty pairs (`a=1&&b=2`) are skipped.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k), percent_decode(v))
    })
}

/// The first value of `key` in a raw query string, percent-decoded.
pub fn query_value<'q>(query: &'q str, key: &str) -> Option<Cow<'q, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == key).then(|| percent_decode(v))
    })
}

/// Decodes `%XX` escapes and `+` (as a space), borrowing when there are none.
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends `s` to `out` percent-encoded as a query value (RFC 3986
/// unreserved characters stay as they are).
pub fn percent_encode_into(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

/// `/execute` key: this call's duration in ms (decimals allowed, µs kept),
/// within `0..=`[`crate::scenario::MAX_DURATION_MS`]. A scenario row's
/// `DurationMs` travels as this.
pub const DURATION_MS_KEY: &str = "duration_ms";
/// `/execute` key: the memory this call allocates and touches, whole MB,
/// within `1..=`[`crate::scenario::MAX_MEMORY_MB`] (a worker bounds it
/// further). A scenario row's `MemoryMb` travels as this.
pub const MEMORY_MB_KEY: &str = "memory_mb";
/// `/execute` key: the share of the call's duration spent on CPU work, in
/// `0..=1` (the rest sleeps).
pub const CPU_SHARE_KEY: &str = "cpu_share";
/// The keys of a call's own shape ([`CallParams`]), in the order
/// [`CallParams::append_to`] writes them.
pub const CALL_SHAPE_KEYS: [&str; 3] = [DURATION_MS_KEY, MEMORY_MB_KEY, CPU_SHARE_KEY];

/// A share of CPU time in `0..=1` (never NaN, so it is `Eq`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct CpuShare(f64);

impl Eq for CpuShare {}

impl CpuShare {
    /// `share` if it is a number in `0..=1`.
    pub fn new(share: f64) -> Option<Self> {
        (0.0..=1.0).contains(&share).then_some(Self(share))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

/// A call's own shape, as `/execute` carries it beside `name=`
/// (`duration_ms=`, `memory_mb=`, `cpu_share=`): what a scenario row's
/// per-invocation columns ([`crate::scenario::CallShape`]) say about
/// this call. Each is optional; none given is the function's own work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallParams {
    /// [`DURATION_MS_KEY`], in microseconds.
    pub duration_us: Option<u64>,
    /// [`MEMORY_MB_KEY`].
    pub memory_mb: Option<u32>,
    /// [`CPU_SHARE_KEY`].
    pub cpu_share: Option<CpuShare>,
}

/// A call-shape parameter that is not a valid value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("param '{key}': {message}")]
pub struct CallParamsError {
    pub key: &'static str,
    pub message: String,
}

impl CallParams {
    /// Whether no parameter is given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// What a scenario row's per-invocation columns say.
    pub fn from_shape(shape: &crate::scenario::CallShape) -> Self {
        Self {
            duration_us: Some(shape.duration_us),
            memory_mb: shape.memory_mb,
            cpu_share: None,
        }
    }

    /// The call-shape pairs of a raw query string (other keys are left to
    /// the caller). A bad value, or a key given twice, is an error naming
    /// the key; nothing is allocated by a value's size.
    pub fn parse(query: &str) -> Result<Self, CallParamsError> {
        let mut out = Self::default();
        let mut seen = [false; CALL_SHAPE_KEYS.len()];
        for (k, v) in query_pairs(query) {
            let Some(i) = CALL_SHAPE_KEYS.iter().position(|key| *key == k) else {
                continue;
            };
            let key = CALL_SHAPE_KEYS[i];
            let err = |message: String| CallParamsError { key, message };
            if std::mem::replace(&mut seen[i], true) {
                return Err(err("given twice".into()));
            }
            let v = v.trim();
            match i {
                0 => {
                    let max = crate::scenario::MAX_DURATION_MS;
                    let ms = v
                        .parse::<f64>()
                        .ok()
                        .filter(|ms| ms.is_finite() && (0.0..=max).contains(ms))
                        .ok_or_else(|| {
                            err(format!(
                                "{v:?} is not a number of milliseconds in 0..={max}"
                            ))
                        })?;
                    out.duration_us = Some((ms * 1000.0).round() as u64);
                }
                1 => {
                    let max = crate::scenario::MAX_MEMORY_MB;
                    out.memory_mb = Some(
                        v.parse::<u32>()
                            .ok()
                            .filter(|mb| (1..=max).contains(mb))
                            .ok_or_else(|| {
                                err(format!("{v:?} is not a whole number of MB in 1..={max}"))
                            })?,
                    );
                }
                _ => {
                    out.cpu_share = Some(
                        v.parse::<f64>()
                            .ok()
                            .and_then(CpuShare::new)
                            .ok_or_else(|| err(format!("{v:?} is not a number in 0..=1")))?,
                    );
                }
            }
        }
        Ok(out)
    }

    /// Appends `&duration_ms=..&memory_mb=..&cpu_share=..` (the given ones,
    /// in that order) to a query being built: the duration in ms with
    /// three decimals, so that [`CallParams::parse`] reads back the same
    /// microseconds.
    pub fn append_to(&self, out: &mut String) {
        use std::fmt::Write as _;
        if let Some(us) = self.duration_us {
            let _ = write!(out, "&{DURATION_MS_KEY}={}.{:03}", us / 1000, us % 1000);
        }
        if let Some(mb) = self.memory_mb {
            let _ = write!(out, "&{MEMORY_MB_KEY}={mb}");
        }
        if let Some(share) = self.cpu_share {
            let _ = write!(out, "&{CPU_SHARE_KEY}={}", share.get());
        }
    }
}

/// Appends the call-shape pairs of a raw query ([`CALL_SHAPE_KEYS`]) to
/// `out`, each as `&key=value`, unchanged (still percent-encoded): what a
/// balancer forwards to the worker beside `name=`. Other keys are dropped.
pub fn forward_call_params(query: &str, out: &mut String) {
    for pair in query.split('&') {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if CALL_SHAPE_KEYS.contains(&key) {
            out.push('&');
            out.push_str(pair);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_coding_round_trips() {
        let mut s = String::new();
        percent_encode_into("W1 a/b&c=d~é", &mut s);
        assert_eq!(s, "W1%20a%2Fb%26c%3Dd~%C3%A9");
        assert_eq!(percent_decode(&s), "W1 a/b&c=d~é");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert!(matches!(percent_decode("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn pairs_and_values() {
        let q = "name=a%20b&&x&y=1+2&name=second";
        let pairs: Vec<(String, String)> = query_pairs(q)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            pairs,
            [("name", "a b"), ("x", ""), ("y", "1 2"), ("name", "second")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(query_value(q, "name").as_deref(), Some("a b"));
        assert_eq!(query_value(q, "none"), None);
    }

    #[test]
    fn call_params_parse_bound_and_round_trip() {
        let p =
            CallParams::parse("name=F&duration_ms=12.3456&memory_mb=64&cpu_share=0.25").unwrap();
        assert_eq!(p.duration_us, Some(12_346));
        assert_eq!(p.memory_mb, Some(64));
        assert_eq!(p.cpu_share.map(CpuShare::get), Some(0.25));
        let mut q = String::from("name=F");
        p.append_to(&mut q);
        assert_eq!(q, "name=F&duration_ms=12.346&memory_mb=64&cpu_share=0.25");
        assert_eq!(CallParams::parse(&q).unwrap(), p);
        assert!(CallParams::parse("name=F").unwrap().is_empty());
        for (bad, key) in [
            ("duration_ms=-1", DURATION_MS_KEY),
            ("duration_ms=NaN", DURATION_MS_KEY),
            ("duration_ms=1e300", DURATION_MS_KEY),
            ("memory_mb=0", MEMORY_MB_KEY),
            ("memory_mb=1.5", MEMORY_MB_KEY),
            ("memory_mb=99999999999", MEMORY_MB_KEY),
            ("cpu_share=1.5", CPU_SHARE_KEY),
            ("memory_mb=1&memory_mb=2", MEMORY_MB_KEY),
        ] {
            let e = CallParams::parse(bad).unwrap_err();
            assert_eq!(e.key, key, "{bad}");
            assert!(e.to_string().contains(key), "{e}");
        }
        let shape = crate::scenario::CallShape {
            duration_us: 1_500,
            memory_mb: None,
        };
        let mut q = String::new();
        CallParams::from_shape(&shape).append_to(&mut q);
        assert_eq!(q, "&duration_ms=1.500");
    }

    #[test]
    fn only_call_shape_pairs_are_forwarded() {
        let mut out = String::from("/execute?name=F");
        forward_call_params(
            "name=F&duration_ms=1.5&x=1&memory_mb=%36%34&lb=ch",
            &mut out,
        );
        assert_eq!(out, "/execute?name=F&duration_ms=1.5&memory_mb=%36%34");
        let mut none = String::new();
        forward_call_params("name=W1", &mut none);
        assert!(none.is_empty());
    }
}
