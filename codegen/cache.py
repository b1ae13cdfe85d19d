"""Persistent on-disk cache of compiled code: kernel units and programs.

Two kinds of entries, both keyed by a sha256 that includes the compiler's fingerprint
(fingerprint.py: a hash of the compiler's own source, its tuning constants, the
llvmlite/LLVM versions and the target CPU and features), so an entry is never reused
by a different compiler or machine:

* **a kernel unit** (units.py): its object code and optimized IR, keyed by its
  canonical text.  Programs share them: an unrolled loop of 200 steps finds the
  kernels a 50-step one stored.
* **a program**: the entry's object code and IR, the keys of the units it links, the
  layout the native call needs (signature, outputs, arena size) and its large
  constants.  Keyed by the optimized graph (`graph_key`: looked up before fusion
  planning, so a hit skips planning too) or by a kernel program (`program_key`).

Entry file `<key>.tgc`::

    MAGIC (8 bytes) | sha256(payload) (32) | len(payload) (8, little endian) | payload
    payload = len(meta) (4) | meta (JSON, holds the key) | n (4) | n x (len (8) | blob)
              | zlib(IR text)

A truncated, corrupted or foreign entry fails the length, checksum or key
check: it is reported as a miss (and rewritten by the next store), never
loaded.  Writes go to a temp file in the same directory and are published
with `os.replace`, so a reader sees a whole entry or none.

Location: `TRACEGRAD_CACHE_DIR` (default `~/.cache/tracegrad`); disabled by
`TRACEGRAD_DISABLE_CACHE=1`.  Both are read at call time.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass

import numpy as np

from tracegrad.ir import format_graph
from tracegrad.ir.core import subgraphs
from tracegrad.passes.kernels import (Buffer, CondStep, Const, DotKernel, ExternKernel, IndexMap,
                                     KernelProgram, Load, LoopKernel, LoopStep, Op, Store, TapeGrad)

MAGIC = b"TGCACHE2"
SUFFIX = ".tgc"


@dataclass
class CacheEntry:
    meta: dict
    blobs: list  # bytes: object code, constants
    ir_text: str


def cache_disabled_by_env() -> bool:
    return os.environ.get("TRACEGRAD_DISABLE_CACHE", "").strip().lower() not in ("", "0", "false", "no")


def default_dir() -> str:
    return os.environ.get("TRACEGRAD_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                  "tracegrad")


def resolve(disk_cache) -> "DiskCache | None":
    """The cache to use for `disk_cache` (None: from the environment; False: none; a path; a DiskCache)."""
    if disk_cache is False or cache_disabled_by_env():
        return None
    if isinstance(disk_cache, DiskCache):
        return disk_cache
    if disk_cache is None or disk_cache is True:
        return DiskCache(default_dir())
    return DiskCache(os.fspath(disk_cache))


# ---- the program's fingerprint --------------------------------------------------

class _Describer:
    """A canonical text of a kernel program: buffers are named by first appearance."""

    def __init__(self):
        self.ids = {}
        self.parts = []

    def buffer(self, buf: Buffer) -> str:
        if id(buf) not in self.ids:
            self.ids[id(buf)] = f"b{len(self.ids)}"
            digest = ""
            if buf.value is not None:
                value = np.ascontiguousarray(np.asarray(buf.value, dtype=buf.dtype))
                digest = hashlib.sha256(value.tobytes()).hexdigest()
            self.parts.append(f"{self.ids[id(buf)]}={buf.name}:{np.dtype(buf.dtype).str}"
                              f"{tuple(buf.shape)}:{buf.kind}:{buf.index}:{digest}")
        return self.ids[id(buf)]

    def value(self, x) -> str:
        if isinstance(x, Buffer):
            return self.buffer(x)
        if isinstance(x, IndexMap):
            return f"[{x.offset};{tuple(x.strides)};{x.bounds}]"
        if isinstance(x, Const):
            return f"const({np.asarray(x.value, x.dtype).tobytes().hex()}:{np.dtype(x.dtype).str})"
        if isinstance(x, (list, tuple)):
            return "(" + ",".join(self.value(v) for v in x) + ")"
        if isinstance(x, dict):
            return "{" + ",".join(f"{k}:{self.value(v)}" for k, v in sorted(x.items())) + "}"
        if isinstance(x, np.ndarray):
            value = np.ascontiguousarray(x)
            return f"array({value.dtype.str}{value.shape}:{hashlib.sha256(value.tobytes()).hexdigest()})"
        if isinstance(x, (Load, Op, Store, LoopKernel, DotKernel, LoopStep, CondStep, TapeGrad,
                          KernelProgram, ExternKernel)):
            fields = ",".join(f"{k}={self.value(v)}" for k, v in vars(x).items())
            return f"{type(x).__name__}({fields})"
        if isinstance(x, (np.dtype, type)):
            return np.dtype(x).str
        return repr(x)


def describe_program(kp) -> str:
    d = _Describer()
    ins = [d.buffer(b) for b in kp.inputs]
    outs = [d.buffer(b) for b in kp.outputs]
    consts = [d.buffer(b) for b in kp.consts]
    kernels = [d.value(k) for k in kp.kernels]
    return "\n".join([f"in {ins}", f"out {outs}", f"const {consts}", *kernels, *d.parts])


def _constvals(graph) -> list:
    """The constants of `graph` and of every body it holds (control flow), in print order."""
    vals = list(graph.constvals)
    for eqn in graph.eqns:
        for body in subgraphs(eqn):
            vals += _constvals(body)
    return vals


def describe_graph(graph) -> str:
    """The printed graph (its signature, equations, outputs and guards) and the bytes of
    its constants, which the printer names but does not show."""
    consts = [f"{np.asarray(v).dtype.str}{np.shape(v)}:"
              f"{hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()}"
              for v in _constvals(graph)]
    return format_graph(graph) + "\nconsts " + " ".join(consts)


def program_key(kp, environment: dict) -> str:
    """sha256 hex of a kernel program's text and its code's environment."""
    return text_key("program\n" + describe_program(kp), environment)


def graph_key(graph, environment: dict) -> str:
    """sha256 hex of an optimized graph's text and its code's environment."""
    return text_key("graph\n" + describe_graph(graph), environment)


def text_key(text: str, environment: dict) -> str:
    """sha256 hex of a text naming the code (a program, or a fixed function) and its environment."""
    h = hashlib.sha256()
    h.update(text.encode())
    h.update(json.dumps(environment, sort_keys=True).encode())
    return h.hexdigest()


# ---- the entry file --------------------------------------------------------------

def encode(entry: CacheEntry) -> bytes:
    meta = json.dumps(entry.meta, sort_keys=True).encode()
    parts = [struct.pack("<I", len(meta)), meta, struct.pack("<I", len(entry.blobs))]
    for blob in entry.blobs:
        parts += [struct.pack("<Q", len(blob)), bytes(blob)]
    payload = b"".join(parts) + zlib.compress(entry.ir_text.encode(), 6)
    return MAGIC + hashlib.sha256(payload).digest() + struct.pack("<Q", len(payload)) + payload


def decode(data: bytes) -> CacheEntry | None:
    """The entry, or None if anything about it is off."""
    head = len(MAGIC) + 32 + 8
    if len(data) < head or data[:len(MAGIC)] != MAGIC:
        return None
    digest = data[len(MAGIC):len(MAGIC) + 32]
    (length,) = struct.unpack("<Q", data[len(MAGIC) + 32:head])
    payload = data[head:]
    if length != len(payload) or hashlib.sha256(payload).digest() != digest:
        return None
    try:
        return _decode_payload(payload)
    except (struct.error, ValueError, zlib.error, UnicodeDecodeError):
        return None


def _decode_payload(payload: bytes) -> CacheEntry:
    (mlen,) = struct.unpack_from("<I", payload, 0)
    meta = json.loads(payload[4:4 + mlen])
    (count,) = struct.unpack_from("<I", payload, 4 + mlen)
    at, blobs = 8 + mlen, []
    for _ in range(count):
        (n,) = struct.unpack_from("<Q", payload, at)
        if at + 8 + n > len(payload):
            raise ValueError("blob past the end")
        blobs.append(payload[at + 8:at + 8 + n])
        at += 8 + n
    return CacheEntry(meta, blobs, zlib.decompress(payload[at:]).decode())


class DiskCache:
    """A directory of entries; every method fails soft (a cache must never break a compile)."""

    def __init__(self, directory: str):
        self.directory = directory

    def path(self, key: str) -> str:
        return os.path.join(self.directory, key + SUFFIX)

    def load(self, key: str) -> CacheEntry | None:
        try:
            with open(self.path(key), "rb") as f:
                data = f.read()
        except OSError:
            return None
        entry = decode(data)
        if entry is None or entry.meta.get("key") != key:
            return None
        return entry

    def store(self, key: str, entry: CacheEntry) -> bool:
        entry.meta["key"] = key
        try:
            os.makedirs(self.directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=SUFFIX, dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(encode(entry))
                os.replace(tmp, self.path(key))
            except BaseException:
                _remove(tmp)
                raise
        except OSError:
            return False
        return True

    def clear(self) -> int:
        """Remove every entry; returns how many."""
        n = 0
        try:
            names = os.listdir(self.directory)
        except OSError:
            return 0
        for name in names:
            if name.endswith(SUFFIX) and _remove(os.path.join(self.directory, name)):
                n += 1
        return n


def _remove(path) -> bool:
    try:
        os.remove(path)
        return True
    except OSError:
        return False
