//! The font for plot text, loaded once at run time.
//!
//! plotters' default text backend (`ttf`) needs fontconfig and FreeType at
//! build time; this crate uses plotters' `ab_glyph` backend instead, which
//! renders any TrueType file registered at run time. The file is, in order:
//! 1. the path in the `HF_PLOT_FONT` environment variable;
//! 2. DejaVu Sans from Debian/Ubuntu's `fonts-dejavu-core` package
//!    (`/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf`), or the same font at
//!    its Fedora/Arch paths, or Liberation Sans / FreeSans;
//! 3. whatever `fc-match -f %{file} sans-serif` names, if fontconfig's tools
//!    are installed.
//!
//! On a fresh Debian machine: `apt-get install fonts-dejavu-core`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::style::FontStyle;

/// The environment variable naming a TTF file to use.
pub const FONT_ENV: &str = "HF_PLOT_FONT";

/// The family name every plot uses.
pub const FAMILY: &str = "sans-serif";

const KNOWN_PATHS: [&str; 6] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

fn candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os(FONT_ENV) {
        out.push(PathBuf::from(p));
        // An explicit choice is the only candidate: a typo must not be
        // hidden by a fallback.
        return out;
    }
    out.extend(KNOWN_PATHS.iter().map(PathBuf::from));
    if let Ok(o) = std::process::Command::new("fc-match")
        .args(["-f", "%{file}", "sans-serif"])
        .output()
    {
        let path = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if o.status.success() && !path.is_empty() {
            out.push(PathBuf::from(path));
        }
    }
    out
}

fn load(path: &Path) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // plotters keeps registered fonts for the whole process; loaded once.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
        .map_err(|_| format!("{}: not a TrueType/OpenType font", path.display()))
}

/// Registers the plot font (once per process). The error says what was
/// tried and how to fix it.
pub fn ensure_font() -> Result<(), String> {
    static LOADED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let mut tried = Vec::new();
            for path in candidates() {
                if !path.exists() {
                    tried.push(format!("{} (missing)", path.display()));
                    continue;
                }
                match load(&path) {
                    Ok(()) => return Ok(path),
                    Err(e) => tried.push(e),
                }
            }
            Err(format!(
                "no font for plots: install one (Debian: `apt-get install fonts-dejavu-core`) or set {FONT_ENV} to a .ttf file; tried: {}",
                tried.join(", ")
            ))
        })
        .as_ref()
        .map(|_| ())
        .map_err(Clone::clone)
}
