//! squall_core: the linearizability search of squall.checkers, compiled.
//!
//! One function, `search`, over one partition whose values Python has
//! already interned (squall/checkers/_lin_core.py does that and decides
//! when this core applies). The search runs without the GIL: it touches no
//! Python object, and a caller's other threads (a progress display) go on.

mod bits;
mod models;
mod engine;

use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::models::{Model, Strings};
use crate::engine::{Input, Limits, Verdict};

type Best = (Vec<usize>, Vec<u32>, Vec<usize>, i64);
type Answer = (i8, u64, Option<String>, u64, Option<Best>, Vec<(u32, String)>);

/// search(model, init, f, a, b, out, calls, returns, pure, strings, ...)
///   -> (valid 1|0|-1, explored, reason, peak_bytes, best, made)
///
/// `model` is "register", "cas-register" or "kv"; `strings` is the kv
/// model's table of interned strings (ids index it), empty for the others.
/// `best` is (order, state ids, stuck, blocking) when `track` and invalid;
/// `made` spells out the kv strings `best` names that the search made (id, string).
#[pyfunction]
#[pyo3(signature = (model, init, f, a, b, out, calls, returns, pure, strings,
                    time_limit=None, max_states=None, max_bytes=None, track=false, look=true))]
#[allow(clippy::too_many_arguments)]
fn search(
    py: Python<'_>,
    model: &str,
    init: u32,
    f: Vec<u8>,
    a: Vec<u32>,
    b: Vec<u32>,
    out: Vec<u32>,
    calls: Vec<f64>,
    returns: Vec<f64>,
    pure: Vec<bool>,
    strings: Vec<String>,
    time_limit: Option<f64>,
    max_states: Option<u64>,
    max_bytes: Option<u64>,
    track: bool,
    look: bool,
) -> PyResult<Answer> {
    let n = f.len();
    let lens = [a.len(), b.len(), out.len(), calls.len(), returns.len(), pure.len()];
    if lens.iter().any(|&l| l != n) {
        return Err(PyValueError::new_err(format!(
            "squall_core.search: columns of unequal length {n} and {lens:?}"
        )));
    }
    let known = strings.len();
    let mut m = match model {
        "register" => Model::Register,
        "cas-register" => Model::CasRegister,
        "kv" => Model::Kv(Strings::new(strings)),
        other => {
            return Err(PyValueError::new_err(format!(
                "squall_core.search: model {other:?} is not compiled; known: register, cas-register, kv"
            )))
        }
    };
    let input = Input { f, a, b, out, calls, returns, pure };
    let limits = Limits {
        deadline: time_limit.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0))),
        max_states,
        max_bytes,
    };
    let got = py.allow_threads(|| engine::search(&mut m, init, &input, &limits, track, look));
    let (valid, reason) = match got.verdict {
        Verdict::Valid => (1, None),
        Verdict::Invalid => (0, None),
        Verdict::Unknown(why) => (-1, Some(why)),
    };
    // Only the states the counterexample shows are spelled out: a search
    // makes far more strings than one path through it holds.
    let made = match (&m, &got.best) {
        (Model::Kv(s), Some(b)) => {
            let mut ids: Vec<u32> = b.states.iter().copied().filter(|&i| i as usize >= known).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.into_iter().map(|i| (i, s.spell(i))).collect()
        }
        _ => Vec::new(),
    };
    let best = got.best.map(|b| (b.order, b.states, b.stuck, b.blocking));
    Ok((valid, got.explored, reason, got.peak_bytes, best, made))
}

#[pymodule]
fn squall_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(search, m)?)?;
    Ok(())
}
