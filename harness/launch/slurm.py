"""--launcher slurm [--wait]: the runs still to do as one submitit job array, one run per task.

Submitting. The grid is expanded here; runs already completed are skipped, runs claimed by a
live invocation are left to it, and so are runs whose array task from an earlier submission
is still pending or running (results/slurm/jobs.json remembers run -> job id; `squeue` says
which are alive). Every dataset is decoded into the shared cache first, so missing data fails
at submission and the tasks memory-map the cache. The command prints the array's job ids and
returns; `--wait` then polls `squeue` and the store, prints a line whenever the state changes,
and writes the leaderboard when every task has ended (no deadline: a SLURM queue can take days).

Resources come from the config's `slurm:` section (harness/config.py; not in any run's
identity): partition, account, qos, time_min, gpus_per_run, tasks_per_run, cpus_per_run,
mem_gb, array_parallelism, max_requeue, signal_delay_s, folder, poll_s. A request that no node of
the partition can ever hold is refused before anything is submitted, sbatch's own refusal is one
line, and `--wait` ends (cancelling them) on jobs pending for a reason that cannot clear:
harness/launch/slurm_fit.py.

A task. `RunJob(run_hash)` is pickled by submitit (cloudpickle, by reference: the job runs this
interpreter, which imports the installed byol_bench; from a checkout, the batch script puts the
checkout on PYTHONPATH). It starts in the submitter's folder. It expands the same grid against its
own run's records in the store as it is then (found by run hash in the store's index,
harness/store/run_index.py, which the submitter completes for stores made before it: no task
reads the whole store), keeps the one run, and
runs it through `run_grid`, as the inline launcher would: the run claim, checkpoints, resume
and the Sacred record are the same. torch's threads are set to the task's CPUs
(SLURM_CPUS_PER_TASK) unless OMP_NUM_THREADS is set: on CPU a run's numbers depend on its
thread count (harness/launch/local.py). With several tasks per run (gpus_per_run > 1, or
tasks_per_run), each task sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and
MASTER_PORT from submitit's JobEnvironment before creating the Accelerator, and the run is
data-parallel over the job's GPUs (on CPU: gloo), one node per run.

Signals, preemption and requeue. submitit installs its handlers when the task starts:
SIGUSR2 (sent by SLURM `signal_delay_s` before the time limit, `--signal=USR2@...`, and by
`scancel --signal=USR2`) -> checkpoint the callable and `scontrol requeue` the task; SIGTERM ->
logged and ignored. While the run is active, harness/training/preemption.py replaces both with its own:
the run checkpoints at the next step, Sacred records it INTERRUPTED and `Preempted` (a
KeyboardInterrupt, which submitit would not catch) propagates out of run_grid, which has put
submitit's handlers back. RunJob then decides:

- SIGUSR2 (time limit or preemption warning): it hands the signal to submitit's own handler,
  as if submitit had caught it. That handler tells a time-out (past 80% of time_min) from a
  preemption, calls `RunJob.checkpoint` (the same callable and run hash: the state that matters
  is the checkpoint in the store), requeues the task with `scontrol requeue` and exits; after
  `max_requeue` time-outs it refuses and the task ends with submitit's UncompletedJobError
  (submitit counts a signal as a time-out after min(80%, time_min - 10 min) of the time limit:
  with time_min <= 10 every SIGUSR2 is one). SLURM holds a requeued job about two minutes. The
  requeued task resumes the run from its checkpoint (info.json: `resumed_from`). Tested:
  `scancel --signal=USR2` mid-run; the task requeues itself and completes.
- SIGTERM (`scancel`, or SLURM's own preemption in CANCEL/REQUEUE mode): the task returns
  {"status": "INTERRUPTED"} and ends; it does not requeue itself (a cancelled job cannot be,
  and whoever cancelled it wanted it stopped). The run stays in the store, checkpointed and
  INTERRUPTED; submitting the same command again submits it alone and it resumes from the
  checkpoint. Tested: one array task scancelled mid-run, resubmitted, final store and
  leaderboard equal to an inline run.

A signal that comes while no run is active (the task is starting, or evaluating after its
encoder is saved) meets submitit's handlers or the run's end: nothing trained is lost (an
evaluation cut short by the kill is redone from the saved encoder by the next submission).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from byol_bench.errors import UserError
from byol_bench.store.atomic_io import atomic_write_text
from byol_bench.store.records import StoreReader
from byol_bench.store.run_index import note_run
from byol_bench.store.watch import RunWatch
from byol_bench.launch.common import (Progress, checkout_on_path, finish, progress_line, runs_to_do, summary_counts,
                                      warm_cache, watch)
from byol_bench.launch.slurm_fit import (NODE_REASONS, USER_LIMIT, USER_LIMIT_GRACE_S, Request, job_request, misfit,
                                      never_clears, read_partition)

try:
    import submitit
    from submitit.helpers import Checkpointable
except ImportError:  # the inline and local launchers do not need it
    submitit = None
    Checkpointable = object

JOBS_FILE = "jobs.json"
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
          "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED", "PREEMPTED"}


def slurm_settings(cfg: dict) -> dict:
    """The `slurm:` section checked as a whole: one UserError naming every bad value."""
    s = dict(cfg["slurm"])
    tasks = s["tasks_per_run"] or max(1, s["gpus_per_run"])
    problems = []
    for key, low in (("time_min", 1), ("gpus_per_run", 0), ("tasks_per_run", 0), ("cpus_per_run", 1),
                     ("array_parallelism", 1), ("max_requeue", 0), ("signal_delay_s", 0)):
        if s[key] < low:
            problems.append(f"slurm.{key} must be at least {low}, got {s[key]}")
    if s["poll_s"] <= 0:
        problems.append(f"slurm.poll_s must be positive, got {s['poll_s']}")
    if s["mem_gb"] <= 0:
        problems.append(f"slurm.mem_gb must be positive, got {s['mem_gb']}")
    if s["gpus_per_run"] > 1 and s["tasks_per_run"] not in (0, s["gpus_per_run"]):
        problems.append(f"slurm.tasks_per_run must be 0 or gpus_per_run ({s['gpus_per_run']}): one task per GPU, "
                        f"got {s['tasks_per_run']}")
    if tasks >= 1 and s["cpus_per_run"] >= 1 and s["cpus_per_run"] % tasks:
        problems.append(f"slurm.cpus_per_run ({s['cpus_per_run']}) must divide over the run's {tasks} tasks")
    if s["time_min"] >= 1 and s["signal_delay_s"] >= s["time_min"] * 60:
        problems.append(f"slurm.signal_delay_s ({s['signal_delay_s']}) must be shorter than slurm.time_min "
                        f"({s['time_min']} min)")
    if problems:
        raise UserError("bad slurm settings: " + "; ".join(problems))
    s["tasks"] = tasks
    return s


def executor_parameters(s: dict) -> dict:
    """submitit SlurmExecutor parameters for the validated settings `s`."""
    folder = checkout_on_path()
    pythonpath = [f"export PYTHONPATH={shlex.quote(folder)}${{PYTHONPATH:+:$PYTHONPATH}}"] if folder else []
    mem = f"{int(s['mem_gb'])}GB" if float(s["mem_gb"]).is_integer() else f"{int(s['mem_gb'] * 1024)}MB"
    params = {"job_name": "byol-bench", "time": s["time_min"], "nodes": 1, "ntasks_per_node": s["tasks"],
              "cpus_per_task": s["cpus_per_run"] // s["tasks"], "mem": mem, "signal_delay_s": s["signal_delay_s"],
              "array_parallelism": s["array_parallelism"],
              # The task runs this interpreter (submitit's default) in the submitter's folder, so a
              # relative path means what it meant here; from a checkout it imports that checkout.
              "setup": [f"cd {shlex.quote(os.getcwd())}", *pythonpath]}
    if s["gpus_per_run"]:
        params["gpus_per_node"] = s["gpus_per_run"]
    for key in ("partition", "account", "qos"):
        if s[key]:
            params[key] = s[key]
    return params


def master_port(job_id: str) -> int:
    """A port for the run's rendezvous, the same on every task of a job, different between jobs."""
    return 20000 + int("".join(c for c in str(job_id) if c.isdigit()) or 0) % 20000


def _job_setup() -> None:
    """In the task, before torch builds its thread pool or the Accelerator: threads, and the
    torch.distributed variables when the run has several tasks."""
    import torch

    cpus = int(os.environ.get("SLURM_CPUS_PER_TASK", "0") or 0)
    if cpus and not os.environ.get("OMP_NUM_THREADS"):
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(cpus)
        torch.set_num_threads(cpus)
    env = submitit.JobEnvironment()
    if env.num_tasks > 1:
        os.environ.update({"RANK": str(env.global_rank), "WORLD_SIZE": str(env.num_tasks),
                           "LOCAL_RANK": str(env.local_rank),
                           "LOCAL_WORLD_SIZE": str(env.num_tasks // max(1, env.num_nodes)),
                           "MASTER_ADDR": env.hostnames[0], "MASTER_PORT": str(master_port(env.raw_job_id))})


def task_plan(cfg: dict, results_dir: Path, run_hash: str) -> tuple[list, StoreReader]:
    """An array task's run (a list of one, or none when it left the grid) planned against its own
    run's records alone, and the reader that asks them again before it runs: the folders the
    store's index lists for its run hash (byol_bench.store.run_index), never the whole store."""
    from byol_bench.plan.grid import expand_grid

    store = StoreReader(results_dir / "runs", cfg["run"]["stale_after_s"], run_hashes=[run_hash])
    specs = [s for s in expand_grid(cfg, results_dir / "runs", store.load()) if s.config["run_hash"] == run_hash]
    return specs, store


def note_submitted(runs_dir: Path, launched: RunWatch, run_hashes: list[str]) -> None:
    """Note in the store's index every folder the submitter read of the runs it submits: folders
    made before the index (each run notes itself since), which the tasks then find there."""
    folders = launched.folders()
    for run_hash in run_hashes:
        for run_id in folders.get(run_hash, []):
            note_run(runs_dir, run_hash, run_id)


class RunJob(Checkpointable):
    """One run of the grid in a SLURM task; `checkpoint` (submitit.helpers.Checkpointable)
    resubmits the same callable and run hash: the run's state is in the store's checkpoints."""

    def __init__(self, cfg: dict, results_dir: str):
        self.cfg, self.results_dir = cfg, results_dir

    def __call__(self, run_hash: str) -> dict:
        _job_setup()
        import torch
        from accelerate import Accelerator, DataLoaderConfiguration
        from byol_bench.training.preemption import Preempted
        from byol_bench.run.grid_runner import run_grid

        cfg, results_dir = self.cfg, Path(self.results_dir)
        accelerator = Accelerator(mixed_precision=cfg["pretrain"]["mixed_precision"], cpu=not torch.cuda.is_available(),
                                  dataloader_config=DataLoaderConfiguration(non_blocking=True))
        specs, store = task_plan(cfg, results_dir, run_hash)
        if not specs:
            raise RuntimeError(f"run {run_hash} is not in the grid any more: did the code or the configs change "
                               "since submission? Submit again.")
        out = {"run_hash": run_hash, "label": specs[0].label, "job": os.environ.get("SLURM_JOB_ID", "")}
        cache_dir = Path(cfg["data"]["cache_dir"]) if cfg["data"]["cache_dir"] else results_dir / "cache"
        try:
            counts = run_grid(specs, accelerator, results_dir, Path(cfg["data"]["root"]), cache_dir,
                              wait_timeout_h=cfg["run"]["wait_timeout_h"],
                              checkpoint_every_min=cfg["run"]["checkpoint_every_min"],
                              stale_after_s=cfg["run"]["stale_after_s"], heartbeat_s=cfg["run"]["heartbeat_s"],
                              store=store)
        except Preempted as exc:
            self._requeue_on_usr_signal(exc.signum)
            return {**out, "status": "INTERRUPTED", "signal": signal.Signals(exc.signum).name}
        status = next((k for k in ("COMPLETED", "FAILED", "INTERRUPTED", "claimed elsewhere", "skipped")
                       if counts.get(k)), "?")
        return {**out, "status": status}

    @staticmethod
    def _requeue_on_usr_signal(signum: int) -> None:
        """SIGUSR2 (submitit's preemption/time-out signal): let submitit's own handler, which
        byol_bench.training.preemption put back, checkpoint this callable and requeue the task (it exits)."""
        if signum != submitit.JobEnvironment._usr_sig():
            return
        handler = signal.getsignal(signum)
        if isinstance(getattr(handler, "__self__", None), submitit.core.job_environment.SignalHandler):
            handler(signum, None)  # checkpoint_and_try_requeue: requeues and exits, or raises UncompletedJobError


def queue() -> dict[str, dict[str, str]] | None:
    """job id -> {state, reason, partition, cpus, mem, tres, time, user} of every job squeue
    lists (array tasks one by one), None if squeue fails."""
    try:
        proc = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T|%r|%P|%C|%m|%b|%l|%u"], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    names = ("state", "reason", "partition", "cpus", "mem", "tres", "time", "user")
    return {cols[0]: dict(zip(names, cols[1:])) for cols in (line.strip().split("|") for line in proc.stdout.splitlines())
            if len(cols) == 9}


def active_jobs() -> dict[str, str] | None:
    """job id -> state of every job squeue lists (array tasks one by one), None if squeue fails."""
    jobs = queue()
    return None if jobs is None else {job_id: row["state"] for job_id, row in jobs.items()}


def settings_request(s: dict) -> Request:
    """What one run's job asks of its node (executor_parameters: one node, --mem per node)."""
    mem_mb = int(s["mem_gb"]) * 1024 if float(s["mem_gb"]).is_integer() else int(s["mem_gb"] * 1024)
    return Request(s["cpus_per_run"], mem_mb, s["gpus_per_run"], s["time_min"])


def check_fits(s: dict):
    """Refuse, before anything is submitted, a request that no node of the partition can ever
    hold (it would pend for ever). Returns the partition read (None when scontrol/sinfo did not
    answer; the str of known partitions when slurm.partition is not one: sbatch says so)."""
    partition = read_partition(s["partition"])
    if partition is None:
        print("slurm: scontrol/sinfo did not answer: the request is submitted unchecked against the partition",
              file=sys.stderr)
    elif not isinstance(partition, str) and (problem := misfit(settings_request(s), partition)):
        raise UserError(f"no node can ever run this job array, nothing submitted: {problem}")
    return partition


def _sbatch_refusal(exc: Exception, captured: str, s: dict, partition) -> UserError:
    """sbatch's refusal as one line: its own words, what was asked, and what the partition has."""
    detail = getattr(exc, "output", b"") or b""
    detail = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
    lines = [line.strip() for line in (str(exc) + "\n" + captured + "\n" + detail).splitlines()]
    said = list(dict.fromkeys(re.sub(r"^(sbatch: )?error: ", "", line) for line in lines
                              if line.startswith(("sbatch: error:", "error:"))))
    said = "; ".join(said) or next((line for line in reversed(lines) if line), "no message")
    asked = settings_request(s).describe()
    if isinstance(partition, str) and not s["partition"]:
        where = f"slurm.partition is not set and the cluster has no default partition (partitions: {partition})"
    elif isinstance(partition, str):
        where = f"slurm.partition {s['partition']!r} is not among this cluster's partitions ({partition})"
    elif partition is not None:
        where = misfit(settings_request(s), partition, always=True)
    else:
        where = f"asked {asked} per run"
    return UserError(f"sbatch refused the job array: {said} ({where}); nothing submitted")


def _read_jobs(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_jobs(path: Path, jobs: dict[str, str]) -> None:
    atomic_write_text(path, json.dumps(jobs, indent=1, sort_keys=True))


def _absolute(cfg: dict, results_dir: Path) -> dict:
    """The config with its paths made absolute: the tasks may see the submitter's folder elsewhere."""
    out = json.loads(json.dumps(cfg))
    out["data"]["root"] = str(Path(cfg["data"]["root"]).resolve())
    out["data"]["cache_dir"] = str(Path(cfg["data"]["cache_dir"]).resolve() if cfg["data"]["cache_dir"]
                                   else results_dir / "cache")
    return out


def submit(cfg: dict, specs: list, results_dir: Path, wait: bool = False) -> int:
    settings = slurm_settings(cfg)
    if submitit is None:
        raise UserError('--launcher slurm needs submitit, the slurm extra: pip install "byol-bench[slurm]" '
                        '(in a checkout: pip install -e ".[slurm]")')
    results_dir = Path(results_dir).resolve()
    folder = Path(settings["folder"]).resolve() if settings["folder"] else results_dir / "slurm"
    stale = cfg["run"]["stale_after_s"]
    skipped = sum(s.done for s in specs)
    jobs_path = folder / JOBS_FILE
    known = _read_jobs(jobs_path)
    # Runs whose task of an earlier submission is queued or running are left to it (and --wait
    # waits for it too); then runs claimed by another live invocation are left to that.
    alive = active_jobs() if any(not s.done and s.config["run_hash"] in known for s in specs) else {}
    if alive is None:
        print("slurm: squeue did not answer; runs of earlier submissions that are still queued may be submitted "
              "twice (their claims keep them from running twice)", file=sys.stderr)
        alive = {}
    queued = [s for s in specs if not s.done and alive.get(known.get(s.config["run_hash"], "")) in ACTIVE]
    todo, held = runs_to_do([s for s in specs if s not in queued], results_dir, stale, cfg["run"]["heartbeat_s"])
    for s in held + queued:
        why = f"job {known[s.config['run_hash']]}, still queued or running" if s in queued else \
            "the live invocation that holds its claim"
        print(f"slurm: left to {why}: {s.label}")
    if not todo:
        print(f"slurm: nothing to submit ({skipped} completed, {len(held) + len(queued)} queued or running elsewhere)")
        if wait and queued:
            return wait_for(cfg, results_dir, queued, [known[s.config["run_hash"]] for s in queued], skipped,
                            len(held), watch(queued, results_dir / "runs", stale))
        if wait:
            finish(cfg, results_dir, summary_counts([], skipped, len(held), {}))
        return 0

    try:
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=settings["max_requeue"])
        executor.update_parameters(**executor_parameters(settings))
    except RuntimeError as exc:  # "Could not detect srun": not on a SLURM cluster
        raise UserError(f"--launcher slurm: {exc}") from None
    partition = check_fits(settings)
    job_cfg = _absolute(cfg, results_dir)
    warm_cache(todo, Path(job_cfg["data"]["root"]), Path(job_cfg["data"]["cache_dir"]))
    launched = watch(todo + queued, results_dir / "runs", stale)
    hashes = [s.config["run_hash"] for s in todo]
    note_submitted(results_dir / "runs", launched, hashes)  # each task looks its own run up there
    captured = io.StringIO()  # submitit prints sbatch's stderr itself before raising: one line, ours
    try:
        with contextlib.redirect_stderr(captured):
            jobs = executor.map_array(RunJob(job_cfg, str(results_dir)), hashes)
    except (subprocess.CalledProcessError, submitit.core.utils.FailedJobError) as exc:
        raise _sbatch_refusal(exc, captured.getvalue(), settings, partition) from None
    ids = [job.job_id for job in jobs]
    _write_jobs(jobs_path, {**_read_jobs(jobs_path), **dict(zip(hashes, ids))})
    array = ids[0].split("_")[0]
    print(f"slurm: submitted {len(jobs)} run(s) as job array {array} (logs in {folder})")
    for spec, job_id in zip(todo, ids):
        print(f"  {job_id}  {spec.label}  [{spec.config['run_hash']}]")
    if not wait:
        print(f"slurm: `squeue -j {array}` or `--status` to follow; the same command with --wait to wait for them")
        return 0
    return wait_for(cfg, results_dir, todo + queued, ids + [known[s.config["run_hash"]] for s in queued],
                    skipped, len(held), launched)


def wait_for(cfg: dict, results_dir: Path, launched: list, job_ids: list[str], skipped: int, held: int,
             watched: RunWatch) -> int:
    """Poll squeue and the store every slurm.poll_s until no job of `job_ids` is queued or
    running; then the leaderboard. Returns 0 when every launched run ended COMPLETED or FAILED
    (a failed run is an outcome, as inline), 1 when some were interrupted or never ran."""
    poll_s = cfg["slurm"]["poll_s"]
    progress = Progress("slurm")
    suspects: dict[str, float] = {}  # job -> since when it has been pending for a reason that cannot clear
    while True:
        rows = queue()
        states = watched.poll()
        if rows is None:
            progress.show(progress_line(states) + " | squeue did not answer")
        else:
            mine = {j: rows[j] for j in job_ids if j in rows}
            if not mine:
                progress.show(progress_line(states) + " | jobs: all ended")
                break
            progress.show(progress_line(states) + " | jobs: " + _jobs_word(mine))
            now = time.monotonic()
            grace = _stuck(mine, rows)
            suspects = {j: suspects.get(j, now) for j in grace}
            # Seen at two looks at least (and past its grace): not a reason of the moment.
            confirmed = sorted(j for j, since_s in suspects.items() if since_s < now and now - since_s >= grace[j])
            if confirmed:
                raise _never_start(confirmed, mine)
        time.sleep(poll_s)
    states = watched.poll(fresh=True)  # as the last task left it
    counts = summary_counts(launched, skipped, held, states)
    finish(cfg, results_dir, counts)
    return 0 if counts["COMPLETED"] + counts["FAILED"] == len(launched) else 1


def _jobs_word(rows: dict[str, dict[str, str]]) -> str:
    """"2 running, 4 pending (Priority)": the jobs' states, and why the pending ones wait."""
    words = [row["state"].lower() + (f" ({row['reason']})" if row["state"] == "PENDING" else "") for row in rows.values()]
    return ", ".join(f"{words.count(w)} {w}" for w in sorted(set(words)))


def _stuck(rows: dict[str, dict[str, str]], everyone: dict[str, dict[str, str]]) -> dict[str, float]:
    """The pending jobs of `rows` that can never start (harness/launch/slurm_fit.py), each with how
    long that must last before we believe it: a reason that cannot clear; a per-user limit while
    none of the user's jobs (in `everyone`, the whole queue) runs; a node reason (down, drained,
    busy) for a job that no node of its partition could hold even when up."""
    stuck, partitions = {}, {}
    for job_id, row in rows.items():
        if row["state"] != "PENDING":
            continue
        reason = row["reason"].split(",")[0].strip()
        if never_clears(reason):
            stuck[job_id] = 0.0
        elif USER_LIMIT.fullmatch(reason):
            if not any(r["user"] == row["user"] and r["state"] != "PENDING" for r in everyone.values()):
                stuck[job_id] = USER_LIMIT_GRACE_S
        elif reason in NODE_REASONS:
            request = job_request(row["cpus"], row["mem"], row["tres"], row["time"])
            if row["partition"] not in partitions:
                partitions[row["partition"]] = read_partition(row["partition"])
            partition = partitions[row["partition"]]
            if request and partition and not isinstance(partition, str) and misfit(request, partition):
                stuck[job_id] = 0.0
    return stuck


def _never_start(stuck: list[str], rows: dict[str, dict[str, str]]) -> UserError:
    """Cancel the jobs that can never start and say, in one line, what they ask and what their
    partition has. Cancelled, not left: a job that can never start would otherwise hold its runs
    for ever (results/slurm/jobs.json leaves a run to its queued job), so the next submission
    with better settings would not submit them."""
    subprocess.run(["scancel", *stuck], capture_output=True, timeout=60)
    row = rows[stuck[0]]
    request = job_request(row["cpus"], row["mem"], row["tres"], row["time"])
    partition = read_partition(row["partition"])
    if request and partition is not None and not isinstance(partition, str):
        what = misfit(request, partition, always=True)
    else:
        what = f"partition {row['partition']}"
    others = len(rows) - len(stuck)
    left = f"; {others} other job(s) of these runs left in the queue" if others else ""
    why = row["reason"] + (" while no job of the user runs" if USER_LIMIT.fullmatch(row["reason"]) else "")
    return UserError(f"{len(stuck)} job(s) ({', '.join(stuck)}) can never start: pending for {why}; {what}; "
                     f"cancelled them{left}; change the slurm.* settings and submit again")
