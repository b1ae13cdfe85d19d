"""Tests run with TRACEGRAD_DEBUG=1: every graph the pipeline builds is verified
(the verifier is skipped outside debug mode to keep first calls fast)."""
import os

os.environ.setdefault("TRACEGRAD_DEBUG", "1")
