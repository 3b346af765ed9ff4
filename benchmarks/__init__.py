"""Timing and memory tools (not the product): `python -m benchmarks.step`, `benchmarks.loader`,
`benchmarks.memory`. They build what they time through the runner's own construction path."""
