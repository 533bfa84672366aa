//! The built-in models (squall/checkers/models.py), over interned values.
//!
//! Python interns every value a partition mentions (by Python's own `==`
//! and hash, so `1 == 1.0` stays true here) and hands over small integers:
//! a state is one of them, and equality of ids is equality of values. The
//! kv model's appends make strings no input named, so it owns a string
//! table and interns each new concatenation, keeping that equality exact.

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

pub const UNKNOWN: u32 = u32::MAX; // the output of an indeterminate op

// Operation codes, as squall/checkers/_lin_core.py numbers them.
pub const READ: u8 = 0; // read / get
pub const WRITE: u8 = 1; // write / put
pub const CAS: u8 = 2; // cas (a = from, b = to); output 1 ok, 0 precondition failed
pub const APPEND: u8 = 3; // kv append

pub enum Model {
    Register,
    CasRegister,
    Kv(Strings),
}

/// The kv model's values: every string a partition names or its appends make.
///
/// A string made by an append is stored as (the state it extends, the string
/// appended), not spelled out: a long single-key history makes millions of
/// states, each a little longer than the last, and spelling each out would
/// cost time and memory quadratic in the history. Equal strings must still
/// share one id, however they were made, so each string also carries a
/// polynomial hash of its bytes (mod 2^61 - 1), which an append extends in
/// O(1): h(s + t) = h(s) * B^len(t) + h(t). Strings with equal hash and
/// length are compared byte by byte before they share an id, so a collision
/// costs time, never a wrong verdict.
pub struct Strings {
    nodes: Vec<Node>,
    index: FxHashMap<(u64, usize), Vec<u32>>, // (hash, length) -> ids with it
    concat: FxHashMap<(u32, u32), u32>,       // (state, appended) -> the result
    pub bytes: usize,
    known: usize,
    scratch: (Vec<u8>, Vec<u8>), // append's buffers for comparing bytes
}

struct Node {
    hash: u64,
    pow: u64, // B^len mod M
    len: usize,
    spelled: Spelled,
}

enum Spelled {
    // An input's string, with the hash of each of its prefixes (pre[k]: of
    // the first k bytes), so the look-ahead can ask "is s a prefix of this
    // read's result?" in O(1) whatever s is (see `extends`).
    Given(String, Vec<u64>),
    Append(u32, u32),
}

const M: u64 = (1 << 61) - 1;
const B: u64 = 1_000_003;

fn mulmod(a: u64, b: u64) -> u64 {
    let p = (a as u128) * (b as u128);
    let r = ((p & M as u128) + (p >> 61)) as u64;
    if r >= M {
        r - M
    } else {
        r
    }
}

/// b^e mod M, by squaring.
fn powmod(mut b: u64, mut e: usize) -> u64 {
    let mut r = 1u64;
    while e > 0 {
        if e & 1 == 1 {
            r = mulmod(r, b);
        }
        b = mulmod(b, b);
        e >>= 1;
    }
    r
}

impl Strings {
    /// How many strings the table was made with (the ids the caller named).
    pub fn known(&self) -> usize {
        self.known
    }

    pub fn new(table: Vec<String>) -> Strings {
        let mut st = Strings {
            nodes: Vec::with_capacity(table.len()),
            index: FxHashMap::default(),
            concat: FxHashMap::default(),
            bytes: 0,
            known: table.len(),
            scratch: (Vec::new(), Vec::new()),
        };
        for s in table {
            let mut hash = 0u64;
            let mut pre = Vec::with_capacity(s.len() + 1);
            pre.push(0);
            pre.extend(s.as_bytes().iter().map(|&c| {
                // mulmod is below M and c + 1 at most 256: one subtraction
                // reduces the sum (a `% M` here was most of a small search).
                hash = mulmod(hash, B) + c as u64 + 1;
                if hash >= M {
                    hash -= M;
                }
                hash
            }));
            let pow = powmod(B, s.len());
            st.bytes += pre.capacity() * std::mem::size_of::<u64>();
            let id = st.nodes.len() as u32;
            st.index.entry((hash, s.len())).or_default().push(id);
            let len = s.len();
            st.nodes.push(Node { hash, pow, len, spelled: Spelled::Given(s, pre) });
        }
        st
    }

    /// The string with this id, spelled out (for the counterexample).
    pub fn spell(&self, id: u32) -> String {
        let mut out = Vec::new();
        self.spell_into(id, &mut out);
        String::from_utf8(out).expect("concatenated UTF-8 strings are UTF-8")
    }

    /// Appends the bytes of string `id` to `out` (for equality on a hash match).
    fn spell_into(&self, id: u32, out: &mut Vec<u8>) {
        let mut parts: SmallVec<[&str; 16]> = SmallVec::new();
        let mut at = id;
        loop {
            match &self.nodes[at as usize].spelled {
                Spelled::Given(s, _) => {
                    parts.push(s.as_str());
                    break;
                }
                Spelled::Append(state, arg) => {
                    parts.push(self.given(*arg));
                    at = *state;
                }
            }
        }
        for p in parts.iter().rev() {
            out.extend_from_slice(p.as_bytes());
        }
    }

    fn given(&self, id: u32) -> &str {
        match &self.nodes[id as usize].spelled {
            Spelled::Given(s, _) => s,
            Spelled::Append(..) => unreachable!("an appended value is one of the inputs"),
        }
    }

    /// Could appends take string `s` to `v` (is `s` a prefix of `v`)? `v` is
    /// a read's result, so an input. Ids are canonical (equal strings share
    /// one), so equal lengths mean equal ids; a shorter `s` is compared by
    /// the hash of `v`'s prefix of its length. A collision answers yes where
    /// the truth is no: the look-ahead then prunes less, never wrongly.
    pub fn extends(&self, s: u32, v: u32) -> bool {
        if s == v {
            return true;
        }
        let (ns, nv) = (&self.nodes[s as usize], &self.nodes[v as usize]);
        if ns.len >= nv.len {
            return false;
        }
        match &nv.spelled {
            Spelled::Given(_, pre) => pre[ns.len] == ns.hash,
            Spelled::Append(..) => true, // not an input: say yes, prune nothing
        }
    }

    fn append(&mut self, state: u32, arg: u32) -> u32 {
        if let Some(&id) = self.concat.get(&(state, arg)) {
            return id;
        }
        let (s, a) = (&self.nodes[state as usize], &self.nodes[arg as usize]);
        let mut hash = mulmod(s.hash, a.pow) + a.hash; // both below M
        if hash >= M {
            hash -= M;
        }
        let (pow, len) = (mulmod(s.pow, a.pow), s.len + a.len);
        // A hash match is common (an append makes the string a read saw):
        // the bytes decide, spelled into two reused buffers.
        let found = match self.index.get(&(hash, len)) {
            None => None,
            Some(same) => {
                let (mut want, mut have) = std::mem::take(&mut self.scratch);
                want.clear();
                self.spell_into(state, &mut want);
                want.extend_from_slice(self.given(arg).as_bytes());
                let hit = same.iter().copied().find(|&id| {
                    have.clear();
                    self.spell_into(id, &mut have);
                    have == want
                });
                self.scratch = (want, have);
                hit
            }
        };
        let id = found.unwrap_or_else(|| {
            let id = self.nodes.len() as u32;
            self.nodes.push(Node { hash, pow, len, spelled: Spelled::Append(state, arg) });
            self.index.entry((hash, len)).or_default().push(id);
            self.bytes += std::mem::size_of::<Node>() + 48;
            id
        });
        self.bytes += 24;
        self.concat.insert((state, arg), id);
        id
    }
}

impl Model {
    /// `step(state, input, output) -> (ok, new_state)`, as models.py defines it.
    #[inline]
    pub fn step(&mut self, state: u32, f: u8, a: u32, b: u32, out: u32) -> (bool, u32) {
        match f {
            READ => (out == UNKNOWN || out == state, state),
            WRITE => (true, a),
            CAS => {
                if out == UNKNOWN {
                    // It may have happened: if it did, the precondition decided its effect.
                    (true, if state == a { b } else { state })
                } else if out != 0 {
                    (state == a, b)
                } else {
                    (state != a, state)
                }
            }
            APPEND => match self {
                Model::Kv(strings) => (true, strings.append(state, a)),
                _ => (false, state), // an append reaches only the kv model
            },
            _ => (false, state),
        }
    }

    /// Could the ops that set no state of their own take `s` to `v`? They
    /// never change it (reads, a failed cas), or in the kv model they append.
    #[inline]
    pub fn reaches(&self, s: u32, v: u32) -> bool {
        match self {
            Model::Kv(strings) => strings.extends(s, v),
            _ => s == v,
        }
    }

    pub fn extra_bytes(&self) -> usize {
        match self {
            Model::Kv(s) => s.bytes,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_told_apart_from_a_string_that_only_shares_a_length() {
        // 0 "", 1 "ab", 2 "abc", 3 "abd", 4 "c", 5 "b"
        let words = ["", "ab", "abc", "abd", "c", "b"];
        let mut st = Strings::new(words.iter().map(|w| w.to_string()).collect());
        assert!(st.extends(0, 2) && st.extends(1, 2) && st.extends(2, 2));
        assert!(!st.extends(3, 2), "same length, different string");
        assert!(!st.extends(2, 1), "longer than the read's result");
        assert!(!st.extends(4, 2) && !st.extends(5, 2), "not at the start");
        let ab = st.append(0, 1); // "" + "ab": the input "ab" itself
        assert_eq!(ab, 1);
        let made = st.append(5, 4); // "b" + "c", a string no input names
        assert!(!st.extends(made, 2), "\"bc\" does not start \"abc\"");
        let b = st.append(0, 5);
        assert_eq!(st.append(b, 4), made, "\"bc\" again, by another path");
    }
}
