//! A growable bitset, canonical (no trailing zero words) so equal sets hash
//! and compare equal, and inline up to 128 bits: the linearized window and
//! the indeterminate ops spent are narrow in almost every history, and a heap
//! allocation per configuration would cost more than the search step itself.

use smallvec::SmallVec;

#[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
pub struct Bits(SmallVec<[u64; 2]>);

impl Bits {
    pub fn get(&self, bit: usize) -> bool {
        let w = bit / 64;
        w < self.0.len() && self.0[w] >> (bit % 64) & 1 == 1
    }

    pub fn set(&mut self, bit: usize) {
        let w = bit / 64;
        if w >= self.0.len() {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << (bit % 64);
    }

    /// `self & !other != 0`: has a bit `other` lacks (is not a subset of it).
    pub fn has_bit_outside(&self, other: &Bits) -> bool {
        self.0
            .iter()
            .enumerate()
            .any(|(i, w)| w & !other.0.get(i).copied().unwrap_or(0) != 0)
    }

    /// Sets bit 0, then drops the run of ones at the bottom; returns its length.
    /// (The window's lowest op was linearized: every op below the first gap is.)
    pub fn set_low_and_shift(&mut self) -> usize {
        self.set(0);
        let mut ones = 0usize;
        for &w in self.0.iter() {
            let t = w.trailing_ones() as usize;
            ones += t;
            if t < 64 {
                break;
            }
        }
        self.shift_right(ones);
        ones
    }

    fn shift_right(&mut self, n: usize) {
        let (words, bits) = (n / 64, n % 64);
        let v = &mut self.0;
        if words >= v.len() {
            v.clear();
            return;
        }
        v.drain(..words);
        if bits > 0 {
            for i in 0..v.len() {
                let hi = if i + 1 < v.len() { v[i + 1] << (64 - bits) } else { 0 };
                v[i] = v[i] >> bits | hi;
            }
        }
        while v.last() == Some(&0) {
            v.pop();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty() // canonical: no trailing zero words
    }

    /// Appends the words, little-endian (the bytes a fingerprint is taken of).
    pub fn write_words(&self, out: &mut Vec<u8>) {
        for w in self.0.iter() {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }

    /// Heap bytes beyond the inline words (for the memory budget).
    pub fn heap_bytes(&self) -> usize {
        if self.0.spilled() {
            self.0.capacity() * 8
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shift_drops_the_low_run_of_ones_across_words() {
        let mut b = Bits::default();
        for i in 1..70 {
            b.set(i);
        }
        b.set(72);
        assert_eq!(b.set_low_and_shift(), 70);
        let mut want = Bits::default();
        want.set(2);
        assert_eq!(b, want);
    }

    #[test]
    fn subset_test_sees_bits_past_the_other_sets_end() {
        let mut a = Bits::default();
        a.set(130);
        let mut b = Bits::default();
        b.set(1);
        assert!(a.has_bit_outside(&b));
        assert!(!Bits::default().has_bit_outside(&b));
    }
}
