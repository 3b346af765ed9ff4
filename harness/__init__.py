"""byol-bench: a benchmark harness for BYOL variants (README.md). Imported as `byol_bench`."""
