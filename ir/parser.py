"""Parse the printed IR (`ir.printer`) back into a `Graph`.

The grammar is the printer's, jaxpr-style:

    graph  := "{" "lambda" [binder* ";"] binder* "." "let" eqn* "in" "(" atoms ")" "}" guard*
    eqn    := binder+ "=" PRIM ["[" (KEY "=" value)* "]"] atom*      (atoms on the params' line)
    binder := NAME ":" TYPE            TYPE := DTYPE "[" dims "]"
    atom   := NAME | NUMBER ":" DTYPE "[]"
    value  := graph | "(" value* ")" | NUMBER | STRING | NAME (a dtype, True/False/None, a word)
    guard  := "guard" atom "==" python-literal "(" KIND ")"

Names are unique across a graph and its bodies (the printer's `Namer` is shared),
and bodies are closed, so each graph resolves its names in a scope of its own.
Constant values are not part of the text: `constants(name) -> ndarray` supplies
them (the saved-program format stores them beside the graph).  Errors are
`IRSyntaxError` with the line and column.
"""
from __future__ import annotations

import ast
import re

import numpy as np

from .core import DTYPES, Eqn, Graph, Guard, Literal, ShapedArray, Var
from .primitives import PRIMITIVES
from .printer import FLOAT_BITS

DTYPE_OF = {name: dtype for dtype, name in DTYPES.items()}
_TOKEN = re.compile(r"""
    (?P<skip>[ \t\r]+|\#[^\n]*)
  | (?P<newline>\n)
  | (?P<number>-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf\b|nan\(0x[0-9a-f]+\)|nan\b))
  | (?P<string>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<op>==|[{}()\[\],:;.=])
""", re.VERBOSE)


class IRSyntaxError(ValueError):
    """The text is not a printed tracegrad graph; the message gives line and column."""


class Token:
    __slots__ = ("kind", "text", "line", "col")

    def __init__(self, kind, text, line, col):
        self.kind, self.text, self.line, self.col = kind, text, line, col


def tokenize(text: str) -> list:
    tokens, line, start, pos = [], 1, 0, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise IRSyntaxError(f"line {line}, column {pos - start + 1}: unexpected "
                                f"character {text[pos]!r}")
        kind = m.lastgroup
        if kind == "newline":
            line, start = line + 1, m.end()
        elif kind != "skip":
            tokens.append(Token(kind, m.group(), line, pos - start + 1))
        pos = m.end()
    tokens.append(Token("end", "", line, pos - start + 1))
    return tokens


class Parser:
    def __init__(self, text: str, constants=None):
        self.tokens, self.i = tokenize(text), 0
        self.constants = constants or (lambda name: None)

    # ---- tokens ------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, msg, tok=None):
        tok = tok or self.tok
        found = repr(tok.text) if tok.kind != "end" else "the end of the text"
        raise IRSyntaxError(f"line {tok.line}, column {tok.col}: {msg} (found {found})")

    def next(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def at(self, text) -> bool:
        return self.tok.text == text and self.tok.kind in ("op", "name")

    def expect(self, text) -> Token:
        if not self.at(text):
            self.error(f"expected {text!r}")
        return self.next()

    def at_in(self) -> bool:
        """At the keyword `in` of `in (outputs)` (a variable may be named `in` too)."""
        return self.at("in") and self.tokens[self.i + 1].text == "("

    def name(self, what="a name") -> str:
        if self.tok.kind != "name":
            self.error(f"expected {what}")
        return self.next().text

    # ---- types and atoms -----------------------------------------------------------------
    def aval(self) -> ShapedArray:
        tok = self.tok
        dtype = DTYPE_OF.get(self.name("a dtype"))
        if dtype is None:
            self.error(f"unknown dtype (one of {', '.join(DTYPE_OF)})", tok)
        self.expect("[")
        dims = []
        while not self.at("]"):
            tok = self.tok
            dims.append(self.integer())
            if dims[-1] < 0:
                self.error("a dimension is a non-negative integer", tok)
            if not self.at("]"):
                self.expect(",")
        self.next()
        return ShapedArray(tuple(dims), dtype)

    def integer(self) -> int:
        if self.tok.kind != "number" or not re.fullmatch(r"-?\d+", self.tok.text):
            self.error("expected an integer")
        return int(self.next().text)

    def binder(self, scope) -> Var:
        tok = self.tok
        name = self.name("a variable name")
        self.expect(":")
        var = Var(self.aval())
        if name in scope:
            self.error(f"{name} is defined twice", tok)
        scope[name] = var
        return var

    def atom(self, scope):
        tok = self.tok
        if tok.kind in ("number", "name") and self.tokens[self.i + 1].text == ":":
            return self.literal()
        name = self.name("a variable or a literal")
        if name not in scope:
            self.error(f"{name} is not defined here", tok)
        return scope[name]

    def literal(self) -> Literal:
        tok = self.next()
        self.expect(":")
        aval = self.aval()
        if aval.shape != ():
            self.error("a literal is a scalar", tok)
        text = {"True": "1", "False": "0"}.get(tok.text, tok.text)
        try:
            value = _float(text, aval.dtype) if aval.dtype.kind == "f" else int(text)
        except ValueError:
            self.error(f"{tok.text} is not a {aval} literal", tok)
        if not _representable(value, text, aval.dtype):
            self.error(f"{tok.text} is out of range for {aval}", tok)
        return Literal(value, aval.dtype)

    # ---- graphs ------------------------------------------------------------------------
    def graph(self) -> Graph:
        scope = {}
        self.expect("{")
        self.expect("lambda")
        first = self.binders(scope)
        consts, ins = (first, self.binders(scope)) if self.at(";") and self.next() else ([], first)
        self.expect(".")
        self.expect("let")
        eqns = []
        while not self.at_in():
            eqns.append(self.eqn(scope))
        self.next()
        self.expect("(")
        outs = self.atoms_until(")", scope)
        self.expect("}")
        vals = [self.constant(v, n) for n, v in scope.items() if v in consts]
        return Graph(ins, consts, vals, eqns, outs, self.guards(scope))

    def binders(self, scope) -> list:
        found = []
        while self.tok.kind == "name" and self.tokens[self.i + 1].text == ":":
            found.append(self.binder(scope))
        return found

    def atoms_until(self, close, scope) -> list:
        atoms = []
        while not self.at(close):
            atoms.append(self.atom(scope))
            if self.at(","):
                self.next()
        self.next()
        return atoms

    def constant(self, var, name):
        value = self.constants(name)
        if value is None:
            raise IRSyntaxError(f"no value for the constant {name} ({var.aval})")
        value = np.asarray(value)
        if value.shape != var.aval.shape or value.dtype != var.aval.dtype:
            raise IRSyntaxError(f"constant {name}: value of {value.dtype}{list(value.shape)} "
                                f"for {var.aval}")
        return value

    def eqn(self, scope) -> Eqn:
        outs = []
        while not self.at("="):
            outs.append(self.binder(scope))
        self.next()
        tok = self.tok
        prim = PRIMITIVES.get(self.name("a primitive"))
        if prim is None:
            self.error("unknown primitive", tok)
        params = self.params() if self.at("[") else {}
        line = self.tokens[self.i - 1].line
        inputs = []
        while self.tok.line == line and self.tok.kind in ("name", "number") and not self.at_in():
            inputs.append(self.atom(scope))
        return Eqn(prim, inputs, params, outs, src=f"line {line}")  # named by the verifier

    def params(self) -> dict:
        self.expect("[")
        params = {}
        while not self.at("]"):
            key = self.name("a parameter name")
            self.expect("=")
            tok = self.tok
            params[key] = self.value()
            if key == "dtype" and not isinstance(params[key], np.dtype):
                self.error(f"unknown dtype {params[key]!r} (one of {', '.join(DTYPE_OF)})", tok)
            if key in INTEGER_PARAMS and not _integers(params[key]):
                self.error(f"{key} must hold integers, not {params[key]!r}", tok)
        self.next()
        return params

    def value(self):
        tok = self.tok
        if self.at("{"):
            return self.graph()
        if self.at("("):
            self.next()
            items = []
            while not self.at(")"):
                items.append(self.value())
                if self.at(","):
                    self.next()
            self.next()
            return tuple(items)
        self.next()
        if tok.kind == "number":
            return _float(tok.text) if re.search(r"[.eEn]", tok.text) else int(tok.text)
        if tok.kind == "string":
            return ast.literal_eval(tok.text)
        if tok.kind == "name":
            words = {"True": True, "False": False, "None": None}
            return words[tok.text] if tok.text in words else DTYPE_OF.get(tok.text, tok.text)
        self.error("expected a parameter value", tok)

    def guards(self, scope) -> list:
        guards = []
        while self.at("guard"):
            self.next()
            var = self.atom(scope)
            self.expect("==")
            literal_tok = self.tok
            expected = self.python_literal(var.aval.dtype)
            self.expect("(")
            kind = self.name("the guard's kind")
            self.expect(")")
            if not _fits(expected, var.aval.dtype):
                self.error(f"the guard's expected value {expected!r} is not a value of "
                           f"{var.aval.dtype}", literal_tok)
            guards.append(Guard(var, _expected(expected, var.aval), kind))
        return guards

    def python_literal(self, dtype=np.float64):
        """A value printed by `repr(array.tolist())`: a number, a bool or nested lists (a NaN
        with payload bits, nan(0x...), read in `dtype`: the guarded value's)."""
        tok = self.next()
        if tok.text == "[":
            items = []
            while not self.at("]"):
                items.append(self.python_literal(dtype))
                if self.at(","):
                    self.next()
            self.next()
            return items
        if tok.kind == "number":
            if not re.search(r"[.eEn]", tok.text):
                return int(tok.text)
            try:
                return _float(tok.text, dtype)
            except ValueError as e:
                self.error(str(e), tok)
        if tok.text in ("True", "False"):
            return tok.text == "True"
        self.error("expected a number, a bool or a list", tok)


# Parameters that are sizes, positions or axes: a float there (1.5, nan) is an error at
# its line, not a TypeError when the program runs.
INTEGER_PARAMS = frozenset({"shape", "sizes", "starts", "steps", "strides", "perm", "axes",
                            "axis", "dimension", "length"})


def _integers(value) -> bool:
    if isinstance(value, tuple):
        return all(_integers(v) for v in value)
    return value is None or (isinstance(value, (int, np.integer)) and not isinstance(value, bool))


def _float(text: str, dtype=np.float64):
    """A float's text as the printer writes it: repr, or nan(0x<bits>) for a NaN with
    other bits than the quiet one (its bits, sign apart, in `dtype`)."""
    m = re.fullmatch(r"(-?)nan\(0x([0-9a-f]+)\)", text)
    if m is None:
        return float(text)
    dtype = np.dtype(dtype) if np.dtype(dtype) in FLOAT_BITS else np.dtype(np.float64)
    uint = FLOAT_BITS[dtype]
    sign_bit = 8 * dtype.itemsize - 1
    bits = int(m.group(2), 16) | (1 << sign_bit if m.group(1) else 0)
    if bits >= 1 << (sign_bit + 1):
        raise ValueError(f"{text}: more bits than {dtype} has")
    value = np.array(bits, uint).view(dtype)
    if value == value:
        raise ValueError(f"{text}: the bits of a number, not of a NaN")
    return value


def _fits(literal, dtype) -> bool:
    """Whether every number of a guard's expected value is one of `dtype`."""
    if isinstance(literal, list):
        return all(_fits(x, dtype) for x in literal)
    if dtype.kind == "b":
        return isinstance(literal, bool) or literal in (0, 1)
    if dtype.kind in "iu":
        return not isinstance(literal, float) and _representable(literal, str(literal), dtype)
    return True


def _expected(literal, aval):
    """A guard's expected value: of the guarded value's shape where the sizes agree (an
    empty array's nested lists lose its shape: [] for (0, 3))."""
    value = np.asarray(literal, aval.dtype)
    if value.shape != aval.shape and value.size == int(np.prod(aval.shape, dtype=np.int64)):
        value = value.reshape(aval.shape)
    return value


def _representable(value, text: str, dtype) -> bool:
    """Whether a literal's value is one of `dtype` (no overflow to inf, no wrapping)."""
    if dtype.kind == "b":
        return value in (0, 1)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return info.min <= value <= info.max
    if text.lstrip("+-").lower() in ("inf", "infinity", "nan") or text.lstrip("-").startswith("nan("):
        return True
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.asarray(value).astype(dtype)))


def parse_graph(text: str, constants=None) -> Graph:
    """The graph printed as `text`; `constants(name)` gives each constant's value.

    >>> from tracegrad.ir import GraphBuilder
    >>> text = "{ lambda a:f64[3] . let b:f64[3] = mul a 2.0:f64[] in (b) }"
    >>> str(parse_graph(text)) == str(parse_graph(str(parse_graph(text))))
    True
    """
    parser = Parser(text, constants)
    graph = parser.graph()
    if parser.tok.kind != "end":
        parser.error("expected the end of the graph")
    return graph
