//! Text files read by the testbed (scenarios, catalogs, settings,
//! experiment files, profiles, sidecars): UTF-8, and where a file is not,
//! the error names the line of its first bad byte. `std`'s
//! `read_to_string` says only "stream did not contain valid UTF-8", which
//! leaves a researcher to search a million-row file for one byte.
//!
//! And errors as one line of text ([`error_line`]), as every binary of
//! the testbed prints them.

/// Bytes that are not UTF-8 text: the 1-based line of the first bad byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: not UTF-8 text")]
pub struct NotUtf8 {
    pub line: usize,
}

impl From<NotUtf8> for std::io::Error {
    fn from(e: NotUtf8) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// `bytes` as a `String` (without a copy), or the line of the first byte
/// that is not UTF-8.
pub fn from_utf8(bytes: Vec<u8>) -> Result<String, NotUtf8> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        NotUtf8 {
            line: 1 + e.as_bytes()[..valid]
                .iter()
                .filter(|&&c| c == b'\n')
                .count(),
        }
    })
}

/// `std::fs::read_to_string`, whose error for a file that is not UTF-8
/// text names the line ([`NotUtf8`], as an `InvalidData` I/O error).
pub fn read_to_string(path: &std::path::Path) -> std::io::Result<String> {
    Ok(from_utf8(std::fs::read(path)?)?)
}

/// An error and its causes on one line, `error: cause: cause`, a cause
/// left out where the text so far already holds it (an error that prints
/// its source as part of its own message, as `"{path}: {source}"` does).
pub fn error_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
}

/// A server binary's exit: on an error, one line on stderr,
/// `<program>: error: ...` ([`error_line`]), and exit status 1. A closed
/// stderr loses the line, not the status.
pub fn exit_code<E>(program: &str, result: Result<(), E>) -> std::process::ExitCode
where
    E: AsRef<dyn std::error::Error>,
{
    use std::io::Write as _;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "{program}: error: {}",
                error_line(e.as_ref())
            );
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bad_byte_is_named_by_line() {
        assert_eq!(from_utf8(b"a\nb\n".to_vec()).unwrap(), "a\nb\n");
        assert_eq!(from_utf8(b"\xff".to_vec()), Err(NotUtf8 { line: 1 }));
        assert_eq!(
            from_utf8(b"a\nb\nc\xffd\n\xfe".to_vec()),
            Err(NotUtf8 { line: 3 })
        );
        // A character cut by the end of the file is on its own line.
        assert_eq!(from_utf8(b"a\n\xc3".to_vec()), Err(NotUtf8 { line: 2 }));
        let file = std::env::temp_dir().join(format!("protocol-text-{}", std::process::id()));
        std::fs::write(&file, b"x\n\xff").unwrap();
        let e = read_to_string(&file).unwrap_err();
        std::fs::remove_file(&file).unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(e.to_string(), "line 2: not UTF-8 text");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct Read {
        path: String,
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("while loading")]
    struct Loading(#[source] Read);

    #[test]
    fn an_error_is_one_line_with_each_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let read = Read {
            path: "x.csv".into(),
            source: io(),
        };
        assert_eq!(error_line(&read), "x.csv: no such file");
        let loading = Loading(Read {
            path: "x.csv".into(),
            source: io(),
        });
        assert_eq!(error_line(&loading), "while loading: x.csv: no such file");
    }
}
