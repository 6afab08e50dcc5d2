//! `simulator` (being built; see issues 4 and 5).

fn main() {
    eprintln!("simulator: not built yet");
    std::process::exit(2);
}
