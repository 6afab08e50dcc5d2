//! Build contexts of function images, made in memory (no registry, no files).
//!
//! A function image is `FROM scratch` plus the statically linked `hf-fn`
//! binary and, beside it, the function's package payload
//! ([`sample_functions::payload`], `package_bytes` of the catalog: the
//! original's package size, 14 KB up to 131 MB), so that building, storing
//! and evicting an image costs what the original's did. `hf-fn` finds the
//! payload as `/payload.bin` (beside itself) and reads it on every start.
//!
//! The Dockerfile labels the image with its function and its worker *before*
//! copying anything, so that the engine's build cache never shares a layer
//! between two functions (payloads of equal size have equal bytes) nor
//! between two workers on one engine: each image costs its full size to
//! build, as on a worker of its own, and removing it frees that space. (A
//! layer shared with another worker's image also made builds fail: when
//! that worker evicted its image during the build, the engine answered
//! "No such image" mid-stream.) The
//! build context is a tar archive (the body of the Docker Engine API's
//! `POST /build`) holding `Dockerfile`, `hf-fn` and `payload.bin`.

use std::io::Read;
use std::path::Path;

use crate::runtime::LABEL_INSTANCE;
use sample_functions::catalog::FUNCTION_FILE_NAME;
use sample_functions::payload::{PayloadReader, PAYLOAD_FILE_NAME};

/// Path of the function binary inside the image.
pub const BINARY_IN_IMAGE: &str = "/hf-fn";

/// Why a build context could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("cannot read the static hf-fn binary {path}: {source} (build it with scripts/build-static-hf-fn.sh)")]
    BinaryUnreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a statically linked x86-64 ELF executable ({reason}); images are FROM scratch, so hf-fn must be built with scripts/build-static-hf-fn.sh")]
    BinaryNotStatic { path: String, reason: String },
    #[error("cannot write the build context: {0}")]
    Tar(#[from] std::io::Error),
}

/// The Dockerfile of `function`'s image for the worker whose name part
/// (letters, digits, `-`) is `scope` and whose runtime's instance id
/// (hex) is `instance`. The function name is given on the command line of
/// each container; the label keeps layers per worker and function, and
/// carries the runtime's instance label (`LABEL_INSTANCE`) so that the
/// intermediate images of an interrupted build are its too, and the
/// orphan sweep (which goes by that label) finds them. With
/// `function_file`, the function's catalog row is copied beside `hf-fn`
/// as `/function.csv` (a function of a catalog file).
pub fn dockerfile(scope: &str, instance: &str, function: &str, function_file: bool) -> String {
    let row = if function_file {
        format!("COPY {FUNCTION_FILE_NAME} /{FUNCTION_FILE_NAME}\n")
    } else {
        String::new()
    };
    format!(
        "FROM scratch\nLABEL hotfunctions.package=\"{function}\" hotfunctions.build-scope=\"{scope}\" {LABEL_INSTANCE}=\"{instance}\"\nCOPY hf-fn {BINARY_IN_IMAGE}\nCOPY {PAYLOAD_FILE_NAME} /{PAYLOAD_FILE_NAME}\n{row}ENTRYPOINT [\"{BINARY_IN_IMAGE}\"]\n"
    )
}

/// One program header of an ELF64 file: type, file offset, size in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProgramHeader {
    p_type: u32,
    offset: u64,
    file_size: u64,
}

/// `PT_DYNAMIC`, `PT_INTERP` (ELF specification, program header types).
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
/// `DT_NEEDED`: a dynamic section entry naming a shared library.
const DT_NEEDED: u64 = 1;

/// The program headers of an x86-64 little-endian ELF64 file (every read
/// bounds-checked against `bytes`: a truncated or hostile file is an error,
/// never a panic, and nothing is sized by a value read from it).
fn program_headers(bytes: &[u8]) -> Result<Vec<ProgramHeader>, String> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a 64-bit little-endian ELF".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[o..o + 8]);
        u64::from_le_bytes(b)
    };
    if u16_at(0x12) != 62 {
        return Err("not an x86-64 binary".into());
    }
    let phoff = usize::try_from(u64_at(0x20)).map_err(|_| "bad program header offset")?;
    let phentsize = usize::from(u16_at(0x36));
    let phnum = usize::from(u16_at(0x38));
    if phnum > 0 && phentsize < 56 {
        return Err("bad program header size".into());
    }
    let mut out = Vec::new();
    for i in 0..phnum {
        let at = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .filter(|at| at.checked_add(56).is_some_and(|end| end <= bytes.len()))
            .ok_or("truncated program headers")?;
        out.push(ProgramHeader {
            p_type: u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]),
            offset: u64_at(at + 8),
            file_size: u64_at(at + 32),
        });
    }
    Ok(out)
}

/// The bytes of a segment, if they lie within `bytes`.
fn segment<'a>(bytes: &'a [u8], h: &ProgramHeader) -> Option<&'a [u8]> {
    let start = usize::try_from(h.offset).ok()?;
    let end = start.checked_add(usize::try_from(h.file_size).ok()?)?;
    bytes.get(start..end)
}

/// Checks that `bytes` is an x86-64 ELF executable that needs no dynamic
/// loader: no program interpreter (`PT_INTERP`), and no dynamic section
/// naming shared libraries (`DT_NEEDED` in `PT_DYNAMIC`). A dynamically
/// linked binary cannot start in a `FROM scratch` image, and the engine's
/// error would say only "no such file or directory". A static-pie binary
/// (what `-C target-feature=+crt-static` makes) has a dynamic section for
/// its own relocations but needs no library, and passes.
pub fn check_static_elf(bytes: &[u8]) -> Result<(), String> {
    for h in program_headers(bytes)? {
        if h.p_type == PT_INTERP {
            let interp = elf_interpreter(bytes).unwrap_or_default();
            return Err(format!(
                "it has a program interpreter {interp:?} (dynamically linked)"
            ));
        }
        if h.p_type == PT_DYNAMIC {
            let dynamic = segment(bytes, &h).ok_or("truncated dynamic section")?;
            let needs_a_library = dynamic
                .chunks_exact(16)
                .map(|e| u64::from_le_bytes(e[..8].try_into().unwrap_or_default()))
                .take_while(|&tag| tag != 0)
                .any(|tag| tag == DT_NEEDED);
            if needs_a_library {
                return Err(
                    "its dynamic section names shared libraries (dynamically linked)".into(),
                );
            }
        }
    }
    Ok(())
}

/// The program interpreter (`PT_INTERP`, the dynamic loader's path) of an
/// x86-64 ELF executable, if it has one.
pub fn elf_interpreter(bytes: &[u8]) -> Option<String> {
    let h = program_headers(bytes)
        .ok()?
        .into_iter()
        .find(|h| h.p_type == PT_INTERP)?;
    let path = segment(bytes, &h)?;
    let path = path.split(|&b| b == 0).next()?;
    Some(String::from_utf8_lossy(path).into_owned())
}

/// Reads and checks the static `hf-fn` binary.
pub fn read_static_binary(path: &Path) -> Result<Vec<u8>, ContextError> {
    let bytes = std::fs::read(path).map_err(|source| ContextError::BinaryUnreadable {
        path: path.display().to_string(),
        source,
    })?;
    check_static_elf(&bytes).map_err(|reason| ContextError::BinaryNotStatic {
        path: path.display().to_string(),
        reason,
    })?;
    Ok(bytes)
}

/// The build context of `function`'s image as a tar archive (with
/// `function_file`, the function's catalog file, as `function.csv`).
pub fn build_context(
    scope: &str,
    instance: &str,
    function: &str,
    package_bytes: u64,
    binary: &[u8],
    function_file: Option<&str>,
) -> Result<Vec<u8>, ContextError> {
    let dockerfile = dockerfile(scope, instance, function, function_file.is_some());
    let capacity = usize::try_from(package_bytes).unwrap_or(0) + binary.len() + 8 * 1024;
    let mut out = Vec::with_capacity(capacity);
    {
        let mut archive = tar::Builder::new(&mut out);
        let mut append =
            |path: &str, mode: u32, len: u64, data: &mut dyn Read| -> std::io::Result<()> {
                let mut header = tar::Header::new_gnu();
                header.set_size(len);
                header.set_mode(mode);
                header.set_mtime(0);
                header.set_entry_type(tar::EntryType::Regular);
                archive.append_data(&mut header, path, data)
            };
        append(
            "Dockerfile",
            0o644,
            dockerfile.len() as u64,
            &mut dockerfile.as_bytes(),
        )?;
        append("hf-fn", 0o755, binary.len() as u64, &mut &binary[..])?;
        append(
            PAYLOAD_FILE_NAME,
            0o644,
            package_bytes,
            &mut PayloadReader::new(package_bytes),
        )?;
        if let Some(text) = function_file {
            append(
                FUNCTION_FILE_NAME,
                0o644,
                text.len() as u64,
                &mut text.as_bytes(),
            )?;
        }
        archive.finish()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_holds_the_three_files() {
        let tar_bytes = build_context("node-1", "ab12", "T3", 1234, b"binary", None).unwrap();
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let mut seen = Vec::new();
        let mut payload = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            seen.push((
                path.clone(),
                entry.header().size().unwrap(),
                entry.header().mode().unwrap(),
            ));
            if path == PAYLOAD_FILE_NAME {
                entry.read_to_end(&mut payload).unwrap();
            }
        }
        assert_eq!(
            seen,
            vec![
                (
                    "Dockerfile".to_string(),
                    dockerfile("node-1", "ab12", "T3", false).len() as u64,
                    0o644
                ),
                ("hf-fn".to_string(), 6, 0o755),
                (PAYLOAD_FILE_NAME.to_string(), 1234, 0o644),
            ]
        );
        let mut expected = Vec::new();
        PayloadReader::new(1234).read_to_end(&mut expected).unwrap();
        assert_eq!(payload, expected);
        let d = dockerfile("node-1", "ab12", "T3", false);
        // The instance label is on the first step: every intermediate
        // image of the build carries it.
        assert!(
            d.starts_with(
                "FROM scratch\nLABEL hotfunctions.package=\"T3\" hotfunctions.build-scope=\"node-1\" hotfunctions.worker-instance=\"ab12\"\n"
            ),
            "{d}"
        );
        // Another worker's image of the same function shares no layer.
        assert_ne!(dockerfile("node-2", "ab12", "T3", false), d);
        assert_ne!(dockerfile("node-1", "cd34", "T3", false), d);
        assert!(d.contains("COPY payload.bin /payload.bin\n"), "{d}");
        assert!(!d.contains("function.csv"), "{d}");
    }

    #[test]
    fn a_catalog_files_function_carries_its_row() {
        let row = "header\nF1,row\n";
        let tar_bytes = build_context("node-1", "ab12", "F1", 10, b"binary", Some(row)).unwrap();
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let mut found = None;
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().display().to_string() == FUNCTION_FILE_NAME {
                let mut text = String::new();
                entry.read_to_string(&mut text).unwrap();
                found = Some(text);
            }
        }
        assert_eq!(found.as_deref(), Some(row));
        let d = dockerfile("node-1", "ab12", "F1", true);
        assert!(
            d.contains("COPY function.csv /function.csv\nENTRYPOINT"),
            "{d}"
        );
    }

    #[test]
    fn rejects_non_static_binaries() {
        assert!(check_static_elf(b"#!/bin/sh\necho hi\n").is_err());
        // This test binary is dynamically linked (the default target).
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let err = check_static_elf(&me).unwrap_err();
        assert!(err.contains("interpreter"), "{err}");
        let err = read_static_binary(Path::new("/nonexistent/hf-fn")).unwrap_err();
        assert!(err.to_string().contains("build-static-hf-fn.sh"), "{err}");
    }

    /// A minimal ELF64 x86-64 header with the given program header types.
    fn elf_with_program_headers(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * types.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x12..0x14].copy_from_slice(&62u16.to_le_bytes());
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            b[64 + 56 * i..68 + 56 * i].copy_from_slice(&t.to_le_bytes());
        }
        b
    }

    #[test]
    fn accepts_a_static_binary() {
        // PT_LOAD, PT_NOTE, PT_GNU_STACK: no PT_INTERP.
        assert_eq!(
            check_static_elf(&elf_with_program_headers(&[1, 4, 0x6474_e551])),
            Ok(())
        );
        assert!(check_static_elf(&elf_with_program_headers(&[6, 3, 1])).is_err());
    }

    /// [`elf_with_program_headers`] with one `PT_DYNAMIC` whose entries
    /// are `tags` (then `DT_NULL`), placed after the headers.
    fn elf_with_dynamic(tags: &[u64]) -> Vec<u8> {
        let mut b = elf_with_program_headers(&[1, PT_DYNAMIC]);
        let at = b.len();
        for t in tags.iter().chain(&[0]) {
            b.extend_from_slice(&t.to_le_bytes());
            b.extend_from_slice(&0u64.to_le_bytes());
        }
        let h = 64 + 56;
        b[h + 8..h + 16].copy_from_slice(&(at as u64).to_le_bytes());
        let size = (b.len() - at) as u64;
        b[h + 32..h + 40].copy_from_slice(&size.to_le_bytes());
        b
    }

    #[test]
    fn a_dynamic_section_needing_libraries_is_dynamic_linking() {
        // DT_NEEDED (1) among DT_STRTAB (5) and DT_FLAGS (30).
        let err = check_static_elf(&elf_with_dynamic(&[5, 1, 30])).unwrap_err();
        assert!(err.contains("shared libraries"), "{err}");
        // A static-pie binary's own relocations: no DT_NEEDED.
        assert_eq!(check_static_elf(&elf_with_dynamic(&[5, 7, 30])), Ok(()));
        // A dynamic section past the end of the file.
        let mut b = elf_with_dynamic(&[5]);
        let h = 64 + 56;
        b[h + 32..h + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(check_static_elf(&b).is_err());
        // Hostile header counts are errors, not panics.
        let mut b = elf_with_program_headers(&[1]);
        b[0x38..0x3a].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(check_static_elf(&b).is_err());
        b[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(check_static_elf(&b).is_err());
    }

    #[test]
    fn the_interpreter_of_this_test_binary_is_the_loader() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let loader = elf_interpreter(&me).expect("a dynamically linked test binary");
        assert!(
            loader.starts_with('/') && loader.contains("ld-"),
            "{loader}"
        );
        assert_eq!(elf_interpreter(&elf_with_program_headers(&[1])), None);
    }
}
