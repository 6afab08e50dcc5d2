//! Pure worker policies: given an event and the time, what should exist now?
//!
//! The live worker turns their answers into Docker or process actions; the
//! discrete-event simulator turns them into modelled delays. No I/O, no clock
//! reads (time is an argument, a [`std::time::Duration`] since an epoch the
//! caller chooses), seeded randomness only.
//!
//! The three caching mechanisms come from HotFunctions (Prev/HotFunctions,
//! `worker_front/runner.go`, `pre_warming.go`,
//! `singleton_container_manager.go`), configured by [`options::CachingOptions`]:
//! - [`image_cache::ImageCache`]: images (function packages) kept under a byte
//!   limit with least-recently-used eviction (`USER_CODE_SIZE_LIMIT`);
//! - [`container_pool::ContainerPool`]: pre-warmed instances for the most
//!   recently used functions (`CONTAINER_POOL_LIMIT`, `CONTAINER_POOL_NUM`);
//! - [`rest_instances::RestInstances`]: one long-lived instance per function
//!   serving concurrent calls, removed after an idle lifetime
//!   (`USING_REST_MODE`, `REST_CONTAINER_LIFE_TIME`).

pub mod container_pool;
pub mod image_cache;
pub mod keep_alive;
pub mod options;
pub mod rest_instances;
