//! `load-balancer`: the HTTP balancer on :8111 (being built; see issue 2).

fn main() {
    eprintln!("load-balancer: not built yet");
    std::process::exit(2);
}
