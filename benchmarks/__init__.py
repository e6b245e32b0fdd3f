"""Benchmarks: the uncertainty-quality table of the papers, latency and overhead ratios, load on a server.

`python -m benchmarks [--quick] [--only quality|latency|load]` (or `make bench`) writes Markdown
tables and PNG plots to `benchmarks/results/`.
"""
