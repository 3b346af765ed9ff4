"""Can a SLURM partition ever start a run's job? Checked before submitting, and again while waiting.

Before submitting, the request of one run (CPUs, memory, GPUs, time) is compared with the
configuration of each node of the partition (`sinfo -N`, what the node has, not what is free
now) and with the partition's own limits (`scontrol show partition`: MaxTime, MaxCPUsPerNode,
MaxMemPerNode). If no node can ever hold it, the job would pend for ever (reason
PartitionConfig or BadConstraints): `misfit` says so in one line instead.

While waiting, a pending job's reason says whether it can still start. `stuck_reason` picks the
reasons that clear only if an administrator changes the configuration or the job is changed
(squeue's JOB REASON CODES, resource_limits.html): the request exceeds the partition
(PartitionConfig, PartitionTimeLimit, BadConstraints), a per-job association or QOS limit
(Assoc/QOS ...PerJob..., QOSMin...), an account or QOS the job may not use, a dependency that
never will be met. A per-user limit (AssocMaxJobsLimit, QOSMax...PerUser...) clears when the
user's running jobs end, so it counts only while none of the user's jobs runs (for
USER_LIMIT_GRACE_S: reasons are refreshed lazily in a busy queue). Reasons that clear by
themselves are waited on: Resources, Priority, aggregate limits (Grp..., per-account counts:
other jobs end), and a node or partition that is down, drained or reserved (ReqNodeNotAvail,
NodeDown, PartitionDown: brought back by its administrator), unless no node of the partition
could hold the job even when up.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

NEVER_REASONS = {"PartitionConfig", "PartitionTimeLimit", "BadConstraints", "AccountNotAllowed", "QOSNotAllowed",
                 "InvalidAccount", "InvalidQOS", "DependencyNeverSatisfied", "ReservationDeleted"}
# Reasons about the nodes' availability: stuck only if no node could hold the job even when up.
NODE_REASONS = {"ReqNodeNotAvail", "PartitionNodeLimit", "NodeDown", "Resources"}


# Limits on what one user may run at once: they clear when the user's running jobs end, so they
# cannot while none runs (a limit of 0, or below what this one job asks).
USER_LIMIT = re.compile(r"AssocMaxJobsLimit|QOSMax\w*PerUser\w*")
USER_LIMIT_GRACE_S = 120.0  # pending reasons of jobs deep in a busy queue are refreshed only this often


def never_clears(reason: str) -> bool:
    """A pending reason that no other job's end, no clock and no node coming back can clear."""
    reason = reason.split(",")[0].strip()
    if reason in NEVER_REASONS:
        return True
    # Per-job limits of an association or QOS (AssocMaxCpuPerJobLimit, QOSMaxGRESPerJob,
    # QOSMaxWallDurationPerJobLimit, ...) and QOS minimums (QOSMinGRES, QOSMinCpuNotSatisfied, ...).
    return bool(re.fullmatch(r"(Assoc|QOS)Max\w*PerJob\w*|QOSMin\w+", reason))


@dataclass(frozen=True)
class Request:
    """What one run's job asks of one node."""
    cpus: int
    mem_mb: int
    gpus: int
    time_min: int | None  # None: no time limit asked

    def describe(self) -> str:
        time = f", {self.time_min} min" if self.time_min is not None else ""
        return f"{_plural(self.cpus, 'CPU')}, {_gb(self.mem_mb)} memory, {_gpus(self.gpus)}{time}"


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: int


@dataclass(frozen=True)
class Partition:
    name: str
    nodes: tuple[Node, ...]
    max_time_min: int | None  # None: unlimited
    max_cpus_per_node: int | None
    max_mem_per_node_mb: int | None

    def usable(self, node: Node) -> Node:
        """The node as a job of this partition may use it (the partition's per-node limits)."""
        cpus = min(node.cpus, self.max_cpus_per_node) if self.max_cpus_per_node else node.cpus
        mem = min(node.mem_mb, self.max_mem_per_node_mb) if self.max_mem_per_node_mb else node.mem_mb
        return Node(node.name, cpus, mem, node.gpus)

    def describe_limits(self) -> str:
        return "no time limit" if self.max_time_min is None else f"a time limit of {self.max_time_min} min"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _gb(mb: int) -> str:
    return f"{mb / 1024:.4g} GB"


def _gpus(n: int) -> str:
    return "no GPU" if n == 0 else _plural(n, "GPU")


def _run(cmd: list[str]) -> str | None:
    """stdout, or None when the command is missing, fails or hangs."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


def parse_time_min(text: str) -> int | None:
    """SLURM's [days-]hours:minutes:seconds (or minutes, minutes:seconds), in whole minutes
    rounded up; None for UNLIMITED/infinite/NONE or what cannot be read."""
    text = text.strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not m:
        return None
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:  # days-hours[:minutes[:seconds]]
        seconds = days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # hours:minutes:seconds
        seconds = a * 3600 + b * 60 + c
    elif b is not None:  # minutes:seconds
        seconds = a * 60 + b
    else:  # minutes
        seconds = a * 60
    return -(-seconds // 60)


def gpu_count(gres: str) -> int:
    """GPUs in a GRES string: "gpu:4", "gpu:a100:2(S:0-1),gpu:v100:2", "(null)" -> 4, 4, 0."""
    total = 0
    for item in re.sub(r"\([^)]*\)", "", gres).split(","):
        parts = item.strip().split(":")
        if parts[0] in ("gpu", "gres/gpu"):
            total += int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
    return total


def _limit(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def read_partition(name: str) -> Partition | str | None:
    """The partition `name` ("": the cluster's default), the names of the partitions there are
    (a str) when scontrol does not list it, or None when scontrol or sinfo do not answer."""
    out = _run(["scontrol", "-o", "-a", "show", "partition"])
    if out is None:
        return None
    fields = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if "PartitionName=" in line]
    found = [f for f in fields if (f["PartitionName"] == name if name else f.get("Default") == "YES")]
    if not found:
        return ", ".join(f["PartitionName"] for f in fields) or "none"
    part = found[0]
    rows = _run(["sinfo", "-h", "-N", "-p", part["PartitionName"], "-o", "%N|%c|%m|%G"])
    if rows is None:
        return None
    nodes = []
    for row in rows.splitlines():
        cols = row.strip().split("|")
        if len(cols) == 4 and cols[1].isdigit() and cols[2].isdigit():
            nodes.append(Node(cols[0], int(cols[1]), int(cols[2]), gpu_count(cols[3])))
    max_time = part.get("MaxTime", "UNLIMITED")
    return Partition(part["PartitionName"], tuple(dict.fromkeys(nodes)), parse_time_min(max_time),
                     _limit(part.get("MaxCPUsPerNode")), _limit(part.get("MaxMemPerNode")))


KEYS = {"cpus": "slurm.cpus_per_run", "mem_mb": "slurm.mem_gb", "gpus": "slurm.gpus_per_run", "time": "slurm.time_min"}


def _short(request: Request, partition: Partition, node: Node) -> list[str]:
    """What of the request `node` lacks: keys of KEYS."""
    out = [k for k in ("cpus", "mem_mb", "gpus") if getattr(request, k) > getattr(node, k)]
    if request.time_min is not None and partition.max_time_min is not None and request.time_min > partition.max_time_min:
        out.append("time")
    return out


def misfit(request: Request, partition: Partition, always: bool = False) -> str | None:
    """None if some node of the partition can hold the request (unless `always`); otherwise one
    line: what was asked, what the partition's largest node has, and which slurm.* keys to change."""
    nodes = [partition.usable(n) for n in partition.nodes]
    if not nodes:
        return f"partition {partition.name} has no nodes; set slurm.partition to another partition"
    fits = any(not _short(request, partition, n) for n in nodes)
    if fits and not always:
        return None
    # The largest node: the one that lacks the fewest things, then the most CPUs, memory, GPUs.
    best = min(nodes, key=lambda n: (len(_short(request, partition, n)), -n.cpus, -n.mem_mb, -n.gpus))
    has = f"{_plural(best.cpus, 'CPU')}, {_gb(best.mem_mb)} memory, {_gpus(best.gpus)}, {partition.describe_limits()}"
    text = (f"asked {request.describe()} per run, {'and' if fits else 'but'} the largest node of partition "
            f"{partition.name} ({best.name}, {_plural(len(nodes), 'node')} in all) has {has}")
    fixes = []
    for key in [] if fits else _short(request, partition, best):
        if key == "cpus":
            fixes.append(f"{KEYS[key]} to at most {best.cpus}")
        elif key == "mem_mb":
            fixes.append(f"{KEYS[key]} to at most {int(best.mem_mb / 1024 * 10) / 10:g}")
        elif key == "gpus":
            fixes.append(f"{KEYS[key]} to 0 or slurm.partition to a GPU partition" if best.gpus == 0
                         else f"{KEYS[key]} to at most {best.gpus}")
        else:
            fixes.append(f"{KEYS[key]} to at most {partition.max_time_min}")
    return text + (f": set {'; '.join(fixes)}" if fixes else "")


def parse_mem_mb(text: str) -> int | None:
    """squeue's memory ("32G", "24105M", "1T", "500K") in MB; None if unreadable."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)B?", text.strip().upper())
    if not m:
        return None
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[m.group(2)]
    return int(float(m.group(1)) * scale)


def job_request(cpus: str, mem: str, tres: str, time_limit: str) -> Request | None:
    """The request of a pending job from squeue's %C, %m, %b and %l; None if unreadable."""
    mem_mb = parse_mem_mb(mem)
    if not cpus.isdigit() or mem_mb is None:
        return None
    gpus = gpu_count(tres.replace("gres/", "gres:").replace("gres:", "")) if tres not in ("N/A", "") else 0
    return Request(int(cpus), mem_mb, gpus, parse_time_min(time_limit))
