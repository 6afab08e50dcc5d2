//! Records the git revision of the sources this crate is built from
//! (`source_revision::built_from!` reads it).

fn main() {
    source_revision::build::emit();
}
