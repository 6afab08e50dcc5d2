//! [`ChunkedVec`]: a vector that grows by whole chunks of a fixed size
//! and never moves its elements.
//!
//! A node model keeps one record per function it has seen (128 bytes
//! each), in a vector that grows as calls arrive. A `Vec` grows by
//! doubling: each growth copies every record into a new buffer and frees
//! the old one. With a thousand nodes each growing buffers of hundreds of
//! kilobytes, glibc's allocator raises its `mmap` threshold to those sizes
//! (it does so whenever an `mmap`ed block is freed), so later buffers come
//! from the heap, and the freed ones stay there as holes: at 10 million
//! calls over 1,000 nodes (2.8 million records) the simulator's peak
//! memory was about 60 % above its live data. Chunks of a fixed size are
//! allocated once each and never freed or copied while the model lives.

use std::ops::{Index, IndexMut};

use super::image_cache::{HasImageSlot, ImageSlot, ImageSlots};

/// Elements per chunk (at 128 bytes an element, 4 KiB a chunk).
const CHUNK: usize = 32;

/// A growable sequence indexed by position, stored in chunks of
/// [`CHUNK`] elements.
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
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(value);
            self.len += 1;
        }
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
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
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl<T> IndexMut<usize> for ChunkedVec<T> {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i / CHUNK][i % CHUNK]
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
    fn indexes_like_a_vec_across_chunks_and_never_moves_an_element() {
        let mut c = ChunkedVec::default();
        let mut v = Vec::new();
        let mut first = None;
        for i in 0..(3 * CHUNK + 5) as u64 {
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
        c[CHUNK] = 0;
        *c.get_mut(CHUNK + 1).unwrap() = 1;
        assert_eq!(
            (c[CHUNK], c[CHUNK + 1], c[CHUNK + 2]),
            (0, 1, (CHUNK as u64 + 2) * 7 + 1)
        );
        assert_eq!(c.chunks.len(), 4);
        assert!(c.chunks.iter().all(|k| k.capacity() == CHUNK));
    }
}
