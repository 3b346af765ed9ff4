"""`python -m byol_bench`: the same command as the `byol-bench` console script and run_bench.py."""
import sys

from byol_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
