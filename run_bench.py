#!/usr/bin/env python
"""Benchmark BYOL variants: `python run_bench.py --help`. Thin entry point; see harness/cli.py."""
import sys

from byol_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
