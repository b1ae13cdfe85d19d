"""Traced programs saved as text, and loaded back (`TracedProgram.save`, `load_program`).

The file is the printed IR itself, in sections that start with `%% `:

    # tracegrad program
    %% format 1
    %% outputs (*, {'loss': *})          the output pytree (`*` is a leaf; tree_text.py)
    %% graph
    { lambda a:f64[3] ; b:f64[3] . let ... in (...) }
      guard ...
    %% constants embedded                or: %% constants sidecar prog.tgir.npz
    a f64[3] <base64 of the little-endian bytes>

Constants are embedded as base64 (exact bits), or written to a `.npz` sidecar
next to the file (`constants="sidecar"`), keyed by their printed names.  A
loaded program takes its array inputs as flat positional arguments (static
arguments of the traced function are already folded into the graph) and
returns the saved output structure.  Guards are kept; their source lines are
not part of the text.
"""
from __future__ import annotations

import base64
import os
import zipfile

import numpy as np

from tracegrad.ir import Graph, ShapedArray, verify
from tracegrad.ir.verifier import VerifyError
from tracegrad.ir.parser import DTYPE_OF, IRSyntaxError, parse_graph
from tracegrad.ir.printer import Namer, format_graph

from .tree_text import parse_tree_text, tree_text

FORMAT = 1


def _all_consts(graph: Graph, found=None) -> dict:
    """{var: value} of every constant in `graph` and its bodies."""
    from tracegrad.ir.core import subgraphs

    found = {} if found is None else found
    found.update(zip(graph.constvars, graph.constvals))
    for eqn in graph.eqns:
        for body in subgraphs(eqn):
            _all_consts(body, found)
    return found


def _named_consts(namer: Namer, graph: Graph) -> list:
    """(name, var, value) for every name a constant was printed under: a body's
    constants are named in the body's printing, once per time it is printed."""
    return [(name, var, value) for var, value in _all_consts(graph).items()
            for name in namer.printed.get(var, [])]


def _constant_lines(named) -> list:
    lines = []
    for name, var, value in named:
        data = np.ascontiguousarray(value, value.dtype.newbyteorder("<"))
        lines.append(f"{name} {var.aval} {base64.b64encode(data.tobytes()).decode()}")
    return lines


def _outputs_text(out_tree) -> str:
    """The `%% outputs` line's structure; a ValueError for one that would not load back
    (dict keys that are not Python literals: inf, nan, frozensets, objects)."""
    text = tree_text(out_tree)
    try:
        parse_tree_text(text)
    except ValueError as e:
        raise ValueError(f"the outputs' structure {text} cannot be saved: {e} (use str, int, "
                         "finite float keys, or tuples of them)") from None
    return text


def program_text(program, constants="embedded", sidecar=None) -> str:
    """The saved-file text of `program` (see the module docstring)."""
    namer = Namer()
    text = format_graph(program.graph, namer=namer)
    lines = ["# tracegrad program", f"%% format {FORMAT}",
             f"%% outputs {_outputs_text(program.out_tree)}", "%% graph", text]
    if constants == "sidecar":
        lines.append(f"%% constants sidecar {os.path.basename(sidecar)}")
    else:
        lines += ["%% constants embedded"] + _constant_lines(_named_consts(namer, program.graph))
    return "\n".join(lines) + "\n"


def save_program(program, path, constants="embedded"):
    """Write `program` to `path`; `constants="sidecar"` puts array values in `path + ".npz"`."""
    if constants not in ("embedded", "sidecar"):
        raise ValueError(f"constants must be 'embedded' or 'sidecar', not {constants!r}")
    path = os.fspath(path)
    sidecar = path + ".npz"
    text = program_text(program, constants, sidecar)  # (first: a program that cannot be
    if constants == "sidecar":  # saved raises before any file is touched)
        namer = Namer()
        format_graph(program.graph, namer=namer)
        np.savez(sidecar, **{name: val for name, _, val in _named_consts(namer, program.graph)})
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# ---- loading ---------------------------------------------------------------------------

def _sections(text: str, path: str) -> dict:
    sections, current = {}, None
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("%% "):
            key, _, arg = line[3:].partition(" ")
            if key in sections:
                raise IRSyntaxError(f"{path}, line {number}: a second '%% {key}' section")
            current = sections[key] = {"arg": arg.strip(), "lines": [], "line": number}
        elif current is not None:
            current["lines"].append(line)
        elif line.strip() and not line.startswith("#"):
            raise IRSyntaxError(f"{path}, line {number}: text before the first %% section")
    for key in ("format", "outputs", "graph", "constants"):
        if key not in sections:
            raise IRSyntaxError(f"{path}: no '%% {key}' section: not a saved tracegrad program")
    if sections["format"]["arg"] != str(FORMAT):
        raise IRSyntaxError(f"{path}: format {sections['format']['arg']!r}; this version of "
                            f"tracegrad reads format {FORMAT}")
    return sections


def _embedded(section, path) -> dict:
    values = {}
    for offset, line in enumerate(section["lines"], section["line"] + 1):
        if not line.strip():
            continue
        try:
            name, typ, *rest = line.split()
            if name in values:
                raise ValueError(f"a second line for {name}")
            data = rest[0] if rest else ""  # an empty array has no bytes
            aval = _aval(typ)
            raw = np.frombuffer(base64.b64decode(data, validate=True),
                                aval.dtype.newbyteorder("<"))
            values[name] = raw.astype(aval.dtype).reshape(aval.shape)
        except (ValueError, KeyError) as e:
            raise IRSyntaxError(f"{path}, line {offset}: bad constant ({e})") from None
    return values


def _aval(text: str) -> ShapedArray:
    dtype, _, dims = text.partition("[")
    dims = tuple(int(d) for d in dims.rstrip("]").split(",") if d)
    if any(d < 0 for d in dims):
        raise ValueError(f"a negative dimension in {text}")
    return ShapedArray(dims, DTYPE_OF[dtype])


def _constants(section, path) -> dict:
    kind, _, rest = section["arg"].partition(" ")
    if kind == "embedded":
        return _embedded(section, path)
    if kind == "sidecar":
        file = os.path.join(os.path.dirname(path), rest.strip())
        if not os.path.exists(file):
            raise IRSyntaxError(f"{path}, line {section['line']}: the constants' sidecar "
                                f"{file!r} does not exist (it is saved next to the program)")
        return _sidecar(file, path, section["line"])
    raise IRSyntaxError(f"{path}, line {section['line']}: constants are 'embedded' or "
                        f"'sidecar FILE', not {section['arg']!r}")


def _sidecar(file, path, line) -> dict:
    """The arrays of a `.npz` sidecar (never pickled objects); a damaged one is the
    program's syntax error."""
    try:
        with np.load(file, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise IRSyntaxError(f"{path}, line {line}: the constants' sidecar {file!r} is not a "
                            f"readable .npz of numeric arrays ({type(e).__name__}: "
                            f"{str(e).split('. ')[0]})") from None


def _out_tree(text: str, path: str):
    try:
        return parse_tree_text(text)
    except ValueError as e:
        raise IRSyntaxError(f"{path}: bad output structure {text!r}: {e}") from None


def load_parts(path):
    """(graph, out_tree) of the program saved at `path`."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise IRSyntaxError(f"{path}: not a tracegrad program (the file is not UTF-8 text)") from None
    return parse_program(text, path)


def parse_program(text: str, path: str = "<text>"):
    """(graph, out_tree) of a saved program's text (`path` names it in errors and locates
    a sidecar)."""
    sections = _sections(text.removeprefix("\ufeff"), path)  # (an editor's byte-order mark)
    values = _constants(sections["constants"], path)
    graph_section = sections["graph"]
    text = "\n" * graph_section["line"] + "\n".join(graph_section["lines"])
    try:
        graph = parse_graph(text, values.get)
    except IRSyntaxError as e:
        raise IRSyntaxError(f"{path}, {e}") from None
    try:
        verify(graph)
    except VerifyError as e:  # equations name their line (parse_graph)
        raise IRSyntaxError(f"{path}: {e}") from None
    tree = _out_tree(sections["outputs"]["arg"], path)
    if tree.num_leaves != len(graph.outvars):
        raise IRSyntaxError(f"{path}: the outputs section has {tree.num_leaves} leaves, the "
                            f"graph {len(graph.outvars)} outputs")
    return graph, tree


def load_program(path):
    """The `TracedProgram` saved at `path`: call it with the flat array inputs."""
    return _program(*load_parts(path))


def loads_program(text: str):
    """The `TracedProgram` of a saved program's text (`program_text` writes it)."""
    return _program(*parse_program(text))


def _program(graph, out_tree):
    from .trace import TracedProgram, _flatten_args

    in_tree = _flatten_args(tuple(range(len(graph.invars))), ())[1]
    return TracedProgram(graph, in_tree, out_tree, {}, fun=None)
