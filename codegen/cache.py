"""Persistent on-disk cache of compiled programs (object code + optimized IR).

Key: sha256 of the kernel program's full description (every buffer's name,
shape, dtype, kind, position and a constant's bytes; every kernel field), the
target triple, CPU name and features, the llvmlite, tracegrad and codegen
format versions, the BLAS route and the Python ABI mode.  Anything that can
change the generated code is in the key, so an entry is never reused for a
different program or machine.

Entry file `<key>.tgc`::

    MAGIC (8 bytes) | sha256(payload) (32) | len(payload) (8, little endian) | payload
    payload = len(meta) (4) | meta (JSON, holds the key) | len(obj) (8) | obj | zlib(IR text)

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

from tracegrad.passes.kernels import Buffer, Const, DotKernel, IndexMap, Load, LoopKernel, Op, Store

FORMAT_VERSION = 2  # bump when generated code or the entry layout changes
MAGIC = b"TGCACHE1"
SUFFIX = ".tgc"


@dataclass
class CacheEntry:
    meta: dict
    obj: bytes
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
        if isinstance(x, (Load, Op, Store, LoopKernel, DotKernel)):
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


def cache_key(kp, environment: dict) -> str:
    """sha256 hex of the program text and everything about the code's environment."""
    return text_key(describe_program(kp), environment)


def text_key(text: str, environment: dict) -> str:
    """sha256 hex of a text naming the code (a program, or a fixed function) and its environment."""
    h = hashlib.sha256()
    h.update(text.encode())
    h.update(json.dumps(environment, sort_keys=True).encode())
    h.update(str(FORMAT_VERSION).encode())
    return h.hexdigest()


# ---- the entry file --------------------------------------------------------------

def encode(entry: CacheEntry) -> bytes:
    meta = json.dumps(entry.meta, sort_keys=True).encode()
    payload = (struct.pack("<I", len(meta)) + meta + struct.pack("<Q", len(entry.obj)) + entry.obj
               + zlib.compress(entry.ir_text.encode(), 6))
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
        (mlen,) = struct.unpack("<I", payload[:4])
        meta = json.loads(payload[4:4 + mlen])
        (olen,) = struct.unpack("<Q", payload[4 + mlen:12 + mlen])
        obj = payload[12 + mlen:12 + mlen + olen]
        ir_text = zlib.decompress(payload[12 + mlen + olen:]).decode()
    except (struct.error, ValueError, zlib.error, UnicodeDecodeError):
        return None
    return CacheEntry(meta, obj, ir_text)


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
