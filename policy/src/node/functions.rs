//! Function names interned to dense ids, once.
//!
//! A [`FunctionTable`] gives each function name a [`FunctionId`] (0, 1, 2,
//! ... in the order names were first interned) and records the memory of
//! its instances. A driver that knows every function up front (the
//! discrete-event simulator, which reads a whole scenario) builds one
//! table, shares it with every node model ([`super::NodeModel::with_functions`],
//! an `Arc`, so the names exist once for the whole cluster), and then
//! names functions by id on the hot path
//! ([`super::NodeModel::call_arrived_by_id`]): no string hashing or
//! comparison per event, and no per-node copy of the names. The live
//! worker does not need one: a node model interns the names it is given
//! into a table of its own.
//!
//! A function may also carry its own keep-alive
//! ([`FunctionTable::set_keep_alive`]): the Lambda model's idle time of
//! that function's instances instead of the node's one (the DES sets it
//! from the balancer's per-function `idle_before_zero_s`). Functions
//! without one use the node's keep-alive, as before.
//!
//! Design choice: the table is append-only (ids are never reused), so an
//! id stays valid for the table's life and a shared table can be read by
//! many nodes without coordination.

use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;

use crate::scheduler::DEFAULT_FUNCTION_MEMORY_MB;

/// A function's id in a [`FunctionTable`]: dense, from 0, in the order
/// names were first interned.
pub type FunctionId = u32;

/// Interned function names with their instances' memory. See the module
/// docs.
#[derive(Debug, Clone, Default)]
pub struct FunctionTable {
    names: Vec<Arc<str>>,
    ids: FxHashMap<Arc<str>, FunctionId>,
    memory_mb: Vec<u32>,
    /// Keep-alives of the functions that have their own (few: a map, read
    /// only when a function's keep-alive pool is made).
    keep_alive: FxHashMap<FunctionId, Duration>,
}

impl FunctionTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `name`, interning it (with the default memory,
    /// [`DEFAULT_FUNCTION_MEMORY_MB`]) if it is new.
    pub fn intern(&mut self, name: &str) -> FunctionId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as FunctionId;
        let name: Arc<str> = Arc::from(name);
        self.ids.insert(name.clone(), id);
        self.names.push(name);
        self.memory_mb.push(DEFAULT_FUNCTION_MEMORY_MB);
        id
    }

    /// Interns `name` and sets the memory of its instances (MB).
    pub fn declare(&mut self, name: &str, memory_mb: u32) -> FunctionId {
        let id = self.intern(name);
        self.memory_mb[id as usize] = memory_mb;
        id
    }

    /// The id of `name`, if interned.
    pub fn id(&self, name: &str) -> Option<FunctionId> {
        self.ids.get(name).copied()
    }

    /// The name of `id`, if it is one of this table's.
    pub fn name(&self, id: FunctionId) -> Option<&Arc<str>> {
        self.names.get(id as usize)
    }

    /// The memory of `id`'s instances, MB (the default for an unknown id).
    pub fn memory_mb(&self, id: FunctionId) -> u32 {
        self.memory_mb
            .get(id as usize)
            .copied()
            .unwrap_or(DEFAULT_FUNCTION_MEMORY_MB)
    }

    /// Gives `id` its own keep-alive (Lambda model): its idle instances
    /// go after `keep_alive` instead of the node's keep-alive.
    pub fn set_keep_alive(&mut self, id: FunctionId, keep_alive: Duration) {
        self.keep_alive.insert(id, keep_alive);
    }

    /// `id`'s own keep-alive, if it has one.
    pub fn keep_alive(&self, id: FunctionId) -> Option<Duration> {
        self.keep_alive.get(&id).copied()
    }

    /// Interned names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Names by id.
    pub fn names(&self) -> &[Arc<str>] {
        &self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_dense_ids_in_first_seen_order() {
        let mut t = FunctionTable::new();
        assert!(t.is_empty());
        assert_eq!(t.intern("b"), 0);
        assert_eq!(t.declare("a", 512), 1);
        assert_eq!(t.intern("b"), 0);
        assert_eq!((t.id("a"), t.id("c")), (Some(1), None));
        assert_eq!(t.name(1).map(|n| &**n), Some("a"));
        assert_eq!(t.name(2), None);
        assert_eq!(
            (t.memory_mb(0), t.memory_mb(1), t.memory_mb(9)),
            (DEFAULT_FUNCTION_MEMORY_MB, 512, DEFAULT_FUNCTION_MEMORY_MB)
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t.names().len(), 2);
        assert_eq!(t.keep_alive(1), None);
        t.set_keep_alive(1, Duration::from_secs(60));
        assert_eq!(
            (t.keep_alive(0), t.keep_alive(1)),
            (None, Some(Duration::from_secs(60)))
        );
    }
}
