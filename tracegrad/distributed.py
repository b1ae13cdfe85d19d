"""`tracegrad.distributed`: data-parallel value and gradients on Dask (`dask.distributed`).

    dp = DataParallel(loss, data=(X, y), reduce="mean")   # client=None: a LocalCluster
    value, grads = dp(params)
    dp.close()                                            # or `with DataParallel(...) as dp:`

* `loss(params, *shard)` returns a scalar: the mean over the shard's rows for
  `reduce="mean"` (the results are combined as a row-weighted mean, the value over the
  whole data), or a sum for `reduce="sum"` (combined as a sum).  `params` is a pytree;
  the gradients come back in its structure.
* `data` holds numpy or dask arrays with the same number of rows, sharded by rows, one
  shard per worker, placed on the workers once (numpy shards are scattered, dask arrays
  computed there), not sent on every call.
* What travels per call: the parameters out, the value and gradients back, straight to and
  from a `ShardWorker` actor holding each shard (no scheduler round trip per call).  The
  program travels once per shard, as text (the saved-program format of
  `tracer/saving.py`), never as a pickled closure; each actor compiles it once
  (`compile_grad`, its disk cache) and reuses it.
* `client=None` starts a `LocalCluster` of worker processes, one per core, each with
  `TRACEGRAD_NUM_THREADS=1`, closed with the object.  Pass a `Client` for a real cluster
  (it is not closed).
* Faults: a shard whose worker died is re-sent from the driver (numpy data) or recomputed
  from its lineage (dask data), and the call is retried; the result is the same.  An
  error on a worker (it cannot compile, the loss fails) names the worker.

Needs the `distributed` extra: `pip install 'tracegrad[distributed]'`.
"""
from __future__ import annotations

import hashlib
import os
import threading

import numpy as np

from tracegrad.ir.core import computed_dtype, supported_array
from .tracer import tree_flatten, tree_unflatten
from .tracer.loop_types import leaf_paths
from .tracer.scalars import WeakFloat
from .tracer.saving import loads_program, program_text

RETRIES = 3  # calls retried after a worker loss
PLACE_TIMEOUT = 120  # seconds placing a shard may take before the call recovers and retries


def _dask():
    try:
        import dask.array
        import distributed
    except ImportError:
        raise ImportError("tracegrad.distributed needs dask.distributed: pip install "
                          "'tracegrad[distributed]' (or pip install 'dask[distributed]')") from None
    return distributed, dask.array


class _Shard:
    """One worker's rows of every data array (travels once)."""

    def __init__(self, arrays):
        self.arrays = tuple(np.ascontiguousarray(supported_array(np.asarray(a), "a data array"))
                            for a in arrays)

    @property
    def rows(self) -> int:
        return len(self.arrays[0])

    def prepared(self) -> tuple:
        """The arrays as compiled code takes them without a copy: owned, aligned, writeable
        (deserialized ones are read-only views of the message); converted once per worker."""
        if not all(a.flags.writeable and a.flags.aligned for a in self.arrays):
            self.arrays = tuple(np.array(a, copy=True, order="C") for a in self.arrays)
        return self.arrays


# ---- on the workers ------------------------------------------------------------------------

_COMPILED: dict = {}  # program text digest -> compile_grad function (one per worker process)


def _compiled(text: str, n_params: int):
    key = hashlib.sha256(text.encode()).hexdigest()
    if key not in _COMPILED:
        import tracegrad

        program = loads_program(text)
        _COMPILED[key] = tracegrad.compile_grad(lambda *a: program(*a),
                                                argnums=tuple(range(n_params)))
    return _COMPILED[key]


class ShardWorker:
    """A Dask actor on one worker holding one shard: it loads each program once and runs
    it on every call.  Calls go straight to the worker (no scheduler round trip)."""

    def __init__(self, shard: _Shard):
        self.shard = shard
        self.programs: dict = {}

    def load(self, key: str, text: str, n_params: int) -> bool:
        self.programs[key] = _worker_call(lambda: _compiled(text, n_params))
        return True

    def run(self, key: str, params: list):
        """(value, gradient leaves, rows) of the shard, computed by compiled code."""
        f = self.programs[key]
        value, grads = _worker_call(lambda: f(*params, *self.shard.prepared()))
        return np.asarray(value), [np.asarray(g) for g in grads], self.shard.rows


def _worker_call(thunk):
    try:
        return thunk()
    except Exception as e:  # the message names the worker
        from distributed import get_worker

        raise RuntimeError(f"{WORKER_ERROR} {get_worker().address}: "
                           f"{type(e).__name__}: {e}") from None


WORKER_ERROR = "tracegrad.distributed: worker"
RESTART_WAIT = 20  # seconds a recovery waits for a lost worker's replacement (a nanny restart)


class _DriverError(Exception):
    """Tracing the loss on the driver failed (its cause): the call's error, not a lost
    worker to recover from."""


# ---- on the driver -------------------------------------------------------------------------

class DataParallel:
    """Value and gradients of `loss` over sharded data (module docstring)."""

    def __init__(self, loss, data, reduce="mean", client=None, n_workers=None):
        if reduce not in ("mean", "sum"):
            raise ValueError(f"DataParallel: reduce must be 'mean' or 'sum', not {reduce!r}")
        self.distributed, self.da = _dask()
        self.loss, self.reduce = loss, reduce
        data = tuple(data) if isinstance(data, (tuple, list)) else (data,)
        # numpy arrays and dask arrays are sliced by rows; anything else becomes an array
        self.data = tuple(a if hasattr(a, "shape") else np.asarray(a) for a in data)
        self.rows = _rows(self.data)
        self._own = client is None
        self._generation = 0  # bumped to trace every shard's program again (a guard failed)
        # one call at a time: a call retracing for its branch must not hand its program
        # to another thread's call that took the other branch
        self._calling = threading.RLock()
        self.client = client if client is not None else self._local_client(n_workers)
        try:
            self._refresh_workers()
            self._place()
        except BaseException:
            self.close()  # the cluster it started, not left running behind the error
            raise

    # -- cluster and data -------------------------------------------------------------
    def _local_client(self, n_workers):
        cluster = self.distributed.LocalCluster(
            n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
            env={"TRACEGRAD_NUM_THREADS": "1"}, dashboard_address=None)
        return self.distributed.Client(cluster)

    def _refresh_workers(self):
        """The workers now (at least one: a restarting worker is waited for)."""
        self.client.wait_for_workers(1, timeout=60)
        self.workers = sorted(self.client.scheduler_info()["workers"])

    def _bounds(self):
        n = min(len(self.workers), self.rows) or 1
        edges = np.linspace(0, self.rows, n + 1).astype(int)
        return list(zip(edges[:-1], edges[1:]))

    def _place(self):
        """One shard per worker (numpy rows scattered, dask rows computed on the cluster),
        held by a `ShardWorker` actor there."""
        self.bounds = self._bounds()
        self.shards = [self._put(i, lo, hi) for i, (lo, hi) in enumerate(self.bounds)]
        self.actors = [self.client.submit(ShardWorker, shard, actor=True, workers=[self._worker(i)])
                       .result(timeout=PLACE_TIMEOUT) for i, shard in enumerate(self.shards)]
        self._loaded = [set() for _ in self.actors]

    def _worker(self, i):
        return self.workers[i % len(self.workers)]

    def _put(self, i, lo, hi):
        worker = self._worker(i)
        parts = [a[lo:hi] for a in self.data]
        if any(isinstance(p, self.da.Array) for p in parts):
            # a slice's tasks keep their keys from one placement to the next: restricted to
            # one worker, they waited forever for it once it had died
            task = self.client.submit(lambda *ps: _Shard(ps), *[
                self.client.compute(p, workers=[worker], allow_other_workers=True)
                if isinstance(p, self.da.Array) else p
                for p in parts], workers=[worker], pure=False)
            return task
        return self.client.scatter(_Shard(parts), workers=[worker], hash=False)

    # -- programs ---------------------------------------------------------------------------
    def _program(self, i, params, tree, weak) -> str:
        """The key of shard i's program (traced once per shard, loaded once by its actor;
        the text travels once, not with every call)."""
        import tracegrad

        lo, hi = self.bounds[i]
        # the parameters' types as the trace sees them (Python floats are weak float64)
        key = repr((tree, lo, hi, tuple((np.shape(p), np.result_type(p).str) for p in params),
                    weak, self._generation))
        if key not in self._loaded[i]:
            # numpy rows trace as they are (a Python branch on the data guards the truth);
            # dask rows are not on the driver: zeros of their shape
            example = [supported_array(a[lo:hi], "a data array") if isinstance(a, np.ndarray)
                       else np.zeros((hi - lo,) + tuple(a.shape[1:]), computed_dtype(a.dtype))
                       for a in self.data]

            def flat(*xs):
                ps = [WeakFloat(x) if w else x for x, w in zip(xs, weak)]
                return self.loss(tree_unflatten(tree, ps), *xs[len(params):])
            try:
                traced = tracegrad.trace(flat)(*params, *example)
                _check_scalar(traced)
                text = program_text(traced)
            except Exception as e:  # the user's error, on the driver: no worker was lost
                raise _DriverError() from e
            self.actors[i].load(key, text, len(params)).result()
            self._loaded[i].add(key)
        return key

    # -- calling ------------------------------------------------------------------------------
    def __call__(self, params):
        if self.client is None:
            raise RuntimeError("DataParallel is closed: make a new one")
        leaves, tree = tree_flatten(params)
        # a Python float is traced weak (float32 data keep float32, as in compile_grad)
        weak = tuple(type(p) is float for p in leaves)
        leaves = [np.asarray(p) for p in leaves]
        _check_params(leaves, tree)
        with self._calling:
            return self._called(leaves, tree, weak)

    def _called(self, leaves, tree, weak):
        retraced = False
        for attempt in range(RETRIES + 1):
            try:
                calls = [actor.run(self._program(i, leaves, tree, weak), leaves)
                         for i, actor in enumerate(self.actors)]
                results = [c.result() for c in calls]
                break
            except _DriverError as e:
                raise e.__cause__ from None
            except Exception as e:
                if not retraced and "GuardFailed" in str(e) and attempt < RETRIES:
                    # a Python branch went the other way for these parameters: trace again
                    retraced = True
                    self._generation += 1
                    continue
                if WORKER_ERROR in str(e) or attempt == RETRIES:
                    raise
                self._recover_or_retry()  # a worker was lost
        return self._combine(results, tree)

    def _recover_or_retry(self):
        """`_recover`, whose own failure (a worker lost while placing the shards) leaves
        the next attempt to recover again."""
        try:
            self._recover()
        except Exception:  # noqa: BLE001  (the next attempt's call fails and recovers)
            self._loaded = [set() for _ in getattr(self, "actors", ())]

    def _recover(self):
        """A worker was lost: wait for the cluster (a restarting worker, for a while), then
        place the shards (and programs) again, one per worker there is."""
        try:
            self.client.wait_for_workers(len(self.workers), timeout=RESTART_WAIT)
        except Exception:  # noqa: BLE001  (not back in time: go on with the workers left)
            pass
        self._refresh_workers()
        self._place()

    def _combine(self, results, tree):
        rows = np.array([r for _, _, r in results], np.float64)
        weights = rows / rows.sum() if self.reduce == "mean" else np.ones_like(rows)
        value = sum(w * v for w, (v, _, _) in zip(weights, results))
        grads = [sum(w * g[i] for w, (_, g, _) in zip(weights, results))
                 for i in range(len(results[0][1]))]
        # the float64 weights must not widen float32 results
        value = np.asarray(value, np.result_type(results[0][0]))
        grads = [np.asarray(g, np.result_type(g0)) for g, g0 in zip(grads, results[0][1])]
        return value, tree_unflatten(tree, grads)

    # -- lifetime ------------------------------------------------------------------------------
    def close(self):
        """Release the shards and actors on the workers, and close the cluster this object
        started (a client passed in stays open)."""
        with self._calling:  # (after a call running on another thread)
            self._close()

    def _close(self):
        self.actors, self.shards = [], []  # their futures: released on the cluster
        if self._own and self.client is not None:
            cluster = self.client.cluster
            self.client.close()
            cluster.close()
        self.client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_params(leaves, tree):
    """Parameters are float arrays or Python floats, at least one (they are differentiated)."""
    if not leaves:
        raise TypeError("DataParallel: params holds no arrays to differentiate")
    for path, p in zip(leaf_paths(tree, "params"), leaves):
        if np.result_type(p).kind != "f":
            raise TypeError(f"DataParallel: {path} has dtype {np.result_type(p)}: every "
                            "parameter is differentiated, so it must be a float array; pass "
                            "integers and settings through the loss (a closure or "
                            "functools.partial)")


def _check_scalar(traced):
    """The loss returns one scalar (no aux: DataParallel has no has_aux)."""
    avals = traced.graph.out_avals
    if len(avals) != 1 or avals[0].shape != ():
        raise TypeError(f"DataParallel: the loss must return one scalar, got "
                        f"{', '.join(str(a) for a in avals)} (return the value alone: "
                        "DataParallel has no has_aux)")


def _rows(data) -> int:
    if not data:
        raise ValueError("DataParallel: data must hold at least one array")
    if any(np.ndim(a) and np.isnan(np.shape(a)[0]) for a in data if hasattr(a, "shape")):
        raise ValueError("DataParallel: a dask array's number of rows is unknown (after "
                         "boolean indexing): call its compute_chunk_sizes() first")
    rows = {int(np.shape(a)[0]) if np.ndim(a) else -1 for a in data}
    if -1 in rows or len(rows) != 1:
        raise ValueError(f"DataParallel: every data array needs the same number of rows "
                         f"(first axis), got shapes {[np.shape(a) for a in data]}")
    n = rows.pop()
    if n == 0:
        raise ValueError("DataParallel: the data has no rows (a mean over none is undefined)")
    return n
