"""One run's work: build the method, pretrain it (or load its saved encoder), evaluate it.

Accelerate owns devices and processes (one CPU process is the degenerate case). Pretraining
resumes from the newest checkpoint of its pretraining identity and ends by saving the encoder
in the store; evaluation runs on the main process.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, get_grad_scaler, set_seed
from tqdm.auto import tqdm

from byol_bench.data import LoadedDataset
from byol_bench.evaluation import PROTOCOLS, EvalContext
from byol_bench.models.sync_batchnorm import revert_sync_batchnorm
from byol_bench.run.build import build_method
from byol_bench.run.cost import peak_memory
from byol_bench.run.monitoring import epoch_monitor
from byol_bench.store.checkpoints import checkpoint_dir, latest_checkpoint, remove_checkpoints
from byol_bench.store.encoders import encoder_fingerprints, encoder_path, load_encoder, save_encoder
from byol_bench.store.staleness import not_reusable, pretraining_fingerprints, set_aside, shapes_differ
from byol_bench.training.agreement import Agreement
from byol_bench.training.checkpointing import Checkpointing
from byol_bench.training.loop import train


def execute(config: dict, data: LoadedDataset, accelerator: Accelerator, log_scalar, info: dict,
            load_other=None, agreement: Agreement | None = None, results_dir: Path | None = None,
            run_id: str = "", action: str = "pretrain", checkpoint_every_s: float = 600.0,
            watch: dict | None = None) -> dict:
    """Build, pretrain (or load the saved encoder) and evaluate one run; returns the flat result
    dict of the result contract.

    `action` "evaluate": the encoder of this run's pretraining identity is saved in the store
    (byol_bench.store.encoders): it is loaded and evaluated, nothing trains, and the pretraining's
    curves and costs are copied from it. "pretrain": train, then save the encoder (main process,
    atomically) before evaluating, so a later grid that changes only evaluation trains nothing.

    Under DDP every process trains; the main process alone evaluates, while the others wait
    at an agreement check (a gloo group whose timeout is `run.wait_timeout_h`, so no NCCL
    collective is pending meanwhile). An exception on any process becomes the same RunFailed
    on every process (byol_bench.training.agreement), and whatever happened, the accelerator lets go of
    the run's model, optimizer and loader.

    `watch` (byol_bench.plan.grid.WATCH_KEYS): with a tracker (run.log_with; attached by the
    caller, byol_bench.run.tracking), the step-level figures every run.log_every_steps steps;
    the collapse signal every run.monitor_every epochs, and the kNN on val every run.monitor_knn_every epochs
    (byol_bench.run.monitoring), logged as curves too."""
    agreement = agreement or Agreement(1)
    watch = watch or {"log_with": "none", "log_every_steps": 50, "monitor_every": 1, "monitor_knn_every": 0}
    start = time.perf_counter()
    seed = config["seed"]
    fresh_grad_scaler(accelerator)
    try:
        set_seed(seed)
        card = data.card
        method = build_method(config, card.channels, data.num_classes, card.task).to(accelerator.device)
        info["world_size"] = accelerator.num_processes
        info["device"] = str(accelerator.device)
        info["cpu_threads"] = torch.get_num_threads()  # CPU numerics depend on it (harness/launch/local.py)
        path = encoder_path(results_dir, config["pretrain_hash"]) if results_dir is not None else None
        made_from = pretraining_fingerprints(config["fingerprints"], config["dataset"]) \
            if "fingerprints" in config else None

        def reject_encoder(payload: dict) -> str:
            return rejected(payload.get("fingerprints"), made_from, method.encoder.state_dict(), payload["state_dict"])

        saved = saved_encoder(path, accelerator, reject_encoder) \
            if action == "evaluate" and path is not None else None
        if saved is not None:
            if saved["state_dict"] is not None:  # the main process: the one that evaluates
                method.encoder.load_state_dict(saved["state_dict"])
            costs = saved["train_stats"]
            for name, value, step in saved["curves"]:
                log_scalar(name, value, step)
            info["pretrained_by"] = {"run_id": saved["run_id"], "pretrain_hash": saved["pretrain_hash"]}
            info["pretrain_steps"] = 0
        else:
            checkpointing = None
            if results_dir is not None:
                folder = checkpoint_dir(results_dir, config["pretrain_hash"])

                def reject_checkpoint(state: dict) -> str:
                    return rejected(state.get("fingerprints"), made_from, method.network_states(), state["networks"])

                checkpointing = Checkpointing(folder, checkpoint_every_s, accelerator.is_main_process,
                                              resume=resume_state(folder, accelerator, reject_checkpoint),
                                              fingerprints=made_from, gather_to_main=agreement.gather_to_main)
                if checkpointing.resume is not None:
                    info["resumed_from"] = {"step": checkpointing.resume["step"],
                                            "epoch": checkpointing.resume["epoch"],
                                            "batch": checkpointing.resume["batch"]}
            curves = checkpointing.curves if checkpointing is not None else []

            def log_and_keep(name, value, step):
                curves.append([name, float(value), int(step)])
                log_scalar(name, value, step)

            log_step = accelerator.log if watch["log_with"] != "none" else None  # same choice on every process
            epoch_end = epoch_monitor(method, data, config, accelerator, watch["monitor_knn_every"],
                                      every=watch["monitor_every"])
            with peak_memory(accelerator.device) as mem:
                stats = train(method, data, config, accelerator, seed, log_and_keep, agreement, checkpointing,
                              log_step=log_step, log_every_steps=watch["log_every_steps"], epoch_end=epoch_end)
            costs = {"img_per_s": stats.img_per_s, "seconds": stats.seconds, "peak_mem_mb": mem.peak_mb}
            info["pretrain_steps"] = stats.steps
            agreement.check(confirm_claim=True)  # every process finished training; the claim is still ours
            if accelerator.is_main_process and path is not None:
                save_encoder(path, revert_sync_batchnorm(method.encoder), costs, config["pretrain_hash"],
                             run_id, curves, made_from)
                remove_checkpoints(checkpointing.folder)  # the saved encoder supersedes them
        result: dict[str, float] = {}
        if accelerator.is_main_process:
            # Evaluation runs on this process alone: no SyncBatchNorm may all_gather in it.
            ctx = EvalContext(revert_sync_batchnorm(method.encoder), data, config, seed, accelerator,
                              load_dataset=load_other)
            seconds = info.setdefault("seconds", {})  # where the run's wall time went (not identity)
            for protocol in config["protocols"]:
                began = time.perf_counter()
                result.update(PROTOCOLS.get(protocol)(ctx))
                seconds[protocol] = time.perf_counter() - began  # the first pays the feature extraction
            info["selection"] = ctx.info
        # The other processes wait here through the evaluation; a run whose claim was taken
        # over meanwhile ends INTERRUPTED (ClaimLost), never COMPLETED.
        agreement.check(confirm_claim=True)
    except Exception as exc:
        raise agreement.outcome(exc) from exc
    finally:
        accelerator.free_memory()  # drop the run's prepared model, optimizer and loader
    result["cost/pretrain_img_per_s"] = costs["img_per_s"]
    result["cost/pretrain_s"] = costs["seconds"]
    result["cost/peak_mem_mb"] = costs["peak_mem_mb"]
    result["cost/wall_s"] = time.perf_counter() - start
    if watch["log_with"] != "none":  # the run's final figures beside its curves (main process only)
        accelerator.log({f"result/{k}": v for k, v in result.items()}, step=info.get("pretrain_steps", 0))
    return result


def rejected(stored_fingerprints: dict | None, made_from: dict | None, expected_state: dict, stored_state: dict) -> str:
    """Why a saved encoder or checkpoint may not be used for this run, in words ("" when it may):
    made from other pretraining code or data, or tensors that do not fit the model."""
    reasons = not_reusable(stored_fingerprints, made_from) if made_from is not None else []
    if reasons:
        return f"made from other pretraining code or data ({'; '.join(reasons)})"
    misfit = shapes_differ(expected_state, stored_state)
    if misfit:
        return f"does not fit the model ({'; '.join(misfit[:3])}{' ...' if len(misfit) > 3 else ''})"
    return ""


def drop_stale_encoder(results_dir: Path, config: dict) -> None:
    """Set aside the saved encoder of this run's pretraining identity when it was made from other
    pretraining code or data, before the run waits for or trains it (harness/run/encoder_wait.py
    would otherwise take it for this run's)."""
    path = encoder_path(results_dir, config["pretrain_hash"])
    if "fingerprints" in config and path.exists():
        reasons = not_reusable(encoder_fingerprints(path),
                               pretraining_fingerprints(config["fingerprints"], config["dataset"]))
        if reasons:
            set_aside(path, f"saved encoder made from other pretraining code or data ({'; '.join(reasons)})")


def resume_state(folder: Path, accelerator: Accelerator, reject=lambda state: "") -> dict | None:
    """The newest readable checkpoint of this pretraining identity that `reject` accepts (the
    main process picks it, setting unreadable and rejected ones aside; every process then reads
    that same file), or None."""
    found = None
    while accelerator.is_main_process:
        found = latest_checkpoint(folder)
        why = reject(found[1]) if found is not None else ""
        if not why:
            break
        set_aside(found[0], f"checkpoint {why}")
    chosen = [str(found[0]) if found else None]
    if accelerator.num_processes > 1:
        broadcast_object_list(chosen)
    if chosen[0] is None:
        return None
    if found is not None:
        return found[1]
    return torch.load(chosen[0], map_location="cpu", weights_only=True)


def saved_encoder(path: Path, accelerator: Accelerator, reject=lambda payload: "") -> dict | None:
    """The saved payload if the main process can read it and `reject` accepts it, else None on
    every process (the run then pretrains: a corrupt, missing or stale file costs time, never a
    wrong result). A rejected one is set aside."""
    payload = load_encoder(path) if accelerator.is_main_process else None
    if accelerator.is_main_process:
        why = reject(payload) if payload is not None else ""
        if payload is None:
            tqdm.write(f"saved encoder {path} unreadable: pretraining instead")
        elif why:
            set_aside(path, f"saved encoder {why}")
            payload = None
    readable = [payload is not None]
    if accelerator.num_processes > 1:
        broadcast_object_list(readable)
    if not readable[0]:
        return None
    if accelerator.is_main_process:
        return payload
    # The other processes evaluate nothing: they only need to know that no training happens.
    return {"state_dict": None, "curves": [], "run_id": "", "pretrain_hash": "",
            "train_stats": {"img_per_s": 0.0, "seconds": 0.0, "peak_mem_mb": 0.0}}


def fresh_grad_scaler(accelerator: Accelerator) -> None:
    """fp16: a new GradScaler per run (its scale and growth tracker would carry over)."""
    if accelerator.scaler is not None:
        kwargs = accelerator.scaler_handler.to_kwargs() if accelerator.scaler_handler is not None else {}
        accelerator.scaler = get_grad_scaler(accelerator.distributed_type, **kwargs)
