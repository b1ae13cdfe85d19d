"""Random programs for the fuzzer: Python source over the NumPy-like API.

A `Program` is the body of a function `f(v0, v1, ...)`, one assignment per
line, over `np` (tracegrad.numpy or the reference), `onp` (real numpy,
dispatching through the NumPy protocols), `P` (direct primitive calls) and the
dtype names `F` (the program's float dtype) and `W` (float64).  Its scalar
`loss` is the sum of each float output times a fixed random cotangent.

`Gen` builds a program step by step and evaluates every candidate line with
the numpy reference in four runs: float64 and float32 on each of two input
sets (inputs are float32-representable).  A candidate whose values leave its
operation's domain is adapted (shifted, scaled) or rejected, so that every
emitted line holds with margin in all four runs:
  * finite values of magnitude <= CAP, arrays of at most MAX_SIZE elements;
  * operands of log/sqrt/pow/div kept away from 0 and the domain boundary;
  * every kink (abs, sign, relu, clip, maximum/minimum ties, reduce_max ties,
    comparisons feeding where, float->int truncation) at least a margin away,
    so a finite difference and float32 rounding never cross it.
The operation kinds and their weights live in `fuzz_ops.py`.
"""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field, replace

import numpy as np

import fuzz_control
import fuzz_ops
from fuzz_ops import RUNS, Reject
from fuzz_ref import RefControl, RefNumpy, RefPrims

TABLE = {**fuzz_ops.WEIGHTS, **fuzz_control.WEIGHTS}

# Edge programs: inputs, constants and scalars from EDGE_VALUES, no margins from kinks and
# ties (abs, sign, relu and clip at their kinks, maximum/minimum and reduce_max ties,
# comparisons of equal values, -0.0), and only lines whose values stay exact (`_exact`),
# so that every stage must agree bit for bit on values and exactly on the derivative
# conventions at edge points (docs/derivatives.md).  No finite differences (kinks); no
# transcendental functions (native ones are not correctly rounded); no loops (their
# bodies are transcendental).
EDGE_FRACTION = 0.2
EDGE_VALUES = np.array([-2.0, -1.5, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 1.5, 2.0])
EDGE_TABLE = {k: v for k, v in fuzz_ops.WEIGHTS.items()
              if k not in ("unary_math", "composite_reduction")}

CAP = 1e4          # largest magnitude of any value
MAX_SIZE = 1200    # most elements of any value
MARGIN = 5e-3      # distance from a kink, relative to max(1, max |value|)
MAX_INPUTS = 5


@dataclass
class Node:
    name: str
    vals: dict        # run -> value (see RUNS)
    uses: int = 0     # later lines reading this node

    @property
    def v64(self) -> np.ndarray:
        return self.vals[RUNS[0]]

    @property
    def v32(self) -> np.ndarray:
        return self.vals[RUNS[1]]

    @property
    def kind(self) -> str:
        return self.v64.dtype.kind

    @property
    def shape(self) -> tuple:
        return self.v64.shape

    @property
    def ndim(self) -> int:
        return self.v64.ndim

    @property
    def size(self) -> int:
        return self.v64.size

    @property
    def sym(self) -> str:
        """Dtype class: 'F' (follows the program dtype), 'W' (always float64) or the dtype."""
        if self.kind == "f":
            return "F" if self.v32.dtype == np.float32 else "W"
        return str(self.v32.dtype)

    def values(self) -> list:
        return [self.vals[r] for r in RUNS]


@dataclass
class Program:
    seed: int
    dtype: str                       # the program's float dtype F
    params: list                     # input names, in call order
    inputs: list                     # float64 values, float32-representable
    inputs2: list                    # the second input set
    consts: dict                     # name -> (float64 value, 'F' | 'W')
    lines: list                      # "v3 = np.add(v1, 1.5)"
    outputs: list                    # output names
    out_syms: list                   # per output: 'F', 'W' or a non-float dtype
    cotangents: list                 # per output: float64 array, or None (not in the loss)
    strided: list = field(default_factory=list)  # per input: pass a non-contiguous view
    nodes: dict = field(default_factory=dict)    # every name -> (shape, dtype class)
    call_style: str = "positional"   # how compiled functions get the inputs: or "dict", "list",
                                     # "floats" (0-d inputs as Python floats: float64 only)
    second_order: bool = False       # also check Hessian-vector products (no stop_gradient)
    threads: bool = False            # also call one compiled function from two threads at once
    edge: bool = False               # an edge program (EDGE_TABLE): exact, kinks and ties hit

    def source(self) -> str:
        """Python source of `f` (the outputs) and `loss` (a float scalar)."""
        args = ", ".join(self.params)
        body = "\n".join(self.lines) or "pass"
        outs = "".join(o + ", " for o in self.outputs)
        terms = [f"np.sum(outs[{i}] * k{i})" for i, c in enumerate(self.cotangents)
                 if c is not None] or [f"np.sum({self.params[0]}) * 0.0"]
        return (f"def f({args}):\n{textwrap.indent(body, '    ')}\n    return ({outs})\n\n"
                f"def loss({args}):\n    outs = f({args})\n    return {' + '.join(terms)}\n")

    @staticmethod
    def resolve(sym, mode) -> np.dtype:
        """The numpy dtype of a dtype class in a run of float dtype `mode`."""
        if sym in ("F", "W"):
            return np.dtype(mode if sym == "F" else np.float64)
        return np.dtype(sym)

    def constants(self, mode) -> dict:
        """Globals the source reads besides the namespaces: constants and cotangents."""
        env = {name: v.astype(self.resolve(sym, mode)) for name, (v, sym) in self.consts.items()}
        for i, (c, sym) in enumerate(zip(self.cotangents, self.out_syms)):
            if c is not None:
                env[f"k{i}"] = c.astype(self.resolve(sym, mode))
        return env

    def args(self, mode, which=0) -> list:
        return [x.astype(mode) for x in (self.inputs2 if which else self.inputs)]

    def build(self, mode, np_ns, prims, control):
        """(f, loss) as Python functions over the namespace `np_ns`, the primitives `prims`
        and the loops and branches `control`."""
        env = {"np": np_ns, "onp": np, "P": prims, "L": control, "F": np.dtype(mode).type,
               "W": np.float64}
        env.update(self.constants(mode))
        exec(compile(self.source(), f"<fuzz program {self.seed}>", "exec"), env)
        return env["f"], env["loss"]

    def restrict(self, outputs) -> "Program":
        """The program computing only `outputs` (names): lines they do not need are dropped."""
        needed, lines = set(outputs), []
        for line in reversed(self.lines):
            name, expr = line.split(" = ", 1)
            if name in needed:
                needed |= set(re.findall(r"\b[vc]\d+\b", expr))
                lines.insert(0, line)
        keep = [i for i, p in enumerate(self.params) if p in needed]
        rng = np.random.default_rng(self.seed)
        syms = [self.nodes[o][1] for o in outputs]
        cots = [rng.standard_normal(self.nodes[o][0]).astype(np.float32).astype(np.float64)
                if s in ("F", "W") else None for o, s in zip(outputs, syms)]
        return replace(self, params=[self.params[i] for i in keep],
                       inputs=[self.inputs[i] for i in keep],
                       inputs2=[self.inputs2[i] for i in keep],
                       strided=[self.strided[i] for i in keep],
                       consts={k: v for k, v in self.consts.items() if k in needed},
                       lines=lines, outputs=list(outputs), out_syms=syms, cotangents=cots)

    def script(self) -> str:
        """A standalone reproducer: inputs, constants and the source, run eager and compiled."""
        lines = ["import numpy", "import tracegrad", "import tracegrad.numpy as np",
                 "from tracegrad.ir import ops as P", "onp, L = numpy, tracegrad",
                 f"F, W = numpy.{self.dtype}, numpy.float64"]
        for name, (v, sym) in self.consts.items():
            lines.append(f"{name} = {_literal(v, sym)}")
        for i, (c, sym) in enumerate(zip(self.cotangents, self.out_syms)):
            if c is not None:
                lines.append(f"k{i} = {_literal(c, sym)}")
        lines.append(self.source())
        for which, inputs in enumerate((self.inputs, self.inputs2)):
            lines.append(f"args{which} = [" + ", ".join(_literal(x, "F") for x in inputs) + "]")
        n = len(self.params)
        lines += ["jf, cg = tracegrad.jit(f), tracegrad.compile_grad(loss)",
                  "for args in (args0, args1):  # eager, then compiled, on both input sets",
                  "    print(f(*args))", "    print(jf(*args))",
                  f"    print(tracegrad.value_and_grad(loss, argnums=tuple(range({n})))(*args))",
                  "    print(cg(*args))"]
        return "\n".join(lines) + "\n"


def _literal(x, dtype) -> str:
    """Source of an array (all digits, its shape kept even when empty)."""
    return f"numpy.array({x.ravel().tolist()!r}, dtype={dtype}).reshape({x.shape!r})"


def nice(c: float, digits=2, up=None) -> float:
    """`c` as a short literal, rounded up or down if asked (never -0.0)."""
    if c == 0 or not np.isfinite(c):
        return 0.0
    q = 10.0 ** (np.floor(np.log10(abs(c))) - digits + 1)
    r = {None: np.round, True: np.ceil, False: np.floor}[up](c / q) * q
    r = float(f"{r:.{digits}g}")
    return 0.0 if r == 0 else r


def _exact(v) -> bool:
    """Multiples of 1/16 below 64 in magnitude: sums of up to 2^13 of them, products of two
    and every rounding order are exact in float32 and float64 alike."""
    if v.dtype.kind != "f" or v.size == 0:
        return True
    return bool(np.all(np.abs(v) <= 64) and np.all(v * 16 == np.round(v * 16)))


def _finite_and_bounded(v) -> bool:
    if v.dtype.kind not in "fi" or v.size == 0:
        return True
    return bool(np.all(np.isfinite(v)) and np.max(np.abs(v)) <= CAP)


class Gen:
    """Builds one program; see the module docstring for the invariants it keeps."""

    def __init__(self, seed: int, edge=False):
        self.seed = seed
        self.edge = edge  # see EDGE_TABLE
        self.rng = np.random.default_rng(seed)
        self.ref = RefNumpy()
        self.nodes: list[Node] = []
        self.params: list[str] = []
        self.lines: list[str] = []
        self.consts: dict = {}

    # -- values ----------------------------------------------------------------
    def reject(self, why: str):
        raise Reject(why)

    def _env(self, run):
        mode = run[0]
        env = {"np": self.ref, "onp": np, "P": RefPrims, "L": RefControl,
               "F": np.dtype(mode).type, "W": np.float64}
        resolve = {"F": np.dtype(mode), "W": np.dtype(np.float64)}
        env.update({k: v.astype(resolve[s]) for k, (v, s) in self.consts.items()})
        env.update({n.name: n.vals[run] for n in self.nodes})
        return env

    def evaluate(self, text: str, run) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(eval(text, self._env(run)))

    def new_input(self, shape, low=-2.0, high=2.0) -> Node:
        if len(self.params) >= MAX_INPUTS:
            self.reject("too many inputs")
        sets = [self.draw(shape, low, high) for _ in range(2)]
        node = Node(f"v{len(self.nodes)}", {(mode, which): sets[which].astype(mode)
                                            for mode, which in RUNS})
        self.nodes.append(node)
        self.params.append(node.name)
        return node

    def const(self, shape, sym="F", low=-2.0, high=2.0) -> str:
        name = f"c{len(self.consts)}"
        self.consts[name] = (self.draw(shape, low, high).astype(np.float64), sym)
        return name

    def draw(self, shape, low, high) -> np.ndarray:
        """float32 values: uniform in [low, high], or (edge programs) from EDGE_VALUES."""
        if self.edge:
            return self.rng.choice(EDGE_VALUES, shape).astype(np.float32)
        return self.rng.uniform(low, high, shape).astype(np.float32)

    def emit(self, template: str, *args, check=None) -> Node:
        """Append `name = template.format(*args)` if its values are valid in both precisions."""
        text = template.format(*[a.name if isinstance(a, Node) else a for a in args])
        vals = {run: self.evaluate(text, run) for run in RUNS}
        first = vals[RUNS[0]]
        if any(v.shape != first.shape or v.dtype.kind != first.dtype.kind for v in vals.values()):
            raise AssertionError(f"generator: {text} differs in shape or kind between runs")
        if first.size > MAX_SIZE or not all(_finite_and_bounded(v) for v in vals.values()):
            self.reject("too large")
        if check is not None and not all(check(v) for v in vals.values()):
            self.reject("domain")
        if self.edge and not all(_exact(v) for v in vals.values()):
            self.reject("not exact")
        for a in args:
            if isinstance(a, Node):
                a.uses += 1
        node = Node(f"v{len(self.nodes)}", vals)
        self.nodes.append(node)
        self.lines.append(f"{node.name} = {text}")
        return node

    # -- choices ---------------------------------------------------------------
    def choice(self, options, p=None):
        return options[self.rng.choice(len(options), p=p)]

    def coin(self, p=0.5) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, kind="f", pred=None) -> Node:
        """An existing node of `kind`: mostly one nothing reads yet (the newest first), so
        that programs grow deep and few lines are dead."""
        cands = [n for n in self.nodes if n.kind == kind and (pred is None or pred(n))]
        if not cands:
            if kind == "f" and pred is None:
                return self.new_input(self.shape())
            self.reject(f"no {kind} operand")
        unused = [n for n in cands if n.uses == 0]
        if unused and self.coin(0.7):
            cands = unused
        return cands[-1] if self.coin(0.6) else self.choice(cands)

    def shape(self, max_rank=4) -> tuple:
        rank = self.choice([0, 1, 2, 3, 4][:max_rank + 1],
                           p=np.array([.1, .3, .3, .22, .08][:max_rank + 1]) /
                           sum([.1, .3, .3, .22, .08][:max_rank + 1]))
        dims = [0, 1, 2, 3, 4, 5, 7, 16, 17, 33]
        p = [.04, .2, .2, .19, .15, .09, .09, .015, .015, .01]
        return tuple(int(d) for d in self.rng.choice(dims, size=rank, p=p))

    def broadcast_partner_shape(self, shape) -> tuple:
        """A shape that broadcasts against `shape` (fewer dims, ones, or an extra lead dim)."""
        if self.coin(0.15):
            return ()
        s = list(shape[self.rng.integers(0, len(shape) + 1):] if self.coin(0.3) else shape)
        s = [1 if self.coin(0.25) else d for d in s]
        if self.coin(0.15) and len(s) == len(shape) < 4:
            s.insert(0, int(self.choice([1, 2, 3])))
        return tuple(s)

    def operand(self, like: Node, kinds=("node", "input", "const", "scalar", "wscalar"),
                low=-2.0, high=2.0):
        """A float second operand for `like`: a node, a new input, a constant or a scalar.

        Returns a Node or a source literal; broadcasting may enlarge the result.
        """
        kind = self.choice(list(kinds))
        if self.edge and kind in ("scalar", "wscalar"):
            v = repr(float(self.choice(EDGE_VALUES)))
            return v if kind == "scalar" else f"W({v})"
        if kind == "scalar" and low < 0 < high and self.coin(0.08):
            return self.choice(["0.0", "-0.0"])  # signed zeros must survive every stage
        if kind == "scalar":
            return repr(nice(self.rng.uniform(low, high)))
        if kind == "wscalar":
            return f"W({nice(self.rng.uniform(low, high))!r})"
        shape = self.broadcast_partner_shape(like.shape)
        if kind == "const":
            return self.const(shape, self.choice(["F", "F", "W"]), low, high)
        if kind == "node":
            cands = [n for n in self.nodes if n.kind == "f" and _broadcasts(n.shape, like.shape)]
            if cands:
                return self.choice(cands)
        return self.new_input(shape, low, high)

    # -- domain adapters -----------------------------------------------------------
    def margin(self, v) -> float:
        """How far values keep from kinks and ties: none in edge programs."""
        if self.edge:
            return 0.0
        return MARGIN * max(1.0, float(np.max(np.abs(v))) if v.size else 1.0)

    def into(self, node: Node, lo=-np.inf, hi=np.inf) -> Node:
        """`node`, shifted (and scaled if needed) so that lo <= values <= hi in both runs."""
        def inside(v):
            return v.size == 0 or (v.min() >= lo and v.max() <= hi)

        if all(inside(v) for v in node.values()):
            return node
        mn = min(float(v.min()) for v in node.values())
        mx = max(float(v.max()) for v in node.values())
        if np.isfinite(lo) and np.isfinite(hi) and mx - mn > 0.6 * (hi - lo):
            node = self.emit("{0} * {1}", node, nice(0.5 * (hi - lo) / (mx - mn)))
            mn = min(float(v.min()) for v in node.values())
            mx = max(float(v.max()) for v in node.values())
        if np.isfinite(lo) and np.isfinite(hi):
            c = nice((lo + hi) / 2 - (mn + mx) / 2, 3)
        elif np.isfinite(lo):
            c = nice(lo - mn + self.rng.uniform(0.05, 1.0), 3, up=True)
        else:
            c = nice(hi - mx - self.rng.uniform(0.05, 1.0), 3, up=False)
        return self.shift(node, c, check=inside)

    def shift(self, node: Node, c: float, check=None) -> Node:
        if c >= 0:
            return self.emit("{0} + {1}", node, repr(c), check=check)
        return self.emit("{0} - {1}", node, repr(-c), check=check)

    def away(self, node: Node, points=(0.0,), margin=None) -> Node:
        """`node`, shifted so that every value is a margin away from each of `points`."""
        def clear(v):
            m = margin if margin is not None else self.margin(v)
            return all(np.all(np.abs(v - p) >= m) for p in points)

        if (self.edge and margin is None) or all(clear(v) for v in node.values()):
            return node
        span = max(1.0, float(np.ptp(node.v64)))
        for _ in range(12):
            c = nice(self.rng.uniform(-1, 1) * span)
            if all(clear(v + c) for v in node.values()):
                return self.shift(node, c, check=clear)
        node = self.into(node, lo=max(points) + (margin or 0.05) * 2 + 0.05)
        if not all(clear(v) for v in node.values()):
            self.reject("kink")
        return node

    def away_from_pair(self, a: Node, b) -> Node:
        """`a` shifted so that a - b (b: a Node or literal) is a margin away from 0."""
        bv = self._operand_values(b)

        def clear(v, w):
            d = v - w
            return d.size == 0 or np.all(np.abs(d) >= self.margin(np.abs(v) + np.abs(w)))

        if self.edge or all(clear(v, w) for v, w in zip(a.values(), bv)):
            return a
        span = max(1.0, float(np.ptp(a.v64)) if a.size else 1.0)
        for _ in range(12):
            c = nice(self.rng.uniform(-1, 1) * span)
            if all(clear(v + c, w) for v, w in zip(a.values(), bv)):
                return self.shift(a, c)
        self.reject("ties")

    def shape_of(self, operand) -> tuple:
        """Shape of an operand: a Node, a constant's name or a scalar literal."""
        if isinstance(operand, Node):
            return operand.shape
        return self.consts[operand][0].shape if operand in self.consts else ()

    def _operand_values(self, b):
        if isinstance(b, Node):
            return b.values()
        return [self.evaluate(b, run) for run in RUNS]


def _broadcasts(s, t) -> bool:
    try:
        return np.broadcast_shapes(s, t) == tuple(t)
    except ValueError:
        return False


def generate(seed: int, dtype=None) -> Program:
    """The program of `seed` (deterministic): 1 to 8 random operations plus their adapters;
    one in five is an edge program."""
    g = Gen(seed, edge=np.random.default_rng(seed + 1).random() < EDGE_FRACTION)
    dtype = dtype or g.choice(["float32", "float64"])
    for _ in range(int(g.rng.integers(1, 3))):
        g.new_input(g.shape())
    for _ in range(int(g.rng.integers(1, 9))):
        fuzz_ops.random_step(g, EDGE_TABLE if g.edge else TABLE)
    return _finish(g, dtype)


def _finish(g: Gen, dtype: str) -> Program:
    """Every line nothing reads is an output (no dead code), plus sometimes an inner one."""
    inner = [n for n in g.nodes if n.name not in g.params]
    outputs = [n for n in inner if n.uses == 0] or g.nodes[-1:]
    if inner and g.coin(0.2) and inner[0] not in outputs:
        outputs.append(inner[0])
    if not any(n.kind == "f" for n in outputs):
        outputs.append([n for n in g.nodes if n.kind == "f"][-1])
    cots = [_cotangent(g, n.shape) if n.kind == "f" else None for n in outputs]
    strided = [g.coin(0.2) for _ in g.params]
    inputs = [g.nodes[int(p[1:])].vals[("float64", 0)] for p in g.params]
    inputs2 = [g.nodes[int(p[1:])].vals[("float64", 1)] for p in g.params]
    prog = Program(g.seed, dtype, list(g.params), inputs, inputs2, dict(g.consts),
                   list(g.lines), [n.name for n in outputs], [n.sym for n in outputs], cots,
                   strided, {n.name: (n.shape, n.sym) for n in g.nodes},
                   # a difference of the gradient differentiates through stop_gradient
                   second_order=g.coin(0.25) and not g.edge and not any(
                       "stop_gradient" in line for line in g.lines),
                   threads=g.coin(0.1), edge=g.edge)
    styles = ["positional", "positional", "dict", "list"]
    prog.call_style = g.choice(styles + ["floats"] * 2 * _takes_floats(prog))
    return prog


def _takes_floats(prog) -> bool:
    """Whether Python floats may stand for the 0-d inputs (weak float64 scalars): in float64
    programs that use them as numbers, which the reference run with floats shows (a Python
    float has no array methods, and stays one through Python arithmetic)."""
    zero_d = [i for i, x in enumerate(prog.inputs) if x.ndim == 0]
    if prog.dtype != "float64" or not zero_d:
        return False
    f, _ = prog.build("float64", RefNumpy(), RefPrims, RefControl)
    args = prog.args("float64")
    floats = [float(x) if i in zero_d else x for i, x in enumerate(args)]
    try:
        with np.errstate(all="ignore"):
            want, got = f(*args), f(*floats)
        return all(np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b)
                   for a, b in zip(want, got))
    except (AttributeError, TypeError, IndexError, ValueError):
        return False


def _cotangent(g, shape):
    if g.edge:
        return g.rng.choice([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0], shape)
    return g.rng.standard_normal(shape).astype(np.float32).astype(np.float64)
