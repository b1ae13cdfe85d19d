"""What compiled functions tell about themselves: `TRACEGRAD_LOG` topics and `TRACEGRAD_DUMP`.

* `TRACEGRAD_LOG` is a comma-separated list of topics, as `TORCH_LOGS` is:
  `recompiles` logs one line per new specialization with its reason (the
  first call's signature, the arguments that changed and how, or the guard
  that failed with its source line and old and new values); `info` (or `1`)
  logs the progress of long compiles (codegen/compiler.py); `debug` both, in
  more detail.  Lines go to the "tracegrad" logger, given a stderr handler if
  the application configured none.
* `TRACEGRAD_DUMP=<dir>` writes each specialization into a folder of its own,
  `<dir>/<function>-<pid>-<n>/`: `specialization.txt` (signature, reason,
  guards, compile and per-stage seconds) and one file per stage (traced,
  gradient, optimized, kernels, llvm, asm).  With `TRACEGRAD_DUMP_MODE=file`
  each specialization is one file `<dir>/<function>-<pid>-<n>.txt` holding
  the same sections.
"""
from __future__ import annotations

import itertools
import logging
import os
import threading

LOG = logging.getLogger("tracegrad")
_COUNTER = itertools.count()


def log_topics() -> set:
    """The topics `TRACEGRAD_LOG` asks for; configures the logger when it asks for any."""
    topics = {t.strip().lower() for t in os.environ.get("TRACEGRAD_LOG", "").split(",")}
    topics.discard("")
    if topics:
        if LOG.level == logging.NOTSET or LOG.level > logging.INFO:
            LOG.setLevel(logging.DEBUG if "debug" in topics else logging.INFO)
        if not LOG.hasHandlers():
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            LOG.addHandler(handler)
    return topics


def _summary(spec) -> str:
    lines = [f"signature: ({', '.join(spec.arg_texts)})", f"reason: {spec.reason}",
             f"compile seconds: {spec.compile_seconds:.4f}", "stage seconds:"]
    lines += [f"  {stage}: {sec:.4f}" for stage, sec in spec.stage_seconds.items()]
    lines.append(f"guards: {len(spec.guards)}")
    lines += [f"  {g.kind} at {g.src} == {g.expected.tolist()!r}" for g in spec.guards]
    return "\n".join(lines) + "\n"


def _sections(spec) -> dict:
    texts = {"specialization": _summary(spec)}
    texts.update({stage: text() for stage, text in spec.stages.items()})
    texts["llvm"] = spec.native.llvm_ir()
    texts["asm"] = spec.native.asm()
    return texts


def _write(path, text):
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def dump_specialization(label, spec):
    """TRACEGRAD_DUMP=<dir>: write this specialization's stages (module docstring)."""
    out = os.environ.get("TRACEGRAD_DUMP")
    if not out:
        return
    os.makedirs(out, exist_ok=True)
    name = f"{label}-{os.getpid()}-{next(_COUNTER)}"
    texts = _sections(spec)
    if os.environ.get("TRACEGRAD_DUMP_MODE", "").lower() == "file":
        _write(os.path.join(out, name + ".txt"),
               "".join(f"==== {stage} ====\n{text}\n" for stage, text in texts.items()))
        return
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    for i, (stage, text) in enumerate(texts.items()):
        _write(os.path.join(folder, f"{i:02d}-{stage}.txt"), text)
