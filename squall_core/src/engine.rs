//! The search of squall/checkers/_lin_search.py, move for move.
//!
//! Same event list, same candidate order (the urgent op first, then call
//! order), same prunings (forced pure ops, indeterminate ops that change
//! nothing, twins in call order, dominance by indeterminate ops spent), the
//! same cache key and the same counterexample trace: both cores explore the
//! same configurations in the same order, so they give the same verdict,
//! the same count of configurations and the same counterexample. The
//! arguments for each pruning are written beside the Python; this file
//! only says where the port differs.
//!
//! Differences: values are interned ids (see models.rs), the bitsets are
//! `Bits`, the cache holds 128-bit fingerprints of its keys (see
//! `fingerprint` for why that cannot make a verdict valid that is not), and
//! the bound is a byte budget over the cache (its tables at their real
//! capacity plus whatever the entries hold on the heap), not a count.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

use rustc_hash::FxHashSet;
use xxhash_rust::xxh3::xxh3_128;

use crate::bits::Bits;
use crate::models::{Model, CAS, READ, UNKNOWN, WRITE};

const CHECK_EVERY: u64 = 4096; // backtracks between clock and memory checks
const DOMINANCE_CHECKS: usize = 16; // most masks compared per configuration
// Reads the look-ahead examines: _lin_search.LOOK_RETURNS and why.
const LOOK_RETURNS: usize = 16;
const LOOK_RETURNS_CROWDED: usize = 4096;
const LOOK_CROWD: usize = 16;
const NO: u32 = u32::MAX - 1; // no state needed or set (the look-ahead's columns)

pub struct Input {
    pub f: Vec<u8>,
    pub a: Vec<u32>,
    pub b: Vec<u32>,
    pub out: Vec<u32>,
    pub calls: Vec<f64>,
    pub returns: Vec<f64>,
    pub pure: Vec<bool>,
}

pub struct Limits {
    pub deadline: Option<Instant>,
    pub max_states: Option<u64>,
    pub max_bytes: Option<u64>,
}

pub struct Best {
    pub order: Vec<usize>,
    pub states: Vec<u32>,
    pub stuck: Vec<usize>,
    pub blocking: i64,
}

pub enum Verdict {
    Valid,
    Invalid,
    Unknown(String),
}

pub struct Outcome {
    pub verdict: Verdict,
    pub explored: u64,
    pub peak_bytes: u64,
    pub best: Option<Best>,
}

/// The configuration cache's key: (ops below `low` all linearized, the
/// window `rel` above it, the model state), stored as its 128-bit xxh3
/// fingerprint rather than spelled out. The state is part of the key (as
/// Porcupine v1.3 hashes it in), so two paths that linearized the same ops
/// into different states are distinct configurations.
///
/// Why a fingerprint (TLC stores 64-bit ones): a spelled-out key with its
/// window cost ~185 bytes per configuration on a 65-client single-key log
/// (the window spills past its 128 inline bits), and the budget ran out at
/// 3.7 M configurations; a fingerprint is 16. Two distinct keys collide
/// with probability about n^2 / 2^129 (below 1e-20 at a billion
/// configurations), and a collision can only make the search skip a
/// configuration it has not explored: it can lose a linearization, never
/// invent one. A `valid` verdict is a complete linearization checked step
/// by step, so it cannot be false; only an `invalid` one could, at that
/// probability. The Python core keeps exact keys and is the reference.
fn fingerprint(scratch: &mut Vec<u8>, low: u32, state: u32, rel: &Bits) -> u128 {
    scratch.clear();
    scratch.extend_from_slice(&low.to_le_bytes());
    scratch.extend_from_slice(&state.to_le_bytes());
    rel.write_words(scratch);
    xxh3_128(scratch)
}

/// The fingerprints are uniform already: the table takes them as they are.
#[derive(Default, Clone, Copy)]
struct Spread;

impl BuildHasher for Spread {
    type Hasher = Folded;
    fn build_hasher(&self) -> Folded {
        Folded(0)
    }
}

struct Folded(u64);

impl Hasher for Folded {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _bytes: &[u8]) {
        unreachable!("only u128 fingerprints are hashed here")
    }
    fn write_u128(&mut self, x: u128) {
        self.0 = (x as u64) ^ ((x >> 64) as u64);
    }
}

enum Seen {
    One(Bits),
    // A set, as in Python: the exact-match test must stay O(1) however many
    // masks a configuration collects (a scanned list made etcd logs quadratic).
    Many(FxHashSet<Bits>),
}

struct Frame {
    e: usize,
    state: u32,
    low: u32,
    rel: Bits,
    ib: Bits,
    urg: usize,
}

/// The doubly linked event list and what each event is (see _lin_search.py).
struct Events {
    nxt: Vec<usize>,
    prv: Vec<usize>,
    matched: Vec<i64>, // call -> its return event, -1 indeterminate; 0 for a return event
    owner: Vec<usize>, // return event -> its call event (0 for the tail)
    opno: Vec<usize>,
    rank: Vec<i64>,
    ibit: Vec<usize>,
    need: Vec<Option<usize>>, // the bit of the earlier identical indeterminate op
    forced: Vec<bool>,
    inp: Vec<(u8, u32, u32)>,
    out: Vec<u32>,
    wants: Vec<u32>, // call -> the state it must see (a read's result) or NO
    sets: Vec<u32>,  // call -> the state it may set (write, put, cas ok) or NO
    made: Vec<u32>,  // scratch for `dead`
    look_returns: usize,
}

impl Events {
    fn new(inp: &Input) -> Events {
        let n = inp.f.len();
        let finite: Vec<usize> = (0..n).filter(|&i| inp.returns[i].is_finite()).collect();
        let mut events: Vec<(f64, u8, usize)> = (0..n).map(|i| (inp.calls[i], 0, i)).collect();
        events.extend(finite.iter().map(|&i| (inp.returns[i], 1, i)));
        events.sort_by(|x, y| x.partial_cmp(y).expect("times are never NaN"));
        let size = events.len() + 2;
        let mut ev = Events {
            nxt: (1..=size).collect(),
            prv: (0..size).map(|i| i.wrapping_sub(1)).collect(),
            matched: vec![0; size],
            owner: vec![0; size],
            opno: vec![0; size],
            rank: vec![-1; size],
            ibit: vec![0; size],
            need: vec![None; size],
            forced: vec![false; size],
            inp: vec![(0, 0, 0); size],
            out: vec![0; size],
            wants: vec![NO; size],
            sets: vec![NO; size],
            made: Vec::new(),
            look_returns: LOOK_RETURNS,
        };
        let (mut now, mut most) = (0usize, 0usize);
        for &(_, kind, i) in &events {
            if inp.returns[i].is_finite() {
                if kind == 0 {
                    now += 1;
                    most = most.max(now);
                } else {
                    now -= 1;
                }
            }
        }
        if most > LOOK_CROWD {
            ev.look_returns = LOOK_RETURNS_CROWDED;
        }
        let mut call_of = vec![0usize; n];
        for (k, &(_, kind, i)) in events.iter().enumerate() {
            let node = k + 1;
            ev.opno[node] = i;
            if kind == 0 {
                call_of[i] = node;
                ev.matched[node] = -1;
            } else {
                ev.matched[call_of[i]] = node as i64;
                ev.owner[node] = call_of[i];
            }
        }
        for i in 0..n {
            let node = call_of[i];
            ev.inp[node] = (inp.f[i], inp.a[i], inp.b[i]);
            ev.out[node] = inp.out[i];
            ev.forced[node] = inp.pure[i];
            // Model.look_at in models.py, over op codes.
            let (f, o) = (inp.f[i], inp.out[i]);
            if f == READ && o != UNKNOWN {
                ev.wants[node] = o;
            } else if f == WRITE || (f == CAS && o != 0) {
                ev.sets[node] = if f == CAS { inp.b[i] } else { inp.a[i] };
            }
        }
        let mut ranked: Vec<usize> = finite.iter().map(|&i| call_of[i]).collect();
        ranked.sort_unstable();
        for (r, &node) in ranked.iter().enumerate() {
            ev.rank[node] = r as i64;
        }
        let mut pending: Vec<usize> = (0..n)
            .filter(|&i| !inp.returns[i].is_finite())
            .map(|i| call_of[i])
            .collect();
        pending.sort_unstable();
        let mut last_twin: HashMap<(u8, u32, u32), usize> = HashMap::new();
        for (k, &node) in pending.iter().enumerate() {
            ev.ibit[node] = k;
            ev.need[node] = last_twin.insert(ev.inp[node], k);
        }
        ev
    }

    #[inline]
    fn lift(&mut self, x: usize) {
        let (p, q) = (self.prv[x], self.nxt[x]);
        self.nxt[p] = q;
        self.prv[q] = p;
    }

    #[inline]
    fn relink(&mut self, x: usize) {
        let (p, q) = (self.prv[x], self.nxt[x]);
        self.nxt[p] = x;
        self.prv[q] = x;
    }

    /// The op owning the first return event still in the list (0: none left).
    #[inline]
    fn urgent(&self) -> usize {
        let mut x = self.nxt[0];
        while self.matched[x] != 0 {
            x = self.nxt[x];
        }
        self.owner[x]
    }

    /// Can no extension of this configuration linearize some read still
    /// open? The argument is _lin_search._dead's; the walk is the same.
    fn dead(&mut self, model: &Model, state: u32) -> bool {
        self.made.clear();
        let mut left = self.look_returns;
        let tail = self.nxt.len() - 1;
        let mut x = self.nxt[0];
        while x != tail {
            if self.matched[x] != 0 {
                if self.sets[x] != NO {
                    self.made.push(self.sets[x]);
                }
            } else {
                let v = self.wants[self.owner[x]];
                if v != NO
                    && !model.reaches(state, v)
                    && !self.made.iter().any(|&m| model.reaches(m, v))
                {
                    return true;
                }
                left -= 1;
                if left == 0 {
                    return false;
                }
            }
            x = self.nxt[x];
        }
        false
    }

    /// The next candidate after `e`, the urgent one having been tried first.
    #[inline]
    fn advance(&self, e: usize, urg: usize) -> usize {
        let mut e = if e == urg { self.nxt[0] } else { self.nxt[e] };
        if e == urg {
            e = self.nxt[e];
        }
        e
    }
}

/// Configurations explored. Most never meet an indeterminate op (their
/// mask is empty, which dominates every other), so they are a bare set of
/// fingerprints; a key whose masks matter moves to `masks`.
struct Cache {
    plain: HashSet<u128, Spread>, // keys seen with the empty mask
    masks: HashMap<u128, Seen, Spread>, // keys seen with non-empty masks only
    heap: usize,                  // bytes the masks hold beyond the tables' own slots
}

const PLAIN_SLOT: usize = std::mem::size_of::<u128>() + 1; // hashbrown: slot + control byte
const MASK_SLOT: usize = std::mem::size_of::<(u128, Seen)>() + 1;
const MASK_IN_SET: usize = std::mem::size_of::<Bits>() + 1;

impl Cache {
    /// Room for `n` configurations from the start: a search explores at least
    /// one per op it linearizes, and growing the table from empty was a tenth
    /// of a small partition's search.
    fn with_capacity(n: usize) -> Cache {
        Cache {
            plain: HashSet::with_capacity_and_hasher(n, Spread),
            masks: HashMap::with_hasher(Spread),
            heap: 0,
        }
    }

    /// Is (key, nib) a configuration not dominated by one already explored?
    /// Records it if so. The rule of _lin_search.py, step for step: a mask
    /// already seen that is a subset of `nib` dominates it.
    fn fresh(&mut self, key: u128, nib: &Bits) -> bool {
        if self.plain.contains(&key) {
            return false; // the empty mask is a subset of every mask
        }
        if nib.is_empty() {
            if let Some(seen) = self.masks.remove(&key) {
                self.heap -= seen.heap_bytes();
            }
            self.plain.insert(key);
            return true;
        }
        let heap = nib.heap_bytes();
        match self.masks.entry(key) {
            Entry::Vacant(slot) => {
                self.heap += heap;
                slot.insert(Seen::One(nib.clone()));
                true
            }
            Entry::Occupied(mut slot) => match slot.get_mut() {
                Seen::One(m) => {
                    if !m.has_bit_outside(nib) {
                        return false;
                    }
                    let mut set = FxHashSet::default();
                    set.insert(std::mem::take(m));
                    set.insert(nib.clone());
                    self.heap += set.capacity() * MASK_IN_SET + heap;
                    *slot.get_mut() = Seen::Many(set);
                    true
                }
                Seen::Many(ms) => {
                    if ms.contains(nib) {
                        return false;
                    }
                    let fresh =
                        ms.len() > DOMINANCE_CHECKS || ms.iter().all(|m| m.has_bit_outside(nib));
                    if fresh {
                        let before = ms.capacity();
                        ms.insert(nib.clone());
                        self.heap += (ms.capacity() - before) * MASK_IN_SET + heap;
                    }
                    fresh
                }
            },
        }
    }

    /// Whether the tables may grow for the next entry within `budget` bytes:
    /// a full table doubles, and while it moves both copies are held (three
    /// times the old one), so the budget is checked before that, not after.
    fn has_room(&self, budget: Option<u64>, extra: usize) -> bool {
        let Some(budget) = budget else { return true };
        let grow = |len: usize, cap: usize, slot: usize| {
            if len < cap {
                cap * slot
            } else {
                3 * cap.max(4) * slot
            }
        };
        let plain = grow(self.plain.len(), self.plain.capacity(), PLAIN_SLOT);
        let masks = grow(self.masks.len(), self.masks.capacity(), MASK_SLOT);
        (plain + masks + self.heap + extra) as u64 <= budget
    }

    fn bytes(&self) -> usize {
        self.plain.capacity() * PLAIN_SLOT + self.masks.capacity() * MASK_SLOT + self.heap
    }
}

impl Seen {
    fn heap_bytes(&self) -> usize {
        match self {
            Seen::One(m) => m.heap_bytes(),
            Seen::Many(ms) => {
                ms.capacity() * MASK_IN_SET + ms.iter().map(Bits::heap_bytes).sum::<usize>()
            }
        }
    }
}

pub fn search(
    model: &mut Model,
    init: u32,
    input: &Input,
    limits: &Limits,
    track: bool,
    look: bool,
) -> Outcome {
    let mut ev = Events::new(input);
    let mut cache = Cache::with_capacity(input.f.len().min(1 << 16));
    let mut scratch: Vec<u8> = Vec::with_capacity(64);
    let mut stack: Vec<Frame> = Vec::new();
    let mut trace = if track { Some(Trace::default()) } else { None };
    let mut explored: u64 = 0;
    let mut backtracks: u64 = 0;
    let mut peak: usize = 0;
    let mut state = init;
    let (mut low, mut rel, mut ib) = (0u32, Bits::default(), Bits::default());
    let done = |verdict, explored, peak: usize, best| Outcome {
        verdict,
        explored,
        peak_bytes: peak as u64,
        best,
    };
    let mut urg = ev.urgent();
    if urg == 0 {
        return done(Verdict::Valid, 0, 0, None);
    }
    let mut e = urg;
    loop {
        let r = ev.matched[e];
        let mut backtrack = r == 0;
        if !backtrack {
            let (f, a, b) = ev.inp[e];
            let (ok, new) = model.step(state, f, a, b, ev.out[e]);
            if !ok {
                e = ev.advance(e, urg);
                continue;
            }
            let j = ev.rank[e];
            let (nlow, nrel, nib);
            if j < 0 {
                let twin_pending = ev.need[e].is_some_and(|bit| !ib.get(bit));
                if new == state || twin_pending {
                    e = ev.advance(e, urg);
                    continue;
                }
                nlow = low;
                nrel = rel.clone();
                let mut m = ib.clone();
                m.set(ev.ibit[e]);
                nib = m;
            } else {
                nib = ib.clone();
                let j = (j - low as i64) as usize;
                let mut m = rel.clone();
                if j > 0 {
                    m.set(j);
                    nlow = low;
                } else {
                    nlow = low + m.set_low_and_shift() as u32;
                }
                nrel = m;
            }
            if !cache.has_room(limits.max_bytes, model.extra_bytes()) {
                let peak = peak.max(cache.bytes() + model.extra_bytes());
                return done(Verdict::Unknown(over_budget(limits, explored)), explored, peak, None);
            }
            let key = fingerprint(&mut scratch, nlow, new, &nrel);
            if cache.fresh(key, &nib) {
                explored += 1;
                let frame = Frame {
                    e,
                    state,
                    low,
                    rel: std::mem::replace(&mut rel, nrel),
                    ib: std::mem::replace(&mut ib, nib),
                    urg,
                };
                stack.push(frame);
                state = new;
                low = nlow;
                ev.lift(e);
                if r > 0 {
                    ev.lift(r as usize);
                }
                if let Some(t) = trace.as_mut() {
                    t.pushed(&stack, state, &ev);
                }
                urg = ev.urgent();
                if urg == 0 {
                    return done(Verdict::Valid, explored, peak.max(cache.bytes()), None);
                }
                if !look || !ev.dead(model, state) {
                    e = urg;
                    continue;
                }
                // A dead configuration: backtrack out of it at once.
            } else if !ev.forced[e] {
                e = ev.advance(e, urg);
                continue;
            }
            backtrack = true;
        }
        debug_assert!(backtrack);
        loop {
            let Some(fr) = stack.pop() else {
                let best = trace.map(|mut t| {
                    if !t.recorded {
                        t.pushed(&stack, state, &ev);
                    }
                    t.best()
                });
                return done(Verdict::Invalid, explored, peak.max(cache.bytes()), best);
            };
            e = fr.e;
            state = fr.state;
            low = fr.low;
            rel = fr.rel;
            ib = fr.ib;
            urg = fr.urg;
            let r = ev.matched[e];
            if r > 0 {
                ev.relink(r as usize);
            }
            ev.relink(e);
            if !ev.forced[e] {
                break;
            }
        }
        if let Some(t) = trace.as_mut() {
            t.popped(stack.len());
        }
        e = ev.advance(e, urg);
        backtracks += 1;
        if backtracks & (CHECK_EVERY - 1) == 0 {
            let bytes = cache.bytes() + model.extra_bytes();
            peak = peak.max(bytes);
            if limits.deadline.is_some_and(|d| Instant::now() > d) {
                let why = "time limit reached".to_string();
                return done(Verdict::Unknown(why), explored, peak, None);
            }
            if limits.max_states.is_some_and(|m| explored > m) {
                let m = limits.max_states.unwrap_or(0);
                let why = format!("explored more than {m} configurations (memory bound)");
                return done(Verdict::Unknown(why), explored, peak, None);
            }
            if limits.max_bytes.is_some_and(|m| bytes as u64 > m) {
                return done(Verdict::Unknown(over_budget(limits, explored)), explored, peak, None);
            }
        }
    }
}

fn over_budget(limits: &Limits, explored: u64) -> String {
    let mib = limits.max_bytes.unwrap_or(0) >> 20;
    format!(
        "the search's cache would outgrow its memory budget of {mib} MiB \
         ({explored} configurations explored)"
    )
}

/// The deepest stack seen, copying only what changed since the last record
/// (the Python _Trace, for the counterexample of an invalid partition).
#[derive(Default)]
struct Trace {
    order: Vec<usize>,
    states: Vec<u32>,
    low_water: usize,
    stuck: Vec<usize>,
    blocking: i64,
    recorded: bool,
}

impl Trace {
    fn popped(&mut self, depth: usize) {
        self.low_water = self.low_water.min(depth);
    }

    fn pushed(&mut self, stack: &[Frame], state: u32, ev: &Events) {
        if self.recorded && stack.len() <= self.order.len() {
            return;
        }
        let lw = self.low_water;
        self.order.truncate(lw);
        self.states.truncate(lw);
        self.order.extend(stack[lw..].iter().map(|f| ev.opno[f.e]));
        if lw + 1 <= stack.len() {
            self.states.extend(stack[lw + 1..].iter().map(|f| f.state));
        }
        self.states.push(state);
        self.low_water = stack.len();
        self.recorded = true;
        self.stuck.clear();
        let tail = ev.matched.len() - 1;
        let mut e = ev.nxt[0];
        while e != tail && ev.matched[e] != 0 {
            self.stuck.push(ev.opno[e]);
            e = ev.nxt[e];
        }
        self.blocking = if e != tail { ev.opno[e] as i64 } else { -1 };
    }

    fn best(self) -> Best {
        Best { order: self.order, states: self.states, stuck: self.stuck, blocking: self.blocking }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(bits: &[usize]) -> Bits {
        let mut m = Bits::default();
        for &b in bits {
            m.set(b);
        }
        m
    }

    #[test]
    fn a_mask_seen_that_is_a_subset_dominates() {
        let mut c = Cache::with_capacity(0);
        assert!(c.fresh(1, &mask(&[1])));
        assert!(!c.fresh(1, &mask(&[1])), "the same configuration twice");
        assert!(!c.fresh(1, &mask(&[1, 2])), "more indeterminate ops spent: dominated");
        assert!(c.fresh(1, &mask(&[2])), "incomparable masks are both kept");
        assert!(c.fresh(1, &mask(&[])), "the empty mask dominates the others, not they it");
        assert!(!c.fresh(1, &mask(&[3])), "and every mask that comes after it");
        assert!(c.masks.is_empty() && c.plain.contains(&1));
        assert_eq!(c.heap, 0, "the masks' heap bytes leave with them");
        assert!(c.fresh(2, &mask(&[])));
        assert!(!c.fresh(2, &mask(&[])));
    }

    #[test]
    fn fingerprints_tell_the_parts_of_a_key_apart() {
        let mut s = Vec::new();
        let w = mask(&[3, 70]);
        let fp = fingerprint(&mut s, 1, 2, &w);
        assert_eq!(fp, fingerprint(&mut s, 1, 2, &w));
        assert_ne!(fp, fingerprint(&mut s, 2, 1, &w));
        assert_ne!(fp, fingerprint(&mut s, 1, 2, &mask(&[3])));
        assert_ne!(fp, fingerprint(&mut s, 1, 3, &w));
    }
}
