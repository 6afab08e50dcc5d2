//! [`NodeModel`]: one worker node's policies composed into one pure state
//! machine, shared by the live worker and the discrete-event simulator.
//!
//! # Events and effects
//!
//! A driver tells the model what happened and carries out what it answers:
//!
//! | event | method | typical effects |
//! |---|---|---|
//! | a call arrives | [`NodeModel::call_arrived`] | its first [`Step`] |
//! | an image is built / failed | [`NodeModel::image_built`], [`NodeModel::image_build_failed`] | the waiting calls' steps, evicted images |
//! | an instance is up / failed | [`NodeModel::instance_started`], [`NodeModel::instance_start_failed`] | the waiting calls' steps |
//! | a warm instance turned out dead | [`NodeModel::instance_died`] | the call's retry step |
//! | a call ends | [`NodeModel::call_finished`] | evictions, pool refills, removals |
//! | a timer is due ([`NodeModel::next_timer`]) | [`NodeModel::timer`] | expired instances |
//! | the options change | [`NodeModel::set_options`] | evictions, removals, pool refills |
//! | `/clear` | [`NodeModel::clear`] | removals |
//! | scale to zero / a wake (the balancer) | [`NodeModel::remove_function_instances`], [`NodeModel::start_instances`] | removals / pre-warms |
//!
//! Every answer is an [`Effects`] value (`#[must_use]`): the next step of
//! each call that may go on, instances to pre-warm, instances and images to
//! remove. The live worker executes them with a runtime; the simulator
//! schedules their modelled costs. Neither keeps policy state of its own.
//!
//! # One call's life
//!
//! On arrival the call pins its function's image ([`DenseImageCache`]). If the
//! image is missing, one call builds it ([`Step::BuildImage`]) and later
//! ones [`Step::Wait`] for that build (single flight). Once the image is
//! there, the call gets its instance, by the node's [`InstanceModel`]:
//!
//! - HotFunctions, REST mode: the function's one long-lived instance
//!   ([`RestInstances`]): [`Step::Run`] on it when it is up
//!   (`UsingExistingRestContainer`), [`Step::Start`] it when there is none,
//!   or [`Step::Wait`] while another call starts it;
//! - HotFunctions with pools: a ready pre-warmed instance ([`ContainerPool`],
//!   [`Step::Run`], `UsingPooledContainer`; it serves this call only), else
//!   a one-shot instance ([`Step::RunOnce`]);
//! - HotFunctions otherwise: [`Step::RunOnce`];
//! - Lambda: the most recently created idle instance of the function
//!   ([`KeepAlivePool`], [`Step::Run`], reported as
//!   `UsingExistingRestContainer`), else a new one ([`Step::Start`]).
//!
//! When the call ends, the image is unpinned and may be evicted, the pool
//! is reconciled (pre-warm or remove instances), and an idle instance's
//! expiry is scheduled.
//!
//! # Composition rules (here, and nowhere else)
//!
//! - **An evicted image takes its idle instances with it**: the function's
//!   ready pooled instances, its idle REST instance and its idle keep-alive
//!   instances are removed, and pooled instances still starting are refused
//!   when they come up. (An image is never evicted while a call of it is in
//!   flight, so no instance of it is busy.) A later call rebuilds the image
//!   and starts a new instance: a cold start.
//! - **`/clear`** forgets the pool, the REST instances and the keep-alive
//!   pools (and with `reset_images` the image cache): every instance is
//!   listed for removal; one that a call still uses or starts is detached
//!   from the policies, finishes its calls, and is listed again when idle.
//!   Builds in progress complete and are cached.
//! - **Options**: a lower image limit evicts at once (as above); a new REST
//!   lifetime applies to idle instances; REST mode off removes the REST
//!   instances (busy ones when idle); REST mode on removes the pools; new
//!   pool limits reconcile the pools.
//! - Anything a policy no longer owns (detached) is removed when no call
//!   uses it.
//!
//! # Keep-alive policies (Lambda model)
//!
//! The Lambda model runs one [`KeepAlivePolicy`] (see its module for the
//! table and sources), with these rules:
//!
//! - **Memory** (`lru`, `greedy-dual`): each function's instances take its
//!   memory ([`NodeModel::declare_function`], default
//!   [`crate::scheduler::DEFAULT_FUNCTION_MEMORY_MB`]); a cold start that
//!   would exceed the node's memory ([`NodeModel::with_node_memory_mb`])
//!   first evicts idle keep-alive instances, least recently used first or
//!   lowest Greedy-Dual priority first, until it fits; if nothing idle is
//!   left, it starts anyway (over-commit, counted in
//!   [`NodeModel::memory_in_use_mb`]). Greedy-Dual's cost is learned here:
//!   the mean time the function's instances took to start (from
//!   [`Step::Start`] or [`Prewarm`] to [`NodeModel::instance_started`]).
//! - **Histogram**: a function's idle times are measured from the end of
//!   its last call in flight to its next arrival; when that call ends, the
//!   windows apply: with a pre-warming window the idle instances are
//!   removed and one [`Prewarm`] is due when it ends (unless a call came
//!   first or an instance exists), and the keep-alive window is the
//!   function's keep-alive from then on.
//! - **EWMA**: at each 30 s boundary (a timer) the function's target is
//!   recomputed; missing instances are pre-warmed, and idle ones expire
//!   only above the target.
//!
//! - **Per-call memory**: a call may ask for its own memory
//!   ([`NodeModel::call_arrived_with_memory`], a scenario row's
//!   `MemoryMb`); an instance's memory is the largest any of its calls
//!   asked for (it never shrinks: a runtime rarely gives memory back, and
//!   a platform sizes an instance for its largest call). Growth on reuse
//!   evicts nothing; cold starts make room for the new instance's memory.
//! - **Reuse and admission** ([`NodeModel::with_reuse_rules`],
//!   [`NodeModel::with_admission`]): which idle instance a call takes and
//!   whether reuse extends the keep-alive ([`super::keep_alive`]); a limit
//!   on busy instances and what a full node does (over-commit, queue,
//!   reject: [`super::admission`]). Defaults are the rules above.
//!
//! - **Per-function keep-alive** ([`NodeModel::set_function_keep_alive`],
//!   [`FunctionTable::set_keep_alive`]): a function given its own
//!   keep-alive uses it wherever the model's keep-alive applies to it (its
//!   pool's idle time, the histogram's and EWMA's base period); the others
//!   keep the model's. Unset, nothing changes.
//!
//! Pre-warmed keep-alive instances are idle once up (they expire like any
//! idle instance) and are refused if the image or the pool went meanwhile.
//!
//! Timers: the model keeps the earliest expiry per function (in order in
//! a queue, the few out of order in a heap: `timers.rs`);
//! [`NodeModel::next_timer`] is when to call [`NodeModel::timer`] next (a
//! live worker may call it on a tick instead; early calls do nothing).
//!
//! Differences from the original HotFunctions worker are those of the
//! policies it composes (see their module docs), plus: expiry is driven by
//! timers rather than checked after the next call, and the pool hears of
//! calls only while pooling is on.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use serde::Serialize;

use super::admission::{Admission, Overflow};
use super::chunked::ChunkedVec;
use super::container_pool::{ContainerPool, PoolPlan};
use super::ewma_prewarm::EwmaPrewarm;
use super::functions::{FunctionId, FunctionTable};
use super::greedy_dual::GreedyDual;
use super::histogram::IdleTimeHistogram;
use super::image_cache::{DenseImageCache, EvictedImage, HasImageSlot, ImageSlot};
use super::instance_table::InstanceTable;
use super::keep_alive::{Acquired, KeepAlivePool, ReuseRules};
use super::keep_alive_policy::KeepAlivePolicy;
use super::lru::IdleLru;
use super::options::CachingOptions;
use super::rest_instances::{RestAcquire, RestInstances};
use super::timers::Timers;
use super::InstanceId;
use crate::time::Time;

/// How a node's instances serve calls.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum InstanceModel {
    /// HotFunctions' worker: per-call instances (with the optional
    /// pre-warmed pool), or with `USING_REST_MODE` one shared long-lived
    /// instance per function ([`CachingOptions`]).
    HotFunctions,
    /// AWS Lambda: one call per instance, idle instances kept for
    /// `keep_alive`, the most recently created idle instance reused
    /// ([`KeepAlivePool`]), under a keep-alive `policy`
    /// ([`KeepAlivePolicy`]: memory-limited eviction, histogram or EWMA
    /// pre-warming). The caching options' image limit still applies; their
    /// pool and REST settings do not.
    Lambda {
        #[serde(rename = "keep_alive_s", serialize_with = "serialize_secs")]
        keep_alive: Duration,
        policy: KeepAlivePolicy,
    },
}

impl InstanceModel {
    /// The Lambda model with `policy`.
    pub fn lambda(keep_alive: Duration, policy: KeepAlivePolicy) -> Self {
        Self::Lambda { keep_alive, policy }
    }

    /// The keep-alive policy (None for HotFunctions).
    pub fn keep_alive_policy(&self) -> Option<KeepAlivePolicy> {
        match self {
            Self::Lambda { policy, .. } => Some(*policy),
            Self::HotFunctions => None,
        }
    }
}

fn serialize_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// What kind of instance a [`Step::Start`] or [`Prewarm`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceKind {
    /// A pre-warmed pool member: serves one call, then is removed.
    Pooled,
    /// A REST-mode instance: serves many calls, concurrently.
    Rest,
    /// A keep-alive instance (Lambda model): one call at a time, many calls.
    KeepAlive,
}

/// A call on the node, as the model names it. Ids are reused after a call
/// ends, with a new tag, so a stale id never names a later call.
/// (`CallId::default()` is only a placeholder for a driver's record
/// before the model names the call: it may equal a real call's id.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId {
    index: u32,
    tag: u32,
}

/// What a call does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Build the function's image, then report
    /// [`NodeModel::image_built`] or [`NodeModel::image_build_failed`].
    BuildImage,
    /// Wait for a build or an instance start that something else does; a
    /// later [`EffectLists::resume`] gives the call's next step.
    Wait,
    /// Start this instance, report [`NodeModel::instance_started`] (or
    /// [`NodeModel::instance_start_failed`]), then run the call on it.
    Start {
        instance: InstanceId,
        kind: InstanceKind,
    },
    /// Run the call on this running instance (a warm start).
    Run { instance: InstanceId },
    /// Run the call in a fresh one-shot instance that the runtime creates,
    /// runs and removes (a cold start; the id names it in logs).
    RunOnce { instance: InstanceId },
}

/// An instance to start with no call waiting for it (a pool refill);
/// report [`NodeModel::instance_started`] or
/// [`NodeModel::instance_start_failed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prewarm {
    pub instance: InstanceId,
    pub function: Arc<str>,
    pub kind: InstanceKind,
}

/// What the driver must do after an event, in order: [`EffectLists`]
/// behind one pointer (handed from the model to its driver at every event
/// and back by [`NodeModel::recycle`]: a pointer moves, not five lists).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use = "a node model's effects must be carried out by its driver"]
pub struct Effects(Box<EffectLists>);

/// The lists of an [`Effects`] (read and written through it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EffectLists {
    /// Calls whose next step is decided, in the order the model decided
    /// them (a call may be told to [`Step::Wait`] again).
    pub resume: Vec<(CallId, Step)>,
    /// Instances to start with no call waiting.
    pub prewarm: Vec<Prewarm>,
    /// Instances to stop and remove.
    pub remove_instances: Vec<InstanceId>,
    /// Images to delete, by function (evicted, or cleared).
    pub remove_images: Vec<Arc<str>>,
    /// Calls refused by the node's admission rules
    /// ([`super::admission`]): they ended unserved (the model has
    /// forgotten them); the driver reports them failed.
    pub rejected: Vec<CallId>,
}

impl std::ops::Deref for Effects {
    type Target = EffectLists;
    fn deref(&self) -> &EffectLists {
        &self.0
    }
}

impl std::ops::DerefMut for Effects {
    fn deref_mut(&mut self) -> &mut EffectLists {
        &mut self.0
    }
}

impl Effects {
    /// The lists, owned (a driver that consumes them).
    pub fn into_lists(self) -> EffectLists {
        *self.0
    }

    /// Takes out the next step of `call` (a driver handling that call
    /// itself), if the effects resume it.
    pub fn take_step(&mut self, call: CallId) -> Option<Step> {
        let at = self.resume.iter().position(|(c, _)| *c == call)?;
        Some(self.resume.remove(at).1)
    }

    pub fn is_empty(&self) -> bool {
        self.resume.is_empty()
            && self.prewarm.is_empty()
            && self.remove_instances.is_empty()
            && self.remove_images.is_empty()
            && self.rejected.is_empty()
    }

    /// Empties every list, keeping their storage.
    fn clear(&mut self) {
        self.resume.clear();
        self.prewarm.clear();
        self.remove_instances.clear();
        self.remove_images.clear();
        self.rejected.clear();
    }

    /// Appends `other`'s effects after these.
    fn append(&mut self, mut other: Effects) {
        self.resume.append(&mut other.resume);
        self.prewarm.append(&mut other.prewarm);
        self.remove_instances.append(&mut other.remove_instances);
        self.remove_images.append(&mut other.remove_images);
        self.rejected.append(&mut other.rejected);
    }
}

/// Why [`NodeModel::start_instances`] started nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartRefused {
    /// The function's image is not cached: build it, then ask again.
    ImageNotCached,
    /// HotFunctions without REST mode: every call runs in an instance of
    /// its own (one-shot, or a pooled one the pool refills by itself).
    PerCallInstances,
}

/// How the worker served a call: the original's `Meta` flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CallMeta {
    /// The image had to be built for this call (it built it, or waited for
    /// the build).
    pub image_built: bool,
    /// A pre-warmed pool instance served it.
    pub pooled: bool,
    /// An instance that was already up served it (REST mode, or a reused
    /// keep-alive instance).
    pub existing_instance: bool,
}

impl CallMeta {
    /// A cold start: no warm instance (pooled, REST or reused) served it.
    pub fn is_cold(&self) -> bool {
        !self.pooled && !self.existing_instance
    }
}

/// How the policies count a call, so that its end is told to the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// No instance yet (waiting for its image), or its start failed.
    None,
    /// Counted by the REST instances, on `instance`.
    Rest,
    /// Counted by the pool (it took a pooled instance, or runs one-shot).
    Pool,
    /// Not counted by any policy: a one-shot instance.
    Once,
    /// On a keep-alive instance.
    KeepAlive,
}

#[derive(Debug, Clone)]
struct Call {
    function: u32,
    /// The memory it asks for, MB (its function's unless the driver gave
    /// one).
    memory_mb: u32,
    generation: u64,
    meta: CallMeta,
    role: Role,
    instance: Option<InstanceId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InstanceState {
    Starting,
    Ready,
}

#[derive(Debug, Clone)]
struct InstanceRecord {
    function: u32,
    kind: InstanceKind,
    state: InstanceState,
    /// Calls using it (running, or waiting for its start).
    busy: u32,
    /// Calls waiting for its start.
    waiting: Vec<CallId>,
    /// The call that starts it (None for a pre-warmed instance).
    starter: Option<CallId>,
    /// Still owned by a policy; when false it is removed once idle.
    attached: bool,
    /// When it was asked for (its start's duration is learned from it).
    created: Time,
    /// Its memory, MB: the largest its calls asked for (keep-alive
    /// instances; the function's for the others).
    memory_mb: u32,
}

/// A build in progress (single flight).
#[derive(Debug, Clone, Default)]
struct Build {
    /// The call that builds (None for `/prepare`).
    builder: Option<CallId>,
    /// Calls waiting for the build, in arrival order.
    waiting: Vec<CallId>,
}

/// What a node knows of one function it has seen: two cache lines,
/// aligned as the pair a core's adjacent-line prefetcher fetches together
/// (what the Lambda model with a fixed keep-alive touches per call, its
/// image's slot and keep-alive pool included; the parts of the other
/// models and policies boxed in [`FunctionExtra`], builds in progress in a
/// map of the node), since a node holds one per function it has seen and
/// a call reaches it at a random node.
#[derive(Debug, Clone)]
#[repr(align(128))]
struct FunctionState {
    /// Its id in the node's function tables (see [`NodeModel::name`]).
    global: FunctionId,
    /// Its memory per instance (MB).
    memory_mb: u32,
    /// Lambda model: its calls in flight.
    calls: u32,
    /// Its image: cached or not, size, last use, calls pinning it (the
    /// node's [`DenseImageCache`] keeps its slots here).
    image: ImageSlot,
    /// Whether it has a keep-alive pool (Lambda model; see
    /// [`FunctionState::pool`]).
    has_pool: bool,
    /// Its keep-alive instances, when `has_pool` (else empty, holding no
    /// storage): in the record itself, the line after the fields a call
    /// reads first, not behind a pointer of its own. Dropped when empty
    /// under the policies that keep nothing per pool (see
    /// [`NodeModel::drop_empty_pool`]).
    pool: KeepAlivePool,
    /// When this function's pending timer entry is due; [`NO_TIMER`] if
    /// it has none.
    timer: Time,
    /// The rest, made on first use.
    extra: Option<Box<FunctionExtra>>,
}

/// The parts of a [`FunctionState`] that only some instance models and
/// keep-alive policies use.
#[derive(Debug, Clone, Default)]
struct FunctionExtra {
    /// Ready pooled instances, most recent last.
    pooled: Vec<InstanceId>,
    /// Histogram policy: when the last call in flight ended.
    last_end: Option<Time>,
    /// Keep-alive instances being pre-warmed.
    prewarming: u32,
    /// Histogram policy: its idle times, and when to pre-warm next.
    histogram: Option<Box<IdleTimeHistogram>>,
    prewarm_at: Option<Time>,
    /// EWMA policy: its call-rate estimate.
    ewma: Option<Box<EwmaPrewarm>>,
    /// Greedy-Dual: calls since it last had no instance; instance start
    /// times seen (sum in ms, count).
    frequency: u64,
    start_ms: (f64, u64),
}

/// What a function without [`FunctionExtra`] reads.
static NO_EXTRA: FunctionExtra = FunctionExtra {
    pooled: Vec::new(),
    last_end: None,
    prewarming: 0,
    histogram: None,
    prewarm_at: None,
    ewma: None,
    frequency: 0,
    start_ms: (0.0, 0),
};

/// A [`FunctionState::timer`] when none is pending: a timer due at the
/// end of time is never set (it could not fire).
const NO_TIMER: Time = Time::MAX;

impl HasImageSlot for FunctionState {
    fn image_slot(&self) -> &ImageSlot {
        &self.image
    }
    fn image_slot_mut(&mut self) -> &mut ImageSlot {
        &mut self.image
    }
}

impl FunctionState {
    /// Its keep-alive pool, if it has one.
    fn pool(&self) -> Option<&KeepAlivePool> {
        self.has_pool.then_some(&self.pool)
    }

    fn pool_mut(&mut self) -> Option<&mut KeepAlivePool> {
        self.has_pool.then_some(&mut self.pool)
    }

    /// Its pool, made new (with `keep_alive()` and `rules`) if it has none.
    fn pool_or_new(
        &mut self,
        keep_alive: impl FnOnce() -> Duration,
        rules: ReuseRules,
    ) -> &mut KeepAlivePool {
        if !self.has_pool {
            self.pool.reset(keep_alive(), rules);
            self.has_pool = true;
        }
        &mut self.pool
    }

    /// Drops its pool (and the storage of one that grew).
    fn drop_pool(&mut self) {
        self.has_pool = false;
        self.pool.clear();
        self.pool.shrink();
    }

    /// Its extra parts (defaults if it has none).
    fn x(&self) -> &FunctionExtra {
        self.extra.as_deref().unwrap_or(&NO_EXTRA)
    }

    /// Its extra parts, made if it has none.
    fn x_mut(&mut self) -> &mut FunctionExtra {
        self.extra.get_or_insert_with(Box::default)
    }
}

/// Calls in flight, by reusable index and tag.
#[derive(Debug, Clone, Default)]
struct Calls {
    slots: Vec<(u32, Option<Call>)>,
    free: Vec<u32>,
}

impl Calls {
    fn insert(&mut self, call: Call) -> CallId {
        match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.0 = slot.0.wrapping_add(1);
                slot.1 = Some(call);
                CallId { index, tag: slot.0 }
            }
            None => {
                self.slots.push((0, Some(call)));
                CallId {
                    index: (self.slots.len() - 1) as u32,
                    tag: 0,
                }
            }
        }
    }

    fn get(&self, id: CallId) -> Option<&Call> {
        match self.slots.get(id.index as usize) {
            Some((tag, Some(c))) if *tag == id.tag => Some(c),
            _ => None,
        }
    }

    fn get_mut(&mut self, id: CallId) -> Option<&mut Call> {
        match self.slots.get_mut(id.index as usize) {
            Some((tag, Some(c))) if *tag == id.tag => Some(c),
            _ => None,
        }
    }

    fn remove(&mut self, id: CallId) -> Option<Call> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.0 != id.tag {
            return None;
        }
        let call = slot.1.take()?;
        self.free.push(id.index);
        Some(call)
    }

    fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// A node's local function ids by global id. A node that has seen few of
/// the named functions keeps them in a small map (hot in the cache: under
/// hashing schedulers a node sees a few functions of thousands); once the
/// functions it has seen number at least one in [`DENSE_SHARE`] of the
/// named ones (those outside the tables count too: rare), the named ids
/// (below the table's size plus this node's own names) move to a dense
/// vector, one `u32` a slot: a call's lookup is then one memory access
/// instead of a hash probe (a cache miss less per call at Azure scale
/// under spreading schedulers, where every node sees most functions).
/// Other ids (a driver's id outside any table) stay in the map, so
/// nothing is ever sized by such an id. Either way the vector costs at
/// most `4 * DENSE_SHARE` bytes per function seen.
#[derive(Debug, Clone, Default)]
struct LocalIds {
    /// `dense[g]` is `local + 1`, or 0 for a function not seen here;
    /// empty until the node has seen enough functions.
    dense: Vec<u32>,
    sparse: FxHashMap<FunctionId, u32>,
}

/// [`LocalIds`] goes dense once a node has seen one named function in
/// this many.
const DENSE_SHARE: usize = 8;

impl LocalIds {
    #[inline]
    fn get(&self, g: FunctionId) -> Option<u32> {
        match self.dense.get(g as usize) {
            Some(&v) if v != 0 => Some(v - 1),
            Some(_) => None,
            None => self.sparse.get(&g).copied(),
        }
    }

    /// Records `g -> local` (a function not seen before); `bound` is the
    /// number of named global ids.
    fn insert(&mut self, g: FunctionId, local: u32, bound: FunctionId) {
        if (g as usize) < self.dense.len() {
            self.dense[g as usize] = local + 1;
            return;
        }
        self.sparse.insert(g, local);
        let seen = self.sparse.len();
        if self.dense.is_empty() && bound > 0 && seen * DENSE_SHARE >= bound as usize {
            // Enough seen: the named ids move to the vector, once.
            self.dense.resize(bound as usize, 0);
            let dense = &mut self.dense;
            self.sparse
                .retain(|&k, &mut v| match dense.get_mut(k as usize) {
                    Some(slot) => {
                        *slot = v + 1;
                        false
                    }
                    None => true,
                });
        }
    }

    fn clear(&mut self) {
        self.dense.clear();
        self.sparse.clear();
    }
}

/// Recycled effects kept per thread ([`NodeModel::recycle`]): enough
/// for a driver's nested events.
const MAX_SPARE_EFFECTS: usize = 8;

/// One node's policies, composed. See the module docs.
#[derive(Debug, Clone)]
pub struct NodeModel {
    options: CachingOptions,
    instance_model: InstanceModel,
    /// Bumped by `/clear`: calls from before it are not counted by the new
    /// pool.
    generation: u64,
    /// The policies, keyed by the node's local function ids (first seen
    /// on this node, first numbered: ties in recency break in that order).
    cache: DenseImageCache,
    pool: ContainerPool<u32>,
    rest: RestInstances<u32>,
    /// The functions seen on this node, by local id.
    functions: ChunkedVec<FunctionState>,
    /// Names shared with other nodes ([`NodeModel::with_functions`]);
    /// their ids are the global ids `0..table.len()`.
    table: Arc<FunctionTable>,
    /// Names not in `table`, interned here: global id `table.len() + id`.
    own: FunctionTable,
    /// Local id of each global id seen on this node.
    local: LocalIds,
    /// Image builds in progress (single flight), by local id.
    builds: FxHashMap<u32, Build>,
    instances: InstanceTable<InstanceRecord>,
    calls: Calls,
    /// Pending looks at functions: (when, global id, local id). Ties in
    /// time go in global-id order (the order of the shared table, else the
    /// order names were first given to this node).
    timers: Timers,
    next_instance: InstanceId,
    keep_alive_busy: u64,
    keep_alive_idle: u64,
    /// Memory for instances (MB); None = unlimited.
    node_memory_mb: Option<u64>,
    /// Eviction orders of the idle keep-alive instances (the one of the
    /// policy is kept; the other stays empty).
    lru: IdleLru,
    greedy_dual: GreedyDual,
    evictions: u64,
    /// Keep-alive pools' reuse rules, and the node's admission rules.
    reuse: ReuseRules,
    admission: Admission,
    /// Calls waiting for admission ([`Overflow::Queue`]), oldest first.
    admission_queue: VecDeque<CallId>,
    /// Set while the queue's head is retried (it goes back to the front).
    retrying: bool,
    rejections: u64,
    /// Reused by [`NodeModel::acquire`] and [`NodeModel::timer`] for the
    /// instances they expire.
    expired_buffer: Vec<InstanceId>,
}

thread_local! {
    /// Effects handed back by drivers ([`NodeModel::recycle`]), filled
    /// again by later events of any node model on this thread instead of
    /// new ones: one small stack, hot in the cache, rather than one per
    /// node (a simulator's next event is most often on another node).
    static SPARE_EFFECTS: RefCell<Vec<Effects>> = const { RefCell::new(Vec::new()) };
}

impl NodeModel {
    /// An empty node.
    pub fn new(options: CachingOptions, instance_model: InstanceModel) -> Self {
        Self {
            options,
            instance_model,
            generation: 0,
            cache: DenseImageCache::new(options.image_limit_bytes()),
            pool: new_pool(&options),
            rest: RestInstances::new(options.rest_lifetime()),
            functions: ChunkedVec::default(),
            table: Arc::default(),
            own: FunctionTable::new(),
            local: LocalIds::default(),
            builds: FxHashMap::default(),
            instances: InstanceTable::default(),
            calls: Calls::default(),
            timers: Timers::default(),
            next_instance: 1,
            keep_alive_busy: 0,
            keep_alive_idle: 0,
            node_memory_mb: None,
            lru: IdleLru::new(),
            greedy_dual: GreedyDual::new(),
            evictions: 0,
            reuse: ReuseRules::default(),
            admission: Admission::default(),
            admission_queue: VecDeque::new(),
            retrying: false,
            rejections: 0,
            expired_buffer: Vec::new(),
        }
    }

    /// Hands carried-out `effects` back: a later event's effects reuse
    /// their storage, so a driver that recycles what it has applied does
    /// not allocate per event. (Optional; at most a few are kept.)
    pub fn recycle(&mut self, mut effects: Effects) {
        effects.clear();
        SPARE_EFFECTS.with_borrow_mut(|spare| {
            if spare.len() < MAX_SPARE_EFFECTS {
                spare.push(effects);
            }
        });
    }

    /// Empty effects, from the recycled ones when there are any.
    fn fresh_effects(&mut self) -> Effects {
        SPARE_EFFECTS.with_borrow_mut(Vec::pop).unwrap_or_default()
    }

    /// Reuse rules of the keep-alive pools (Lambda model): which idle
    /// instance a call takes, and whether reuse extends the keep-alive
    /// ([`super::keep_alive`]). Give it to a new node.
    pub fn with_reuse_rules(mut self, rules: ReuseRules) -> Self {
        self.reuse = rules;
        self
    }

    /// Admission rules for calls that need a new keep-alive instance
    /// ([`super::admission`]).
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = admission;
        self
    }

    /// `f`'s keep-alive pool, made if it has none (under this node's
    /// reuse rules). A new pool takes `f`'s own keep-alive if it has one
    /// ([`NodeModel::set_function_keep_alive`]), else `keep_alive`.
    fn pool_of(&mut self, f: u32, keep_alive: Duration) -> &mut KeepAlivePool {
        let (table, own, rules) = (&self.table, &self.own, self.reuse);
        let fs = &mut self.functions[f as usize];
        let global = fs.global;
        fs.pool_or_new(
            || Self::own_keep_alive(table, own, global).unwrap_or(keep_alive),
            rules,
        )
    }

    /// The keep-alive of global id `g` in `table` + `own`, if it has its
    /// own.
    fn own_keep_alive(
        table: &FunctionTable,
        own: &FunctionTable,
        g: FunctionId,
    ) -> Option<Duration> {
        match g.checked_sub(table.len() as FunctionId) {
            None => table.keep_alive(g),
            Some(o) => own.keep_alive(o),
        }
    }

    /// Gives `function` its own keep-alive (Lambda model): its idle
    /// instances go after `keep_alive` instead of the instance model's
    /// (the balancer's per-function idle time before scaling to zero, in
    /// the simulator). Functions never given one keep the model's, so a
    /// node without any behaves exactly as before. A pool the function
    /// already has takes it at once. A name of a shared table
    /// ([`NodeModel::with_functions`]) is set in this node's copy of it;
    /// a driver that knows every function sets it in the table it shares
    /// ([`FunctionTable::set_keep_alive`]) instead.
    pub fn set_function_keep_alive(&mut self, function: &str, keep_alive: Duration) {
        let g = self.global_of(function);
        match g.checked_sub(self.table.len() as FunctionId) {
            None => Arc::make_mut(&mut self.table).set_keep_alive(g, keep_alive),
            Some(o) => self.own.set_keep_alive(o, keep_alive),
        }
        let Some(f) = self.known_local(function) else {
            return;
        };
        let next = self.functions[f as usize].pool_mut().and_then(|pool| {
            pool.set_keep_alive(keep_alive);
            pool.next_expiry()
        });
        if let Some(t) = next {
            self.schedule(f, t);
        }
    }

    /// The node's memory for instances, in MB (enforced by the
    /// memory-limited keep-alive policies, `lru` and `greedy-dual`).
    pub fn with_node_memory_mb(mut self, memory_mb: u32) -> Self {
        self.node_memory_mb = Some(u64::from(memory_mb));
        self
    }

    /// Tells the memory of `function`'s instances (MB); functions never
    /// declared take their memory in the shared table
    /// ([`NodeModel::with_functions`]), else
    /// [`crate::scheduler::DEFAULT_FUNCTION_MEMORY_MB`].
    pub fn declare_function(&mut self, function: &str, memory_mb: u32) {
        let f = self.intern(function);
        self.functions[f as usize].memory_mb = memory_mb;
    }

    /// Shares `table`'s names with this node: functions are then named by
    /// their table ids ([`NodeModel::call_arrived_by_id`],
    /// [`NodeModel::image_built_by_id`]) as well as by name, and a
    /// function's instances take the table's memory unless declared here.
    /// The node keeps state only for the functions it sees (none for the
    /// rest of the table). Give it to a new node: functions this node has
    /// seen keep their state, under their new ids.
    pub fn with_functions(mut self, table: Arc<FunctionTable>) -> Self {
        let old_table = std::mem::replace(&mut self.table, table);
        let old_own = std::mem::take(&mut self.own);
        self.local.clear();
        for local in 0..self.functions.len() {
            let global = self.functions[local].global;
            let name = match Self::name_in(&old_table, &old_own, global) {
                Some(n) => n.clone(),
                None => continue,
            };
            let global = self.global_of(&name);
            self.functions[local].global = global;
            let bound = self.id_bound();
            self.local.insert(global, local as u32, bound);
        }
        self
    }

    /// The name of global id `g` in `table` + `own`.
    fn name_in<'t>(
        table: &'t FunctionTable,
        own: &'t FunctionTable,
        g: FunctionId,
    ) -> Option<&'t Arc<str>> {
        match g.checked_sub(table.len() as FunctionId) {
            None => table.name(g),
            Some(o) => own.name(o),
        }
    }

    /// Global ids below this are named (in `table` or `own`): the node's
    /// dense local-id table may reach this far, never further.
    fn id_bound(&self) -> FunctionId {
        (self.table.len() + self.own.len()) as FunctionId
    }

    /// The global id of `name`, interning it in `own` if it is new.
    fn global_of(&mut self, name: &str) -> FunctionId {
        match self.table.id(name) {
            Some(g) => g,
            None => self.table.len() as FunctionId + self.own.intern(name),
        }
    }

    /// The global id of `name`, if known.
    fn known_global(&self, name: &str) -> Option<FunctionId> {
        self.table
            .id(name)
            .or_else(|| Some(self.table.len() as FunctionId + self.own.id(name)?))
    }

    /// The local id of a known name (None if never seen on this node).
    fn known_local(&self, name: &str) -> Option<u32> {
        self.local.get(self.known_global(name)?)
    }

    fn policy(&self) -> KeepAlivePolicy {
        self.instance_model.keep_alive_policy().unwrap_or_default()
    }

    pub fn options(&self) -> CachingOptions {
        self.options
    }

    pub fn instance_model(&self) -> InstanceModel {
        self.instance_model
    }

    fn intern(&mut self, name: &str) -> u32 {
        let g = self.global_of(name);
        self.local_of(g)
    }

    /// The local id of global id `g`, creating its state on first sight.
    fn local_of(&mut self, g: FunctionId) -> u32 {
        if let Some(f) = self.local.get(g) {
            return f;
        }
        let f = self.functions.len() as u32;
        let bound = self.id_bound();
        self.local.insert(g, f, bound);
        // The table's memory (the default for names not in it).
        let memory_mb = self.table.memory_mb(g);
        self.functions.push(FunctionState {
            global: g,
            memory_mb,
            calls: 0,
            image: ImageSlot::default(),
            has_pool: false,
            pool: KeepAlivePool::new(Duration::ZERO),
            timer: NO_TIMER,
            extra: None,
        });
        f
    }

    fn mint(&mut self) -> InstanceId {
        let id = self.next_instance;
        self.next_instance += 1;
        id
    }

    /// The name of local function `f`.
    fn name(&self, f: u32) -> Arc<str> {
        let g = self.functions[f as usize].global;
        Self::name_in(&self.table, &self.own, g)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    // ----- events -----

    /// A call of `function` arrives at `now`. Its first step is in the
    /// effects' `resume` (take it with [`Effects::take_step`]).
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn call_arrived(&mut self, function: &str, now: Time) -> (CallId, Effects) {
        let f = self.intern(function);
        let (call, effects, _) = self.arrived(f, None, None, now);
        (call, effects)
    }

    /// [`NodeModel::call_arrived`] for a call that asks for `memory_mb`
    /// (a scenario row's `MemoryMb`) instead of its function's memory: a
    /// keep-alive instance it starts takes that much, and one it reuses
    /// grows to it if smaller (an instance's memory is the largest its
    /// calls asked for; it never shrinks). None: the function's memory.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn call_arrived_with_memory(
        &mut self,
        function: &str,
        memory_mb: Option<u32>,
        now: Time,
    ) -> (CallId, Effects) {
        let f = self.intern(function);
        let (call, effects, _) = self.arrived(f, memory_mb, None, now);
        (call, effects)
    }

    /// [`NodeModel::call_arrived`] for the function with id `function` in
    /// the table shared by [`NodeModel::with_functions`] (no string
    /// hashing). An id outside that table names no function: it is taken
    /// as a function of its own, never seen by name.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn call_arrived_by_id(&mut self, function: FunctionId, now: Time) -> (CallId, Effects) {
        let f = self.local_of(function);
        let (call, effects, _) = self.arrived(f, None, None, now);
        (call, effects)
    }

    /// [`NodeModel::call_arrived_with_memory`] by id.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn call_arrived_by_id_with_memory(
        &mut self,
        function: FunctionId,
        memory_mb: Option<u32>,
        now: Time,
    ) -> (CallId, Effects) {
        let f = self.local_of(function);
        let (call, effects, _) = self.arrived(f, memory_mb, None, now);
        (call, effects)
    }

    /// [`NodeModel::call_arrived_by_id_with_memory`] for a driver whose
    /// image builds take no time: a missing image of `image_bytes` is
    /// built at once, as [`NodeModel::image_built_by_id`] at `now` just
    /// after the arrival would build it, and the call goes on to its
    /// instance in the same effects (its step is never
    /// [`Step::BuildImage`]); the `bool` says whether it built. The state
    /// and effects are those of the two calls, but for the one
    /// [`Step::BuildImage`] step of the call.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn call_arrived_building_at_once(
        &mut self,
        function: FunctionId,
        memory_mb: Option<u32>,
        image_bytes: u64,
        now: Time,
    ) -> (CallId, Effects, bool) {
        let f = self.local_of(function);
        self.arrived(f, memory_mb, Some(image_bytes), now)
    }

    /// A call of `f` arrives; with `instant_build`, a missing image of
    /// that size is built at once (then true).
    fn arrived(
        &mut self,
        f: u32,
        memory_mb: Option<u32>,
        instant_build: Option<u64>,
        now: Time,
    ) -> (CallId, Effects, bool) {
        self.lambda_arrival(f, now);
        let cached = self.cache.call_started(&mut self.functions, f, now);
        let memory_mb = memory_mb.unwrap_or(self.functions[f as usize].memory_mb);
        let call = self.calls.insert(Call {
            function: f,
            memory_mb,
            generation: self.generation,
            meta: CallMeta {
                image_built: !cached,
                ..CallMeta::default()
            },
            role: Role::None,
            instance: None,
        });
        let mut effects = self.fresh_effects();
        let built_now = match instant_build {
            // What `built` does for a builder with no call waiting.
            Some(bytes) if !cached && !self.builds.contains_key(&f) => {
                self.cache_built_image(f, bytes, now, &mut effects);
                true
            }
            _ => false,
        };
        if cached || built_now {
            let step = self.acquire(call, now, &mut effects);
            effects.resume.push((call, step));
        } else {
            match self.builds.entry(f) {
                Entry::Occupied(mut build) => {
                    build.get_mut().waiting.push(call);
                    effects.resume.push((call, Step::Wait));
                }
                Entry::Vacant(slot) => {
                    slot.insert(Build {
                        builder: Some(call),
                        waiting: Vec::new(),
                    });
                    effects.resume.push((call, Step::BuildImage));
                }
            }
        }
        (call, effects, built_now)
    }

    /// Starts a build of `function`'s image with no call waiting (the
    /// worker's `/prepare`). Returns false when the image is cached or a
    /// build is already running; when true, report
    /// [`NodeModel::image_built`] or [`NodeModel::image_build_failed`].
    pub fn begin_build(&mut self, function: &str) -> bool {
        let f = self.intern(function);
        if self.cache.contains(&self.functions, f) || self.builds.contains_key(&f) {
            return false;
        }
        self.builds.insert(f, Build::default());
        true
    }

    /// `function`'s image is built (`bytes` in size): it is cached, and the
    /// calls that waited for it go on.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn image_built(&mut self, function: &str, bytes: u64, now: Time) -> Effects {
        let f = self.intern(function);
        self.built(f, bytes, now)
    }

    /// [`NodeModel::image_built`] for the function with id `function` in
    /// the shared table (see [`NodeModel::call_arrived_by_id`]).
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn image_built_by_id(&mut self, function: FunctionId, bytes: u64, now: Time) -> Effects {
        let f = self.local_of(function);
        self.built(f, bytes, now)
    }

    fn built(&mut self, f: u32, bytes: u64, now: Time) -> Effects {
        let mut effects = self.fresh_effects();
        self.cache_built_image(f, bytes, now, &mut effects);
        // The builder first, then the calls that waited, in arrival order.
        let build = self.builds.remove(&f).unwrap_or_default();
        for call in build.builder.into_iter().chain(build.waiting) {
            if self.calls.get(call).is_some() {
                let step = self.acquire(call, now, &mut effects);
                effects.resume.push((call, step));
            }
        }
        effects
    }

    /// The build of `function`'s image failed. The call that built it fails
    /// (end it with [`NodeModel::call_finished`]); the first call waiting
    /// for the build, if any, builds it again.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn image_build_failed(&mut self, function: &str, _now: Time) -> Effects {
        let mut effects = self.fresh_effects();
        let Some(f) = self.known_local(function) else {
            return effects;
        };
        let Some(build) = self.builds.get_mut(&f) else {
            return effects;
        };
        if build.waiting.is_empty() {
            self.builds.remove(&f);
        } else {
            let next = build.waiting.remove(0);
            build.builder = Some(next);
            effects.resume.push((next, Step::BuildImage));
        }
        effects
    }

    /// The image is there: the call's instance, by the instance model.
    fn acquire(&mut self, call: CallId, now: Time, effects: &mut Effects) -> Step {
        let Some(c) = self.calls.get(call) else {
            return Step::Wait;
        };
        let (f, memory_mb) = (c.function, c.memory_mb);
        let (role, instance, step, meta) = match self.instance_model {
            InstanceModel::Lambda { keep_alive, policy } => {
                let mut next = self.next_instance;
                let mut expired = std::mem::take(&mut self.expired_buffer);
                if self.admission.limits() {
                    let pool = self.pool_of(f, keep_alive);
                    pool.expire(now, |e| expired.push(e.instance));
                    let warm = pool.idle_count() > 0;
                    self.forget_idle_instances(&mut expired, effects);
                    if !warm && !self.admits(memory_mb, policy, effects) {
                        self.expired_buffer = expired;
                        return self.overflow(call, now, effects);
                    }
                }
                let pool = self.pool_of(f, keep_alive);
                let got = pool.acquire(
                    now,
                    |e| expired.push(e.instance),
                    || {
                        next += 1;
                        next - 1
                    },
                );
                self.next_instance = next;
                self.forget_idle_instances(&mut expired, effects);
                self.expired_buffer = expired;
                self.keep_alive_busy += 1;
                match got {
                    Acquired::Warm(id) => {
                        self.keep_alive_idle -= 1;
                        self.idle_gone(id);
                        if let Some(r) = self.instances.get_mut(id) {
                            r.busy += 1;
                            r.memory_mb = r.memory_mb.max(memory_mb);
                        }
                        (Role::KeepAlive, id, Step::Run { instance: id }, true)
                    }
                    Acquired::Cold(id) => {
                        if policy.limits_memory() && !self.admission.limits() {
                            self.make_room(memory_mb, effects);
                        }
                        self.instances.insert(
                            id,
                            InstanceRecord {
                                function: f,
                                kind: InstanceKind::KeepAlive,
                                state: InstanceState::Starting,
                                busy: 1,
                                waiting: Vec::new(),
                                starter: Some(call),
                                attached: true,
                                created: now,
                                memory_mb,
                            },
                        );
                        let kind = InstanceKind::KeepAlive;
                        (
                            Role::KeepAlive,
                            id,
                            Step::Start { instance: id, kind },
                            false,
                        )
                    }
                }
            }
            InstanceModel::HotFunctions if self.options.using_rest_mode => {
                let mut next = self.next_instance;
                let got = self.rest.call_started(&f, now, || {
                    next += 1;
                    next - 1
                });
                self.next_instance = next;
                match got {
                    RestAcquire::Existing(id) => {
                        if let Some(r) = self.instances.get_mut(id) {
                            r.busy += 1;
                        }
                        (Role::Rest, id, Step::Run { instance: id }, true)
                    }
                    RestAcquire::WaitForStart(id) => {
                        if let Some(r) = self.instances.get_mut(id) {
                            r.busy += 1;
                            r.waiting.push(call);
                        }
                        (Role::Rest, id, Step::Wait, false)
                    }
                    RestAcquire::Start(id) => {
                        self.instances.insert(
                            id,
                            InstanceRecord {
                                function: f,
                                kind: InstanceKind::Rest,
                                state: InstanceState::Starting,
                                busy: 1,
                                waiting: Vec::new(),
                                starter: Some(call),
                                attached: true,
                                created: now,
                                memory_mb: self.functions[f as usize].memory_mb,
                            },
                        );
                        let kind = InstanceKind::Rest;
                        (Role::Rest, id, Step::Start { instance: id, kind }, false)
                    }
                }
            }
            InstanceModel::HotFunctions if self.pool.is_enabled() => {
                let took = self.pool.call_started(&f, now);
                match self.functions[f as usize]
                    .extra
                    .as_mut()
                    .and_then(|x| x.pooled.pop())
                    .filter(|_| took)
                {
                    Some(id) => {
                        if let Some(r) = self.instances.get_mut(id) {
                            r.busy += 1;
                        }
                        (Role::Pool, id, Step::Run { instance: id }, true)
                    }
                    None => {
                        let id = self.mint();
                        (Role::Pool, id, Step::RunOnce { instance: id }, false)
                    }
                }
            }
            InstanceModel::HotFunctions => {
                let id = self.mint();
                (Role::Once, id, Step::RunOnce { instance: id }, false)
            }
        };
        if let Some(c) = self.calls.get_mut(call) {
            c.role = role;
            c.instance = Some(instance);
            match role {
                Role::Pool => c.meta.pooled = meta,
                _ => c.meta.existing_instance = meta,
            }
        }
        step
    }

    /// Instance `id` is up at `now`: the calls waiting for it run on it
    /// (the call that started it goes on by itself); an unwanted pre-warmed
    /// instance is removed.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn instance_started(&mut self, id: InstanceId, now: Time) -> Effects {
        let mut effects = self.fresh_effects();
        let Some(r) = self.instances.get_mut(id) else {
            // Not ours (any more): nothing uses it.
            effects.remove_instances.push(id);
            return effects;
        };
        r.state = InstanceState::Ready;
        let (f, kind, attached) = (r.function, r.kind, r.attached);
        let (starter, created) = (r.starter, r.created);
        let waiting = std::mem::take(&mut r.waiting);
        match kind {
            InstanceKind::Pooled => {
                if attached && self.pool.instance_ready(&f) {
                    self.functions[f as usize].x_mut().pooled.push(id);
                } else {
                    self.instances.remove(id);
                    effects.remove_instances.push(id);
                }
            }
            InstanceKind::Rest => {
                if attached && self.rest.instance(&f) == Some(id) {
                    self.rest.started(&f, now);
                    if let (None, Some(t)) = (starter, self.rest.deadline(&f)) {
                        // Started by a wake: it expires like an idle one.
                        self.schedule(f, t);
                    }
                }
                for call in waiting {
                    if self.calls.get(call).is_some() {
                        effects.resume.push((call, Step::Run { instance: id }));
                    }
                }
                // Started by a wake and removed meanwhile: nothing uses it.
                self.drop_if_idle(id, &mut effects);
            }
            InstanceKind::KeepAlive => {
                // Only Greedy-Dual reads the start times.
                if self.policy() == KeepAlivePolicy::GreedyDual {
                    let x = self.functions[f as usize].x_mut();
                    let ms = now.saturating_since(created).as_secs_f64() * 1000.0;
                    x.start_ms.0 += ms;
                    x.start_ms.1 += 1;
                }
                if starter.is_none() {
                    self.prewarmed(f, id, attached, now, &mut effects);
                }
            }
        }
        effects
    }

    /// A pre-warmed keep-alive instance is up: idle in its function's
    /// pool, unless the pool or the image went meanwhile.
    fn prewarmed(
        &mut self,
        f: u32,
        id: InstanceId,
        attached: bool,
        now: Time,
        effects: &mut Effects,
    ) {
        let InstanceModel::Lambda { keep_alive, .. } = self.instance_model else {
            return;
        };
        let fs = &mut self.functions[f as usize];
        if let Some(x) = &mut fs.extra {
            x.prewarming = x.prewarming.saturating_sub(1);
        }
        if !(attached && self.cache.contains(&self.functions, f)) {
            self.instances.remove(id);
            effects.remove_instances.push(id);
            return;
        }
        let pool = self.pool_of(f, keep_alive);
        pool.add_idle(id, now);
        let next = pool.next_expiry();
        self.keep_alive_idle += 1;
        self.idle_added(f, id, now);
        if let Some(t) = next {
            self.schedule(f, t);
        }
    }

    /// Instance `id` could not be started. The call that started it fails
    /// (end it with [`NodeModel::call_finished`]); calls that waited for it
    /// get their instance anew.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn instance_start_failed(&mut self, id: InstanceId, now: Time) -> Effects {
        let mut effects = self.fresh_effects();
        let Some(r) = self.instances.remove(id) else {
            return effects;
        };
        let f = r.function;
        if let Some(starter) = r.starter {
            if let Some(c) = self.calls.get_mut(starter) {
                c.role = Role::None;
                c.instance = None;
            }
        }
        match r.kind {
            InstanceKind::Pooled => {
                if r.attached {
                    self.pool.instance_failed(&f);
                }
            }
            InstanceKind::Rest => {
                if self.rest.instance(&f) == Some(id) {
                    self.rest.remove(&f);
                }
                for call in r.waiting {
                    if self.calls.get(call).is_some() {
                        let step = self.acquire(call, now, &mut effects);
                        effects.resume.push((call, step));
                    }
                }
            }
            InstanceKind::KeepAlive => {
                let fs = &mut self.functions[r.function as usize];
                if r.starter.is_some() {
                    self.keep_alive_busy -= 1;
                    if let Some(pool) = fs.pool_mut() {
                        let _ = pool.discard(id);
                    }
                } else if let Some(x) = &mut fs.extra {
                    x.prewarming = x.prewarming.saturating_sub(1);
                }
            }
        }
        effects
    }

    /// The running instance `call` was sent to turned out dead (not the
    /// function failing): it is forgotten and removed, and the call gets
    /// its instance anew (its step is in `resume`).
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn instance_died(&mut self, call: CallId, now: Time) -> Effects {
        let mut effects = self.fresh_effects();
        let Some(c) = self.calls.get_mut(call) else {
            return effects;
        };
        let (f, role, instance) = (c.function, c.role, c.instance);
        c.role = Role::None;
        c.instance = None;
        c.meta.pooled = false;
        c.meta.existing_instance = false;
        if let Some(id) = instance {
            match role {
                Role::Rest => {
                    // Other calls on it die too, or finish: either way the
                    // policy no longer counts them on it.
                    if self.rest.instance(&f) == Some(id) {
                        self.rest.remove(&f);
                    }
                    self.instances.remove(id);
                    effects.remove_instances.push(id);
                }
                Role::KeepAlive => {
                    if let Some(pool) = self.functions[f as usize].pool_mut() {
                        if pool.discard(id).is_ok() {
                            self.keep_alive_busy -= 1;
                        }
                    }
                    self.instances.remove(id);
                    effects.remove_instances.push(id);
                }
                Role::Pool => {
                    // A pooled instance serves one call: only this one used it.
                    if self.instances.remove(id).is_some() {
                        effects.remove_instances.push(id);
                    }
                    // Served cold instead; the pool already counts the call.
                    let fresh = self.mint();
                    if let Some(c) = self.calls.get_mut(call) {
                        c.role = Role::Pool;
                        c.instance = Some(fresh);
                    }
                    effects
                        .resume
                        .push((call, Step::RunOnce { instance: fresh }));
                    return effects;
                }
                Role::None | Role::Once => {}
            }
        }
        let step = self.acquire(call, now, &mut effects);
        effects.resume.push((call, step));
        effects
    }

    /// `call` ended at `now` (successfully or not). Returns how it was
    /// served (its `Meta` flags) and what follows: evictions, pool
    /// refills, removals.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn call_finished(&mut self, call: CallId, now: Time) -> (CallMeta, Effects) {
        let mut effects = self.fresh_effects();
        let Some(c) = self.calls.remove(call) else {
            return (CallMeta::default(), effects);
        };
        let f = c.function;
        let evicted = self.cache.call_finished(&mut self.functions, f, now);
        let same_generation = c.generation == self.generation;
        let mut plan = PoolPlan::default();
        match (c.role, c.instance) {
            (Role::Rest, Some(id)) => {
                if self.rest.instance(&f) == Some(id) {
                    self.rest.call_finished(&f, now);
                    if let Some(t) = self.rest.deadline(&f) {
                        self.schedule(f, t);
                    }
                }
                if let Some(r) = self.instances.get_mut(id) {
                    r.busy = r.busy.saturating_sub(1);
                }
                self.drop_if_idle(id, &mut effects);
            }
            (Role::Pool, Some(id)) => {
                // A pooled instance served this call only.
                if c.meta.pooled && self.instances.remove(id).is_some() {
                    effects.remove_instances.push(id);
                }
                if same_generation && !self.options.using_rest_mode {
                    plan = self.pool.call_finished(&f, now);
                }
            }
            (Role::KeepAlive, Some(id)) => {
                self.keep_alive_busy -= 1;
                let attached = self.instances.get(id).is_some_and(|r| r.attached);
                let released = match self.functions[f as usize].pool_mut() {
                    Some(pool) if attached => {
                        pool.release(id, now).ok().map(|()| pool.next_expiry())
                    }
                    _ => None,
                };
                match released {
                    Some(next) => {
                        self.keep_alive_idle += 1;
                        if let Some(r) = self.instances.get_mut(id) {
                            r.busy = 0;
                        }
                        self.idle_added(f, id, now);
                        if let Some(t) = next {
                            self.schedule(f, t);
                        }
                    }
                    None => {
                        self.instances.remove(id);
                        effects.remove_instances.push(id);
                    }
                }
            }
            _ => {}
        }
        self.lambda_call_ended(f, now, &mut effects);
        // Both are mostly empty: skipped then, not called per call.
        if !evicted.is_empty() {
            self.evict(evicted, &mut effects);
        }
        if !plan.is_empty() {
            self.apply_plan(plan, &mut effects);
        }
        if !self.admission_queue.is_empty() && !self.retrying {
            self.admit_queued(now, &mut effects);
        }
        (c.meta, effects)
    }

    /// How `call` is being served so far (None for an unknown call).
    pub fn meta(&self, call: CallId) -> Option<CallMeta> {
        self.calls.get(call).map(|c| c.meta)
    }

    /// When [`NodeModel::timer`] has something to do next (it may find
    /// nothing then, when a call came in between).
    pub fn next_timer(&self) -> Option<Time> {
        self.timers.next()
    }

    /// Whether this model's timers do nothing but expire idle keep-alive
    /// instances: the Lambda model under the fixed, LRU or Greedy-Dual
    /// policy (which pre-warm nothing) with no admission queue (which an
    /// expiry would let a queued call out of). Then what a timer changes
    /// is seen only by this node's later events and by the instance
    /// counts ([`NodeModel::keep_alive_instances`]), and its effects are
    /// removals only: a driver may run the timers late, just before the
    /// node's next event, calling [`NodeModel::timer`] (or
    /// [`NodeModel::expire_due`]) at each due time
    /// ([`NodeModel::next_timer`]) in turn, and the node is then in the
    /// state it would have been in had each run on time (a timer due at
    /// the very time of an event runs first, as a driver that queues
    /// timers runs it before an arrival due then). The DES does so
    /// (`des::engine`), which spares it an event per expiry.
    pub fn timers_only_expire(&self) -> bool {
        let InstanceModel::Lambda { policy, .. } = self.instance_model else {
            return false;
        };
        matches!(
            policy,
            KeepAlivePolicy::Fixed | KeepAlivePolicy::Lru | KeepAlivePolicy::GreedyDual
        ) && self.admission.overflow != Overflow::Queue
    }

    /// Whether a keep-alive instance that a call starts ([`Step::Start`]
    /// of [`InstanceKind::KeepAlive`]) is seen by nothing but that call
    /// until the call ends: the Lambda model under any policy but
    /// Greedy-Dual (which reads start times when it evicts). Its
    /// [`NodeModel::instance_started`] then only marks it ready, with no
    /// effects and no count changed, and nothing this model does for
    /// other calls, timers or memory reads whether it is ready; only the
    /// queries [`NodeModel::function_instances`] and
    /// [`NodeModel::instances_by_function`] tell starting instances from
    /// ready ones. A driver that asks neither may then tell the start
    /// late, at the start's own time, just before it tells the call's end
    /// ([`NodeModel::call_finished`]), and the call's end finds the node
    /// as it would have. The DES does so where the call's first work is a
    /// sleep (`des::engine`), which spares it an event per cold start.
    pub fn call_starts_are_private(&self) -> bool {
        matches!(
            self.instance_model,
            InstanceModel::Lambda { policy, .. } if !matches!(policy, KeepAlivePolicy::GreedyDual)
        )
    }

    /// Expires what is due at `now`: idle REST instances past their
    /// lifetime, idle keep-alive instances past their keep-alive.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn timer(&mut self, now: Time) -> Effects {
        let mut effects = self.fresh_effects();
        self.run_timers(now, Some(&mut effects));
        if !self.admission_queue.is_empty() {
            // Expired instances freed memory.
            self.admit_queued(now, &mut effects);
        }
        effects
    }

    /// [`NodeModel::timer`] for a model whose timers only expire
    /// ([`NodeModel::timers_only_expire`]; only for such a model: a
    /// pre-warm due would be skipped), for a driver that carries out no
    /// removals (the DES): the same changes, without the effects, which
    /// would list the removed instances only.
    pub fn expire_due(&mut self, now: Time) {
        debug_assert!(self.timers_only_expire(), "timers that do more than expire");
        self.run_timers(now, None);
    }

    /// The timers due at `now`; what they remove goes to `effects`, and
    /// without them they do nothing but remove (a pre-warm needs them).
    fn run_timers(&mut self, now: Time, mut effects: Option<&mut Effects>) {
        while let Some((t, _, f)) = self.timers.pop_due(now) {
            let fs = &mut self.functions[f as usize];
            if fs.timer != t {
                continue; // superseded by an earlier entry
            }
            fs.timer = NO_TIMER;
            if let Some(id) = self.rest.expire_function(&f, now) {
                self.instances.remove(id);
                if let Some(e) = effects.as_deref_mut() {
                    e.remove_instances.push(id);
                }
            }
            if let Some(t) = self.rest.deadline(&f) {
                self.schedule(f, t);
            }
            if let Some(e) = effects.as_deref_mut() {
                self.lambda_timer(f, now, e);
            }
            let mut gone = std::mem::take(&mut self.expired_buffer);
            let mut next = None;
            if let Some(pool) = self.functions[f as usize].pool_mut() {
                pool.expire(now, |e| gone.push(e.instance));
                next = pool.next_expiry();
            }
            match effects.as_deref_mut() {
                Some(e) => self.forget_idle_instances(&mut gone, e),
                None => {
                    for id in gone.drain(..) {
                        self.forget_idle(id);
                    }
                }
            }
            self.expired_buffer = gone;
            self.reset_frequency_if_gone(f);
            self.drop_empty_pool(f);
            if let Some(t) = next {
                self.schedule(f, t);
            }
        }
    }

    /// Schedules a look at `f` at `t`, unless one is due earlier.
    fn schedule(&mut self, f: u32, t: Time) {
        let fs = &mut self.functions[f as usize];
        if t < fs.timer {
            fs.timer = t;
            let g = fs.global;
            self.timers.push((t, g, f));
        }
    }

    /// New caching options, effective at `now`. Returns whether anything
    /// changed, and what follows.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn set_options(&mut self, options: CachingOptions, now: Time) -> (bool, Effects) {
        let mut effects = self.fresh_effects();
        let old = self.options;
        if options == old {
            return (false, effects);
        }
        self.options = options;
        let evicted = self
            .cache
            .set_limit(&mut self.functions, options.image_limit_bytes(), now);
        self.evict(evicted, &mut effects);
        self.rest.set_lifetime(options.rest_lifetime());
        if old.using_rest_mode && !options.using_rest_mode {
            for (_, id) in self.rest.clear() {
                self.detach(id, &mut effects);
            }
        }
        for f in 0..self.functions.len() as u32 {
            if let Some(t) = self.rest.deadline(&f) {
                self.schedule(f, t);
            }
        }
        if options.using_rest_mode {
            self.pool = new_pool(&options);
            self.detach_pools(&mut effects);
        } else {
            let plan = self.pool.set_limits(
                options.pool_function_limit(),
                options.container_pool_num as usize,
            );
            self.apply_plan(plan, &mut effects);
        }
        (true, effects)
    }

    /// `/clear`: forgets the pool, the REST instances and the keep-alive
    /// pools (and with `reset_images` every image). Every instance is
    /// listed for removal; those still in use are detached and listed
    /// again when idle.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn clear(&mut self, reset_images: bool, _now: Time) -> Effects {
        let mut effects = self.fresh_effects();
        self.generation += 1;
        self.pool = new_pool(&self.options);
        self.rest = RestInstances::new(self.options.rest_lifetime());
        self.timers.clear();
        for fs in self.functions.iter_mut() {
            fs.drop_pool();
            fs.timer = NO_TIMER;
            // Pooled instances, and what the keep-alive policies learned,
            // go too.
            if let Some(x) = &mut fs.extra {
                let prewarming = x.prewarming;
                **x = FunctionExtra {
                    prewarming,
                    ..FunctionExtra::default()
                };
            }
        }
        self.keep_alive_idle = 0;
        self.lru.clear();
        self.greedy_dual.clear();
        let mut ids: Vec<InstanceId> = self.instances.keys().collect();
        ids.sort_unstable();
        for id in ids {
            effects.remove_instances.push(id);
            let Some(r) = self.instances.get_mut(id) else {
                continue;
            };
            r.attached = false;
            if r.busy == 0 && r.state == InstanceState::Ready {
                self.instances.remove(id);
            }
        }
        if reset_images {
            for f in self.cache.lru_order(&self.functions) {
                effects.remove_images.push(self.name(f));
            }
            self.cache.clear(&mut self.functions);
        }
        effects
    }

    /// Scale to zero (the balancer's SlimFaas routes): removes every
    /// instance of `function` on this node and keeps its image. Idle ones
    /// (ready pooled instances, an idle REST instance, idle keep-alive
    /// instances) are listed for removal now; busy ones are detached and
    /// listed when their calls end; ones still starting are refused when
    /// they come up. The next call is a cold start; a pooled function's
    /// pool is refilled only once it is called again.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn remove_function_instances(&mut self, function: &str, _now: Time) -> Effects {
        let mut effects = self.fresh_effects();
        let Some(f) = self.known_local(function) else {
            return effects;
        };
        if let Some(x) = &mut self.functions[f as usize].extra {
            // A histogram pre-warm due later would bring one back.
            x.prewarm_at = None;
        }
        self.remove_idle_instances(f, &mut effects);
        if let Some(id) = self.rest.remove(&f) {
            self.detach(id, &mut effects);
        }
        // What is left of it is busy or starting: detached, removed once
        // idle (busy keep-alive instances leave their pool now, so their
        // calls' ends do not put them back).
        let mut rest: Vec<InstanceId> = self
            .instances
            .iter()
            .filter(|(_, r)| r.function == f && r.attached)
            .map(|(id, _)| id)
            .collect();
        rest.sort_unstable();
        for id in rest {
            if let Some(pool) = self.functions[f as usize].pool_mut() {
                let _ = pool.discard(id);
            }
            self.detach(id, &mut effects);
        }
        self.reset_frequency_if_gone(f);
        self.drop_empty_pool(f);
        effects
    }

    /// A function that will not be called again (a user function's
    /// replaced or deleted version): its instances go as in
    /// [`NodeModel::remove_function_instances`] (idle ones now, busy ones
    /// once their calls end), and its image leaves the cache now if no
    /// call of it is in flight (listed in [`EffectLists::remove_images`]).
    /// Returns whether the image is still cached (pinned by a call): the
    /// driver asks again once that call ended. Idempotent.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn retire_function(&mut self, function: &str, now: Time) -> (Effects, bool) {
        let mut effects = self.remove_function_instances(function, now);
        let Some(f) = self.known_local(function) else {
            return (effects, false);
        };
        if self.cache.is_pinned(&self.functions, f) {
            return (effects, true);
        }
        if self.cache.remove(&mut self.functions, f) {
            effects.remove_images.push(self.name(f));
        }
        (effects, false)
    }

    /// `call`'s instance failed it (the function crashed, hung past its
    /// timeout or replied badly): the instance leaves its policy (the REST
    /// instance of its function, its keep-alive pool) and is removed once
    /// no call uses it, this one included; the next call gets another.
    /// Nothing for a one-shot or pooled instance (they serve this call
    /// only) or an unknown call. The call goes on to
    /// [`NodeModel::call_finished`] as usual.
    #[must_use = "a node model's effects must be carried out by its driver"]
    pub fn discard_call_instance(&mut self, call: CallId, _now: Time) -> Effects {
        let mut effects = self.fresh_effects();
        let Some(c) = self.calls.get(call) else {
            return effects;
        };
        let (f, role) = (c.function, c.role);
        let Some(id) = c.instance else {
            return effects;
        };
        match role {
            Role::Rest => {
                if self.rest.instance(&f) == Some(id) {
                    self.rest.remove(&f);
                }
                self.detach(id, &mut effects);
            }
            Role::KeepAlive => {
                if let Some(pool) = self.functions[f as usize].pool_mut() {
                    let _ = pool.discard(id);
                }
                self.detach(id, &mut effects);
            }
            Role::Pool | Role::Once | Role::None => {}
        }
        effects
    }

    /// Whether `function`'s image is cached (built and not evicted).
    pub fn image_cached(&self, function: &str) -> bool {
        self.known_local(function)
            .is_some_and(|f| self.cache.contains(&self.functions, f))
    }

    /// A wake (the balancer's SlimFaas routes): starts instances of
    /// `function` with no call waiting, up to `n` on this node (counting
    /// those up or starting), as [`EffectLists::prewarm`]. The image must be
    /// cached (else [`StartRefused::ImageNotCached`]: build it first, e.g.
    /// with [`NodeModel::begin_build`]). What can start depends on the
    /// instance model: Lambda starts keep-alive instances (idle once up,
    /// expiring by the keep-alive); HotFunctions in REST mode starts the
    /// function's one REST instance (whatever `n` > 0 asks); HotFunctions
    /// otherwise runs every call in an instance of its own and has nothing
    /// to start ([`StartRefused::PerCallInstances`]).
    pub fn start_instances(
        &mut self,
        function: &str,
        n: usize,
        now: Time,
    ) -> Result<Effects, StartRefused> {
        let f = self.intern(function);
        if !self.cache.contains(&self.functions, f) {
            return Err(StartRefused::ImageNotCached);
        }
        let mut effects = self.fresh_effects();
        match self.instance_model {
            InstanceModel::Lambda { keep_alive, .. } => {
                let prewarming = self.functions[f as usize].x().prewarming as usize;
                let have = self.pool_of(f, keep_alive).instance_count() + prewarming;
                if n > have {
                    self.prewarm(f, n - have, now, &mut effects);
                }
            }
            InstanceModel::HotFunctions if self.options.using_rest_mode => {
                if n > 0 && self.rest.instance(&f).is_none() {
                    let mut next = self.next_instance;
                    let got = self.rest.call_started(&f, now, || {
                        next += 1;
                        next - 1
                    });
                    self.next_instance = next;
                    // No call holds it: idle from when it is up.
                    self.rest.call_finished(&f, now);
                    if let RestAcquire::Start(id) = got {
                        self.instances
                            .insert(id, self.prewarm_record(f, InstanceKind::Rest, now));
                        effects.prewarm.push(Prewarm {
                            instance: id,
                            function: self.name(f),
                            kind: InstanceKind::Rest,
                        });
                    }
                }
            }
            InstanceModel::HotFunctions => return Err(StartRefused::PerCallInstances),
        }
        Ok(effects)
    }

    // ----- composition rules -----

    /// An evicted image takes its function's idle instances with it.
    /// `f`'s image of `bytes` is built at `now`: the cache takes it,
    /// evicting what it must.
    fn cache_built_image(&mut self, f: u32, bytes: u64, now: Time, effects: &mut Effects) {
        let evicted = self.cache.image_built(&mut self.functions, f, bytes, now);
        self.evict(evicted, effects);
    }

    fn evict(&mut self, evicted: Vec<EvictedImage<u32>>, effects: &mut Effects) {
        for EvictedImage { function: f, .. } in evicted {
            effects.remove_images.push(self.name(f));
            self.remove_idle_instances(f, effects);
            if !self.rest.is_busy(&f) {
                if let Some(id) = self.rest.remove(&f) {
                    self.detach(id, effects);
                }
            }
            self.reset_frequency_if_gone(f);
            self.drop_empty_pool(f);
        }
    }

    /// The record of an instance of `f` started with no call (a pre-warm,
    /// a wake).
    fn prewarm_record(&self, f: u32, kind: InstanceKind, now: Time) -> InstanceRecord {
        InstanceRecord {
            function: f,
            kind,
            state: InstanceState::Starting,
            busy: 0,
            waiting: Vec::new(),
            starter: None,
            attached: true,
            created: now,
            memory_mb: self.functions[f as usize].memory_mb,
        }
    }

    /// Forgets `f` in the pool and removes its ready pooled instances and
    /// its idle keep-alive instances (an eviction, a scale to zero).
    fn remove_idle_instances(&mut self, f: u32, effects: &mut Effects) {
        self.pool.forget(&f);
        let pooled = match &mut self.functions[f as usize].extra {
            Some(x) => std::mem::take(&mut x.pooled),
            None => Vec::new(),
        };
        for id in pooled {
            self.instances.remove(id);
            effects.remove_instances.push(id);
        }
        let mut gone = Vec::new();
        if let Some(pool) = self.functions[f as usize].pool_mut() {
            pool.remove_idle(|id| gone.push(id));
        }
        self.forget_idle_instances(&mut gone, effects);
    }

    // ----- keep-alive policies (Lambda model) -----

    /// Drops `f`'s keep-alive pool once it holds no instance, under the
    /// policies that keep nothing in a pool but its instances (fixed, lru,
    /// greedy-dual: no floor, the model's keep-alive), so that a node's
    /// memory follows the instances alive, not every function it ever ran.
    /// (The histogram and EWMA policies set a per-pool keep-alive or
    /// floor, so their pools stay.)
    fn drop_empty_pool(&mut self, f: u32) {
        let InstanceModel::Lambda { policy, .. } = self.instance_model else {
            return;
        };
        if !matches!(
            policy,
            KeepAlivePolicy::Fixed | KeepAlivePolicy::Lru | KeepAlivePolicy::GreedyDual
        ) {
            return;
        }
        let fs = &mut self.functions[f as usize];
        if fs.pool().is_some_and(|p| p.instance_count() == 0) {
            fs.drop_pool();
        }
    }

    /// A call of `f` arrives: what the policies count.
    fn lambda_arrival(&mut self, f: u32, now: Time) {
        let InstanceModel::Lambda { policy, .. } = self.instance_model else {
            return;
        };
        let fs = &mut self.functions[f as usize];
        let mut update = None;
        match policy {
            KeepAlivePolicy::Histogram(p) => {
                let idle = fs.calls == 0;
                let x = fs.x_mut();
                if idle {
                    if let Some(end) = x.last_end {
                        x.histogram
                            .get_or_insert_with(|| Box::new(IdleTimeHistogram::new(&p)))
                            .record(now.saturating_since(end), &p);
                    }
                }
                // It came before the pre-warm: a cold start (the paper's
                // miss); the pre-warm is no longer needed.
                x.prewarm_at = None;
            }
            KeepAlivePolicy::Ewma(p) => {
                let e = fs
                    .x_mut()
                    .ewma
                    .get_or_insert_with(|| Box::new(EwmaPrewarm::new(p, now)));
                e.call(now);
                update = Some(e.next_update());
            }
            KeepAlivePolicy::GreedyDual => fs.x_mut().frequency += 1,
            KeepAlivePolicy::Fixed | KeepAlivePolicy::Lru => {}
        }
        fs.calls += 1;
        if let Some(t) = update {
            self.schedule(f, t);
        }
    }

    /// A call of `f` ended at `now`: when it was the last in flight, the
    /// histogram policy sets the windows (and unloads for a pre-warm).
    fn lambda_call_ended(&mut self, f: u32, now: Time, effects: &mut Effects) {
        let InstanceModel::Lambda { keep_alive, policy } = self.instance_model else {
            return;
        };
        let fs = &mut self.functions[f as usize];
        fs.calls = fs.calls.saturating_sub(1);
        if fs.calls > 0 {
            return;
        }
        // Only the histogram policy reads when the last call ended.
        let KeepAlivePolicy::Histogram(p) = policy else {
            return;
        };
        fs.x_mut().last_end = Some(now);
        let keep_alive =
            Self::own_keep_alive(&self.table, &self.own, fs.global).unwrap_or(keep_alive);
        let windows = match &fs.x().histogram {
            Some(h) => h.windows(&p, keep_alive),
            None => IdleTimeHistogram::new(&p).windows(&p, keep_alive),
        };
        let Some(pool) = fs.pool_mut() else {
            return;
        };
        pool.set_keep_alive(windows.keep_alive);
        let mut gone = Vec::new();
        if !windows.prewarm.is_zero() {
            // Unloaded now, loaded again after the pre-warming window.
            pool.remove_idle(|id| gone.push(id));
            let at = now.saturating_add(windows.prewarm);
            fs.x_mut().prewarm_at = Some(at);
            self.schedule(f, at);
        }
        self.forget_idle_instances(&mut gone, effects);
        if let Some(t) = self.functions[f as usize]
            .pool()
            .and_then(|p| p.next_expiry())
        {
            self.schedule(f, t);
        }
    }

    /// `f`'s timer at `now`: a due histogram pre-warm, an EWMA update.
    fn lambda_timer(&mut self, f: u32, now: Time, effects: &mut Effects) {
        let InstanceModel::Lambda { keep_alive, policy } = self.instance_model else {
            return;
        };
        let fs = &mut self.functions[f as usize];
        match policy {
            KeepAlivePolicy::Histogram(_) => match fs.x().prewarm_at {
                Some(t) if t <= now => {
                    fs.x_mut().prewarm_at = None;
                    let has = fs.pool().map_or(0, |p| p.instance_count());
                    if has == 0 && fs.x().prewarming == 0 {
                        self.prewarm(f, 1, now, effects);
                    }
                }
                Some(t) => self.schedule(f, t),
                None => {}
            },
            KeepAlivePolicy::Ewma(_) => {
                let Some(e) = fs.extra.as_mut().and_then(|x| x.ewma.as_mut()) else {
                    return;
                };
                e.advance(now);
                let (target, next) = (e.target(), e.next_update());
                let prewarming = fs.x().prewarming as usize;
                let pool = self.pool_of(f, keep_alive);
                pool.set_floor(target);
                let have = pool.instance_count() + prewarming;
                if target > have {
                    self.prewarm(f, target - have, now, effects);
                }
                self.schedule(f, next);
            }
            _ => {}
        }
    }

    /// Starts `n` keep-alive instances of `f` with no call (if its image
    /// is cached).
    fn prewarm(&mut self, f: u32, n: usize, now: Time, effects: &mut Effects) {
        if !self.cache.contains(&self.functions, f) {
            return;
        }
        for _ in 0..n {
            let id = self.mint();
            self.instances
                .insert(id, self.prewarm_record(f, InstanceKind::KeepAlive, now));
            self.functions[f as usize].x_mut().prewarming += 1;
            effects.prewarm.push(Prewarm {
                instance: id,
                function: self.name(f),
                kind: InstanceKind::KeepAlive,
            });
        }
    }

    /// Keep-alive instance `id` of `f` became idle at `now`: an eviction
    /// candidate of the memory-limited policies.
    fn idle_added(&mut self, f: u32, id: InstanceId, now: Time) {
        match self.policy() {
            KeepAlivePolicy::Lru => self.lru.insert(id, now),
            KeepAlivePolicy::GreedyDual => {
                let fs = &self.functions[f as usize];
                let (sum, n) = fs.x().start_ms;
                let cost = if n == 0 { 0.0 } else { sum / n as f64 };
                let memory = self.instances.get(id).map_or(fs.memory_mb, |r| r.memory_mb);
                let p = self.greedy_dual.priority(fs.x().frequency, cost, memory);
                self.greedy_dual.insert(id, p);
            }
            _ => {}
        }
    }

    /// Idle keep-alive instance `id` is reused or gone.
    fn idle_gone(&mut self, id: InstanceId) {
        match self.policy() {
            KeepAlivePolicy::Lru => {
                self.lru.remove(id);
            }
            KeepAlivePolicy::GreedyDual => {
                self.greedy_dual.remove(id);
            }
            _ => {}
        }
    }

    /// Greedy-Dual: a function with no instance left starts counting its
    /// calls anew.
    fn reset_frequency_if_gone(&mut self, f: u32) {
        let fs = &mut self.functions[f as usize];
        if fs.pool().is_none_or(|p| p.instance_count() == 0) && fs.x().prewarming == 0 {
            if let Some(x) = &mut fs.extra {
                x.frequency = 0;
            }
        }
    }

    /// Memory held by keep-alive instances (starting, busy or idle), MB.
    pub fn memory_in_use_mb(&self) -> u64 {
        self.instances
            .values()
            .filter(|r| r.kind == InstanceKind::KeepAlive)
            .map(|r| u64::from(r.memory_mb))
            .sum()
    }

    /// Before a cold start of an instance of `need_mb`: evicts idle
    /// keep-alive instances in the policy's order until it fits in the
    /// node's memory. If none is left to evict, the start goes ahead
    /// (over-commit) unless the admission rules say otherwise.
    fn make_room(&mut self, need_mb: u32, effects: &mut Effects) {
        let Some(cap) = self.node_memory_mb else {
            return;
        };
        let need = u64::from(need_mb);
        let mut used = self.memory_in_use_mb();
        while used + need > cap {
            let victim = match self.policy() {
                KeepAlivePolicy::Lru => self.lru.pop_lowest(),
                KeepAlivePolicy::GreedyDual => self.greedy_dual.pop_lowest().map(|(id, _)| id),
                _ => None,
            };
            let Some(id) = victim else {
                break;
            };
            let Some(r) = self.instances.remove(id) else {
                continue;
            };
            let vf = r.function;
            if let Some(pool) = self.functions[vf as usize].pool_mut() {
                if pool.remove_idle_instance(id) {
                    self.keep_alive_idle -= 1;
                }
            }
            effects.remove_instances.push(id);
            used = used.saturating_sub(u64::from(r.memory_mb));
            self.evictions += 1;
            self.reset_frequency_if_gone(vf);
            self.drop_empty_pool(vf);
        }
    }

    /// Idle keep-alive instances their pool let go (expired, unloaded or
    /// removed) are gone.
    fn forget_idle_instances(&mut self, gone: &mut Vec<InstanceId>, effects: &mut Effects) {
        for id in gone.drain(..) {
            self.forget_idle(id);
            effects.remove_instances.push(id);
        }
    }

    /// Forgets the idle keep-alive instance `id` its pool let go.
    fn forget_idle(&mut self, id: InstanceId) {
        self.keep_alive_idle -= 1;
        self.idle_gone(id);
        self.instances.remove(id);
    }

    /// Whether a new keep-alive instance of `need_mb` may start now
    /// ([`super::admission`]); evicts idle instances for it under the
    /// memory-limited policies.
    fn admits(&mut self, need_mb: u32, policy: KeepAlivePolicy, effects: &mut Effects) -> bool {
        let a = self.admission;
        if a.overflow == Overflow::Queue && !self.retrying && !self.admission_queue.is_empty() {
            return false; // behind the queued calls
        }
        if a.max_running
            .is_some_and(|max| self.keep_alive_busy >= u64::from(max))
        {
            return false;
        }
        if policy.limits_memory() {
            self.make_room(need_mb, effects);
        }
        match (a.overflow, self.node_memory_mb) {
            (Overflow::OverCommit, _) | (_, None) => true,
            (_, Some(cap)) => self.memory_in_use_mb() + u64::from(need_mb) <= cap,
        }
    }

    /// `call` is not admitted: it queues (its step is [`Step::Wait`]) or
    /// is rejected (ended here, listed in [`Effects::rejected`]).
    fn overflow(&mut self, call: CallId, now: Time, effects: &mut Effects) -> Step {
        match self.admission.overflow {
            Overflow::Queue => {
                if self.retrying {
                    self.admission_queue.push_front(call);
                } else {
                    self.admission_queue.push_back(call);
                }
            }
            Overflow::OverCommit | Overflow::Reject => {
                self.rejections += 1;
                let (_, ended) = self.call_finished(call, now);
                effects.append(ended);
                effects.rejected.push(call);
            }
        }
        Step::Wait
    }

    /// Admits queued calls, oldest first, while the head fits.
    fn admit_queued(&mut self, now: Time, effects: &mut Effects) {
        while let Some(call) = self.admission_queue.pop_front() {
            if self.calls.get(call).is_none() {
                continue;
            }
            self.retrying = true;
            let step = self.acquire(call, now, effects);
            self.retrying = false;
            if self.admission_queue.front() == Some(&call) {
                break; // still does not fit
            }
            effects.resume.push((call, step));
        }
    }

    /// Calls refused by the admission rules so far.
    pub fn rejections(&self) -> u64 {
        self.rejections
    }

    /// Calls waiting for admission.
    pub fn queued_calls(&self) -> usize {
        self.admission_queue.len()
    }

    /// Pool reconciliation: pre-warm what the plan creates (for functions
    /// whose image is cached), remove the ready instances it drops.
    fn apply_plan(&mut self, plan: PoolPlan<u32>, effects: &mut Effects) {
        for (f, n) in plan.remove {
            let pooled = &mut self.functions[f as usize].x_mut().pooled;
            let keep = pooled.len().saturating_sub(n);
            for id in pooled.split_off(keep) {
                self.instances.remove(id);
                effects.remove_instances.push(id);
            }
        }
        for (f, n) in plan.create {
            if !self.cache.contains(&self.functions, f) {
                for _ in 0..n {
                    self.pool.instance_failed(&f);
                }
                continue;
            }
            for _ in 0..n {
                let id = self.mint();
                self.instances.insert(
                    id,
                    InstanceRecord {
                        function: f,
                        kind: InstanceKind::Pooled,
                        state: InstanceState::Starting,
                        busy: 0,
                        waiting: Vec::new(),
                        starter: None,
                        attached: true,
                        created: Time::ZERO, // pooled: not timed
                        memory_mb: self.functions[f as usize].memory_mb,
                    },
                );
                effects.prewarm.push(Prewarm {
                    instance: id,
                    function: self.name(f),
                    kind: InstanceKind::Pooled,
                });
            }
        }
    }

    /// The pool was replaced: its ready instances go, those starting are
    /// refused when up.
    fn detach_pools(&mut self, effects: &mut Effects) {
        for fs in self.functions.iter_mut() {
            let Some(x) = &mut fs.extra else {
                continue;
            };
            for id in x.pooled.drain(..) {
                self.instances.remove(id);
                effects.remove_instances.push(id);
            }
        }
        for r in self.instances.values_mut() {
            if r.kind == InstanceKind::Pooled {
                r.attached = false;
            }
        }
    }

    /// `id` is no longer owned by a policy: removed now if idle, else when
    /// its last call ends.
    fn detach(&mut self, id: InstanceId, effects: &mut Effects) {
        if let Some(r) = self.instances.get_mut(id) {
            r.attached = false;
        }
        self.drop_if_idle(id, effects);
    }

    fn drop_if_idle(&mut self, id: InstanceId, effects: &mut Effects) {
        let idle = self
            .instances
            .get(id)
            .is_some_and(|r| !r.attached && r.busy == 0 && r.state == InstanceState::Ready);
        if idle {
            self.instances.remove(id);
            effects.remove_instances.push(id);
        }
    }

    // ----- state, for drivers and status pages -----

    /// Whether a call of `function` now would run on a warm REST instance
    /// (image cached, instance up): a hint for where a driver runs it.
    pub fn serves_warm(&self, function: &str) -> bool {
        self.instance_model == InstanceModel::HotFunctions
            && self.options.using_rest_mode
            && self
                .known_local(function)
                .is_some_and(|f| self.cache.contains(&self.functions, f) && self.rest.is_ready(&f))
    }

    /// `function`'s instances on this node that a policy owns: (ready,
    /// starting). Detached ones (removed once their calls end) and
    /// one-shot instances are not counted.
    pub fn function_instances(&self, function: &str) -> (usize, usize) {
        let Some(f) = self.known_local(function) else {
            return (0, 0);
        };
        self.instances
            .values()
            .filter(|r| r.function == f && r.attached)
            .fold((0, 0), |(ready, starting), r| match r.state {
                InstanceState::Ready => (ready + 1, starting),
                InstanceState::Starting => (ready, starting + 1),
            })
    }

    /// [`NodeModel::function_instances`] of every function that has any,
    /// by name.
    pub fn instances_by_function(&self) -> Vec<(Arc<str>, usize, usize)> {
        let mut per: FxHashMap<u32, (usize, usize)> = FxHashMap::default();
        for r in self.instances.values().filter(|r| r.attached) {
            let e = per.entry(r.function).or_default();
            match r.state {
                InstanceState::Ready => e.0 += 1,
                InstanceState::Starting => e.1 += 1,
            }
        }
        let mut out: Vec<(Arc<str>, usize, usize)> = per
            .into_iter()
            .map(|(f, (ready, starting))| (self.name(f), ready, starting))
            .collect();
        out.sort_unstable();
        out
    }

    /// Cached images.
    pub fn images(&self) -> usize {
        self.cache.len()
    }

    /// Bytes of the cached images.
    pub fn image_bytes(&self) -> u64 {
        self.cache.total_bytes()
    }

    /// Ready pre-warmed instances.
    pub fn pooled_instances(&self) -> usize {
        self.functions.iter().map(|f| f.x().pooled.len()).sum()
    }

    /// REST instances that are up.
    pub fn rest_instances(&self) -> usize {
        (0..self.functions.len() as u32)
            .filter(|f| self.rest.is_ready(f))
            .count()
    }

    /// Idle instances evicted for memory (`lru`, `greedy-dual`).
    pub fn memory_evictions(&self) -> u64 {
        self.evictions
    }

    /// The node's memory limit for instances (MB), if any.
    pub fn node_memory_mb(&self) -> Option<u64> {
        self.node_memory_mb
    }

    /// Keep-alive instances (Lambda model): (busy, idle).
    pub fn keep_alive_instances(&self) -> (u64, u64) {
        (self.keep_alive_busy, self.keep_alive_idle)
    }

    /// Instances the model knows (starting, ready, or detached and busy).
    pub fn instances(&self) -> usize {
        self.instances.len()
    }

    /// Calls in flight.
    pub fn calls_in_flight(&self) -> usize {
        self.calls.len()
    }

    /// Functions this node keeps state for: those it has seen (called,
    /// built, declared), not every function of a shared table.
    pub fn functions_seen(&self) -> usize {
        self.functions.len()
    }
}

fn new_pool(options: &CachingOptions) -> ContainerPool<u32> {
    ContainerPool::new(
        options.pool_function_limit(),
        options.container_pool_num as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::super::keep_alive_policy;
    use super::*;
    use proptest::prelude::*;

    const MB: u64 = 1_000_000;

    fn s(x: u64) -> Time {
        Time::from_secs(x)
    }

    fn rest_options(limit_mb: i64) -> CachingOptions {
        CachingOptions {
            user_code_size_limit: if limit_mb < 0 {
                -1
            } else {
                limit_mb * MB as i64
            },
            using_rest_mode: true,
            rest_container_life_time: 60,
            ..CachingOptions::default()
        }
    }

    /// A driver that does every step at once: builds take no time,
    /// instances start at once, each call ends `dur` after it arrived.
    /// Returns the call's meta and every effect seen.
    fn whole_call(
        m: &mut NodeModel,
        f: &str,
        bytes: u64,
        at: Time,
        dur: Duration,
    ) -> (CallMeta, Vec<Effects>) {
        let mut seen = Vec::new();
        let (call, mut eff) = m.call_arrived(f, at);
        let mut step = eff.take_step(call);
        seen.push(eff);
        loop {
            match step {
                Some(Step::BuildImage) => {
                    let mut eff = m.image_built(f, bytes, at);
                    step = eff.take_step(call);
                    seen.push(eff);
                }
                Some(Step::Start { instance, .. }) => {
                    let eff = m.instance_started(instance, at);
                    seen.push(eff);
                    step = Some(Step::Run { instance });
                }
                Some(Step::Run { .. }) | Some(Step::RunOnce { .. }) => break,
                Some(Step::Wait) | None => panic!("nothing else runs: {f} cannot wait"),
            }
        }
        let (meta, eff) = m.call_finished(call, at + dur);
        seen.push(eff);
        (meta, seen)
    }

    /// A retired function (a user function's replaced version): its idle
    /// instance and its image go at once; a call in flight keeps both
    /// until it ends, and retiring again then removes them.
    #[test]
    fn a_retired_function_leaves_the_cache_once_no_call_uses_it() {
        let mut m = NodeModel::new(rest_options(10), InstanceModel::HotFunctions);
        let _ = whole_call(&mut m, "f@v1", 4 * MB, s(0), Duration::from_secs(1));
        assert!(m.image_cached("f@v1"));
        let (eff, pinned) = m.retire_function("f@v1", s(2));
        assert!(!pinned);
        assert_eq!(eff.remove_instances.len(), 1);
        assert_eq!(&*eff.remove_images, [Arc::<str>::from("f@v1")]);
        assert!(!m.image_cached("f@v1"));
        assert_eq!((m.image_bytes(), m.instances()), (0, 0));
        // In flight: the image stays (pinned), the instance goes when idle.
        let _ = whole_call(&mut m, "f@v2", 4 * MB, s(3), Duration::from_secs(1));
        let (call, mut eff) = m.call_arrived("f@v2", s(5));
        assert!(matches!(eff.take_step(call), Some(Step::Run { .. })));
        let (eff, pinned) = m.retire_function("f@v2", s(6));
        assert!(pinned && eff.remove_images.is_empty() && eff.remove_instances.is_empty());
        let (_, eff) = m.call_finished(call, s(7));
        assert_eq!(eff.remove_instances.len(), 1);
        let (eff, pinned) = m.retire_function("f@v2", s(8));
        assert!(!pinned);
        assert_eq!(eff.remove_images.len(), 1);
        // Idempotent, and nothing for an unknown name.
        assert!(m.retire_function("f@v2", s(9)).0.is_empty());
        assert!(m.retire_function("nope", s(9)).0.is_empty());
        assert_eq!(m.image_bytes(), 0);
    }

    /// An instance that failed its call leaves its policy and goes once
    /// idle: the next call starts another (REST mode and Lambda).
    #[test]
    fn a_failed_instance_is_replaced_after_its_call() {
        for model in [
            InstanceModel::HotFunctions,
            InstanceModel::lambda(Duration::from_secs(60), KeepAlivePolicy::default()),
        ] {
            let mut m = NodeModel::new(rest_options(-1), model);
            let _ = whole_call(&mut m, "f", MB, s(0), Duration::from_secs(1));
            let (call, mut eff) = m.call_arrived("f", s(2));
            let Some(Step::Run { instance }) = eff.take_step(call) else {
                panic!("warm call expected ({model:?})");
            };
            assert!(
                m.discard_call_instance(call, s(3)).is_empty(),
                "busy: stays"
            );
            let (meta, eff) = m.call_finished(call, s(3));
            assert!(meta.existing_instance);
            assert_eq!(eff.remove_instances, [instance], "{model:?}");
            let (meta, _) = whole_call(&mut m, "f", MB, s(4), Duration::from_secs(1));
            assert!(meta.is_cold(), "{model:?}: {meta:?}");
            assert_eq!(m.function_instances("f"), (1, 0));
        }
    }

    /// Scale to zero and wake in REST mode: the idle REST instance goes
    /// (the image stays), the next call is cold; a wake starts the one
    /// REST instance, which the next call uses warm; a busy instance is
    /// removed only when its call ends.
    #[test]
    fn rest_instances_scale_to_zero_and_wake() {
        let mut m = NodeModel::new(rest_options(-1), InstanceModel::HotFunctions);
        let (meta, _) = whole_call(&mut m, "W1", MB, s(0), Duration::from_secs(1));
        assert!(meta.is_cold());
        assert_eq!(m.function_instances("W1"), (1, 0));
        let eff = m.remove_function_instances("W1", s(2));
        assert_eq!(
            (eff.remove_instances.len(), eff.remove_images.len()),
            (1, 0)
        );
        assert_eq!(m.function_instances("W1"), (0, 0));
        let (meta, _) = whole_call(&mut m, "W1", MB, s(3), Duration::from_secs(1));
        assert!(meta.is_cold() && !meta.image_built, "{meta:?}");
        let _ = m.remove_function_instances("W1", s(5));
        // A wake: one REST instance, whatever the number asked.
        let eff = m.start_instances("W1", 3, s(6)).unwrap();
        assert_eq!(eff.prewarm.len(), 1);
        assert_eq!(m.function_instances("W1"), (0, 1));
        assert!(m.start_instances("W1", 3, s(6)).unwrap().prewarm.is_empty());
        let id = eff.prewarm[0].instance;
        let up = m.instance_started(id, s(7));
        assert!(up.remove_instances.is_empty());
        assert_eq!(m.function_instances("W1"), (1, 0));
        // It expires after the REST lifetime (60 s) like any idle one.
        let mut later = m.clone();
        assert!(later.timer(s(66)).remove_instances.is_empty());
        assert_eq!(later.timer(s(67)).remove_instances, [id]);
        let (meta, _) = whole_call(&mut m, "W1", MB, s(8), Duration::from_secs(1));
        assert!(meta.existing_instance, "{meta:?}");
        // Busy: detached, removed when its call ends.
        let (call, mut eff) = m.call_arrived("W1", s(10));
        assert_eq!(eff.take_step(call), Some(Step::Run { instance: id }));
        assert!(m
            .remove_function_instances("W1", s(11))
            .remove_instances
            .is_empty());
        assert_eq!(m.function_instances("W1"), (0, 0));
        let (_, eff) = m.call_finished(call, s(12));
        assert_eq!(eff.remove_instances, [id]);
        // A wake's instance removed while starting is removed once up.
        let eff = m.start_instances("W1", 1, s(13)).unwrap();
        let id = eff.prewarm[0].instance;
        let _ = m.remove_function_instances("W1", s(13));
        assert_eq!(m.instance_started(id, s(14)).remove_instances, [id]);
        assert_eq!(m.instances(), 0);
        // Unknown or uncached functions.
        assert!(m.remove_function_instances("nope", s(15)).is_empty());
        assert_eq!(
            m.start_instances("W2", 1, s(15)),
            Err(StartRefused::ImageNotCached)
        );
        let mut once = NodeModel::new(CachingOptions::default(), InstanceModel::HotFunctions);
        let _ = whole_call(&mut once, "W1", MB, s(0), Duration::from_secs(1));
        assert_eq!(
            once.start_instances("W1", 1, s(2)),
            Err(StartRefused::PerCallInstances)
        );
    }

    /// The Lambda model: a wake starts keep-alive instances up to the
    /// number asked; scale to zero removes the idle ones and the busy one
    /// when its call ends.
    #[test]
    fn keep_alive_instances_scale_to_zero_and_wake() {
        let model = InstanceModel::lambda(Duration::from_secs(600), KeepAlivePolicy::Fixed);
        let mut m = NodeModel::new(CachingOptions::default(), model);
        let _ = whole_call(&mut m, "W1", MB, s(0), Duration::from_secs(1));
        let eff = m.start_instances("W1", 3, s(2)).unwrap();
        assert_eq!(eff.prewarm.len(), 2, "one idle already");
        assert_eq!(m.function_instances("W1"), (1, 2));
        for p in &eff.prewarm {
            let _ = m.instance_started(p.instance, s(3));
        }
        assert_eq!(m.function_instances("W1"), (3, 0));
        assert_eq!(m.keep_alive_instances(), (0, 3));
        let (call, mut eff) = m.call_arrived("W1", s(4));
        assert!(matches!(eff.take_step(call), Some(Step::Run { .. })));
        let gone = m.remove_function_instances("W1", s(5));
        assert_eq!(gone.remove_instances.len(), 2);
        assert_eq!(m.function_instances("W1"), (0, 0));
        assert_eq!(m.keep_alive_instances(), (1, 0));
        let (meta, eff) = m.call_finished(call, s(6));
        assert!(meta.existing_instance);
        assert_eq!(eff.remove_instances.len(), 1);
        assert_eq!(m.keep_alive_instances(), (0, 0));
        assert_eq!(m.instances(), 0);
        let (meta, _) = whole_call(&mut m, "W1", MB, s(7), Duration::from_secs(1));
        assert!(meta.is_cold());
    }

    fn prewarm_all(m: &mut NodeModel, effects: &[Effects], at: Time) {
        let ids: Vec<InstanceId> = effects
            .iter()
            .flat_map(|e| e.prewarm.iter().map(|p| p.instance))
            .collect();
        for id in ids {
            let eff = m.instance_started(id, at);
            assert!(eff.resume.is_empty());
        }
    }

    fn removed(effects: &[Effects]) -> Vec<InstanceId> {
        effects
            .iter()
            .flat_map(|e| e.remove_instances.clone())
            .collect()
    }

    /// The issue's first scenario: an evicted image takes its idle REST
    /// instance with it, so the third call is a new instance.
    #[test]
    fn an_evicted_image_takes_its_rest_instance() {
        let mut m = NodeModel::new(rest_options(60), InstanceModel::HotFunctions);
        let d = Duration::from_millis(100);
        let (a, _) = whole_call(&mut m, "W3", 54 * MB, s(0), d);
        assert_eq!((a.image_built, a.existing_instance), (true, false));
        let (b, eff) = whole_call(&mut m, "W5", 26 * MB, s(5), d);
        assert!(b.image_built);
        let images: Vec<&str> = eff
            .iter()
            .flat_map(|e| e.remove_images.iter().map(|n| &**n))
            .collect();
        assert_eq!(images, ["W3"]);
        assert_eq!(
            removed(&eff).len(),
            1,
            "W3's REST instance goes with its image"
        );
        let (c, _) = whole_call(&mut m, "W3", 54 * MB, s(10), d);
        assert!(c.image_built);
        assert!(
            !c.existing_instance,
            "no REST instance survived the eviction"
        );
        // Without the limit, the third call reuses the instance.
        let mut m = NodeModel::new(rest_options(-1), InstanceModel::HotFunctions);
        whole_call(&mut m, "W3", 54 * MB, s(0), d);
        whole_call(&mut m, "W5", 26 * MB, s(5), d);
        let (c, _) = whole_call(&mut m, "W3", 54 * MB, s(10), d);
        assert_eq!((c.image_built, c.existing_instance), (false, true));
    }

    /// The issue's second scenario: an evicted image takes its pool.
    #[test]
    fn an_evicted_image_takes_its_pool() {
        let options = CachingOptions {
            user_code_size_limit: 60 * MB as i64,
            container_pool_limit: 5,
            container_pool_num: 1,
            ..CachingOptions::default()
        };
        let mut m = NodeModel::new(options, InstanceModel::HotFunctions);
        let d = Duration::from_millis(100);
        let (a, eff) = whole_call(&mut m, "W3", 54 * MB, s(0), d);
        assert!(a.image_built && !a.pooled);
        prewarm_all(&mut m, &eff, s(1));
        assert_eq!(m.pooled_instances(), 1);
        let (_, eff) = whole_call(&mut m, "W5", 26 * MB, s(5), d);
        assert_eq!(
            m.pooled_instances(),
            0,
            "W3's pooled instance went with its image"
        );
        assert!(!removed(&eff).is_empty());
        prewarm_all(&mut m, &eff, s(6));
        let (c, _) = whole_call(&mut m, "W3", 54 * MB, s(10), d);
        assert!(c.image_built);
        assert!(!c.pooled);
        // Without the limit, the third call takes its pooled instance.
        let options = CachingOptions {
            user_code_size_limit: -1,
            ..options
        };
        let mut m = NodeModel::new(options, InstanceModel::HotFunctions);
        let (_, eff) = whole_call(&mut m, "W3", 54 * MB, s(0), d);
        prewarm_all(&mut m, &eff, s(1));
        let (_, eff) = whole_call(&mut m, "W5", 26 * MB, s(5), d);
        prewarm_all(&mut m, &eff, s(6));
        let (c, _) = whole_call(&mut m, "W3", 54 * MB, s(10), d);
        assert_eq!((c.image_built, c.pooled), (false, true));
    }

    #[test]
    fn one_build_for_concurrent_calls_and_a_failed_build_is_handed_on() {
        let mut m = NodeModel::new(CachingOptions::default(), InstanceModel::HotFunctions);
        let (a, mut ea) = m.call_arrived("F", s(0));
        assert_eq!(ea.take_step(a), Some(Step::BuildImage));
        let (b, mut eb) = m.call_arrived("F", s(0));
        let (c, mut ec) = m.call_arrived("F", s(0));
        assert_eq!(
            (eb.take_step(b), ec.take_step(c)),
            (Some(Step::Wait), Some(Step::Wait)),
            "they wait"
        );
        // The build fails: the first waiter builds again; `a` ends.
        let mut eff = m.image_build_failed("F", s(1));
        assert_eq!(eff.take_step(b), Some(Step::BuildImage));
        assert!(eff.is_empty());
        let (meta, _) = m.call_finished(a, s(1));
        assert!(meta.image_built);
        let mut eff = m.image_built("F", 10, s(2));
        assert!(matches!(eff.take_step(b), Some(Step::RunOnce { .. })));
        assert!(matches!(eff.take_step(c), Some(Step::RunOnce { .. })));
        let (mb, _) = m.call_finished(b, s(3));
        let (mc, _) = m.call_finished(c, s(3));
        assert!(mb.image_built && mc.image_built && mb.is_cold());
        let (d, mut ed) = m.call_arrived("F", s(4));
        assert!(matches!(ed.take_step(d), Some(Step::RunOnce { .. })));
        assert!(!m.meta(d).unwrap().image_built);
    }

    #[test]
    fn rest_waiters_share_one_start_and_retry_after_a_failed_one() {
        let mut m = NodeModel::new(rest_options(-1), InstanceModel::HotFunctions);
        let (a, _) = m.call_arrived("F", s(0));
        let mut eff = m.image_built("F", 10, s(0));
        let Some(Step::Start {
            instance: first,
            kind,
        }) = eff.take_step(a)
        else {
            panic!("the builder starts the REST instance: {eff:?}");
        };
        assert_eq!(kind, InstanceKind::Rest);
        let (b, mut eb) = m.call_arrived("F", s(0));
        let (c, mut ec) = m.call_arrived("F", s(0));
        assert_eq!(
            (eb.take_step(b), ec.take_step(c)),
            (Some(Step::Wait), Some(Step::Wait))
        );
        // The start fails: `a` ends; `b` starts a new instance, `c` waits.
        let mut eff = m.instance_start_failed(first, s(1));
        let Some(Step::Start {
            instance: second, ..
        }) = eff.take_step(b)
        else {
            panic!("{eff:?}");
        };
        assert_ne!(first, second);
        assert_eq!(eff.take_step(c), Some(Step::Wait));
        let (_, eff) = m.call_finished(a, s(1));
        assert!(eff.remove_instances.is_empty());
        let mut eff = m.instance_started(second, s(2));
        assert_eq!(eff.take_step(c), Some(Step::Run { instance: second }));
        assert!(
            !m.meta(c).unwrap().existing_instance,
            "it waited for a start"
        );
        let (d, mut ed) = m.call_arrived("F", s(3));
        assert_eq!(ed.take_step(d), Some(Step::Run { instance: second }));
        assert!(m.meta(d).unwrap().existing_instance);
        for call in [b, c, d] {
            let (_, eff) = m.call_finished(call, s(4));
            assert!(eff.is_empty());
        }
        assert_eq!(m.rest_instances(), 1);
    }

    #[test]
    fn idle_rest_instances_expire_on_the_timer() {
        let mut m = NodeModel::new(rest_options(-1), InstanceModel::HotFunctions);
        let d = Duration::from_secs(1);
        whole_call(&mut m, "F", 10, s(0), d);
        whole_call(&mut m, "G", 10, s(30), d);
        assert_eq!(m.next_timer(), Some(s(61)));
        assert!(m.timer(s(60)).is_empty(), "not due yet");
        let eff = m.timer(s(61));
        assert_eq!(eff.remove_instances.len(), 1);
        assert_eq!(m.rest_instances(), 1);
        assert_eq!(m.next_timer(), Some(s(91)));
        // A call in between pushes G's expiry further.
        let (meta, _) = whole_call(&mut m, "G", 10, s(80), d);
        assert!(meta.existing_instance);
        assert!(m.timer(s(91)).is_empty());
        assert_eq!(m.next_timer(), Some(s(141)));
        assert_eq!(m.timer(s(141)).remove_instances.len(), 1);
        assert_eq!((m.rest_instances(), m.next_timer()), (0, None));
        // An early call of the timer, and a late one, are harmless.
        assert!(m.timer(s(1000)).is_empty());
    }

    #[test]
    fn lambda_reuses_the_newest_idle_instance_and_expires_the_rest() {
        let keep_alive = Duration::from_secs(10);
        let mut m = NodeModel::new(
            CachingOptions::default(),
            InstanceModel::lambda(keep_alive, KeepAlivePolicy::Fixed),
        );
        let (a, mut ea) = m.call_arrived("F", s(0));
        assert_eq!(ea.take_step(a), Some(Step::BuildImage));
        let mut eff = m.image_built("F", 10, s(0));
        let Some(Step::Start {
            instance: ia,
            kind: InstanceKind::KeepAlive,
        }) = eff.take_step(a)
        else {
            panic!("{eff:?}");
        };
        assert!(m.instance_started(ia, s(0)).is_empty());
        let (b, mut eb) = m.call_arrived("F", s(1));
        let Some(Step::Start { instance: ib, .. }) = eb.take_step(b) else {
            panic!("one call per instance: a concurrent call starts another");
        };
        assert!(m.instance_started(ib, s(1)).is_empty());
        assert_eq!(m.keep_alive_instances(), (2, 0));
        assert!(m.call_finished(a, s(2)).1.is_empty());
        assert!(m.call_finished(b, s(3)).1.is_empty());
        assert_eq!(m.keep_alive_instances(), (0, 2));
        let (c, mut ec) = m.call_arrived("F", s(4));
        assert_eq!(
            ec.take_step(c),
            Some(Step::Run { instance: ib }),
            "the newest"
        );
        assert!(m.meta(c).unwrap().existing_instance);
        assert_eq!(m.next_timer(), Some(s(12)));
        assert_eq!(m.timer(s(12)).remove_instances, vec![ia]);
        let (meta, eff) = m.call_finished(c, s(5));
        assert!(!meta.is_cold() && eff.is_empty());
        assert_eq!(m.keep_alive_instances(), (0, 1));
        assert_eq!(m.timer(s(15)).remove_instances, vec![ib]);
        assert_eq!(m.keep_alive_instances(), (0, 0));
    }

    /// Where a call's start is private to it
    /// ([`NodeModel::call_starts_are_private`]), telling the start late,
    /// at its own time, just before the call's end, leaves the node as
    /// telling it on time: the same effects, steps and counts for the
    /// calls of another function and of the same one in between, with
    /// memory limits, and the same instances and reuse afterwards.
    #[test]
    fn a_private_start_told_late_leaves_the_node_as_told_on_time() {
        let keep_alive = Duration::from_secs(30);
        let policies = [
            KeepAlivePolicy::Fixed,
            KeepAlivePolicy::Lru,
            KeepAlivePolicy::Histogram(Default::default()),
            KeepAlivePolicy::Ewma(Default::default()),
        ];
        for policy in policies {
            let model = || {
                NodeModel::new(
                    CachingOptions::default(),
                    InstanceModel::lambda(keep_alive, policy),
                )
                .with_node_memory_mb(1_024)
            };
            assert!(model().call_starts_are_private(), "{policy:?}");
            let (mut on_time, mut late) = (model(), model());
            // The call up to its step: its image built at once.
            let arrive = |m: &mut NodeModel, f: &str, at: Time| {
                let (call, mut eff) = m.call_arrived(f, at);
                let mut step = eff.take_step(call);
                let mut seen = vec![eff];
                if step == Some(Step::BuildImage) {
                    let mut eff = m.image_built(f, 10, at);
                    step = eff.take_step(call);
                    seen.push(eff);
                }
                (call, step, seen)
            };
            let both = |on_time: &mut NodeModel, late: &mut NodeModel, f: &str, at: Time| {
                let a = arrive(on_time, f, at);
                assert_eq!(a, arrive(late, f, at), "{policy:?}: {f} at {at:?}");
                a
            };
            let same = |on_time: &NodeModel, late: &NodeModel| {
                assert_eq!(on_time.keep_alive_instances(), late.keep_alive_instances());
                assert_eq!(on_time.memory_in_use_mb(), late.memory_in_use_mb());
                assert_eq!(on_time.next_timer(), late.next_timer());
            };
            // A starts at 0 and is up at 1 s: told then to one model only.
            let (a, step, _) = both(&mut on_time, &mut late, "F", s(0));
            let Some(Step::Start { instance: ia, .. }) = step else {
                panic!("{policy:?}: {step:?}")
            };
            assert!(on_time.instance_started(ia, s(1)).is_empty());
            same(&on_time, &late);
            // Calls of G, and of F, come and go meanwhile.
            for (f, at) in [("G", 2), ("F", 3), ("G", 40)] {
                let (call, step, _) = both(&mut on_time, &mut late, f, s(at));
                if let Some(Step::Start { instance, .. }) = step {
                    for m in [&mut on_time, &mut late] {
                        assert!(m.instance_started(instance, s(at + 1)).is_empty());
                    }
                }
                let ends = [&mut on_time, &mut late].map(|m| m.call_finished(call, s(at + 5)));
                assert_eq!(ends[0], ends[1], "{policy:?}: {f} at {at}");
                same(&on_time, &late);
                let timers = [&mut on_time, &mut late].map(|m| m.timer(s(at + 6)));
                assert_eq!(timers[0], timers[1], "{policy:?}");
            }
            // A ends at 50 s: its start is told to the other model now.
            let started = late.instance_started(ia, s(1));
            assert!(started.is_empty(), "{policy:?}: {started:?}");
            let ends = [&mut on_time, &mut late].map(|m| m.call_finished(a, s(50)));
            assert_eq!(ends[0], ends[1], "{policy:?}");
            same(&on_time, &late);
            for f in ["F", "G"] {
                assert_eq!(on_time.function_instances(f), late.function_instances(f));
            }
            assert_eq!(
                on_time.instances_by_function(),
                late.instances_by_function()
            );
            // And F's next call reuses A's instance in both.
            let (_, step, _) = both(&mut on_time, &mut late, "F", s(51));
            assert_eq!(step, Some(Step::Run { instance: ia }), "{policy:?}");
        }
        // Greedy-Dual reads start times, and HotFunctions' models wait
        // for starts: their starts are not private.
        for instances in [
            InstanceModel::lambda(keep_alive, KeepAlivePolicy::GreedyDual),
            InstanceModel::HotFunctions,
        ] {
            let m = NodeModel::new(CachingOptions::default(), instances);
            assert!(!m.call_starts_are_private(), "{instances:?}");
        }
    }

    /// A function with its own keep-alive (60 s) beside one on the node's
    /// (300 s): calls of both end at 2 s; the first's instance goes at
    /// 62 s, the other's at 302 s. Set through a shared table or on the
    /// node, and on a pool that already exists (its expiry moves).
    #[test]
    fn a_function_s_own_keep_alive_replaces_the_node_s() {
        let model = InstanceModel::lambda(Duration::from_secs(300), KeepAlivePolicy::Fixed);
        let mut table = FunctionTable::new();
        let short = table.intern("short");
        table.intern("long");
        table.set_keep_alive(short, Duration::from_secs(60));
        let mut m =
            NodeModel::new(CachingOptions::default(), model).with_functions(Arc::new(table));
        let one = |m: &mut NodeModel, f: &str, at: u64| {
            whole_call(m, f, MB, s(at), Duration::from_secs(2));
        };
        one(&mut m, "short", 0);
        one(&mut m, "long", 0);
        assert_eq!(m.next_timer(), Some(s(62)));
        assert_eq!(m.timer(s(62)).remove_instances.len(), 1);
        assert_eq!(m.function_instances("short"), (0, 0));
        assert_eq!(m.function_instances("long"), (1, 0));
        assert_eq!(m.next_timer(), Some(s(302)));
        assert_eq!(m.timer(s(302)).remove_instances.len(), 1);
        // On a node (the live worker's way), after its pool exists.
        let mut m = NodeModel::new(CachingOptions::default(), model);
        one(&mut m, "w", 0);
        assert_eq!(m.next_timer(), Some(s(302)));
        m.set_function_keep_alive("w", Duration::from_secs(10));
        assert_eq!(m.next_timer(), Some(s(12)));
        assert_eq!(m.timer(s(12)).remove_instances.len(), 1);
        // A later pool of it takes it too; others keep the node's.
        one(&mut m, "w", 20);
        one(&mut m, "v", 20);
        assert_eq!(m.next_timer(), Some(s(32)));
        assert_eq!(m.timer(s(32)).remove_instances.len(), 1);
        assert!(m.timer(s(321)).remove_instances.is_empty());
        assert_eq!(m.timer(s(322)).remove_instances.len(), 1);
    }

    /// A call reads its function's record at a random node: one aligned
    /// pair of cache lines, image slot and keep-alive pool included.
    #[test]
    fn a_function_record_is_one_pair_of_cache_lines() {
        assert_eq!(std::mem::size_of::<KeepAlivePool>(), 64);
        assert_eq!(std::mem::size_of::<FunctionState>(), 128);
        assert_eq!(std::mem::align_of::<FunctionState>(), 128);
    }

    #[test]
    fn local_ids_stay_in_a_map_until_a_share_of_the_functions_is_seen() {
        let mut ids = LocalIds::default();
        let bound = 80;
        // Fewer than one in DENSE_SHARE: a map, no vector.
        let first: Vec<FunctionId> = vec![79, 3, 41, 0, 12, 66, 7, 5, 1000];
        for (local, &g) in first.iter().enumerate().take(8) {
            ids.insert(g, local as u32, bound);
        }
        assert!(ids.dense.is_empty());
        ids.insert(first[8], 8, bound); // outside the table: never dense
        assert!(ids.dense.is_empty());
        // The tenth function seen, counting the one outside the table
        // (10 * 8 >= 80): the named ids move.
        ids.insert(50, 9, bound);
        assert_eq!(ids.dense.len(), bound as usize);
        assert_eq!(ids.sparse.len(), 1, "only the id outside the table");
        ids.insert(60, 10, bound);
        for (local, g) in first.iter().copied().chain([50, 60]).enumerate() {
            assert_eq!(ids.get(g), Some(local as u32), "{g}");
        }
        assert_eq!(ids.get(2), None);
        assert_eq!(ids.get(u32::MAX), None);
    }

    /// A build done as the call arrives
    /// ([`NodeModel::call_arrived_building_at_once`]) leaves the node as
    /// the arrival and an `image_built` at the same instant do: the same
    /// calls, steps, evicted images and instances, under an image-cache
    /// limit that evicts, in the Lambda model and HotFunctions' REST mode.
    #[test]
    fn a_build_at_once_is_an_arrival_and_its_build() {
        let mut table = FunctionTable::new();
        for i in 0..4 {
            table.declare(&format!("F{i}"), 128);
        }
        let table = Arc::new(table);
        let lambda = InstanceModel::lambda(Duration::from_secs(10), KeepAlivePolicy::Fixed);
        let limited = |mut options: CachingOptions| {
            options.user_code_size_limit = 100 * MB as i64;
            options
        };
        let setups = [
            (limited(CachingOptions::default()), lambda),
            (limited(rest_options(-1)), InstanceModel::HotFunctions),
        ];
        for (options, instances) in setups {
            let model = || NodeModel::new(options, instances).with_functions(table.clone());
            let (mut at_once, mut two_steps) = (model(), model());
            let (mut builds, mut evicted) = (0, 0);
            // Each image is 40 MB: a third evicts one.
            for (i, g) in [0, 1, 0, 2, 3, 0, 1].into_iter().enumerate() {
                let at = s(i as u64 * 3);
                let (call, mut eff, built) =
                    at_once.call_arrived_building_at_once(g, None, 40 * MB, at);
                let (other, mut first) = two_steps.call_arrived_by_id_with_memory(g, None, at);
                assert_eq!(call, other);
                let mut step = first.take_step(call);
                let mut removed = first.remove_images.clone();
                let builds_here = step == Some(Step::BuildImage);
                if builds_here {
                    let mut eff = two_steps.image_built_by_id(g, 40 * MB, at);
                    step = eff.take_step(call);
                    removed.extend(eff.remove_images.iter().cloned());
                    builds += 1;
                }
                assert_eq!(built, builds_here, "{instances:?}: F{g} at {at:?}");
                evicted += removed.len();
                assert_eq!(eff.take_step(call), step, "{instances:?}: F{g} at {at:?}");
                assert_eq!(eff.remove_images, removed, "{instances:?}: F{g} at {at:?}");
                if let Some(Step::Start { instance, .. }) = step {
                    assert_eq!(
                        at_once.instance_started(instance, at),
                        two_steps.instance_started(instance, at)
                    );
                }
                let end = at + Duration::from_secs(1);
                assert_eq!(
                    at_once.call_finished(call, end),
                    two_steps.call_finished(call, end)
                );
                assert_eq!(at_once.images(), two_steps.images());
                assert_eq!(at_once.image_bytes(), two_steps.image_bytes());
                assert_eq!(at_once.instances(), two_steps.instances());
            }
            // F0 built, reused, evicted and built again.
            assert!(
                builds >= 5 && evicted > 0,
                "{instances:?}: {builds} builds, {evicted} evicted"
            );
        }
    }

    #[test]
    fn a_shared_table_names_functions_by_id_and_nodes_keep_only_what_they_see() {
        let mut table = FunctionTable::new();
        for i in 0..1000 {
            table.declare(&format!("F{i}"), 100 + i);
        }
        let table = Arc::new(table);
        let model = InstanceModel::lambda(Duration::from_secs(10), KeepAlivePolicy::Fixed);
        // A node that saw a name before it got the table keeps its state.
        let mut early = NodeModel::new(CachingOptions::default(), model);
        early.declare_function("F7", 64);
        let mut m = early.with_functions(table.clone());
        assert_eq!(m.functions_seen(), 1);
        let f7 = table.id("F7").unwrap();
        let (a, mut ea) = m.call_arrived_by_id(f7, s(0));
        assert_eq!(ea.take_step(a), Some(Step::BuildImage));
        let mut eff = m.image_built_by_id(f7, 10, s(0));
        let Some(Step::Start { instance, .. }) = eff.take_step(a) else {
            panic!("{eff:?}");
        };
        // The name and the id are one function; its memory is the one
        // declared on the node, not the table's.
        assert_eq!(m.functions_seen(), 1);
        assert_eq!(m.memory_in_use_mb(), 64);
        assert!(m.instance_started(instance, s(0)).is_empty());
        let (b, mut eb) = m.call_arrived("F3", s(1));
        assert_eq!(eb.take_step(b), Some(Step::BuildImage));
        assert_eq!(m.functions_seen(), 2, "one state per function seen");
        let f3 = m.local.get(table.id("F3").unwrap()).unwrap();
        assert_eq!(
            m.functions[f3 as usize].memory_mb, 103,
            "the table's memory"
        );
        // A name outside the table is a function of its own.
        let (c, mut ec) = m.call_arrived("other", s(1));
        assert_eq!(ec.take_step(c), Some(Step::BuildImage));
        assert_eq!(&*m.name(m.known_local("other").unwrap()), "other");
        // An empty pool goes with its last instance under `fixed`.
        let _ = m.call_finished(a, s(2));
        let f = m.known_local("F7").unwrap();
        assert!(m.functions[f as usize].pool().is_some());
        assert_eq!(m.timer(s(12)).remove_instances, vec![instance]);
        assert!(m.functions[f as usize].pool().is_none());
        // The image stays: the next call is cold but builds nothing.
        let (d, mut ed) = m.call_arrived_by_id(f7, s(13));
        assert!(matches!(ed.take_step(d), Some(Step::Start { .. })));
        assert!(m.meta(d).unwrap().is_cold() && !m.meta(d).unwrap().image_built);
    }

    /// A Lambda-model driver: the call builds its image if needed (at
    /// once), its instance takes `start` to start, it runs `dur`. Returns
    /// the call's meta and every effect seen.
    fn lambda_call(
        m: &mut NodeModel,
        f: &str,
        at: Time,
        start: Duration,
        dur: Duration,
    ) -> (CallMeta, Vec<Effects>) {
        let mut seen = Vec::new();
        let (call, mut eff) = m.call_arrived(f, at);
        let mut step = eff.take_step(call);
        seen.push(eff);
        let mut t = at;
        if step == Some(Step::BuildImage) {
            let mut eff = m.image_built(f, 10, at);
            step = eff.take_step(call);
            seen.push(eff);
        }
        match step {
            Some(Step::Start { instance, kind }) => {
                assert_eq!(kind, InstanceKind::KeepAlive);
                t += start;
                seen.push(m.instance_started(instance, t));
            }
            Some(Step::Run { .. }) => {}
            other => panic!("{f}: {other:?}"),
        }
        let (meta, eff) = m.call_finished(call, t + dur);
        seen.push(eff);
        (meta, seen)
    }

    fn lambda_node(policy: &str, memory_mb: Option<u32>) -> NodeModel {
        let model = InstanceModel::lambda(Duration::from_secs(600), policy.parse().unwrap());
        let mut m = NodeModel::new(CachingOptions::default(), model);
        if let Some(mb) = memory_mb {
            m = m.with_node_memory_mb(mb);
        }
        m
    }

    #[test]
    fn lru_evicts_the_least_recently_used_idle_instance_for_memory() {
        // Room for two instances of 256 MB.
        let mut m = lambda_node("lru", Some(512));
        for f in ["A", "B", "C"] {
            m.declare_function(f, 256);
        }
        let (ms, d) = (Duration::from_millis(100), Duration::from_secs(1));
        lambda_call(&mut m, "A", s(0), ms, d);
        lambda_call(&mut m, "B", s(10), ms, d);
        assert_eq!((m.memory_in_use_mb(), m.memory_evictions()), (512, 0));
        // C needs room: A, idle longest, goes.
        let (c, eff) = lambda_call(&mut m, "C", s(20), ms, d);
        assert!(c.is_cold());
        assert_eq!(removed(&eff).len(), 1);
        assert_eq!((m.memory_in_use_mb(), m.memory_evictions()), (512, 1));
        let (b, _) = lambda_call(&mut m, "B", s(30), ms, d);
        assert!(!b.is_cold(), "B was kept");
        // A is cold again, and takes the place of C (now the LRU one).
        let (a, _) = lambda_call(&mut m, "A", s(40), ms, d);
        assert!(a.is_cold(), "A was evicted");
        let (b, _) = lambda_call(&mut m, "B", s(50), ms, d);
        let (c, _) = lambda_call(&mut m, "C", s(60), ms, d);
        assert!(!b.is_cold() && c.is_cold());
        assert_eq!(m.memory_evictions(), 3);
        // Without a memory limit nothing is evicted.
        let mut m = lambda_node("lru", None);
        for (i, f) in ["A", "B", "C"].into_iter().enumerate() {
            lambda_call(&mut m, f, s(10 * i as u64), ms, d);
        }
        assert!(!lambda_call(&mut m, "A", s(40), ms, d).0.is_cold());
        assert_eq!(m.memory_evictions(), 0);
    }

    #[test]
    fn greedy_dual_keeps_the_frequent_costly_function_lru_would_evict() {
        // A: called three times, slow to start (2 s); B: once, fast (0.1
        // s). Both 256 MB, room for two. A is idle longest, so LRU would
        // evict it; Greedy-Dual evicts B (priority 0 + 1·100/256 against
        // 0 + 3·2000/256).
        let d = Duration::from_secs(1);
        let run = |policy: &str| {
            let mut m = lambda_node(policy, Some(512));
            for t in [0, 10, 20] {
                lambda_call(&mut m, "A", s(t), Duration::from_secs(2), d);
            }
            lambda_call(&mut m, "B", s(30), Duration::from_millis(100), d);
            lambda_call(&mut m, "C", s(40), Duration::from_millis(100), d);
            let (a, _) = lambda_call(&mut m, "A", s(50), Duration::from_secs(2), d);
            a.is_cold()
        };
        assert!(run("lru"), "LRU evicted A");
        assert!(!run("greedy-dual"), "Greedy-Dual kept A");
    }

    #[test]
    fn with_nothing_idle_to_evict_the_node_over_commits() {
        let mut m = lambda_node("greedy-dual", Some(256));
        let (a, mut ea) = m.call_arrived("A", s(0));
        assert_eq!(ea.take_step(a), Some(Step::BuildImage));
        let mut ea = m.image_built("A", 10, s(0));
        assert!(matches!(ea.take_step(a), Some(Step::Start { .. })));
        // A is busy: B's start cannot evict it and still goes ahead.
        let (b, mut eb) = m.call_arrived("B", s(1));
        assert_eq!(eb.take_step(b), Some(Step::BuildImage));
        let mut eb = m.image_built("B", 10, s(1));
        assert!(matches!(eb.take_step(b), Some(Step::Start { .. })));
        assert!(eb.remove_instances.is_empty());
        assert_eq!(m.memory_in_use_mb(), 512, "over the 256 MB limit");
        assert_eq!(m.memory_evictions(), 0);
    }

    #[test]
    fn histogram_unloads_and_pre_warms_before_the_next_call() {
        let mut m = lambda_node("histogram", None);
        let (ms, d) = (Duration::from_millis(100), Duration::from_secs(1));
        // First call: no idle time yet, the fixed keep-alive (600 s).
        let (_, eff) = lambda_call(&mut m, "F", s(0), ms, d);
        assert!(removed(&eff).is_empty());
        let end = Time::from_millis(1100);
        assert_eq!(m.next_timer(), Some(end + Duration::from_secs(600)));
        // Idle 330 s (bin 5): head 5 min → pre-warm after 270 s; tail
        // edge 6 min · 1.1 = 396 s → keep 126 s after the pre-warm.
        let t1 = end + Duration::from_secs(330);
        let (meta, eff) = lambda_call(&mut m, "F", t1, ms, d);
        assert!(!meta.is_cold(), "still kept by the fixed keep-alive");
        let end = t1 + d;
        assert_eq!(removed(&eff).len(), 1, "unloaded until the pre-warm");
        assert_eq!(m.keep_alive_instances(), (0, 0));
        let due = end + Duration::from_secs(270);
        assert!(m.next_timer().is_some_and(|t| t <= due));
        assert!(m.timer(end + Duration::from_secs(269)).is_empty());
        let eff = m.timer(due);
        let [p] = &eff.prewarm[..] else {
            panic!("one pre-warm: {eff:?}")
        };
        assert_eq!((&*p.function, p.kind), ("F", InstanceKind::KeepAlive));
        assert!(m.instance_started(p.instance, due + ms).is_empty());
        assert_eq!(m.keep_alive_instances(), (0, 1));
        // The next call, 330 s after the last, is warm.
        let (meta, _) = lambda_call(&mut m, "F", end + Duration::from_secs(330), ms, d);
        assert!(!meta.is_cold(), "the pre-warmed instance served it");
        // Left alone, the instance goes 126 s after the pre-warm window.
        let end = end + Duration::from_secs(331);
        let gone = end + Duration::from_secs(270);
        let eff = m.timer(gone);
        let [p] = &eff.prewarm[..] else {
            panic!("{eff:?}")
        };
        assert!(m.instance_started(p.instance, gone).is_empty());
        assert_eq!(m.next_timer(), Some(gone + Duration::from_secs(126)));
        assert_eq!(
            m.timer(gone + Duration::from_secs(126)).remove_instances,
            vec![p.instance]
        );
    }

    #[test]
    fn ewma_keeps_the_estimated_instances_warm() {
        let mut m = NodeModel::new(
            CachingOptions::default(),
            InstanceModel::lambda(Duration::from_secs(10), "ewma".parse().unwrap()),
        );
        let d = Duration::from_millis(500);
        // 12 calls one after another in the first interval: one instance.
        for i in 0..12 {
            lambda_call(&mut m, "F", Time::from_millis(2000 * i), Duration::ZERO, d);
        }
        assert_eq!(m.keep_alive_instances(), (0, 1));
        assert!(m.next_timer().is_some_and(|t| t <= s(30)));
        // At 30 s: estimate 12 → ⌊12/5⌋ = 2 warm: one more is pre-warmed.
        let eff = m.timer(s(30));
        assert_eq!(eff.prewarm.len(), 1, "{eff:?}");
        assert!(eff.remove_instances.is_empty(), "kept past its keep-alive");
        assert!(m
            .instance_started(eff.prewarm[0].instance, s(31))
            .is_empty());
        assert_eq!(m.keep_alive_instances(), (0, 2));
        // At 60 s: no call, estimate 12·(1 − α) with α = 0.2 + 0.8·12/13:
        // ⌊0.74/5⌋ → 1 warm; the older instance expires.
        let eff = m.timer(s(60));
        assert!(eff.prewarm.is_empty());
        assert_eq!(eff.remove_instances.len(), 1);
        assert_eq!(m.keep_alive_instances(), (0, 1));
        // The last one stays for good (at least one warm).
        assert!(m.timer(s(3600)).remove_instances.is_empty());
        assert_eq!(m.keep_alive_instances(), (0, 1));
        let (meta, _) = lambda_call(&mut m, "F", s(3601), Duration::ZERO, d);
        assert!(!meta.is_cold());
    }

    #[test]
    fn clear_removes_everything_and_detaches_what_is_in_use() {
        let mut m = NodeModel::new(rest_options(-1), InstanceModel::HotFunctions);
        let d = Duration::from_secs(1);
        whole_call(&mut m, "F", 10, s(0), d);
        let (busy, mut eff) = m.call_arrived("G", s(2));
        assert_eq!(eff.take_step(busy), Some(Step::BuildImage));
        let mut eff = m.image_built("G", 10, s(2));
        let Some(Step::Start { instance: g, .. }) = eff.take_step(busy) else {
            panic!("{eff:?}");
        };
        let eff = m.clear(true, s(3));
        assert_eq!(eff.remove_instances.len(), 2, "both listed: {eff:?}");
        assert_eq!(eff.remove_images.len(), 2);
        assert_eq!((m.images(), m.rest_instances()), (0, 0));
        // G's start completes after the clear: its call still runs on it,
        // and it is removed when that call ends.
        assert!(m.instance_started(g, s(4)).is_empty());
        let (_, eff) = m.call_finished(busy, s(5));
        assert_eq!(eff.remove_instances, vec![g]);
        assert_eq!(m.instances(), 0);
        let (meta, _) = whole_call(&mut m, "F", 10, s(6), d);
        assert!(meta.image_built && meta.is_cold());
    }

    #[test]
    fn options_changes_follow_the_composition_rules() {
        let mut m = NodeModel::new(rest_options(-1), InstanceModel::HotFunctions);
        let d = Duration::from_secs(1);
        whole_call(&mut m, "A", 40, s(0), d);
        whole_call(&mut m, "B", 40, s(2), d);
        // A lower limit evicts A, and A's REST instance with it.
        let (changed, eff) = m.set_options(rest_options(-1).with_limit(50), s(4));
        assert!(changed);
        assert_eq!(eff.remove_images, vec![Arc::from("A")]);
        assert_eq!(eff.remove_instances.len(), 1);
        let (same, eff) = m.set_options(m.options(), s(4));
        assert!(!same && eff.is_empty());
        // REST mode off: B's instance goes; pools on: a call refills them.
        let pools = CachingOptions {
            container_pool_limit: 1,
            container_pool_num: 2,
            using_rest_mode: false,
            ..m.options()
        };
        let (_, eff) = m.set_options(pools, s(5));
        assert_eq!(eff.remove_instances.len(), 1);
        assert_eq!(m.rest_instances(), 0);
        let (meta, eff) = whole_call(&mut m, "B", 40, s(6), d);
        assert!(meta.is_cold());
        let prewarmed: usize = eff.iter().map(|e| e.prewarm.len()).sum();
        assert_eq!(prewarmed, 2);
        prewarm_all(&mut m, &eff, s(8));
        assert_eq!(m.pooled_instances(), 2);
        // REST mode on again: the pools go.
        let (_, eff) = m.set_options(rest_options(-1).with_limit(50), s(9));
        assert_eq!(eff.remove_instances.len(), 2);
        assert_eq!(m.pooled_instances(), 0);
    }

    #[test]
    fn a_dead_instance_is_replaced_for_the_call() {
        let mut m = NodeModel::new(rest_options(-1), InstanceModel::HotFunctions);
        let d = Duration::from_secs(1);
        whole_call(&mut m, "F", 10, s(0), d);
        let (call, mut eff) = m.call_arrived("F", s(2));
        let Some(Step::Run { instance: old }) = eff.take_step(call) else {
            panic!("{eff:?}");
        };
        let mut eff = m.instance_died(call, s(3));
        assert_eq!(eff.remove_instances, vec![old]);
        let Some(Step::Start { instance: new, .. }) = eff.take_step(call) else {
            panic!("{eff:?}");
        };
        assert!(m.instance_started(new, s(3)).is_empty());
        let (meta, eff) = m.call_finished(call, s(4));
        assert!(meta.is_cold() && eff.is_empty());
    }

    impl CachingOptions {
        fn with_limit(self, bytes: i64) -> Self {
            Self {
                user_code_size_limit: bytes,
                ..self
            }
        }
    }

    proptest! {
        /// Random interleavings of arrivals, builds, starts, ends and
        /// timers never panic, never resume a call twice or an unknown
        /// call, keep at most one REST instance per function, and leave
        /// nothing behind once every call ended and every timer ran.
        #[test]
        fn any_interleaving_keeps_the_books(
            rest in any::<bool>(),
            lambda in any::<bool>(),
            policy in 0usize..5,
            memory in prop::option::of(1u32..4),
            limit in prop::option::of(10u64..60),
            pool in prop::option::of((0i64..3, 0u32..3)),
            ops in prop::collection::vec((0u8..6, 0usize..4, 0u64..5), 1..120),
        ) {
            let options = CachingOptions {
                user_code_size_limit: limit.map_or(-1, |l| l as i64),
                container_pool_limit: pool.map_or(-1, |p| p.0),
                container_pool_num: pool.map_or(6, |p| p.1),
                using_rest_mode: rest,
                rest_container_life_time: 3,
            };
            let model = if lambda {
                let policy = keep_alive_policy::POLICY_NAMES[policy].parse().unwrap();
                InstanceModel::lambda(Duration::from_secs(3), policy)
            } else {
                InstanceModel::HotFunctions
            };
            let mut m = NodeModel::new(options, model);
            if let Some(mb) = memory {
                // Room for 1 to 3 instances of 100 MB.
                m = m.with_node_memory_mb(mb * 100);
                for n in ["A", "B", "C", "D"] {
                    m.declare_function(n, 100);
                }
            }
            let names = ["A", "B", "C", "D"];
            let mut now = Time::ZERO;
            // Calls and what they do next; instances being started.
            let mut steps: Vec<(CallId, Option<Step>)> = Vec::new();
            let mut starting: Vec<InstanceId> = Vec::new();
            let mut live: std::collections::BTreeSet<InstanceId> = Default::default();
            let apply = |eff: Effects, steps: &mut Vec<(CallId, Option<Step>)>, starting: &mut Vec<InstanceId>, live: &mut std::collections::BTreeSet<InstanceId>| -> Result<(), TestCaseError> {
                let eff = eff.into_lists();
                for (c, st) in eff.resume {
                    let slot = steps.iter_mut().find(|(x, _)| *x == c);
                    prop_assert!(slot.is_some(), "resumed an unknown call");
                    let slot = slot.unwrap();
                    prop_assert!(slot.1.is_none() || slot.1 == Some(Step::Wait), "resumed a call that was not waiting");
                    if let Step::Start { instance, .. } = st {
                        starting.push(instance);
                    }
                    slot.1 = Some(st);
                }
                for p in eff.prewarm {
                    starting.push(p.instance);
                }
                for id in eff.remove_instances {
                    live.remove(&id);
                }
                Ok(())
            };
            for (op, f, dt) in ops {
                now += Duration::from_secs(dt);
                match op {
                    0 => {
                        let (c, mut eff) = m.call_arrived(names[f], now);
                        let st = eff.take_step(c);
                        prop_assert!(st.is_some(), "an arrival always has a step");
                        if let Some(Step::Start { instance, .. }) = st {
                            starting.push(instance);
                        }
                        steps.push((c, st));
                        apply(eff, &mut steps, &mut starting, &mut live)?;
                    }
                    1 => {
                        // Some builder finishes (or fails when dt is 0).
                        if let Some(i) = steps.iter().position(|(_, s)| *s == Some(Step::BuildImage)) {
                            let (c, _) = steps[i];
                            let name = names.iter().find(|n| m.calls.get(c).map(|x| m.name(x.function).as_ref() == **n).unwrap_or(false)).copied().unwrap();
                            if dt == 0 {
                                steps.remove(i);
                                let eff = m.image_build_failed(name, now);
                                apply(eff, &mut steps, &mut starting, &mut live)?;
                                let (_, eff) = m.call_finished(c, now);
                                apply(eff, &mut steps, &mut starting, &mut live)?;
                            } else {
                                steps[i].1 = None;
                                let mut eff = m.image_built(name, 5 + 10 * f as u64, now);
                                steps[i].1 = eff.take_step(c);
                                if let Some(Step::Start { instance, .. }) = steps[i].1 {
                                    starting.push(instance);
                                }
                                apply(eff, &mut steps, &mut starting, &mut live)?;
                            }
                        }
                    }
                    2 => {
                        if !starting.is_empty() {
                            let id = starting.remove(f % starting.len());
                            if dt == 0 {
                                for s in steps.iter_mut() {
                                    if s.1 == Some(Step::Start { instance: id, kind: InstanceKind::Rest }) || s.1 == Some(Step::Start { instance: id, kind: InstanceKind::KeepAlive }) {
                                        s.1 = Some(Step::RunOnce { instance: 0 }); // fails: ends below
                                    }
                                }
                                let eff = m.instance_start_failed(id, now);
                                apply(eff, &mut steps, &mut starting, &mut live)?;
                            } else {
                                live.insert(id);
                                for s in steps.iter_mut() {
                                    if matches!(s.1, Some(Step::Start { instance, .. }) if instance == id) {
                                        s.1 = Some(Step::Run { instance: id });
                                    }
                                }
                                let eff = m.instance_started(id, now);
                                apply(eff, &mut steps, &mut starting, &mut live)?;
                            }
                        }
                    }
                    3 => {
                        // A running call ends.
                        if let Some(i) = steps.iter().position(|(_, s)| matches!(s, Some(Step::Run { .. } | Step::RunOnce { .. }))) {
                            let (c, _) = steps.remove(i);
                            let (_, eff) = m.call_finished(c, now);
                            apply(eff, &mut steps, &mut starting, &mut live)?;
                        }
                    }
                    4 => {
                        let eff = m.timer(now);
                        apply(eff, &mut steps, &mut starting, &mut live)?;
                    }
                    _ => {
                        let eff = m.clear(f == 0, now);
                        apply(eff, &mut steps, &mut starting, &mut live)?;
                    }
                }
            }
            // Drain: finish builds, starts and calls until nothing is left.
            for _ in 0..1000 {
                if steps.is_empty() && starting.is_empty() {
                    break;
                }
                if let Some(id) = starting.pop() {
                    live.insert(id);
                    for s in steps.iter_mut() {
                        if matches!(s.1, Some(Step::Start { instance, .. }) if instance == id) {
                            s.1 = Some(Step::Run { instance: id });
                        }
                    }
                    let eff = m.instance_started(id, now);
                    apply(eff, &mut steps, &mut starting, &mut live)?;
                    continue;
                }
                if let Some(i) = steps.iter().position(|(_, s)| *s == Some(Step::BuildImage)) {
                    let (c, _) = steps[i];
                    let f = m.calls.get(c).unwrap().function;
                    let name = m.name(f);
                    let mut eff = m.image_built(&name, 5, now);
                    steps[i].1 = eff.take_step(c);
                    if let Some(Step::Start { instance, .. }) = steps[i].1 {
                        starting.push(instance);
                    }
                    apply(eff, &mut steps, &mut starting, &mut live)?;
                    continue;
                }
                if let Some(i) = steps.iter().position(|(_, s)| matches!(s, Some(Step::Run { .. } | Step::RunOnce { .. }))) {
                    let (c, _) = steps.remove(i);
                    let (_, eff) = m.call_finished(c, now);
                    apply(eff, &mut steps, &mut starting, &mut live)?;
                    continue;
                }
                prop_assert!(false, "stuck: {steps:?}");
            }
            prop_assert_eq!(m.calls_in_flight(), 0);
            now += Duration::from_secs(100);
            let eff = m.timer(now);
            apply(eff, &mut steps, &mut starting, &mut live)?;
            let eff = m.clear(true, now);
            apply(eff, &mut steps, &mut starting, &mut live)?;
            // Pre-warms still starting come up after the clear, unwanted.
            for id in std::mem::take(&mut starting) {
                let eff = m.instance_started(id, now);
                prop_assert!(eff.remove_instances.contains(&id));
                apply(eff, &mut steps, &mut starting, &mut live)?;
            }
            prop_assert_eq!(m.instances(), 0, "records left behind");
            prop_assert!(live.is_empty(), "instances never removed: {live:?}");
            prop_assert_eq!(m.keep_alive_instances(), (0, 0));
        }
    }
}
