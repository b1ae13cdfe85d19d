"""The operation kinds of the fuzzer: each emits one step (plus the adapters its domain needs).

Every function takes a `fuzz_gen.Gen` and calls `g.emit` with a source
template; spellings vary between the `tracegrad.numpy` function (`np.add`),
the operator or method (`a + b`, `a.sum()`), the real numpy function that
dispatches through the NumPy protocols (`onp.add`) and, for every primitive,
a direct call (`P.add`), so that the whole primitive table is reached.
`WEIGHTS` gives how often each kind is drawn.
"""
from __future__ import annotations

import numpy as np

# Every value is computed in four runs: each float precision on each of two input sets.
# Set 0 is what programs are traced and compiled with; set 1 calls the compiled code again
# with other data (and may take the other side of a guard).
RUNS = (("float64", 0), ("float32", 0), ("float64", 1), ("float32", 1))

INF = np.inf

# Open bugs the fuzzer found: each has a strict-xfail reproducer in test_fuzz.py named
# test_known_bug_<key>.  The generator steers around them so that the suite stays green
# and keeps finding new ones; delete the entry (and the xfail) once the bug is fixed.
KNOWN_BUGS: dict = {}


class Reject(Exception):
    """A candidate step that does not fit (domain, size): the generator tries another."""


UNARY_DOMAINS = [("exp", -30, 6), ("expm1", -30, 6), ("log", 0.1, INF), ("log1p", -0.7, INF),
                 ("sqrt", 0.1, INF), ("sin", -50, 50), ("cos", -50, 50), ("tanh", -INF, INF)]


def random_step(g, table, tries=30):
    """Emit one operation of a kind drawn from `table` (name -> (function, weight));
    kinds that do not fit are redrawn."""
    names = list(table)
    p = np.array([table[n][1] for n in names], float)
    for _ in range(tries):
        kind = names[g.rng.choice(len(names), p=p / p.sum())]
        try:
            table[kind][0](g)
            return kind
        except Reject:
            continue
    return None


def _is_node(x) -> bool:
    return hasattr(x, "v64")


def _fmt(x) -> str:
    return repr(tuple(int(d) for d in x)) if isinstance(x, (tuple, list)) else repr(x)


def _ns(g, name):
    """`np.name` (tracegrad.numpy) or `onp.name` (numpy dispatching to tracegrad)."""
    return f"{g.choice(['np', 'np', 'onp'])}.{name}"


# ---- elementwise ---------------------------------------------------------------------

def unary_math(g):
    name, lo, hi = g.choice(UNARY_DOMAINS)
    x = g.into(g.pick(), lo, hi)
    g.emit(_ns(g, name) + "({0})", x)


def kinked_unary(g):
    """abs, sign, relu, clip: the operand is kept a margin away from the kinks."""
    name = g.choice(["abs", "sign", "relu", "clip"])
    x = g.pick()
    if name == "clip":
        lo, hi = g.rng.uniform(-1.5, 0.0), g.rng.uniform(0.0, 1.5)
        lo, hi = float(f"{lo:.2g}"), float(f"{hi:.2g}")
        if g.edge:  # bounds the values may sit on
            lo, hi = float(g.choice([-1.0, -0.5, 0.0])), float(g.choice([0.0, 0.5, 1.0]))
        x = g.away(x, (lo, hi))
        tmpl = g.choice([f"np.clip({{0}}, {lo!r}, {hi!r})", f"{{0}}.clip({lo!r}, {hi!r})",
                         f"onp.clip({{0}}, None, {hi!r})", f"np.clip({{0}}, {lo!r}, None)"])
        g.emit(tmpl, x)
        return
    x = g.away(x)
    spell = {"abs": ["np.abs({0})", "abs({0})", "onp.absolute({0})"],
             "sign": ["np.sign({0})", "onp.sign({0})"], "relu": ["np.relu({0})"]}[name]
    g.emit(g.choice(spell), x)


def smooth_unary(g):
    name = g.choice(["neg", "square", "reciprocal", "positive"] +
                    ([] if g.edge else ["sigmoid", "softplus"]))
    x = g.pick()
    if name == "reciprocal":
        x = g.away(x, (0.0,), 0.2)
    if name in ("sigmoid", "softplus"):
        x = g.into(x, -30, 30)
    spell = {"neg": ["-{0}", "np.negative({0})"], "square": ["np.square({0})", "{0} * {0}"],
             "reciprocal": ["np.reciprocal({0})", "1.0 / {0}"],
             "positive": ["+{0}", "onp.positive({0})"], "sigmoid": ["np.sigmoid({0})"],
             "softplus": ["np.softplus({0})"]}[name]
    g.emit(g.choice(spell), x)


def power(g):
    kind = "int" if g.edge else g.choice(["int", "int", "float", "array", "rpow"])
    x = g.pick()
    if kind == "int":
        n = int(g.choice([-3, -2, -1, 0, 1, 2, 3, 4]))
        x = g.away(x, (0.0,), 0.25) if n < 0 else x
        x = g.into(x, -5, 5) if abs(n) >= 3 else x
        g.emit(g.choice([f"{{0}} ** {n}", f"np.power({{0}}, {n})",
                         f"P.integer_pow({{0}}, {n})"]), x)
    elif kind == "float":
        y = float(f"{g.rng.uniform(-2.5, 2.5):.2g}")
        g.emit(g.choice([f"{{0}} ** {y!r}", f"np.power({{0}}, {y!r})"]), g.into(x, 0.1, 20))
    elif kind == "array":
        x = g.into(x, 0.1, 20)
        y = g.operand(x, kinds=("node", "input", "const"))
        if _is_node(y):
            y = g.into(y, -2, 2)
        g.emit(g.choice(["np.power({0}, {1})", "{0} ** {1}"]), x, y)
    else:
        g.emit(g.choice(["2.0 ** {0}", "np.power(1.5, {0})"]), g.into(x, -10, 10))


def arith(g):
    op = g.choice(["+", "-", "*", "/"])
    a = g.pick()
    if op == "/":
        b = g.operand(a, low=0.3, high=2.0)
        if _is_node(b):
            b = g.away(b, (0.0,), 0.2)
    else:
        ints = [n for n in g.nodes if n.kind == "i" and _broadcastable(n.shape, a.shape)]
        b = g.choice(ints) if ints and g.coin(0.15) else g.operand(a)
    name = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}[op]
    if op == "/" or g.coin(0.7):
        spell = [f"{{0}} {op} {{1}}", f"{_ns(g, name)}({{0}}, {{1}})"]
        g.emit(g.choice(spell), a, b)
    else:  # reflected: the other operand first
        g.emit(f"{{1}} {op} {{0}}", a, b)


def extremum(g):
    """maximum/minimum, the first operand kept a margin away from ties."""
    name = g.choice(["maximum", "minimum"])
    a = g.pick()
    b = g.operand(a)
    a = g.away_from_pair(a, b)
    g.emit(g.choice([f"{_ns(g, name)}({{0}}, {{1}})", f"np.{name}({{1}}, {{0}})"]), a, b)


COMPARE = {"<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal",
           "==": "equal", "!=": "not_equal"}


def compare(g):
    """A bool node from a float comparison whose operands are a margin apart."""
    op = g.choice(list(COMPARE))
    a = g.pick()
    b = g.operand(a)
    a = g.away_from_pair(a, b)
    return g.emit(g.choice([f"{{0}} {op} {{1}}", f"{_ns(g, COMPARE[op])}({{0}}, {{1}})"]), a, b)


def _bool(g, like=None):
    pred = None if like is None else (lambda n: _broadcastable(n.shape, like.shape))
    try:
        return g.pick("b", pred)
    except Reject:
        return compare(g)


def _broadcastable(*shapes) -> bool:
    try:
        np.broadcast_shapes(*shapes)
        return True
    except ValueError:
        return False


def logical(g):
    a = _bool(g)
    if g.coin(0.25):
        g.emit(g.choice(["~{0}", "np.logical_not({0})"]), a)
        return
    if g.coin(0.15):  # bools counted: an int result
        g.emit(g.choice(["np.sum({0})", "{0}.sum(axis=0)" if a.ndim else "np.sum({0})"]), a)
        return
    b = _bool(g, a)
    if not _broadcastable(a.shape, b.shape):
        g.reject("shapes")
    op, name = g.choice([("&", "logical_and"), ("|", "logical_or"), ("^", "logical_xor")])
    g.emit(g.choice([f"{{0}} {op} {{1}}", f"{_ns(g, name)}({{0}}, {{1}})"]), a, b)


def where(g):
    c = _bool(g)
    x = g.pick("f", lambda n: _broadcastable(n.shape, c.shape)) if g.coin(0.7) \
        else g.new_input(c.shape)
    y = g.operand(x)
    if not _broadcastable(c.shape, x.shape, g.shape_of(y)):
        g.reject("shapes")
    if g.coin(0.2):
        g.emit("np.where({0}, {2}, {1})", c, x, y)
    else:
        g.emit(g.choice(["np.where({0}, {1}, {2})", "onp.where({0}, {1}, {2})"]), c, x, y)


def _threshold(g, values):
    """A literal t with each of `values` (one per run, see RUNS) a margin away from it;
    often between the two input sets, so that they take different sides of it."""
    m = g.margin(np.asarray(values))
    between = (values[0] + values[2]) / 2
    if g.coin(0.5) and all(abs(v - between) >= 2 * m for v in values):
        return float(f"{between:.6g}")
    for _ in range(12):
        t = float(f"{values[0] + g.rng.uniform(-1, 1) * max(1.0, abs(values[0])):.3g}")
        if all(abs(v - t) >= m for v in values):
            return t
    g.reject("threshold")


def branch(g):
    """Python control flow on a traced value: a guard of the traced and compiled program."""
    s, a = g.pick(), g.pick()
    b = g.pick("f", lambda n: n.shape == a.shape and n.sym == a.sym)  # either side: one type
    cond = g.choice(["float(np.sum({0}))", "{0}.sum().item()", "float(np.max({0}))"
                     if s.size else "float(np.sum({0}))"])
    values = [float(g.evaluate(cond.format(s.name), run)) for run in RUNS]
    t = _threshold(g, values)
    op = g.choice([">", "<"])
    g.emit(f"({{1}} if {cond} {op} {t!r} else {{2}})", s, a, b)


def int_guard(g):
    """int() of a traced int value: a guard on the value, used as a Python int."""
    i = g.pick("i") if any(n.kind == "i" for n in g.nodes) else to_int(g)
    x = g.pick()
    g.emit(g.choice(["{0} * int(np.sum({1}))", "{0} + int(np.max({1}))" if i.size else
                     "{0} + int(np.sum({1}))"]), x, i)


def item_scalar(g):
    """A float .item() fed back into array ops (a symbolic scalar while tracing).
    `.item()` is a constant for autodiff in every mode (as PyTorch's), so the
    reference stops its gradient too."""
    s, x = g.pick(), g.pick()
    inner = "np.stop_gradient({1})"
    g.emit(g.choice([f"{{0}} * {inner}.sum().item()", f"{{0}} - {inner}.mean().item()"
                     if s.size else f"{{0}} * {inner}.sum().item()"]), x, s)


# ---- dtypes ----------------------------------------------------------------------------

def _frac_clear(v):
    return v.size == 0 or bool(np.all(np.abs(v - np.round(v)) >= 0.01))


def to_int(g):
    """float -> int32/int64; values kept away from integers (truncation is a step)."""
    x = g.into(g.pick(), -40, 40)
    dt = g.choice(["onp.int32", "onp.int64"])
    tmpl = g.choice([f"np.astype({{0}}, {dt})", f"{{0}}.astype({dt})"])
    if not g.edge and not all(_frac_clear(v) for v in x.values()):
        for _ in range(12):
            c = float(f"{g.rng.uniform(-1, 1):.2g}")
            if all(_frac_clear(v + c) for v in x.values()):
                x = g.shift(x, c, check=_frac_clear)
                break
        else:
            g.reject("fractions")
    return g.emit(tmpl, x)


def convert(g):
    kind = g.choice(["f", "f", "b", "i"])
    if kind == "i":
        src = g.pick("i") if any(n.kind == "i" for n in g.nodes) else to_int(g)
    elif kind == "b":
        src = _bool(g)
    else:
        src = g.pick()
    dt = g.choice(["F", "W"])
    g.emit(g.choice([f"np.astype({{0}}, {dt})", f"{{0}}.astype({dt})", f"P.convert({{0}}, {dt})"]),
           src)


def _clear_of(points_of):
    """Check: every value a margin from the points `points_of(v)` (integers, halves)."""
    return lambda v: v.size == 0 or bool(np.all(np.abs(v - points_of(v)) >= 0.02))


def _away_from_grid(g, x, points_of):
    """`x` shifted so that no value sits within a margin of a jump of `points_of`."""
    check = _clear_of(points_of)
    if all(check(v) for v in x.values()):
        return x
    for _ in range(12):
        c = float(f"{g.rng.uniform(-1, 1):.2g}")
        if all(check(v + c) for v in x.values()):
            return g.shift(x, c, check=check)
    g.reject("jumps")


SPECIAL_DOMAINS = {"erf": (-3, 3), "erfc": (-3, 3), "lgamma": (0.5, 20), "digamma": (0.5, 20)}


def more_math(g):
    """tracer/numpy/math.py: inverse trig, log bases, rounding (kept from its jumps),
    sign manipulation, remainders, classification."""
    name = g.choice(["arctan", "arctan", "arctan2", "log2", "log10", "exp2", "copysign", "fmod",
                     "remainder", "signbit", "hypot", "arcsin", "sinh"]
                    + ([] if g.edge else ["floor", "ceil", "trunc", "rint", "special",
                                          "special"]))
    if name == "special":
        name = g.choice(list(SPECIAL_DOMAINS))
    x = g.pick()
    if name in SPECIAL_DOMAINS:  # tracegrad.numpy's (numpy has none)
        g.emit(f"np.{name}({{0}})", g.into(x, *SPECIAL_DOMAINS[name]))
    elif name in ("arctan2", "copysign", "hypot"):
        y = g.operand(x)
        if _is_node(y):
            y = g.away(y, (0.0,), 0.3)
        g.emit(f"{_ns(g, name)}({{0}}, {{1}})", g.away(x, (0.0,), 0.3), y)
    elif name in ("log2", "log10"):
        g.emit(f"{_ns(g, name)}({{0}})", g.into(x, 0.1, INF))
    elif name in ("exp2", "sinh"):
        g.emit(f"{_ns(g, name)}({{0}})", g.into(x, -30, 6))
    elif name == "arcsin":
        g.emit(f"{_ns(g, name)}({{0}})", g.into(x, -0.9, 0.9))
    elif name in ("fmod", "remainder"):   # |x| < 7.5, away from 0: no jump of x mod 7.5
        x = g.away(g.into(x, -7, 7), (0.0,), 0.1)
        g.emit(g.choice([f"{_ns(g, name)}({{0}}, 7.5)", "{0} % 7.5" if name == "remainder"
                         else "np.fmod({0}, 7.5)"]), x)
    elif name == "signbit":
        g.emit(f"{_ns(g, name)}({{0}})", g.away(x))
    else:
        grid = np.round if name != "rint" else (lambda v: np.floor(v) + 0.5)
        g.emit(f"{_ns(g, name)}({{0}})", _away_from_grid(g, g.into(x, -20, 20), grid))


def int_arith(g):
    a = g.pick("i") if any(n.kind == "i" for n in g.nodes) else to_int(g)
    others = [n for n in g.nodes if n.kind == "i" and _broadcastable(n.shape, a.shape)]
    b = g.choice(others) if others and g.coin(0.6) else str(int(g.rng.integers(-3, 4)))
    op = g.choice(["+", "-", "*", "max", "abs", "neg", "==", "!=", "<", "sum"])
    tmpl = {"max": "np.maximum({0}, {1})", "abs": "np.abs({0})", "neg": "-{0}",
            "sum": "np.sum({0}, axis=-1)" if a.ndim else "np.sum({0})"}.get(op, f"{{0}} {op} {{1}}")
    g.emit(tmpl, a, b)


def int_bits(g):
    """Integer bitwise operations, shifts (any count: numpy defines them all), and the
    division family with a literal nonzero divisor."""
    a = g.pick("i") if any(n.kind == "i" for n in g.nodes) else to_int(g)
    others = [n for n in g.nodes if n.kind == "i" and _broadcastable(n.shape, a.shape)]
    b = g.choice(others) if others and g.coin(0.5) else str(int(g.rng.integers(-3, 4)))
    op = g.choice(["&", "|", "^", "~", "<<", ">>", "//", "%", "fmod"])
    if op in ("//", "%", "fmod"):
        b = str(int(g.choice([-3, -2, 2, 3, 5])))
    tmpl = {"~": g.choice(["~{0}", "np.invert({0})"]), "fmod": "np.fmod({0}, {1})",
            "&": g.choice(["{0} & {1}", "onp.bitwise_and({0}, {1})"]),
            "<<": g.choice(["{0} << {1}", "np.left_shift({0}, {1})"])}.get(op, f"{{0}} {op} {{1}}")
    g.emit(tmpl, a, b)


# ---- reductions ------------------------------------------------------------------------

def axis_spec(g, ndim):
    """(source text, sorted non-negative axes) of a random `axis` argument."""
    r = g.rng.random()
    if ndim == 0 or r < 0.25:
        return "None", tuple(range(ndim))
    if r < 0.7:
        a = int(g.rng.integers(-ndim, ndim))
        return str(a), (a % ndim,)
    k = int(g.rng.integers(1, ndim + 1))
    axes = [int(a) for a in g.rng.permutation(ndim)[:k]]
    spelled = tuple(a - ndim if g.coin(0.3) else a for a in axes)
    return repr(spelled), tuple(sorted(axes))


def _count(shape, axes) -> int:
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def top2_gap_ok(v, axes, margin) -> bool:
    """Along `axes`, the two largest (and two smallest) values are `margin` apart."""
    if v.size == 0 or _count(v.shape, axes) < 2:
        return True
    moved = np.moveaxis(v, axes, tuple(range(-len(axes), 0)))
    s = np.sort(moved.reshape(moved.shape[:v.ndim - len(axes)] + (-1,)), axis=-1)
    return bool(np.all(s[..., -1] - s[..., -2] >= margin)
                and np.all(s[..., 1] - s[..., 0] >= margin))


def reduction(g):
    name = g.choice(["sum", "sum", "mean", "max", "min", "amax", "var", "std"])
    x = g.pick()
    axis, axes = axis_spec(g, x.ndim)
    if name != "sum" and _count(x.shape, axes) == 0:
        g.reject("empty reduction")
    keep = g.choice(["", ", keepdims=True", ", keepdims=False"])
    extra = ""
    if name in ("var", "std") and g.coin(0.4) and _count(x.shape, axes) > 1:
        extra = ", ddof=1"
    if name in ("max", "min", "amax") and not all(top2_gap_ok(v, axes, g.margin(v))
                                                   for v in x.values()):
        g.reject("ties")
    check = (lambda v: v.size == 0 or v.min() >= 0.05) if name == "std" else None
    method = name != "amax" and g.coin(0.35)
    tmpl = (f"{{0}}.{name}(axis={axis}{extra}{keep})" if method
            else f"{_ns(g, name)}({{0}}, axis={axis}{extra}{keep})")
    g.emit(tmpl, x, check=check)


def composite_reduction(g):
    name = g.choice(["logsumexp", "softmax", "log_softmax"])
    x = g.into(g.pick(), -30, 30)
    if name == "logsumexp":
        axis, axes = axis_spec(g, x.ndim)
        keep = g.choice(["", ", keepdims=True"])
        tmpl = f"np.logsumexp({{0}}, axis={axis}{keep})"
    else:
        if x.ndim == 0:
            g.reject("rank 0")
        a = int(g.rng.integers(-x.ndim, x.ndim))
        axes = (a % x.ndim,)
        tmpl = f"np.{name}({{0}}, axis={a})"
    if _count(x.shape, axes) == 0:
        g.reject("empty reduction")
    g.emit(tmpl, x)


# ---- structural --------------------------------------------------------------------------

def _factor_shape(g, size):
    """A random shape with `size` elements (ones sprinkled in; a zero for size 0)."""
    dims, n, p = [], size, 2
    while n > 1:
        while n % p:
            p += 1
        dims.append(p)
        n //= p
    g.rng.shuffle(dims)
    out = []
    for d in dims:
        if out and g.coin(0.5):
            out[-1] *= d
        else:
            out.append(d)
    out += [1] * int(g.rng.integers(0, 2))
    if size == 0:
        out.insert(int(g.rng.integers(0, len(out) + 1)), 0)
    g.rng.shuffle(out)
    return tuple(int(d) for d in out[:4]) if np.prod(out[:4]) == size else tuple(out)


def reshape(g):
    x = g.pick(g.choice(["f", "f", "f", "b"])) if g.coin(0.9) else g.pick("i")
    kind = g.choice(["reshape", "reshape", "method", "ravel", "squeeze", "expand", "P"])
    shape = _factor_shape(g, x.size)
    if kind in ("reshape", "method") and 0 not in shape and shape and g.coin(0.4):
        shape = tuple(-1 if i == 0 else d for i, d in enumerate(g.rng.permutation(shape)))
    if kind == "reshape":
        g.emit(f"np.reshape({{0}}, {_fmt(shape)})", x)
    elif kind == "method":
        g.emit(f"{{0}}.reshape({_fmt(shape)[1:-1].rstrip(',')})" if len(shape) > 1
               else f"{{0}}.reshape({_fmt(shape)})", x)
    elif kind == "ravel":
        g.emit(g.choice(["np.ravel({0})", "{0}.flatten()", "onp.ravel({0})"]), x)
    elif kind == "squeeze":
        ones = [i for i, d in enumerate(x.shape) if d == 1]
        axis = f", axis={int(g.choice(ones))}" if ones and g.coin(0.5) else ""
        g.emit(f"np.squeeze({{0}}{axis})", x)
    elif kind == "expand":
        g.emit(f"np.expand_dims({{0}}, {int(g.rng.integers(-x.ndim - 1, x.ndim + 1))})", x)
    else:
        g.emit(f"P.reshape({{0}}, {_fmt(_factor_shape(g, x.size))})", x)


def transpose(g):
    x = g.pick(g.choice(["f", "f", "b"]))
    perm = tuple(int(p) for p in g.rng.permutation(x.ndim))
    opts = ["np.transpose({0})", "{0}.T", f"np.transpose({{0}}, {_fmt(perm)})",
            f"P.transpose({{0}}, {_fmt(perm)})"]
    if x.ndim >= 1:
        i, j = (int(v) for v in g.rng.integers(-x.ndim, x.ndim, 2))
        opts += [f"np.swapaxes({{0}}, {i}, {j})", f"np.moveaxis({{0}}, {i}, {j})"]
    g.emit(g.choice(opts), x)


def broadcast_to(g):
    x = g.pick()
    shape = [int(g.choice([1, 2, 3])) if d == 1 and g.coin(0.6) else d for d in x.shape]
    lead = [int(g.choice([0, 1, 2, 3], p=[.05, .3, .35, .3]))
            for _ in range(int(g.rng.integers(0, 3)))]
    shape = tuple(lead + shape)[-4:] if len(lead + shape) > 4 else tuple(lead + shape)
    if len(shape) < x.ndim:
        g.reject("rank")
    g.emit(g.choice([f"np.broadcast_to({{0}}, {_fmt(shape)})",
                     f"P.broadcast({{0}}, {_fmt(shape)})"]), x)


def _slice_text(g, d):
    """A random basic index for an axis of length d: ':', an int, or start:stop:step."""
    r = g.rng.random()
    if r < 0.25:
        return ":"
    if r < 0.45 and d > 0:
        return str(int(g.rng.integers(-d, d)))
    step = int(g.choice([1, 1, 2, -1, -2, 3]))
    ends = [None] + list(range(-d - 1, d + 2))
    start, stop = g.choice(ends), g.choice(ends)
    text = f"{'' if start is None else start}:{'' if stop is None else stop}"
    return text + (f":{step}" if step != 1 else "")


def index(g):
    x = g.pick(g.choice(["f", "f", "f", "b"]))
    parts = [_slice_text(g, d) for d in x.shape]          # one per axis
    if g.coin(0.15) and parts:
        parts = ["..."] + parts[int(g.rng.integers(0, len(parts) + 1)):]  # the rest trail
    else:
        while parts and parts[-1] == ":" and g.coin(0.5):
            parts.pop()
    if g.coin(0.2):
        parts.insert(int(g.rng.integers(0, len(parts) + 1)), "None")
    if not parts:
        parts = [g.choice(["...", "None"])]
    g.emit(f"{{0}}[{', '.join(parts)}]", x)


def _slice_params(g, shape):
    starts, steps, sizes = [], [], []
    for d in shape:
        step = int(g.choice([1, 1, 2, -1, -3])) if d else 1
        start = int(g.rng.integers(0, d)) if d else 0
        room = (d - 1 - start) // step + 1 if step > 0 else start // -step + 1
        starts.append(start)
        steps.append(step)
        sizes.append(int(g.rng.integers(0, room + 1)) if d else 0)
    return starts, steps, sizes


def prim_slice(g):
    x = g.pick()
    starts, steps, sizes = _slice_params(g, x.shape)
    g.emit(f"P.slice({{0}}, {_fmt(starts)}, {_fmt(steps)}, {_fmt(sizes)})", x)


def prim_pad(g):
    """pad (the transpose of slice): x placed at start + i*step in zeros of a larger shape."""
    x = g.pick()
    starts, steps, shape = [], [], []
    for d in x.shape:
        step = int(g.choice([1, 1, 2, -1, -2]))
        extent = (d - 1) * abs(step) + 1 if d else 0
        total = extent + int(g.rng.integers(0, 3))
        free = total - extent
        start = int(g.rng.integers(0, free + 1)) if d else 0
        starts.append(start if step > 0 or not d else start + extent - 1)
        steps.append(step)
        shape.append(total)
    g.emit(f"P.pad({{0}}, {_fmt(starts)}, {_fmt(steps)}, {_fmt(shape)})", x)


def concatenate(g):
    x = g.pick("f", lambda n: n.ndim >= 1)
    axis = int(g.rng.integers(-x.ndim, x.ndim))
    if g.coin(0.25):
        other = x if g.coin(0.5) else g.new_input(x.shape)
        g.emit(f"np.stack([{{0}}, {{1}}], axis={int(g.rng.integers(-x.ndim - 1, x.ndim + 1))})",
               x, other)
        return
    shape = list(x.shape)
    shape[axis] = int(g.choice([0, 1, 2, 3]))
    other = x if g.coin(0.3) else (g.new_input(tuple(shape)) if g.coin(0.7)
                                   else g.const(tuple(shape), g.choice(["F", "W"])))
    if g.coin(0.2) and getattr(other, "sym", None) == x.sym:
        g.emit(f"P.concatenate([{{0}}, {{1}}], {axis % x.ndim})", x, other)
    else:
        g.emit(g.choice([f"np.concatenate([{{0}}, {{1}}], axis={axis})",
                         f"onp.concatenate(({{0}}, {{1}}, {{0}}), {axis})"]), x, other)


def _new_operand(g, shape, like):
    """A new input (dtype F) or a constant of `shape`."""
    if g.coin(0.7):
        return g.new_input(shape)
    return g.const(shape, "F" if like.sym == "F" else "W")


def matmul(g):
    cands = [n for n in g.nodes if n.kind == "f" and 1 <= n.ndim <= 3]
    x = g.choice(cands) if cands and g.coin(0.8) else g.new_input(g.shape(3)[:3] or (3,))
    k, n = x.shape[-1], int(g.choice([1, 2, 3, 4]))
    kind = g.choice(["@", "matmul", "dot", "inner", "outer", "vdot", "P"])
    if kind in ("@", "matmul", "dot"):
        shape = g.choice([(k,), (k, n)] + ([x.shape[:-2] + (k, n)] if x.ndim >= 3 else [])
                         + ([(int(g.choice([1, x.shape[0] if x.ndim == 3 else 2])), k, n)]
                            if kind != "dot" else []))
        y = _new_operand(g, shape, x)
        if kind == "dot" and k == 1 and len(shape) <= 2:
            kind = "matmul"  # numpy's dot of one term keeps the product's -0.0 on some
            # paths (1x1, matrix-vector) where matmul and BLAS sum from +0.0: same values
        g.emit({"@": "{0} @ {1}", "matmul": _ns(g, "matmul") + "({0}, {1})",
                "dot": "np.dot({0}, {1})"}[kind], x, y)
    elif kind == "inner":  # one term: as matmul (see above)
        g.emit("np.inner({0}, {1})" if k > 1 else "{0} @ {1}.T", x,
               _new_operand(g, g.choice([(k,), (n, k)]), x))
    elif kind == "outer":
        g.emit("np.outer({0}, {1})", x, _new_operand(g, (n,), x))
    elif kind == "vdot":  # one term: a sum from +0.0 (see above)
        g.emit("np.vdot({0}, {1})" if x.size > 1 else "np.sum({0} * {1})", x,
               _new_operand(g, x.shape, x))
    else:
        if x.ndim < 2:
            g.reject("rank")
        shape = x.shape[:-2] + (k, n)
        y = g.new_input(shape) if x.sym == "F" else g.const(shape, "W")
        g.emit("P.dot({0}, {1})", x, y)


BIG_PRODUCTS = [(32, 36, 30), (30, 36, 32), (36, 32, 1), (1, 33, 36), (33, 36, 33)]


def big_matmul(g):
    """Products large enough for the BLAS routes (gemm, gemv), operands maybe transposed."""
    m, k, n = g.choice(BIG_PRODUCTS)
    tx, ty = g.coin(0.3), g.coin(0.3)
    x = g.new_input((k, m) if tx else (m, k))
    y = g.new_input((n, k) if ty else (k, n)) if g.coin(0.7) else g.const((n, k) if ty else (k, n))
    a, b = ("{0}.T" if tx else "{0}"), ("{1}.T" if ty else "{1}")
    g.emit(g.choice([f"{a} @ {b}", f"np.matmul({a}, {b})", f"np.dot({a}, {b})"]), x, y)


def stop_gradient(g):
    g.emit("np.stop_gradient({0})", g.pick())


def prim_elementwise(g):
    """Direct primitive calls: equal shapes and dtypes, only rank-0 operands broadcast."""
    name = g.choice(["add", "sub", "mul", "div", "max", "min", "where", "reduce"])
    a = g.pick()
    if name == "reduce":
        axes = tuple(sorted(set(int(v) for v in g.rng.integers(0, max(a.ndim, 1), 2))))[:a.ndim]
        prim = g.choice(["reduce_sum", "reduce_max", "reduce_min"])
        if prim != "reduce_sum" and (_count(a.shape, axes) == 0 or not axes or not all(
                top2_gap_ok(v, axes, g.margin(v)) for v in a.values())):
            g.reject("ties or empty")
        g.emit(f"P.{prim}({{0}}, {_fmt(axes)})", a)
        return
    same = [n for n in g.nodes if n.kind == "f" and n.sym == a.sym and n.shape in (a.shape, ())]
    b = g.choice(same) if same and g.coin(0.6) else g.const(g.choice([a.shape, ()]), a.sym,
                                                           0.3, 2.0)
    if name == "div" and _is_node(b):
        b = g.away(b, (0.0,), 0.2)
        if b.sym != a.sym:
            g.reject("dtype")
    if name in ("max", "min"):
        a = g.away_from_pair(a, b)
    if name == "where":
        c = _bool(g, a)
        if c.shape not in (a.shape, ()):
            g.reject("shape")
        g.emit("P.where({0}, {1}, {2})", c, a, b)
        return
    g.emit(f"P.{name}({{0}}, {{1}})", a, b)


def _gaps_ok(v, axis, margin) -> bool:
    """Along `axis`, all values `margin` apart: sorting orders and extrema are stable
    under the finite differences."""
    if v.size == 0 or v.shape[axis] < 2:
        return True
    s = np.sort(v, axis=axis)
    return bool(np.all(np.diff(s, axis=axis) >= margin))


def sorting(g):
    """sort (values, differentiable), argsort/argmax/argmin (int), searchsorted (int)."""
    name = g.choice(["sort", "sort", "argsort", "argmax", "argmin", "searchsorted"])
    x = g.pick()
    if g.edge or x.ndim == 0:
        g.reject("rank 0 or edge values")
    if name == "searchsorted":
        edges = g.const((int(g.rng.integers(1, 6)),))
        table = np.sort(g.consts[edges][0])
        if not all(np.all(np.abs(v[..., None] - table) >= g.margin(v)) for v in x.values()):
            g.reject("on an edge")
        side = g.choice(["left", "right"])
        g.emit(f"{_ns(g, 'searchsorted')}(onp.sort({{1}}), {{0}}, side={side!r})", x, edges)
        return
    axis = int(g.rng.integers(-x.ndim, x.ndim))
    if name in ("argmax", "argmin") and x.shape[axis] == 0:
        g.reject("empty axis")
    if not all(_gaps_ok(v, axis, g.margin(v)) for v in x.values()):
        g.reject("ties")
    if name in ("argmax", "argmin") or g.coin(0.5):
        g.emit(f"{_ns(g, name)}({{0}}, axis={axis})", x)
    else:
        g.emit(f"P.{name}({{0}}, {axis % x.ndim})", x)


def _int_list(g, d, n) -> list:
    return [int(v) for v in g.rng.integers(-d, d, size=n)]


def _adv_index_text(g, shape) -> str:
    """A NumPy advanced index for `shape` as source: int lists of one length on some axes
    (adjacent or separated), ints and slices elsewhere."""
    n = int(g.rng.integers(1, 4))
    parts = []
    for d in shape:
        r = g.rng.random()
        if r < 0.45:
            parts.append(str(_int_list(g, d, n)))
        elif r < 0.6:
            parts.append(str(int(g.rng.integers(-d, d))))
        else:
            parts.append(_slice_text(g, d))
    if not any(p.startswith("[") for p in parts):
        k = int(g.rng.integers(0, len(parts)))
        parts[k] = str(_int_list(g, shape[k], n))
    return ", ".join(parts)


def indexing(g):
    """Advanced indexing (gather), take/take_along_axis, and the indexing primitives called
    directly: gather, scatter, scatter_add, dynamic_slice, dynamic_update_slice (indices out
    of range are clamped), nonzero with a static size feeding an index."""
    x = g.pick("f", lambda n: n.ndim >= 1 and 0 not in n.shape)
    kind = g.choice(["getitem", "take", "along", "scatter", "scatter_add", "dynamic", "update",
                     "nonzero"])
    if kind == "getitem":
        g.emit(f"{{0}}[{_adv_index_text(g, x.shape)}]", x)
    elif kind == "take":
        axis = int(g.rng.integers(-x.ndim, x.ndim))
        ind = _int_list(g, x.shape[axis], int(g.rng.integers(1, 5)))
        g.emit(f"onp.take({{0}}, {ind}, axis={axis})", x)
    elif kind == "along":
        axis = int(g.rng.integers(-x.ndim, x.ndim))
        shape = tuple(int(g.rng.integers(1, 4)) if k == axis % x.ndim else d
                      for k, d in enumerate(x.shape))
        ind = g.rng.integers(0, x.shape[axis], size=shape).tolist()
        g.emit(f"onp.take_along_axis({{0}}, onp.array({ind}), axis={axis})", x)
    elif kind in ("scatter", "scatter_add"):
        name, lead = kind, int(g.rng.integers(1, x.ndim + 1))
        b = int(g.rng.integers(1, 4))
        idx = ", ".join(f"onp.array({_int_list(g, d + 1, b)})" for d in x.shape[:lead])
        u = _new_operand(g, (b,) + x.shape[lead:], x) if x.sym == "F" else \
            g.const((b,) + x.shape[lead:], "W")  # a primitive's operands share a dtype
        g.emit(f"P.{name}({{0}}, {{1}}, {idx})", x, u)
    elif kind == "dynamic":
        sizes = [int(g.rng.integers(0, d + 1)) for d in x.shape]
        starts = ", ".join(str(int(g.rng.integers(-2, d + 2))) for d in x.shape)
        g.emit(f"P.dynamic_slice({{0}}, {starts}, sizes={tuple(sizes)})", x)
    elif kind == "update":
        shape = tuple(int(g.rng.integers(0, d + 1)) for d in x.shape)
        starts = ", ".join(str(int(g.rng.integers(-2, d + 2))) for d in x.shape)
        u = _new_operand(g, shape, x) if x.sym == "F" else g.const(shape, "W")
        g.emit(f"P.dynamic_update_slice({{0}}, {{1}}, {starts})", x, u)
    else:
        m = g.away(g.pick("f", lambda n: n.shape == x.shape), (0.3,))
        size = int(g.rng.integers(0, x.size + 2))
        g.emit(f"{{0}}[tuple(P.nonzero_static({{1}} > 0.3, {size}))]", x, m)


# ---- linear algebra ------------------------------------------------------------------

LINALG_SQUARE = ["inv({0})", "det({0})", "slogdet({0})[1]", "cholesky({0})", "eigvalsh({0})",
                 "eigh({0})[0]", "eigh({0})[1] ** 2", "solve({0}, {1})",
                 "matrix_power({0}, -2)", "cond({0})", "pinv({0})",
                 "eigvalsh({0}, UPLO='U')", "solve({0}, {1} * 2.0)", "cholesky({0}) * 0.5"]
LINALG_ANY = ["svd({0}, compute_uv=False)", "svd({0}, full_matrices=False)[1]",
              "svd({0}, full_matrices=False)[0] ** 2", "svd({0}, full_matrices=False)[2] ** 2",
              "qr({0})[0] ** 2", "qr({0})[1] ** 2", "pinv({0})", "norm({0}, 'nuc', axis=(-2, -1))",
              "norm({0}, 2, axis=(-2, -1))", "matrix_norm({0})"]


def _spectra_ok(values, square, margin=0.2) -> bool:
    """Every matrix's eigenvalues (square: symmetric) or singular values are `margin` apart
    and from 0: the decompositions' derivatives (1 / gaps) and inverses stay bounded."""
    for v in values:
        v = np.asarray(v, np.float64)
        s = np.linalg.eigvalsh(v) if square else np.linalg.svd(v, compute_uv=False)
        if s.size and (np.abs(s).min() < margin
                       or (s.shape[-1] > 1 and np.diff(np.sort(s, -1), axis=-1).min() < margin)):
            return False
    return True


def linalg(g):
    """np.linalg on small matrices: square ones symmetric positive definite (x x^T / 4 + 2 I),
    spectra with gaps; decompositions enter only through sign-free values (eigenvectors and
    singular vectors squared), since LAPACK builds may choose other signs than numpy."""
    if g.edge:
        g.reject("decompositions are not exact")
    if g.coin(0.6):
        x = g.new_input(g.choice([(), (2,)]) + (int(g.choice([1, 2, 3, 4])),
                                                 int(g.choice([1, 2, 3, 4]))))
    else:
        x = g.pick("f", lambda n: 2 <= n.ndim <= 3 and 0 not in n.shape
                   and max(n.shape[-2:]) <= 4 and np.abs(n.v64).max() <= 3)
    square = g.coin(0.65)
    if square:
        m = x.shape[-2]
        x = g.emit(f"{{0}} @ np.swapaxes({{0}}, -1, -2) * 0.25 + np.eye({m}, dtype={{0}}.dtype) * 2.0",
                   x)
    if not _spectra_ok(x.values(), square):
        g.reject("spectrum")
    forms = LINALG_SQUARE if square else LINALG_ANY
    for i in g.rng.permutation(len(forms))[:2]:  # two uses of one matrix
        form = forms[int(i)]
        b = _new_operand(g, x.shape[:-1] + (int(g.choice([1, 2])),), x) if "{1}" in form else None
        g.emit(f"{g.choice(['np', 'onp'])}.linalg." + form, *([x] if b is None else [x, b]))


def _cum_gaps_ok(name, v, axis, reverse, margin) -> bool:
    """cumprod: moderate products; cummax/cummin: each element `margin` away from the
    running extremum before it (no ties, so finite differences see one branch)."""
    if v.size == 0 or v.ndim == 0:
        return True
    w = np.flip(v, axis) if reverse else v
    if name == "cumprod":
        return bool(np.all(np.abs(np.cumprod(w, axis=axis)) < 1e6))
    if name not in ("cummax", "cummin"):
        return True
    run = (np.maximum if name == "cummax" else np.minimum).accumulate(w, axis=axis)
    before = np.take(run, range(0, w.shape[axis] - 1), axis=axis)
    rest = np.take(w, range(1, w.shape[axis]), axis=axis)
    return bool(np.all(np.abs(rest - before) >= margin))


def cumulative(g):
    """The cumulative extern primitives, called directly: P.cumsum(x, axis, reverse)."""
    name = g.choice(["cumsum", "cumprod", "cummax", "cummin"])
    x = g.pick()
    if x.ndim == 0:
        g.reject("rank 0")
    axis = int(g.rng.integers(-x.ndim, x.ndim))
    reverse = g.coin(0.4)
    if not all(_cum_gaps_ok(name, v, axis, reverse, g.margin(v)) for v in x.values()):
        g.reject("ties or large products")
    g.emit(f"P.{name}({{0}}, {axis}, {reverse})", x)


def correlation(g):
    """np.convolve/np.correlate of two 1-D values (a sum of shifted slices), or the
    `correlate` primitive directly on a value and a prefix of its last axis."""
    x = g.pick()
    if x.ndim == 0 or x.shape[-1] == 0:
        g.reject("rank 0 or empty")
    n = x.shape[-1]
    m = int(g.rng.integers(1, n + 1))
    if x.ndim == 1 and g.coin(0.5):
        fn, mode = g.choice(["convolve", "correlate"]), g.choice(["full", "same", "valid"])
        g.emit(f"np.{fn}({{0}}, {{0}}[:{m}] * 0.5, '{mode}')", x)
    else:
        g.emit(f"P.correlate({{0}}, {{0}}[..., {n - m}:] * 0.5)", x)


WEIGHTS = {
    "unary_math": (unary_math, 10), "kinked_unary": (kinked_unary, 5),
    "smooth_unary": (smooth_unary, 4), "power": (power, 4), "arith": (arith, 14),
    "extremum": (extremum, 4), "compare": (compare, 2), "logical": (logical, 2),
    "where": (where, 4), "convert": (convert, 3), "int_arith": (int_arith, 2),
    "reduction": (reduction, 8), "composite_reduction": (composite_reduction, 3),
    "reshape": (reshape, 5), "transpose": (transpose, 4), "broadcast_to": (broadcast_to, 2),
    "index": (index, 5), "prim_slice": (prim_slice, 2), "prim_pad": (prim_pad, 2),
    "concatenate": (concatenate, 3), "matmul": (matmul, 5), "big_matmul": (big_matmul, 0.7),
    "stop_gradient": (stop_gradient, 1),
    "linalg": (linalg, 7),
    "prim_elementwise": (prim_elementwise, 3), "branch": (branch, 1.5),
    "int_guard": (int_guard, 1), "item_scalar": (item_scalar, 1), "more_math": (more_math, 5),
    "int_bits": (int_bits, 2),
    "indexing": (indexing, 5),
    "sorting": (sorting, 2),
    "cumulative": (cumulative, 4),
    "correlation": (correlation, 2),
}
