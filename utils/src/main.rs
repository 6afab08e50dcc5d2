//! `utils` (being built; see issue 4).

fn main() {
    eprintln!("utils: not built yet");
    std::process::exit(2);
}
