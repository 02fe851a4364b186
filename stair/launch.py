"""Run a training job in several processes with `accelerate launch`, from inside the stage that needs it.

A training stage hands its training call to `train_in_processes`. With one process the call runs here, as
it always has. With more, the stage re-executes itself under `accelerate launch` (the strategy's config file
from the project, the process and machine counts from params) and waits: every worker runs the same
training call, rank 0 saves the consolidated model and hands the call's result back through a file, and
the stage goes on (metrics, plots) in this process as before. A worker knows it is one by `WORKER_ENV`.
"""

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stair.config import ParamsError
from stair.store import ArtifactError
from stair.training.common import TrainParams

log = logging.getLogger(__name__)
# Set by the launching stage in its workers' environment: the file rank 0 writes the training result to.
WORKER_ENV = "STAIR_TRAINING_RESULT"
# Set by the user on machines other than machine 0 of a multi-machine run (params.yaml is shared): the rank.
MACHINE_RANK_ENV = "STAIR_MACHINE_RANK"
# Strategies by name; each is configs/accelerate/<name>.yaml. ddp copies the whole model into every
# process (on CPU-only machines over gloo: the CI test); fsdp and zero3 shard it.
STRATEGIES = ("ddp", "fsdp", "zero3")
SHARDED = ("fsdp", "zero3")


class LaunchError(ArtifactError):
    """The workers of a multi-process training run failed, so the model was not written (their output says why)."""


@dataclass(frozen=True)
class DistributedParams:
    """Where sft, dpo and prm train (the `distributed` section of params.yaml)."""

    processes: int = 1  # in all, over every machine (accelerate's --num_processes); 1 trains in the stage itself
    machines: int = 1
    strategy: str = "fsdp"  # ddp | fsdp | zero3: configs/accelerate/<strategy>.yaml
    cpu_offload: bool = False  # zero3: keep parameters and optimizer state in CPU memory
    main_address: str = "127.0.0.1"  # machine 0's address, for machines > 1
    main_port: int = 29500

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"distributed.strategy={self.strategy!r} is not one of {STRATEGIES}")
        if self.processes % self.machines:
            raise ValueError(f"distributed.processes={self.processes} does not divide over "
                             f"distributed.machines={self.machines}")
        if self.cpu_offload and self.strategy != "zero3":
            raise ValueError("distributed.cpu_offload is a zero3 option; set distributed.strategy: zero3")

    @property
    def launched(self) -> bool:
        return self.processes > 1


def per_process_batch(batch_size: int, params: DistributedParams, key: str) -> int:
    """Each process's share of the batch `batch_size` (the batch over all processes, so the optimisation is
    the same however many processes run it); ParamsError naming `key` where it does not divide."""
    if batch_size % params.processes:
        raise ParamsError(f"{key}={batch_size} is the batch over all processes, so it must divide by "
                          f"distributed.processes={params.processes}")
    return batch_size // params.processes


def check_strategy(params: DistributedParams, lora_r: int, key: str) -> None:
    """Refuse what the sharded strategies cannot save as one merged model: LoRA adapters (`key`.lora.r > 0)."""
    if params.launched and params.strategy in SHARDED and lora_r > 0:
        raise ParamsError(f"{key}.lora.r={lora_r} with distributed.strategy={params.strategy}: sharding is for "
                          f"full fine-tuning; use strategy ddp for LoRA, or lora.r: 0")


def is_worker() -> bool:
    return WORKER_ENV in os.environ


def is_main_worker() -> bool:
    """Rank 0 of a launched run (torchrun sets RANK); True outside one."""
    return int(os.environ.get("RANK", "0")) == 0


def launch_command(params: DistributedParams, config_dir: Path, module: str, argv: list[str],
                   mixed_precision: str, machine_rank: int = 0) -> list[str]:
    """The `accelerate launch` command that runs `python -m module argv` in `params.processes` processes."""
    command = [sys.executable, "-m", "accelerate.commands.launch",
               "--config_file", str(config_dir / f"{params.strategy}.yaml"),
               "--num_processes", str(params.processes), "--num_machines", str(params.machines),
               "--machine_rank", str(machine_rank), "--main_process_ip", params.main_address,
               "--main_process_port", str(params.main_port), "--mixed_precision", mixed_precision]
    if params.cpu_offload:
        command += ["--offload_param_device", "cpu", "--offload_optimizer_device", "cpu"]
    return [*command, "-m", module, *argv]


def train_in_processes(section: str, params: TrainParams, distributed: DistributedParams,
                       train: Callable[[TrainParams], dict], config_dir: Path) -> dict:
    """`train(params)` in the processes `distributed` asks for (re-running `python -m stages.<section>` under
    accelerate launch when more than one), `params.batch_size` being the batch over all of them."""
    check_strategy(distributed, params.lora.r, section)
    share = dataclasses.replace(params, batch_size=per_process_batch(params.batch_size, distributed,
                                                                     f"{section}.batch_size"))
    return in_processes(distributed, lambda: train(share), f"stages.{section}", sys.argv[1:], config_dir,
                        bf16=params.bf16, machine_rank=int(os.environ.get(MACHINE_RANK_ENV, "0")))


def in_processes(params: DistributedParams, train: Callable[[], dict], module: str, argv: list[str],
                 config_dir: Path, bf16: bool = False, machine_rank: int = 0) -> dict:
    """`train()`'s result, trained here (one process) or by `params.processes` workers running `module`.

    In a worker this runs `train()`, rank 0 writes its result for the launching process, and the worker
    exits (the stage's writing is left to the launcher). On machines other than machine 0 (`machine_rank`
    > 0) the stage exits once its workers are done: machine 0 writes every output.

    Raises:
        LaunchError: a worker failed or rank 0 left no result.
    """
    if is_worker():
        result = train()
        if is_main_worker():
            Path(os.environ[WORKER_ENV]).write_text(json.dumps(result))
        sys.exit(0)
    if not params.launched:
        return train()
    if params.strategy == "zero3":
        _require("deepspeed", "distributed.strategy zero3 needs DeepSpeed: pip install -e '.[zero3]'")
    mixed_precision = "bf16" if bf16 and _cuda_available() else "no"
    command = launch_command(params, config_dir, module, argv, mixed_precision, machine_rank)
    with tempfile.TemporaryDirectory(prefix="stair-launch-") as tmp:
        result_file = Path(tmp) / "result.json"
        log.info("training in %d processes (%s): %s", params.processes, params.strategy, " ".join(command))
        code = _run_group(command, {**os.environ, WORKER_ENV: str(result_file)})
        if code != 0:
            raise LaunchError(f"distributed training ({params.processes} processes, strategy {params.strategy}) "
                              f"failed with exit code {code}; the workers' output above says why")
        if machine_rank > 0:
            log.info("machine %d: training done; machine 0 writes the outputs", machine_rank)
            sys.exit(0)
        if not result_file.exists():
            raise LaunchError(f"distributed training ({params.processes} processes) ended without rank 0's result")
        return json.loads(result_file.read_text())


def _run_group(command: list[str], env: dict) -> int:
    """Run `command` in its own process group and wait; if this process is stopped meanwhile (Ctrl-C, a
    TERM), the launcher and every worker it started are stopped with it."""
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        return process.wait()
    except BaseException:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait()
        raise


def _require(module: str, message: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ParamsError(message)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
