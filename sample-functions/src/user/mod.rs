//! Users' own functions (issue 14), the parts the worker and the balancer
//! share (feature `user`): a package's checks and manifest, the token
//! bucket of a rate limit, and the store (content-addressed blobs and the
//! SQLite database of functions and call logs).
//!
//! A user function is a function with a package, as a sample function is:
//! its name may not be a catalog's ([`package::check_name`]).
//!
//! # Layout
//! - [`package`]: names, the manifest (`hf-function.json`), the checks and
//!   unpacking of a zip (zip slip, symlinks out, zip bombs).
//! - [`rate`]: the token bucket of a rate limit (pure).
//! - [`store`]: the locked data directory's layout, the blobs' digests, the
//!   SQLite database (one thread owns the connection).
//! - [`wire`]: the bodies of `POST /deploy` and `POST /config/:name`, the `limit` of `/logs`, hop-by-hop headers.

pub mod package;
pub mod rate;
pub mod store;
pub mod wire;
