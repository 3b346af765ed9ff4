"""The rules of harness/launch/slurm_fit.py without a cluster (issue 15, item 10): which pending
reasons can never clear, a request against a partition of several different nodes, SLURM's
time and GRES formats. On the real one-node SLURM: tests/test_slurm_fit.py.
"""
from __future__ import annotations

import pytest

from byol_bench.launch.slurm import _stuck
from byol_bench.launch.slurm_fit import Node, Partition, Request, gpu_count, misfit, never_clears, parse_time_min


@pytest.mark.parametrize("reason", ["PartitionConfig", "PartitionTimeLimit", "BadConstraints", "InvalidQOS",
                                    "AccountNotAllowed", "DependencyNeverSatisfied", "QOSMaxGRESPerJob",
                                    "QOSMaxWallDurationPerJobLimit", "AssocMaxCpuPerJobLimit",
                                    "AssocMaxCpuMinutesPerJobLimit", "QOSMinGRES", "QOSMinCpuNotSatisfied"])
def test_reasons_that_never_clear(reason):
    assert never_clears(reason)


@pytest.mark.parametrize("reason", ["Resources", "Priority", "BeginTime", "Dependency", "JobHeldUser",
                                    "AssocMaxJobsLimit", "QOSMaxJobsPerUserLimit", "QOSMaxSubmitJobPerUserLimit",
                                    "QOSMaxCpuPerUserLimit", "AssocGrpCpuLimit", "QOSGrpGRES", "MaxJobsPerAccount",
                                    "PartitionDown", "PartitionInactive", "ReqNodeNotAvail", "NodeDown", "None"])
def test_reasons_that_clear_when_other_jobs_end_or_a_node_or_partition_comes_back(reason):
    """Aggregate and per-user limits free up as other jobs end; a node or partition that is down
    comes back (a node that could never hold the job is caught by the partition check instead)."""
    assert not never_clears(reason)


def test_a_request_is_matched_against_each_node_of_the_partition_not_the_largest_of_each_kind():
    part = Partition("mixed", (Node("cpu1", 64, 256 * 1024, 0), Node("gpu1", 16, 128 * 1024, 4)),
                     max_time_min=24 * 60, max_cpus_per_node=None, max_mem_per_node_mb=None)
    assert misfit(Request(16, 64 * 1024, 2, 60), part) is None
    line = misfit(Request(32, 64 * 1024, 1, 60), part)  # 32 CPUs: only cpu1; a GPU: only gpu1
    assert "largest node of partition mixed (cpu1, 2 nodes in all) has 64 CPUs" in line
    assert line.endswith("set slurm.gpus_per_run to 0 or slurm.partition to a GPU partition")
    line = misfit(Request(8, 1024, 1, 48 * 60), part)
    assert "a time limit of 1440 min" in line and line.endswith("set slurm.time_min to at most 1440")
    capped = Partition("capped", part.nodes, None, max_cpus_per_node=8, max_mem_per_node_mb=None)
    assert "slurm.cpus_per_run to at most 8" in misfit(Request(16, 1024, 0, 60), capped)


def test_slurm_time_and_gres_formats():
    assert [parse_time_min(t) for t in ["UNLIMITED", "30", "30:30", "04:00:00", "1-00:00:00", "2-12"]] == \
        [None, 30, 31, 240, 1440, 3600]
    assert [gpu_count(g) for g in ["(null)", "gpu:4", "gpu:a100:2(S:0-1),gpu:v100:2", "mps:100,gpu:1"]] == [0, 4, 4, 1]


def test_a_per_user_limit_is_stuck_only_while_none_of_the_users_jobs_runs():
    """AssocMaxJobsLimit clears when the user's running jobs end; with none running (a limit of 0,
    or below what this one job asks) it never will, and that must hold for a while (reasons of
    jobs deep in a busy queue are refreshed lazily) before --wait gives up."""
    def row(state, reason, user="me"):
        return {"state": state, "reason": reason, "partition": "debug", "cpus": "1", "mem": "1G", "tres": "N/A",
                "time": "10:00", "user": user}
    mine = {"7_0": row("PENDING", "AssocMaxJobsLimit"), "7_1": row("PENDING", "PartitionConfig")}
    others_run = {**mine, "9": row("RUNNING", "None", user="someone-else")}
    assert _stuck(mine, others_run) == {"7_0": 120.0, "7_1": 0.0}
    assert _stuck(mine, {**others_run, "8": row("RUNNING", "None")}) == {"7_1": 0.0}
    assert _stuck({"7_2": row("PENDING", "QOSMaxCpuPerUserLimit")}, {}) == {"7_2": 120.0}
    assert _stuck({"7_3": row("PENDING", "Priority"), "7_4": row("RUNNING", "None")}, {}) == {}
