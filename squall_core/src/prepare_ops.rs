//! `prepare`: a whole history of `squall.history.Op`s paired, converted,
//! split per key and interned in one pass, for the built-in models.
//!
//! It does what squall/checkers/linearizable.py's `to_operations`,
//! `partition` and squall/checkers/_lin_core.py's `_encode` do, step for
//! step, but only on the plain histories nearly every check sees: integer
//! processes, string or integer keys, and values that are None, integers or
//! strings (kv: strings). Anything else (a bool or float value, a list, a
//! malformed op, a completion without an invoke) answers None, and the
//! Python path takes the history and reports the problem as it always has:
//! this is a faster road to the same result, never a second judge of what a
//! history means. On a typical etcd log the Python conversion cost three
//! times the search it feeds (tests/checkers/test_lin_prepare.py compares
//! the two roads' columns on every history the suite has).

use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap as HashMap, FxHasher};
use smallvec::SmallVec;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyLong, PyString, PyTuple};

use crate::engine::Input;
use crate::models::{CAS, READ, UNKNOWN};

/// A value the fast road can intern exactly as Python's dict does: None,
/// an int (not a bool: True == 1 there) or a str (not a subclass). A str
/// stays the Python object, compared by its bytes: a copy per value was a
/// fifth of the conversion's time.
#[derive(Clone)]
enum Value<'py> {
    Nil,
    Int(i64),
    Str(Bound<'py, PyString>, u64),
}

impl Value<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            // A str the road accepted was readable as UTF-8 (see `scalar`).
            Value::Str(s, _) => s.to_str().map(str::as_bytes).unwrap_or_default(),
            _ => &[],
        }
    }
}

impl PartialEq for Value<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Str(a, h), Value::Str(b, g)) => h == g && (a.is(b) || self.bytes() == other.bytes()),
            _ => false,
        }
    }
}

impl Eq for Value<'_> {}

impl Hash for Value<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Nil => state.write_u8(0),
            Value::Int(i) => {
                state.write_u8(1);
                state.write_i64(*i);
            }
            Value::Str(_, h) => {
                state.write_u8(2);
                state.write_u64(*h);
            }
        }
    }
}

enum Out<'py> {
    Unknown,
    Flag(bool),
    Read(Value<'py>), // the value read
}

/// One converted operation (linearizable.Operation without the Python objects).
struct Conv<'py> {
    key: Option<Value<'py>>,
    key_obj: Option<Bound<'py, PyAny>>,
    code: u8,
    args: SmallVec<[(Value<'py>, Bound<'py, PyAny>); 2]>, // cas: from, to; write/put/append: the value
    out: Out<'py>,
    read_obj: Option<Bound<'py, PyAny>>,
    ipos: usize,
    cpos: i64,
    ret: f64,
}

struct Client<'py> {
    pos: usize,
    op: Bound<'py, PyAny>,
    p: i64,
    kind: u8,
    f: Bound<'py, PyAny>,
    value: Option<Bound<'py, PyAny>>,
}

pub struct Part {
    pub key: PyObject,
    pub input: Input,
    pub values: Vec<PyObject>, // the interned values in id order (id 0: the model's init)
    // The same, spelled out (kv only): each search makes its string table
    // from them (most partitions are searched once, and some, of an invalid
    // history, never; a table kept to be cloned cost more than it saved).
    pub texts: Vec<String>,
    pub pairs: Vec<(usize, i64)>, // each op's invoke position and completion position (-1: none)
}

/// The partitions of one history, smallest first (as check_operations orders them).
#[pyclass(frozen, module = "squall_core")]
pub struct Prepared {
    pub model: String,
    #[pyo3(get)]
    pub keyed: bool,
    pub parts: Vec<Part>,
}

fn scalar<'py>(v: &Bound<'py, PyAny>) -> Option<Value<'py>> {
    if v.is_none() {
        return Some(Value::Nil);
    }
    if v.is_exact_instance_of::<PyLong>() {
        return v.extract::<i64>().ok().map(Value::Int);
    }
    if let Ok(s) = v.downcast_exact::<PyString>() {
        let mut h = FxHasher::default();
        h.write(s.to_str().ok()?.as_bytes());
        return Some(Value::Str(s.clone(), h.finish()));
    }
    None
}

/// `[key, v]` as Python's `_Converter.split` reads it: a list or tuple of two.
fn pair<'py>(v: &Bound<'py, PyAny>) -> Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    if let Ok(l) = v.downcast::<PyList>() {
        if l.len() == 2 {
            return Some((l.get_item(0).ok()?, l.get_item(1).ok()?));
        }
    } else if let Ok(t) = v.downcast::<PyTuple>() {
        if t.len() == 2 {
            return Some((t.get_item(0).ok()?, t.get_item(1).ok()?));
        }
    }
    None
}

fn is_seq(v: &Bound<'_, PyAny>) -> bool {
    v.downcast::<PyList>().is_ok() || v.downcast::<PyTuple>().is_ok()
}

/// A str attribute, borrowed from the Python string (no copy).
fn text<'a>(v: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    v.downcast::<PyString>().ok()?.to_str().ok()
}

const INVOKE: u8 = 0;
const OK: u8 = 1;
const FAIL: u8 = 2;
const OTHER: u8 = 3; // info, or any other completion: indeterminate

/// None: the Python road must take this history (see the module's comment).
pub fn prepare<'py>(
    py: Python<'py>,
    model: &str,
    codes: &Bound<'py, PyDict>,
    history: &Bound<'py, PyAny>,
    keyed: Option<bool>,
) -> PyResult<Option<Prepared>> {
    let kv = model == "kv";
    let mut code_of: HashMap<String, u8> = HashMap::default();
    for (k, v) in codes.iter() {
        code_of.insert(k.extract::<String>()?, v.extract::<u8>()?);
    }
    let (a_process, a_type, a_f, a_value, a_error) = (
        intern!(py, "process"),
        intern!(py, "type"),
        intern!(py, "f"),
        intern!(py, "value"),
        intern!(py, "error"),
    );
    // Every client op: (position, op, process, INVOKE/OK/FAIL/OTHER, f,
    // value if an invoke), each attribute read once.
    let mut client: Vec<Client<'py>> = Vec::with_capacity(history.len().unwrap_or(0));
    for (pos, op) in history.iter()?.enumerate() {
        let op = op?;
        let proc = op.getattr(a_process)?;
        let p = if proc.is_exact_instance_of::<PyLong>() {
            match proc.extract::<i64>() {
                Ok(p) => p,
                Err(_) => return Ok(None),
            }
        } else if proc
            .downcast_exact::<PyString>()
            .is_ok_and(|s| s.to_str().is_ok_and(|s| s == "nemesis"))
        {
            continue;
        } else {
            return Ok(None);
        };
        let ty = op.getattr(a_type)?;
        let kind = match text(&ty) {
            Some("invoke") => INVOKE,
            Some("ok") => OK,
            Some("fail") => FAIL,
            Some(_) => OTHER,
            None => return Ok(None),
        };
        let f = op.getattr(a_f)?;
        let value = if kind == INVOKE { Some(op.getattr(a_value)?) } else { None };
        client.push(Client { pos, op, p, kind, f, value });
    }
    let keyed = match keyed {
        Some(k) => k,
        None => {
            // linearizable.is_keyed
            let mut found = false;
            let mut all = true;
            for c in &client {
                let Some(v) = &c.value else { continue };
                match pair(v) {
                    None => {
                        all = false;
                        break;
                    }
                    Some((_, second)) => {
                        let Some(f) = text(&c.f) else { return Ok(None) };
                        if (f == "cas" || f == "transition")
                            && !(is_seq(&second) || second.downcast::<PyDict>().is_ok())
                        {
                            all = false;
                            break;
                        }
                    }
                }
                found = true;
            }
            all && found
        }
    };
    // Pairing: one slot per invoke, in invoke order.
    let mut open: HashMap<i64, usize> = HashMap::default();
    let mut slots: Vec<(usize, Option<usize>)> = Vec::new(); // (invoke's client index, completion's)
    for (ci, c) in client.iter().enumerate() {
        if c.kind == INVOKE {
            if open.contains_key(&c.p) {
                return Ok(None);
            }
            open.insert(c.p, slots.len());
            slots.push((ci, None));
        } else {
            match open.remove(&c.p) {
                Some(at) => slots[at].1 = Some(ci),
                None => return Ok(None),
            }
        }
    }
    let mut convs: Vec<Conv<'py>> = Vec::with_capacity(slots.len());
    for &(ci, done) in &slots {
        let inv = &client[ci];
        let ipos = inv.pos;
        let v = inv.value.clone().expect("an invoke's value was read");
        let (key, key_obj, arg) = if keyed {
            let Some((k, arg)) = pair(&v) else { return Ok(None) };
            let key = match scalar(&k) {
                Some(Value::Nil) | None => return Ok(None),
                Some(key) => key,
            };
            (Some(key), Some(k), arg)
        } else {
            (None, None, v)
        };
        let Some(f) = text(&inv.f) else {
            return Ok(None);
        };
        let Some(&code) = code_of.get(f) else {
            return Ok(None);
        };
        let readonly = code == READ;
        let mut args = SmallVec::new();
        if code == CAS {
            let (from, to) = if let Ok(d) = arg.downcast::<PyDict>() {
                match (d.get_item("from")?, d.get_item("to")?) {
                    (Some(a), Some(b)) => (a, b),
                    _ => return Ok(None),
                }
            } else {
                match pair(&arg) {
                    Some(p) => p,
                    None => return Ok(None),
                }
            };
            for x in [from, to] {
                match scalar(&x) {
                    Some(val) => args.push((val, x)),
                    None => return Ok(None),
                }
            }
        } else if !readonly {
            match scalar(&arg) {
                Some(val) => args.push((val, arg)),
                None => return Ok(None),
            }
        }
        let comp = done.map(|d| &client[d]);
        let (kind, cpos) = match comp {
            Some(c) => {
                if text(&c.f) != Some(f) {
                    return Ok(None);
                }
                (c.kind, c.pos as i64)
            }
            None => (OTHER, -1),
        };
        let mut read_obj = None;
        let (out, ret) = if kind == OK {
            let out = if readonly {
                let c = comp.expect("an ok op has a completion").op.getattr(a_value)?;
                let got = if keyed {
                    match pair(&c) {
                        Some((_, got)) => got,
                        None => return Ok(None),
                    }
                } else {
                    c
                };
                let Some(val) = scalar(&got) else { return Ok(None) };
                read_obj = Some(got);
                Out::Read(val)
            } else {
                Out::Flag(true)
            };
            (out, cpos as f64)
        } else if kind == FAIL {
            let error = comp.expect("a fail op has a completion").op.getattr(a_error)?;
            if code == CAS && text(&error) == Some("precondition_failed") {
                (Out::Flag(false), cpos as f64)
            } else {
                continue;
            }
        } else if readonly {
            continue; // an indeterminate read says nothing
        } else {
            (Out::Unknown, f64::INFINITY)
        };
        convs.push(Conv {
            key,
            key_obj,
            code,
            args,
            out,
            read_obj,
            ipos,
            cpos,
            ret,
        });
    }
    // partition (first appearance), then smallest first, stably.
    let mut index: HashMap<Option<Value>, usize> = HashMap::default();
    let mut groups: Vec<(PyObject, Vec<usize>)> = Vec::new();
    if !keyed {
        groups.push((py.None(), Vec::new()));
        index.insert(None, 0);
    }
    for (i, c) in convs.iter().enumerate() {
        let at = match index.get(&c.key) {
            Some(&at) => at,
            None => {
                let obj = c
                    .key_obj
                    .as_ref()
                    .map_or_else(|| py.None(), |k| k.clone().unbind());
                index.insert(c.key.clone(), groups.len());
                groups.push((obj, Vec::new()));
                groups.len() - 1
            }
        };
        groups[at].1.push(i);
    }
    groups.sort_by_key(|(_, ops)| ops.len());
    let init_obj: Bound<'py, PyAny> =
        if kv { PyString::new_bound(py, "").into_any() } else { py.None().into_bound(py) };
    let init = scalar(&init_obj).expect("the models' init is None or a str");
    let mut parts = Vec::with_capacity(groups.len());
    for (key, ops) in groups {
        // _lin_core._encode
        let mut ids: HashMap<Value<'py>, u32> = HashMap::default();
        let mut values: Vec<PyObject> = Vec::new();
        let mut strings: Vec<String> = Vec::new();
        let mut intern = |v: &Value<'py>, obj: &Bound<'py, PyAny>| -> Option<u32> {
            if let Some(&id) = ids.get(v) {
                return Some(id);
            }
            if kv {
                match v {
                    Value::Str(s, _) => strings.push(s.to_str().ok()?.to_owned()),
                    _ => return None,
                }
            }
            let id = values.len() as u32;
            ids.insert(v.clone(), id);
            values.push(obj.clone().unbind());
            Some(id)
        };
        intern(&init, &init_obj);
        let n = ops.len();
        let mut input = Input {
            f: Vec::with_capacity(n),
            a: Vec::with_capacity(n),
            b: Vec::with_capacity(n),
            out: Vec::with_capacity(n),
            calls: Vec::with_capacity(n),
            returns: Vec::with_capacity(n),
            pure: Vec::with_capacity(n),
        };
        let mut pairs = Vec::with_capacity(n);
        for i in ops {
            let c = &convs[i];
            input.f.push(c.code);
            let mut arg_ids = Vec::with_capacity(2);
            for (val, obj) in &c.args {
                match intern(val, obj) {
                    Some(id) => arg_ids.push(id),
                    None => return Ok(None),
                }
            }
            if c.code == CAS {
                input.a.push(arg_ids[0]);
                input.b.push(arg_ids[1]);
            } else {
                input.a.push(if c.code == READ { 0 } else { arg_ids[0] });
                input.b.push(0);
            }
            let (out, pure) = match &c.out {
                Out::Unknown => (UNKNOWN, false),
                Out::Flag(ok) => (u32::from(*ok), c.code == CAS && !*ok),
                Out::Read(val) => match intern(val, c.read_obj.as_ref().unwrap()) {
                    Some(id) => (id, true),
                    None => return Ok(None),
                },
            };
            input.out.push(out);
            input.pure.push(pure);
            input.calls.push(c.ipos as f64);
            input.returns.push(c.ret);
            pairs.push((c.ipos, c.cpos));
        }
        parts.push(Part { key, input, values, texts: strings, pairs });
    }
    Ok(Some(Prepared {
        model: model.to_owned(),
        keyed,
        parts,
    }))
}
