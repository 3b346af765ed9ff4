"""Notes beside a leaderboard table whose runs were made from different pretraining code.

The runs record the code they ran (`fingerprints` in config.json, harness/plan/fingerprints.py);
the leaderboard reads the store alone, so it compares the runs of a table with each other, not
with today's checkout: `--rerun-outdated` is the command that compares with today's.
"""
from __future__ import annotations

from collections import Counter

from byol_bench.store.staleness import code_changes, unknown


def _version(files: list) -> tuple:
    return tuple(tuple(pair) for pair in files)


def code_notes(records: list) -> list[str]:
    """Lines for the table of these runs (one dataset label): shared pretraining code or a
    method's own code that differs between them, and runs that record no fingerprints."""
    lines = []
    known = [r for r in records if "code" not in unknown(r.config.get("fingerprints"))]
    shared = Counter(_version(r.config["fingerprints"]["shared_code"]) for r in known)
    if len(shared) > 1:
        newest = max(known, key=lambda r: int(r.run_id) if r.run_id.isdigit() else -1)
        ours = _version(newest.config["fingerprints"]["shared_code"])
        files = sorted({c.split(" ")[0] for v in shared if v != ours for c in code_changes(list(v), list(ours))})
        others = sum(n for v, n in shared.items() if v != ours)
        lines.append(f"Pretraining code differs between the runs of this table: {others} of {len(known)} runs "
                     f"were made with other shared code than the newest run ({newest.run_id}) in "
                     f"{', '.join(files)}. `--rerun-outdated` re-runs the runs not made with today's code.")
    by_method: dict[str, set] = {}
    for r in known:
        by_method.setdefault(r.key[1], set()).add(_version(r.config["fingerprints"]["method_code"]))
    mixed = [f"{m} ({len(v)} versions of {', '.join(sorted({f for ver in v for f, _ in ver}))})"
             for m, v in sorted(by_method.items()) if len(v) > 1]
    if mixed:
        lines.append(f"A method's own code differs between its runs here: {'; '.join(mixed)}.")
    blind = [r for r in records if unknown(r.config.get("fingerprints"))]
    if blind:
        parts = sorted({p for r in blind for p in unknown(r.config.get("fingerprints"))})
        lines.append(f"{len(blind)} of {len(records)} runs record no fingerprint of their "
                     f"{' and '.join(parts)} (stored before fingerprints): {' and '.join(parts)} unknown.")
    return lines
