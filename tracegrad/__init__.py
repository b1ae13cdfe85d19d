"""tracegrad: eager autograd, tracing, IR transforms and LLVM compilation."""
