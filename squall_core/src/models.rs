//! The built-in models (squall/checkers/models.py), over interned values.
//!
//! Python interns every value a partition mentions (by Python's own `==`
//! and hash, so `1 == 1.0` stays true here) and hands over small integers:
//! a state is one of them, and equality of ids is equality of values. The
//! kv model's appends make strings no input named, so it owns a string
//! table and interns each new concatenation, keeping that equality exact.

use rustc_hash::FxHashMap;

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

pub struct Strings {
    pub table: Vec<String>,
    index: FxHashMap<String, u32>,
    concat: FxHashMap<(u32, u32), u32>,
    pub bytes: usize,
}

impl Strings {
    pub fn new(table: Vec<String>) -> Strings {
        let index = table.iter().enumerate().map(|(i, s)| (s.clone(), i as u32)).collect();
        Strings { table, index, concat: FxHashMap::default(), bytes: 0 }
    }

    fn append(&mut self, state: u32, arg: u32) -> u32 {
        if let Some(&id) = self.concat.get(&(state, arg)) {
            return id;
        }
        let s = format!("{}{}", self.table[state as usize], self.table[arg as usize]);
        let id = match self.index.get(&s) {
            Some(&id) => id,
            None => {
                let id = self.table.len() as u32;
                // Held twice (table and index) plus the map entries.
                self.bytes += 2 * s.len() + 64;
                self.table.push(s.clone());
                self.index.insert(s, id);
                id
            }
        };
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

    pub fn extra_bytes(&self) -> usize {
        match self {
            Model::Kv(s) => s.bytes,
            _ => 0,
        }
    }
}
