"""The interface every backend offers, and the registry that builds one by name from `BackendParams`."""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from stair.generation.openai_backend import CompletionsAPI, OpenAIBackend
from stair.generation.sampling import Completion, Mode, Sampling
from stair.generation.transformers_backend import TransformersBackend
from stair.generation.vllm_backend import VLLMBackend


class Backend(Protocol):
    tokenizer: object

    def generate(
        self, prompts: Sequence[str], n: int, sampling: Sampling, mode: Mode
    ) -> list[list[Completion]]: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


def sampling_state(backend: Backend) -> dict | None:
    """What a backend's next samples depend on besides its inputs (JSON-ready), if it can say; for resuming."""
    get = getattr(backend, "sampling_state", None)
    return get() if get is not None else None


def restore_sampling_state(backend: Backend, state: dict | None) -> None:
    if state is not None:
        backend.restore_sampling_state(state)


class SequentialBackend:
    """Wraps a backend to send one request per sample, as the official STAIR code does (for benchmarks)."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.tokenizer = inner.tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, mode: Mode) -> list[list[Completion]]:
        return [[self.inner.generate([p], 1, sampling, mode)[0][0] for _ in range(n)] for p in prompts]


@dataclass(frozen=True)
class BackendParams:
    """How to generate: `transformers` (CPU/GPU), `vllm` (GPU) or `openai` (a completions server)."""

    name: str = "transformers"
    device: str = "auto"
    dtype: str = "float32"
    batch_size: int = 256
    base_url: str = "http://127.0.0.1:8000/v1"
    served_model: str = ""
    concurrency: int = 16
    completions_api: CompletionsAPI = "vllm"
    gpu_memory_utilization: float = 0.85
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ValueError(f"backend.name={self.name!r} is not one of {sorted(BACKENDS)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"backend.dtype={self.dtype!r} is not one of {list(DTYPES)}")
        if not DEVICE.fullmatch(self.device):
            raise ValueError(f"backend.device={self.device!r} is not auto, cpu, cuda, cuda:<index> or mps")


DTYPES = ("float32", "bfloat16", "float16")
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _transformers(path, params: BackendParams, seed: int) -> Backend:
    return TransformersBackend.from_path(path, device=resolve_device(params.device), dtype=params.dtype,
                                         batch_size=params.batch_size, seed=seed,
                                         trust_remote_code=params.trust_remote_code)


def _vllm(path, params: BackendParams, seed: int) -> Backend:
    import sys

    # In a Ray search actor the engine spans the GPUs Ray gave it (mcts.gpus_per_worker), tensor parallel;
    # elsewhere (a driver gets no GPU ids from Ray) it uses one GPU.
    ray = sys.modules.get("ray")
    gpus = len(ray.get_gpu_ids()) if ray is not None and ray.is_initialized() else 0
    return VLLMBackend(str(path), seed=seed, dtype=params.dtype if params.dtype != "float32" else "bfloat16",
                       gpu_memory_utilization=params.gpu_memory_utilization,
                       trust_remote_code=params.trust_remote_code, tensor_parallel_size=max(gpus, 1))


def _openai(path, params: BackendParams, seed: int) -> Backend:
    return OpenAIBackend(params.base_url, params.served_model or str(path), tokenizer_path=str(path),
                         concurrency=params.concurrency, trust_remote_code=params.trust_remote_code,
                         completions_api=params.completions_api, seed=seed)


BACKENDS = {"transformers": _transformers, "vllm": _vllm, "openai": _openai}


def make_backend(path, params: BackendParams, seed: int = 0) -> Backend:
    """Build the backend named in `params.name` for the model at `path`."""
    if params.name not in BACKENDS:
        raise ValueError(f"backend.name={params.name!r} is not one of {sorted(BACKENDS)}")
    return BACKENDS[params.name](path, params, seed)
