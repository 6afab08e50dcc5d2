//! Image (user code) cache with least-recently-used eviction by bytes.
//!
//! From HotFunctions (Prev/HotFunctions, `worker_front/runner.go`,
//! `manageCaches`): a worker keeps the images it built; when
//! `USER_CODE_SIZE_LIMIT` is set (bytes, -1 = unlimited), after every call it
//! removes images in least-recently-used order until the total size is within
//! the limit. A function's "use" time is the end of its latest call; while a
//! call of it runs, its image counts as most recent (the original sets its
//! LRU stamp to `MaxInt64` while running).
//!
//! One deliberate refinement: an image with a call in flight is *pinned* and
//! never evicted (the original could pick it last; removing an image under a
//! running container fails in Docker anyway). So the invariant is:
//! after [`ImageCache::evict`], `total_bytes() <= limit`, or every image
//! still cached is pinned. In particular an unpinned image larger than the
//! limit on its own is evicted as soon as its last call ends (as in the
//! original), and the next call rebuilds it.
//!
//! The maps are hash maps (O(1) per call, which is what a model that
//! never evicts, e.g. the Lambda model with no limit, pays); eviction sorts
//! its candidates, so the order never depends on hashing.
//!
//! Ties in the use time are broken by the function's key (its name, or
//! the node model's id: the order functions were first seen on the node),
//! so runs are deterministic. Time is an argument ([`Time`]).

use std::borrow::Borrow;
use std::hash::Hash;

use rustc_hash::FxHashMap;

use crate::time::Time;

#[derive(Debug, Clone, PartialEq, Eq)]
struct CachedImage {
    bytes: u64,
    last_used: Time,
}

/// The cache state: which images exist, their sizes and use times, and
/// how many calls of each function are in flight. Functions are named by
/// keys of type `K` (the node model uses dense ids; names work too).
#[derive(Debug, Clone)]
pub struct ImageCache<K = String> {
    limit_bytes: Option<u64>,
    images: FxHashMap<K, CachedImage>,
    in_flight: FxHashMap<K, u32>,
    /// Sum of `images[*].bytes`, kept up to date.
    total_bytes: u64,
}

impl<K> Default for ImageCache<K> {
    fn default() -> Self {
        Self {
            limit_bytes: None,
            images: FxHashMap::default(),
            in_flight: FxHashMap::default(),
            total_bytes: 0,
        }
    }
}

/// An image the policy removed from the cache: the caller deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvictedImage<K = String> {
    pub function: K,
    pub bytes: u64,
}

impl<K: Hash + Ord + Clone> ImageCache<K> {
    /// A cache with this byte limit (`None` = unlimited).
    pub fn new(limit_bytes: Option<u64>) -> Self {
        Self {
            limit_bytes,
            ..Self::default()
        }
    }

    pub fn limit_bytes(&self) -> Option<u64> {
        self.limit_bytes
    }

    /// Changes the limit and returns what must be evicted now.
    #[must_use = "evicted images must be removed"]
    pub fn set_limit(&mut self, limit_bytes: Option<u64>, now: Time) -> Vec<EvictedImage<K>> {
        self.limit_bytes = limit_bytes;
        self.evict(now)
    }

    /// A call of `function` arrives: pins its image (if any, or once built)
    /// and returns whether the image is cached (else the caller builds it
    /// and reports [`ImageCache::image_built`]).
    pub fn call_started<Q>(&mut self, function: &Q, now: Time) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match self.in_flight.get_mut(function) {
            Some(n) => *n += 1,
            None => {
                self.in_flight.insert(function.to_owned(), 1);
            }
        }
        match self.images.get_mut(function) {
            Some(img) => {
                img.last_used = img.last_used.max(now);
                true
            }
            None => false,
        }
    }

    /// The image of `function` now exists with this size. Returns what
    /// must be evicted to respect the limit (never this image while a call
    /// of it is in flight).
    #[must_use = "evicted images must be removed"]
    pub fn image_built<Q>(&mut self, function: &Q, bytes: u64, now: Time) -> Vec<EvictedImage<K>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let old = self.images.insert(
            function.to_owned(),
            CachedImage {
                bytes,
                last_used: now,
            },
        );
        self.total_bytes = self.total_bytes - old.map_or(0, |o| o.bytes) + bytes;
        self.evict(now)
    }

    /// A call of `function` ended (successfully or not): unpins it, stamps
    /// its use time, and returns what must be evicted now.
    #[must_use = "evicted images must be removed"]
    pub fn call_finished<Q>(&mut self, function: &Q, now: Time) -> Vec<EvictedImage<K>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(n) = self.in_flight.get_mut(function) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(function);
            }
        }
        if let Some(img) = self.images.get_mut(function) {
            img.last_used = img.last_used.max(now);
        }
        self.evict(now)
    }

    /// Removes least recently used unpinned images until the total is
    /// within the limit (or only pinned images remain).
    #[must_use = "evicted images must be removed"]
    pub fn evict(&mut self, _now: Time) -> Vec<EvictedImage<K>> {
        let Some(limit) = self.limit_bytes else {
            return Vec::new();
        };
        if self.total_bytes <= limit {
            return Vec::new();
        }
        let mut order: Vec<(Time, K)> = self
            .images
            .iter()
            .filter(|(name, _)| !self.in_flight.contains_key(*name))
            .map(|(name, img)| (img.last_used, name.clone()))
            .collect();
        order.sort();
        let mut out = Vec::new();
        for (_, name) in order {
            if self.total_bytes <= limit {
                break;
            }
            if let Some(img) = self.images.remove(&name) {
                self.total_bytes -= img.bytes;
                out.push(EvictedImage {
                    function: name,
                    bytes: img.bytes,
                });
            }
        }
        out
    }

    /// Forgets an image (it failed, or the caller removed it).
    pub fn remove<Q>(&mut self, function: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.images.remove(function) {
            Some(img) => {
                self.total_bytes -= img.bytes;
                true
            }
            None => false,
        }
    }

    /// Forgets every image (`/clear?reset_images=true`); calls in flight
    /// stay counted.
    pub fn clear(&mut self) {
        self.images.clear();
        self.total_bytes = 0;
    }

    pub fn contains<Q>(&self, function: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.images.contains_key(function)
    }

    pub fn is_pinned<Q>(&self, function: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.in_flight.contains_key(function)
    }

    /// Bytes of all cached images.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Cached functions, least recently used first.
    pub fn lru_order(&self) -> Vec<K> {
        let mut v: Vec<(Time, &K)> = self.images.iter().map(|(n, i)| (i.last_used, n)).collect();
        v.sort();
        v.into_iter().map(|(_, n)| n.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}

/// [`ImageCache`] for keys that are dense ids (`0, 1, 2, ...`, a node
/// model's local function ids): the same rules and the same eviction order
/// (least recent use, ties by id), with one [`ImageSlot`] per id instead of
/// two hash maps, so a call costs an index, not a hash lookup and an
/// insertion and removal in the in-flight map.
///
/// The slots are the caller's: each method is given them ([`ImageSlots`]:
/// a slice of records that hold one each ([`HasImageSlot`]; a slice of
/// `ImageSlot`s does), or any storage indexed alike), so a caller that
/// keeps other per-function state reads the slot in the same cache line
/// (the node model keeps it in its function record, which a call reads
/// anyway). The cache itself keeps the limit and the totals. An id the
/// slots do not hold is an image never built (nothing is counted for it).
#[derive(Debug, Clone, Default)]
pub struct DenseImageCache {
    limit_bytes: Option<u64>,
    cached: usize,
    total_bytes: u64,
}

/// One id's part of a [`DenseImageCache`]: whether its image is cached,
/// its size and last use, and its calls in flight (24 bytes).
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageSlot {
    bytes: u64,
    last_used: Time,
    in_flight: u32,
    cached: bool,
}

/// A record that holds an [`ImageSlot`] (see [`DenseImageCache`]).
pub trait HasImageSlot {
    fn image_slot(&self) -> &ImageSlot;
    fn image_slot_mut(&mut self) -> &mut ImageSlot;
}

impl HasImageSlot for ImageSlot {
    fn image_slot(&self) -> &ImageSlot {
        self
    }
    fn image_slot_mut(&mut self) -> &mut ImageSlot {
        self
    }
}

/// The slots given to a [`DenseImageCache`]: one [`ImageSlot`] for each id
/// in `0..slot_count()`.
pub trait ImageSlots {
    fn slot_count(&self) -> usize;
    fn slot(&self, id: u32) -> Option<&ImageSlot>;
    fn slot_mut(&mut self, id: u32) -> Option<&mut ImageSlot>;
}

impl<T: HasImageSlot> ImageSlots for [T] {
    fn slot_count(&self) -> usize {
        self.len()
    }
    #[inline]
    fn slot(&self, id: u32) -> Option<&ImageSlot> {
        self.get(id as usize).map(T::image_slot)
    }
    #[inline]
    fn slot_mut(&mut self, id: u32) -> Option<&mut ImageSlot> {
        self.get_mut(id as usize).map(T::image_slot_mut)
    }
}

/// Every slot with its id.
fn all_slots<S: ImageSlots + ?Sized>(slots: &S) -> impl Iterator<Item = (u32, &ImageSlot)> {
    (0..slot_id(slots.slot_count())).filter_map(|id| slots.slot(id).map(|s| (id, s)))
}

/// Ids are `u32`: slots beyond are never reached.
fn slot_id(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

impl DenseImageCache {
    pub fn new(limit_bytes: Option<u64>) -> Self {
        Self {
            limit_bytes,
            ..Self::default()
        }
    }

    pub fn limit_bytes(&self) -> Option<u64> {
        self.limit_bytes
    }

    /// See [`ImageCache::set_limit`].
    #[must_use = "evicted images must be removed"]
    pub fn set_limit<S: ImageSlots + ?Sized>(
        &mut self,
        slots: &mut S,
        limit_bytes: Option<u64>,
        now: Time,
    ) -> Vec<EvictedImage<u32>> {
        self.limit_bytes = limit_bytes;
        self.evict(slots, now)
    }

    /// See [`ImageCache::call_started`].
    #[inline]
    pub fn call_started<S: ImageSlots + ?Sized>(
        &mut self,
        slots: &mut S,
        id: u32,
        now: Time,
    ) -> bool {
        let Some(s) = slots.slot_mut(id) else {
            return false;
        };
        s.in_flight += 1;
        if s.cached {
            s.last_used = s.last_used.max(now);
        }
        s.cached
    }

    /// See [`ImageCache::image_built`].
    #[must_use = "evicted images must be removed"]
    pub fn image_built<S: ImageSlots + ?Sized>(
        &mut self,
        slots: &mut S,
        id: u32,
        bytes: u64,
        now: Time,
    ) -> Vec<EvictedImage<u32>> {
        let Some(s) = slots.slot_mut(id) else {
            return Vec::new();
        };
        let old = if s.cached { s.bytes } else { 0 };
        let new = !s.cached;
        *s = ImageSlot {
            bytes,
            last_used: now,
            in_flight: s.in_flight,
            cached: true,
        };
        self.cached += usize::from(new);
        self.total_bytes = self.total_bytes - old + bytes;
        self.evict(slots, now)
    }

    /// See [`ImageCache::call_finished`].
    #[must_use = "evicted images must be removed"]
    #[inline]
    pub fn call_finished<S: ImageSlots + ?Sized>(
        &mut self,
        slots: &mut S,
        id: u32,
        now: Time,
    ) -> Vec<EvictedImage<u32>> {
        if let Some(s) = slots.slot_mut(id) {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.cached {
                s.last_used = s.last_used.max(now);
            }
        }
        self.evict(slots, now)
    }

    /// See [`ImageCache::evict`].
    #[must_use = "evicted images must be removed"]
    #[inline]
    pub fn evict<S: ImageSlots + ?Sized>(
        &mut self,
        slots: &mut S,
        _now: Time,
    ) -> Vec<EvictedImage<u32>> {
        match self.limit_bytes {
            Some(limit) if self.total_bytes > limit => self.evict_to(slots, limit),
            _ => Vec::new(),
        }
    }

    #[cold]
    fn evict_to<S: ImageSlots + ?Sized>(
        &mut self,
        slots: &mut S,
        limit: u64,
    ) -> Vec<EvictedImage<u32>> {
        let mut order: Vec<(Time, u32)> = all_slots(slots)
            .filter(|(_, s)| s.cached && s.in_flight == 0)
            .map(|(id, s)| (s.last_used, id))
            .collect();
        order.sort_unstable();
        let mut out = Vec::new();
        for (_, id) in order {
            if self.total_bytes <= limit {
                break;
            }
            let bytes = slots.slot(id).map_or(0, |s| s.bytes);
            if self.remove(slots, id) {
                out.push(EvictedImage {
                    function: id,
                    bytes,
                });
            }
        }
        out
    }

    /// See [`ImageCache::remove`].
    pub fn remove<S: ImageSlots + ?Sized>(&mut self, slots: &mut S, id: u32) -> bool {
        match slots.slot_mut(id) {
            Some(s) if s.cached => {
                s.cached = false;
                self.total_bytes -= s.bytes;
                self.cached -= 1;
                true
            }
            _ => false,
        }
    }

    /// See [`ImageCache::clear`].
    pub fn clear<S: ImageSlots + ?Sized>(&mut self, slots: &mut S) {
        for id in 0..slot_id(slots.slot_count()) {
            if let Some(s) = slots.slot_mut(id) {
                s.cached = false;
            }
        }
        self.cached = 0;
        self.total_bytes = 0;
    }

    pub fn contains<S: ImageSlots + ?Sized>(&self, slots: &S, id: u32) -> bool {
        slots.slot(id).is_some_and(|s| s.cached)
    }

    pub fn is_pinned<S: ImageSlots + ?Sized>(&self, slots: &S, id: u32) -> bool {
        slots.slot(id).is_some_and(|s| s.in_flight > 0)
    }

    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Cached ids, least recently used first (ties by id).
    pub fn lru_order<S: ImageSlots + ?Sized>(&self, slots: &S) -> Vec<u32> {
        let mut v: Vec<(Time, u32)> = all_slots(slots)
            .filter(|(_, s)| s.cached)
            .map(|(id, s)| (s.last_used, id))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, id)| id).collect()
    }

    pub fn len(&self) -> usize {
        self.cached
    }

    pub fn is_empty(&self) -> bool {
        self.cached == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(x: u64) -> Time {
        Time::from_secs(x)
    }

    fn names(v: &[EvictedImage]) -> Vec<&str> {
        v.iter().map(|e| e.function.as_str()).collect()
    }

    /// Runs one whole call of `f` (size `bytes`) from `t` to `t + 1`.
    fn call(c: &mut ImageCache, f: &str, bytes: u64, t: u64) -> Vec<EvictedImage> {
        let mut out = Vec::new();
        if !c.call_started(f, s(t)) {
            out.extend(c.image_built(f, bytes, s(t)));
        }
        out.extend(c.call_finished(f, s(t + 1)));
        out
    }

    #[test]
    fn unlimited_never_evicts() {
        let mut c = ImageCache::new(None);
        for (i, f) in ["A", "B", "C"].iter().enumerate() {
            assert!(call(&mut c, f, 1 << 40, i as u64).is_empty());
        }
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn evicts_the_least_recently_used_first() {
        let mut c = ImageCache::new(Some(100));
        assert!(call(&mut c, "A", 40, 0).is_empty());
        assert!(call(&mut c, "B", 40, 2).is_empty());
        // Using A again makes B the least recently used.
        assert!(call(&mut c, "A", 40, 4).is_empty());
        let ev = call(&mut c, "C", 40, 6);
        assert_eq!(names(&ev), ["B"]);
        assert_eq!(c.lru_order(), ["A", "C"]);
        assert_eq!(c.total_bytes(), 80);
        // A second call of a cached image is a hit.
        assert!(c.call_started("C", s(8)));
    }

    #[test]
    fn an_image_in_use_is_never_evicted() {
        let mut c = ImageCache::new(Some(50));
        assert!(!c.call_started("A", s(0)));
        assert!(c.image_built("A", 40, s(0)).is_empty());
        assert!(!c.call_started("B", s(1)));
        // Both pinned: over the limit, nothing can go.
        assert!(c.image_built("B", 40, s(1)).is_empty());
        assert_eq!(c.total_bytes(), 80);
        // A ends: now A is evictable and least recent.
        assert_eq!(names(&c.call_finished("A", s(2))), ["A"]);
        assert!(c.contains("B"));
    }

    #[test]
    fn a_single_image_larger_than_the_limit_goes_when_idle() {
        let mut c = ImageCache::new(Some(10));
        assert!(!c.call_started("BIG", s(0)));
        assert!(c.image_built("BIG", 11, s(0)).is_empty());
        assert_eq!(names(&c.call_finished("BIG", s(1))), ["BIG"]);
        assert!(c.is_empty());
    }

    #[test]
    fn lowering_the_limit_evicts_now() {
        let mut c = ImageCache::new(None);
        call(&mut c, "A", 10, 0);
        call(&mut c, "B", 10, 2);
        assert_eq!(names(&c.set_limit(Some(15), s(5))), ["A"]);
    }

    proptest! {
        /// After every event, the cache is within its limit unless every
        /// remaining image is pinned; no image is evicted while pinned.
        #[test]
        fn bytes_stay_within_the_limit(
            limit in 0u64..300,
            ops in prop::collection::vec((0usize..6, 1u64..120, any::<bool>()), 1..200),
        ) {
            let mut c = ImageCache::new(Some(limit));
            let mut open: Vec<String> = Vec::new();
            for (t, (f, bytes, start)) in ops.into_iter().enumerate() {
                let now = s(t as u64);
                let name = format!("F{f}");
                let evicted = if start || open.is_empty() {
                    open.push(name.clone());
                    if c.call_started(&name, now) { Vec::new() } else { c.image_built(&name, bytes, now) }
                } else {
                    let done = open.remove(f % open.len());
                    c.call_finished(&done, now)
                };
                for e in &evicted {
                    prop_assert!(!c.is_pinned(&e.function), "evicted pinned {}", e.function);
                }
                let sum: u64 = c.images.values().map(|i| i.bytes).sum();
                prop_assert_eq!(sum, c.total_bytes());
                let all_pinned = c.lru_order().iter().all(|n| c.is_pinned(n));
                prop_assert!(c.total_bytes() <= limit || all_pinned,
                    "total {} > limit {limit}", c.total_bytes());
            }
        }
    }

    proptest! {
        /// The dense cache answers every event as the hash-map cache does
        /// (same hits, same evictions in the same order, same books).
        #[test]
        fn the_dense_cache_matches_the_map_cache(
            limit in prop::option::of(0u64..300),
            ops in prop::collection::vec((0u32..8, 1u64..120, 0u8..4), 1..200),
        ) {
            let mut map: ImageCache<u32> = ImageCache::new(limit);
            let mut dense = DenseImageCache::new(limit);
            let slots = &mut [ImageSlot::default(); 8][..];
            for (t, (f, bytes, op)) in ops.into_iter().enumerate() {
                let now = s(t as u64);
                match op {
                    0 => prop_assert_eq!(map.call_started(&f, now), dense.call_started(slots, f, now)),
                    1 => prop_assert_eq!(map.image_built(&f, bytes, now), dense.image_built(slots, f, bytes, now)),
                    2 => prop_assert_eq!(map.call_finished(&f, now), dense.call_finished(slots, f, now)),
                    _ => {
                        let l = (bytes % 3 != 0).then_some(bytes * 2);
                        prop_assert_eq!(map.set_limit(l, now), dense.set_limit(slots, l, now));
                    }
                }
                prop_assert_eq!(map.lru_order(), dense.lru_order(slots));
                prop_assert_eq!(map.total_bytes(), dense.total_bytes());
                prop_assert_eq!(map.len(), dense.len());
                prop_assert_eq!(map.is_pinned(&f), dense.is_pinned(slots, f));
                prop_assert_eq!(map.contains(&f), dense.contains(slots, f));
            }
            map.clear();
            dense.clear(slots);
            prop_assert_eq!((map.len(), map.total_bytes()), (dense.len(), dense.total_bytes()));
        }
    }
}
