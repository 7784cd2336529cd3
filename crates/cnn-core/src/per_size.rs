//! Buffers kept per batch size, for the few sizes a run alternates between
//! (the training batch, the last partial batch, evaluation), so that a
//! steady-state step allocates nothing and a run that keeps changing sizes
//! holds at most a bounded number of them.

use std::ops::{Index, IndexMut};

use crate::error::Result;

/// Values keyed by a size, at most `N` of them: a new key first drops the
/// least recently used one.
#[derive(Debug)]
pub(crate) struct PerSize<T, const N: usize> {
    /// Least recently used first.
    entries: Vec<(usize, T)>,
}

impl<T, const N: usize> PerSize<T, N> {
    pub(crate) const fn new() -> Self {
        PerSize {
            entries: Vec::new(),
        }
    }

    /// Position of the value for `key`, made by `make` when there is none.
    /// The value becomes the most recently used; the position is valid
    /// until the next call. Reordering moves entries within the vector's
    /// capacity, so after the first `N` keys nothing is allocated here.
    pub(crate) fn use_or_insert(
        &mut self,
        key: usize,
        make: impl FnOnce() -> Result<T>,
    ) -> Result<usize> {
        match self.entries.iter().position(|(k, _)| *k == key) {
            Some(i) => {
                let entry = self.entries.remove(i);
                self.entries.push(entry);
            }
            None => {
                // Drop first, so the new value is never made while N others
                // are held.
                if self.entries.len() >= N {
                    self.entries.remove(0);
                }
                let value = make()?;
                self.entries.push((key, value));
            }
        }
        Ok(self.entries.len() - 1)
    }

    /// Position of the first value (least recently used first) that
    /// `pred` accepts with its key; valid until the next call that
    /// reorders.
    pub(crate) fn position(&self, mut pred: impl FnMut(usize, &T) -> bool) -> Option<usize> {
        self.entries.iter().position(|(k, v)| pred(*k, v))
    }

    /// Make the value at position `i` the most recently used; its new
    /// position. Allocates nothing.
    pub(crate) fn touch(&mut self, i: usize) -> usize {
        let entry = self.entries.remove(i);
        self.entries.push(entry);
        self.entries.len() - 1
    }

    /// The keys and values, least recently used first (in the order of
    /// their positions).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (usize, &T)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    /// The value for `key`, if kept.
    #[cfg(test)]
    pub(crate) fn get(&self, key: usize) -> Option<&T> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The most recently used value.
    pub(crate) fn latest(&self) -> Option<&T> {
        self.entries.last().map(|(_, v)| v)
    }

    /// The most recently used value, mutably.
    pub(crate) fn latest_mut(&mut self) -> Option<&mut T> {
        self.entries.last_mut().map(|(_, v)| v)
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

impl<T, const N: usize> Index<usize> for PerSize<T, N> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        &self.entries[i].1
    }
}

impl<T, const N: usize> IndexMut<usize> for PerSize<T, N> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.entries[i].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CnnError;

    /// Uses size `n`, recording in `made` when a value had to be made.
    fn use_size(kept: &mut PerSize<String, 2>, made: &mut Vec<usize>, n: usize) {
        let i = kept
            .use_or_insert(n, || {
                made.push(n);
                Ok(format!("buffer {n}"))
            })
            .unwrap();
        assert_eq!(kept[i], format!("buffer {n}"));
        assert_eq!(kept.latest(), Some(&format!("buffer {n}")));
    }

    #[test]
    fn keeps_the_most_recently_used_sizes() {
        let mut kept: PerSize<String, 2> = PerSize::new();
        let mut made = Vec::new();
        // Alternating between two sizes makes each once.
        for n in [64, 32, 64, 32, 64] {
            use_size(&mut kept, &mut made, n);
        }
        assert_eq!(made, [64, 32]);
        // A third size drops the least recently used (32, since 64 was last).
        use_size(&mut kept, &mut made, 10);
        assert!(kept.get(32).is_none());
        assert_eq!(kept.get(64).map(String::as_str), Some("buffer 64"));
        use_size(&mut kept, &mut made, 64);
        assert_eq!(made, [64, 32, 10]);
        assert!(kept.get(10).is_some() && kept.get(32).is_none());
        // Found by value, moved to the most recent place without a new key.
        let at = kept.position(|k, _| k == 10).unwrap();
        let at = kept.touch(at);
        assert_eq!(kept[at], "buffer 10");
        assert_eq!(kept.latest().map(String::as_str), Some("buffer 10"));
        let entries: Vec<(usize, &str)> = kept.entries().map(|(k, v)| (k, v.as_str())).collect();
        assert_eq!(entries, [(64, "buffer 64"), (10, "buffer 10")]);
        use_size(&mut kept, &mut made, 64);
        *kept.latest_mut().unwrap() = "changed".into();
        assert_eq!(kept.get(64).map(String::as_str), Some("changed"));
        kept.clear();
        assert!(kept.latest().is_none());
    }

    #[test]
    fn a_failed_make_keeps_nothing_for_its_key() {
        let mut kept: PerSize<u32, 2> = PerSize::new();
        kept.use_or_insert(1, || Ok(1)).unwrap();
        let err = kept.use_or_insert(2, || Err(CnnError::Graph("no memory".into())));
        assert!(err.is_err());
        assert!(kept.get(2).is_none());
        assert_eq!(kept.get(1), Some(&1));
    }
}
