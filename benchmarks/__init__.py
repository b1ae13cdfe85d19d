"""Benchmark harness: tracegrad against its peers on the reference workloads.

Run it from the repository root with ``python -m benchmarks.run`` (see
``benchmarks/README.md``). Nothing here is imported by tracegrad itself.
"""
