//! The servers' check of request heads (`http_front::framing`): never a
//! panic, never more passed than was given, and the same verdict however
//! the bytes arrive: the input fed whole and fed in two pieces (cut where
//! the first byte says, as a connection's reads cut it) passes the same
//! bytes and refuses the same request.
#![no_main]

use http_front::framing::{Scanner, Step};

/// Feeds `pieces` one after another, as the connection does: the bytes
/// not passed yet wait for the next piece. The bytes passed and the
/// refusal's status, if any.
fn feed(pieces: &[&[u8]]) -> (usize, Option<u16>) {
    let mut scanner = Scanner::default();
    let mut held: Vec<u8> = Vec::new();
    let mut passed = 0;
    for piece in pieces {
        held.extend_from_slice(piece);
        let mut at = 0;
        loop {
            if at == held.len() {
                break;
            }
            match scanner.step(&held[at..]) {
                Step::Pass(n) => {
                    assert!(at + n <= held.len(), "passed more than given");
                    at += n;
                }
                Step::More => break,
                Step::Refuse(r) => return (passed + at, Some(r.status)),
            }
        }
        passed += at;
        held.drain(..at);
    }
    (passed, None)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let whole = feed(&[bytes]);
    let cut = (cut as usize * bytes.len()) / 255;
    let (a, b) = bytes.split_at(cut.min(bytes.len()));
    let pieces = feed(&[a, b]);
    assert_eq!(whole, pieces, "cut at {cut}");
});
