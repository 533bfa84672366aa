//! squall_core: the linearizability search of squall.checkers, compiled.
//!
//! One function, `search`, over one partition whose values Python has
//! already interned (squall/checkers/_lin_core.py does that and decides
//! when this core applies). The search runs without the GIL: it touches no
//! Python object, and a caller's other threads (a progress display) go on.

mod bits;
mod models;
mod engine;
mod prepare_ops;

use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::models::{Model, Strings};
use crate::engine::{Input, Limits, Verdict};
use crate::prepare_ops::Prepared;

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
    let input = Input { f, a, b, out, calls, returns, pure };
    let m = compiled(model, strings)?;
    run(py, m, init, &input, limits(time_limit, max_states, max_bytes), track, look)
}

/// A search's bounds from the arguments Python names them by.
fn limits(time_limit: Option<f64>, max_states: Option<u64>, max_bytes: Option<u64>) -> Limits {
    let deadline = time_limit.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    Limits { deadline, max_states, max_bytes }
}

/// The compiled model called `model` (kv: over this table of strings).
fn compiled(model: &str, strings: Vec<String>) -> PyResult<Model> {
    Ok(match model {
        "register" => Model::Register,
        "cas-register" => Model::CasRegister,
        "kv" => Model::Kv(Strings::new(strings)),
        other => {
            return Err(PyValueError::new_err(format!(
                "squall_core.search: model {other:?} is not compiled; known: register, cas-register, kv"
            )))
        }
    })
}

/// One search of one partition, and its answer as Python sees it.
fn run(
    py: Python<'_>,
    mut m: Model,
    init: u32,
    input: &Input,
    limits: Limits,
    track: bool,
    look: bool,
) -> PyResult<Answer> {
    let known = match &m {
        Model::Kv(s) => s.known(),
        _ => 0,
    };
    let got = py.allow_threads(|| engine::search(&mut m, init, input, &limits, track, look));
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

/// prepare(model, codes, history, keyed=None) -> Prepared | None
///
/// `history` paired, converted, split per key (smallest first) and interned
/// for the compiled `model`, as the Python road would (prepare_ops.rs); None
/// when the Python road must take it. `codes` maps each operation name the
/// model accepts (its aliases too) to its op code.
#[pyfunction]
#[pyo3(signature = (model, codes, history, keyed=None))]
fn prepare(
    py: Python<'_>,
    model: &str,
    codes: &Bound<'_, PyDict>,
    history: &Bound<'_, PyAny>,
    keyed: Option<bool>,
) -> PyResult<Option<Prepared>> {
    prepare_ops::prepare(py, model, codes, history, keyed)
}

#[pymethods]
impl Prepared {
    /// The partitions' keys, smallest partition first.
    fn keys(&self, py: Python<'_>) -> Vec<PyObject> {
        self.parts.iter().map(|p| p.key.clone_ref(py)).collect()
    }

    /// The partitions' operation counts, in the order of `keys`.
    fn sizes(&self) -> Vec<usize> {
        self.parts.iter().map(|p| p.input.f.len()).collect()
    }

    /// Partition `i`'s interned values by id (id 0 is the model's init).
    fn values(&self, py: Python<'_>, i: usize) -> PyResult<Vec<PyObject>> {
        Ok(self.part(i)?.values.iter().map(|v| v.clone_ref(py)).collect())
    }

    /// Partition `i`'s ops as (invoke position, completion position or -1).
    fn pairs(&self, i: usize) -> PyResult<Vec<(usize, i64)>> {
        Ok(self.part(i)?.pairs.clone())
    }

    /// Partition `i`'s ops' (call positions, return positions; None: none),
    /// as the ints the Python road's Operations hold.
    fn spans(&self, i: usize) -> PyResult<(Vec<i64>, Vec<Option<i64>>)> {
        let c = &self.part(i)?.input;
        let calls = c.calls.iter().map(|&x| x as i64).collect();
        let rets = c.returns.iter().map(|&x| if x.is_finite() { Some(x as i64) } else { None }).collect();
        Ok((calls, rets))
    }

    /// Partition `i`'s columns (f, a, b, out, calls, returns, pure), as
    /// _lin_core._encode and linearizable._columns make them: for tests.
    #[allow(clippy::type_complexity)]
    fn columns(&self, i: usize) -> PyResult<(Vec<u8>, Vec<u32>, Vec<u32>, Vec<u32>, Vec<f64>, Vec<f64>, Vec<bool>)> {
        let c = &self.part(i)?.input;
        Ok((c.f.clone(), c.a.clone(), c.b.clone(), c.out.clone(), c.calls.clone(), c.returns.clone(), c.pure.clone()))
    }

    /// search() of partition `i`: the same answer for the same columns.
    #[pyo3(signature = (i, time_limit=None, max_states=None, max_bytes=None, track=false, look=true))]
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        py: Python<'_>,
        i: usize,
        time_limit: Option<f64>,
        max_states: Option<u64>,
        max_bytes: Option<u64>,
        track: bool,
        look: bool,
    ) -> PyResult<Answer> {
        let p = self.part(i)?;
        let m = if self.model == "kv" {
            Model::Kv(Strings::new(p.texts.clone()))
        } else {
            compiled(&self.model, Vec::new())?
        };
        run(py, m, 0, &p.input, limits(time_limit, max_states, max_bytes), track, look)
    }
}

impl Prepared {
    fn part(&self, i: usize) -> PyResult<&prepare_ops::Part> {
        self.parts
            .get(i)
            .ok_or_else(|| PyValueError::new_err(format!("Prepared: no partition {i} of {}", self.parts.len())))
    }
}

#[pymodule]
fn squall_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(search, m)?)?;
    m.add_function(wrap_pyfunction!(prepare, m)?)?;
    m.add_class::<Prepared>()?;
    Ok(())
}
