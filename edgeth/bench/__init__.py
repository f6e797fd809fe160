"""Benchmarks: the measurement core (core.py: timing, memory, machine peak, tables) and
bundle benchmarking per program and end to end against PyTorch eager (bundle.py)."""
from edgeth.bench.core import (  # noqa: F401
    SCHEMA, add_flops, add_ratios, bench_table_markdown, bench_table_rows, machine_info, matmul_peak_gflops,
    measure, set_threads, time_calls)
