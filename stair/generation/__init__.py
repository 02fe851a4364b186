"""Generation backends behind one interface: prompts in, n samples per prompt out.

`mode="step"` stops each sample at the end of a reasoning step or of the output (SI-MCTS expansion);
`mode="response"` runs on to the end of the final output (rollouts, evaluation). Backends are chosen
by name from `BACKENDS`; `vllm` and `openai` import their clients lazily.

    sampling.py              decoding settings, a sample, each sample's own random stream
    backends.py              the Backend interface, BackendParams and the registry (make_backend)
    transformers_backend.py  continuous batching over a transformers model (kv_cache.py: its caches)
    vllm_backend.py          an offline vLLM engine
    openai_backend.py        a client of an OpenAI-compatible completions server
"""

from stair.generation.backends import (
    BACKENDS,
    Backend,
    BackendParams,
    SequentialBackend,
    make_backend,
    resolve_device,
    restore_sampling_state,
    sampling_state,
)
from stair.generation.openai_backend import OpenAIBackend
from stair.generation.sampling import Completion, Mode, Sampling, request_seed, sample_tokens, stop_strings
from stair.generation.transformers_backend import TransformersBackend
from stair.generation.vllm_backend import VLLMBackend

__all__ = [
    "BACKENDS", "Backend", "BackendParams", "Completion", "Mode", "OpenAIBackend", "Sampling", "SequentialBackend",
    "TransformersBackend", "VLLMBackend", "make_backend", "request_seed", "resolve_device", "restore_sampling_state",
    "sample_tokens", "sampling_state", "stop_strings",
]
