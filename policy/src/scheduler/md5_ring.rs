//! HotFunctions' MD5 hash and the consistent-hashing ring built from it.
//!
//! The original (Prev/HotFunctions, `scheduler/consistent_hash.go` and
//! `scheduler/tradeoff.go`) hashes a string as the first 4 bytes of its MD5
//! digest read big-endian, modulo the magic number 1,234,567 ([`ring_hash`]).
//! Its ring holds, for every node and every `m` in `0..points_per_node`, a
//! point at `ring_hash("<nodeId>-<m>")`, sorted by hash with ties kept in
//! (node list order, m) order; a key is owned by the first point at or after
//! its hash, wrapping to the start. [`Md5Ring`] builds exactly that ring over
//! the online members (ascending ids, which is the original's list order),
//! so decisions match the original one for one.
//!
//! [`HashCache`] remembers each function's hash: MD5 costs a few hundred
//! nanoseconds, a map lookup a few tens, and the simulator asks millions of
//! times per second for a few dozen distinct names.

use rustc_hash::FxHashMap;

use md5::{Digest, Md5};

use super::by_id::ById;
use super::NodeId;

/// The original's modulus ("magic number") for ring hashes.
pub const RING_MODULUS: u32 = 1_234_567;

/// First 4 bytes of MD5(`key`), big-endian, modulo [`RING_MODULUS`].
pub fn ring_hash(key: &[u8]) -> u32 {
    let digest = Md5::digest(key);
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % RING_MODULUS
}

/// Function name → [`ring_hash`], computed once per name.
///
/// Bounded: names arrive from HTTP queries, so past
/// [`HashCache::CAPACITY`] distinct names the cache starts afresh rather
/// than grow without limit (a pure cache: only speed is at stake).
#[derive(Debug, Clone, Default)]
pub struct HashCache {
    hashes: FxHashMap<Box<str>, u32>,
    /// By the caller's dense function id ([`HashCache::get_by_id`]).
    by_id: ById,
}

impl HashCache {
    /// Distinct names kept before the cache is cleared.
    pub const CAPACITY: usize = 1 << 16;

    pub fn new() -> Self {
        Self::default()
    }

    /// The ring hash of `function`.
    pub fn get(&mut self, function: &str) -> u32 {
        if let Some(&h) = self.hashes.get(function) {
            return h;
        }
        let h = ring_hash(function.as_bytes());
        if self.hashes.len() >= Self::CAPACITY {
            self.hashes.clear();
        }
        self.hashes.insert(function.into(), h);
        h
    }

    /// The ring hash of `function`, which the caller numbers `id` for the
    /// cache's whole life ([`Scheduler::select_by_id`]): one index, no
    /// string hashing. Ids from [`ById::MAX_ID`] on go by name.
    ///
    /// [`Scheduler::select_by_id`]: super::Scheduler::select_by_id
    pub fn get_by_id(&mut self, id: u32, function: &str) -> u32 {
        if let Some(h) = self.by_id.get(id) {
            return h;
        }
        if id >= ById::MAX_ID {
            return self.get(function);
        }
        // RING_MODULUS < u32::MAX: every hash can be kept.
        let h = ring_hash(function.as_bytes());
        self.by_id.set(id, h);
        h
    }
}

/// One point of the ring: its hash and the node that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingPoint {
    pub hash: u32,
    pub node: NodeId,
}

/// The ring of `points_per_node` MD5 points per online node.
#[derive(Debug, Clone, Default)]
pub struct Md5Ring {
    points_per_node: u32,
    /// Sorted by hash; ties in (node id, m) order.
    points: Vec<RingPoint>,
    /// Point hashes per node id, `m` ascending (kept for offline nodes too,
    /// so that a node coming back costs no MD5).
    node_points: Vec<Vec<u32>>,
}

impl Md5Ring {
    pub fn new(points_per_node: u32) -> Self {
        Self {
            points_per_node,
            ..Self::default()
        }
    }

    /// The hashes of node `id`'s points, `m` ascending.
    pub fn node_point_hashes(&mut self, id: NodeId) -> &[u32] {
        let i = id as usize;
        if self.node_points.len() <= i {
            self.node_points.resize_with(i + 1, Vec::new);
        }
        if self.node_points[i].is_empty() {
            self.node_points[i] = (0..self.points_per_node)
                .map(|m| ring_hash(format!("{id}-{m}").as_bytes()))
                .collect();
        }
        &self.node_points[i]
    }

    /// Rebuilds the ring over `online` (ascending ids).
    pub fn rebuild(&mut self, online: &[NodeId]) {
        let mut points = Vec::with_capacity(online.len() * self.points_per_node as usize);
        for &id in online {
            for &hash in self.node_point_hashes(id) {
                points.push(RingPoint { hash, node: id });
            }
        }
        // Stable: equal hashes stay in (node id, m) order, as in the original.
        points.sort_by_key(|p| p.hash);
        self.points = points;
    }

    /// The ring, sorted by hash.
    pub fn points(&self) -> &[RingPoint] {
        &self.points
    }

    /// Index of the first point at or after `hash` (wrapping to 0), or None
    /// for an empty ring.
    pub fn owner_index(&self, hash: u32) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let i = self.points.partition_point(|p| p.hash < hash);
        Some(if i == self.points.len() { 0 } else { i })
    }

    /// The node of each point clockwise from point `start` (an
    /// [`Self::owner_index`]), one whole turn: a node comes once per point
    /// it has. The walk of every bounded-load ring scheduler.
    pub fn clockwise_from(&self, start: usize) -> impl Iterator<Item = NodeId> + '_ {
        let (wrapped, from_start) = self.points.split_at(start.min(self.points.len()));
        from_start.iter().chain(wrapped).map(|p| p.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_md5_prefix_big_endian_mod_magic() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e; 0xd41d8cd9 = 3558706393.
        assert_eq!(ring_hash(b""), 3_558_706_393 % RING_MODULUS);
    }

    #[test]
    fn hashes_by_id_are_the_names_hashes() {
        let mut cache = HashCache::new();
        let names = ["W1", "T6", "", "F0001"];
        for _ in 0..2 {
            for (i, name) in names.iter().enumerate() {
                let id = [0, 7, 3, ById::MAX_ID][i];
                assert_eq!(
                    cache.get_by_id(id, name),
                    ring_hash(name.as_bytes()),
                    "{name}"
                );
                assert_eq!(cache.get(name), ring_hash(name.as_bytes()));
            }
        }
        // Ids past the bound go by name: no table sized by them.
        assert_eq!(cache.get_by_id(u32::MAX, "x"), ring_hash(b"x"));
        assert!(cache.by_id.capacity() <= 8);
    }

    #[test]
    fn owner_wraps_around() {
        let mut ring = Md5Ring::new(2);
        ring.rebuild(&[0, 1]);
        let pts = ring.points().to_vec();
        assert_eq!(pts.len(), 4);
        assert!(pts.windows(2).all(|w| w[0].hash <= w[1].hash));
        assert_eq!(ring.owner_index(pts[3].hash + 1), Some(0));
        assert_eq!(ring.owner_index(pts[1].hash), Some(1));
        assert_eq!(ring.owner_index(0), Some(0));
        let turn: Vec<NodeId> = ring.clockwise_from(3).collect();
        let want: Vec<NodeId> = [3, 0, 1, 2].iter().map(|&i| pts[i].node).collect();
        assert_eq!(turn, want, "one whole turn from point 3, wrapping");
        ring.rebuild(&[]);
        assert_eq!(ring.owner_index(5), None);
        assert_eq!(ring.clockwise_from(0).count(), 0);
    }

    #[test]
    fn hash_cache_answers_like_ring_hash_past_its_capacity() {
        let mut cache = HashCache::new();
        for i in 0..HashCache::CAPACITY + 10 {
            let name = format!("F{i}");
            assert_eq!(cache.get(&name), ring_hash(name.as_bytes()));
        }
        assert!(cache.hashes.len() <= HashCache::CAPACITY);
        assert_eq!(cache.get("F3"), ring_hash(b"F3"));
    }
}
