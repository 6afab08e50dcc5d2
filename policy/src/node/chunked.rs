//! [`ChunkedVec`]: a vector that grows by whole chunks, each twice the
//! size of the one before, and never moves its elements.
//!
//! A node model keeps one record per function it has seen (128 bytes
//! each), in a vector that grows as calls arrive. A `Vec` grows by
//! doubling: each growth copies every record into a new buffer and frees
//! the old one. With a thousand nodes each growing buffers of hundreds of
//! kilobytes, glibc's allocator raises its `mmap` threshold to those sizes
//! (it does so whenever an `mmap`ed block is freed), so later buffers come
//! from the heap, and the freed ones stay there as holes: at 10 million
//! calls over 1,000 nodes (2.8 million records) the simulator's peak
//! memory was about 60 % above its live data. Chunks are allocated once
//! each and never freed or copied while the model lives.
//!
//! The chunks double (32, 64, 128... elements) so that a node's table of
//! chunks stays a few cache lines: with chunks of one fixed size a node
//! of 2,800 functions had 88 of them, and the lookup of a record's chunk
//! missed the cache about as often as the record itself (a fifth of the
//! samples of the node model's arrival, end and timer under rr at 10M
//! calls, `perf`). A chunk's capacity not yet used is never written, so
//! it costs address space, not memory.

use std::ops::{Index, IndexMut};

use super::image_cache::{HasImageSlot, ImageSlot, ImageSlots};

/// Elements of the first chunk (at 128 bytes an element, 4 KiB); chunk
/// `k` holds `FIRST << k`.
const FIRST: usize = 32;

/// The chunk of position `i`, and the position within it.
#[inline]
fn locate(i: usize) -> (usize, usize) {
    // Chunks 0..k hold FIRST * (2^k - 1) elements.
    let q = i / FIRST + 1;
    let k = (usize::BITS - 1 - q.leading_zeros()) as usize;
    (k, i - FIRST * ((1 << k) - 1))
}

/// A growable sequence indexed by position, stored in chunks of doubling
/// size (module doc).
#[derive(Debug, Clone)]
pub(crate) struct ChunkedVec<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for ChunkedVec<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> ChunkedVec<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `value` at position `len()`.
    pub(crate) fn push(&mut self, value: T) {
        let (k, _) = locate(self.len);
        if k == self.chunks.len() {
            self.chunks.push(Vec::with_capacity(FIRST << k));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(value);
            self.len += 1;
        }
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        let (k, j) = locate(i);
        self.chunks.get(k)?.get(j)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        let (k, j) = locate(i);
        self.chunks.get_mut(k)?.get_mut(j)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.chunks.iter_mut().flatten()
    }
}

impl<T> Index<usize> for ChunkedVec<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        let (k, j) = locate(i);
        &self.chunks[k][j]
    }
}

impl<T> IndexMut<usize> for ChunkedVec<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        let (k, j) = locate(i);
        &mut self.chunks[k][j]
    }
}

impl<T: HasImageSlot> ImageSlots for ChunkedVec<T> {
    fn slot_count(&self) -> usize {
        self.len
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_double_and_cover_every_position_once() {
        let mut next = 0;
        for k in 0..20 {
            for j in 0..FIRST << k {
                assert_eq!(locate(next), (k, j), "position {next}");
                next += 1;
            }
        }
    }

    #[test]
    fn indexes_like_a_vec_across_chunks_and_never_moves_an_element() {
        let mut c = ChunkedVec::default();
        let mut v = Vec::new();
        let mut first = None;
        let n = 7 * FIRST + 5;
        for i in 0..n as u64 {
            c.push(i * 7);
            v.push(i * 7);
            // The first element stays where it was put.
            let at = &c[0] as *const u64;
            assert_eq!(*first.get_or_insert(at), at);
        }
        assert_eq!(c.len(), v.len());
        for (i, x) in v.iter().enumerate() {
            assert_eq!(c[i], *x);
            assert_eq!(c.get(i), Some(x));
        }
        assert_eq!(c.get(v.len()), None);
        assert!(c.iter().eq(v.iter()));
        for x in c.iter_mut() {
            *x += 1;
        }
        c[FIRST] = 0;
        *c.get_mut(FIRST + 1).unwrap() = 1;
        assert_eq!(
            (c[FIRST], c[FIRST + 1], c[FIRST + 2]),
            (0, 1, (FIRST as u64 + 2) * 7 + 1)
        );
        // 32 + 64 + 128 = 224 < 229 elements: a fourth chunk, of 256.
        let capacities: Vec<usize> = c.chunks.iter().map(Vec::capacity).collect();
        assert_eq!(capacities, [FIRST, 2 * FIRST, 4 * FIRST, 8 * FIRST]);
    }
}
