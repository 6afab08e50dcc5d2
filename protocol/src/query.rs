//! Query strings (`application/x-www-form-urlencoded`, as the original's
//! `/execute?name=W1` and `/configure?...`): percent-coding and pairs. The
//! balancer and the worker parse their requests with these, and the
//! balancer builds the worker's `/execute?name=` with them.

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
}
