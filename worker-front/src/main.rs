//! `worker-front`: the worker on :8222 (being built; see issue 3).

fn main() {
    eprintln!("worker-front: not built yet");
    std::process::exit(2);
}
