"""Generation backends behind one interface: prompts in, n samples per prompt out.

`mode="step"` stops each sample at the end of a reasoning step or of the output (SI-MCTS expansion);
`mode="response"` runs on to the end of the final output (rollouts, evaluation). Backends are chosen
by name from `BACKENDS`; `vllm` and `openai` import their clients lazily.
"""

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, Protocol

from stair.format import OUTPUT_CLOSE, STEP_CLOSE

log = logging.getLogger(__name__)

Mode = Literal["step", "response"]


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; temperature 0 means greedy."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@dataclass(frozen=True)
class Completion:
    text: str = field(repr=False)
    n_tokens: int
    stopped: bool  # ended at a stop token/string (False: cut at max_new_tokens)


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


def stop_strings(mode: Mode) -> list[str]:
    return [STEP_CLOSE, OUTPUT_CLOSE] if mode == "step" else [OUTPUT_CLOSE]


class TransformersBackend:
    """Batched `model.generate`: left-padded prompts, KV cache, `num_return_sequences=n`, stop token ids."""

    def __init__(self, model, tokenizer, batch_size: int = 256, seed: int = 0):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = batch_size  # sequences (prompts x n) per generate call
        self.seed = seed
        self.calls = 0
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:  # a model as the Hub ships it (Llama-3) has none; left padding is masked
            tokenizer.pad_token = tokenizer.eos_token
        # Ends of text: the tokenizer's EOS and every id the model's generation config stops at (Llama-3:
        # <|end_of_text|> and <|eot_id|>); their text is dropped from completions.
        configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        configured = [] if configured is None else [configured] if isinstance(configured, int) else configured
        ends = {tokenizer.eos_token_id, *configured} - {None}
        # A model without the format tokens (an external judge) maps them to None or <unk>: it stops at its end.
        step, output = (tokenizer.convert_tokens_to_ids(t) for t in (STEP_CLOSE, OUTPUT_CLOSE))
        unknown = {None, getattr(tokenizer, "unk_token_id", None)}
        self._stop_ids = {
            "step": sorted({step, output, *ends} - unknown),
            "response": sorted({output, *ends} - unknown),
        }
        self._strip = sorted({t for t in (tokenizer.pad_token, *tokenizer.convert_ids_to_tokens(sorted(ends))) if t})

    @classmethod
    def from_path(cls, path, device: str = "cpu", dtype: str = "float32", batch_size: int = 256,
                  seed: int = 0, trust_remote_code: bool = False) -> "TransformersBackend":
        from stair.modeling import load_model

        model, tokenizer = load_model(path, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        return cls(model, tokenizer, batch_size=batch_size, seed=seed)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def sampling_state(self) -> dict:
        return {"calls": self.calls}  # each call's seed is derived from the call count

    def restore_sampling_state(self, state: dict) -> None:
        self.calls = state["calls"]

    def _decode(self, ids: list[int]) -> str:
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        for token in self._strip:
            text = text.replace(token, "")
        return text

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, mode: Mode) -> list[list[Completion]]:
        import torch

        if not prompts:
            return []
        self.calls += 1
        stop_ids = self._stop_ids[mode]
        pad_id = self.tokenizer.pad_token_id
        # Sort by length so each chunk pads little; results go back to the caller's order.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        per_chunk = max(1, self.batch_size // n)
        results: list[list[Completion]] = [[] for _ in prompts]
        for start in range(0, len(order), per_chunk):
            chunk = order[start : start + per_chunk]
            batch = self.tokenizer([prompts[i] for i in chunk], return_tensors="pt", padding=True,
                                   add_special_tokens=False).to(self.model.device)
            kwargs = dict(do_sample=False) if sampling.greedy else dict(
                do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p,
                top_k=sampling.top_k or None,
            )
            # One seed per call, derived from the call count: same calls in the same order, same samples.
            torch.manual_seed(self.seed * 1_000_003 + self.calls * 7919 + start)
            with torch.no_grad():
                out = self.model.generate(
                    **batch, num_return_sequences=1 if sampling.greedy else n,
                    max_new_tokens=sampling.max_new_tokens, eos_token_id=stop_ids, pad_token_id=pad_id,
                    **kwargs,
                )
            new = out[:, batch["input_ids"].shape[1] :].tolist()
            copies = 1 if sampling.greedy else n
            for row, ids in enumerate(new):
                kept = []
                stopped = False
                for tok in ids:
                    if tok == pad_id and tok not in stop_ids:
                        break
                    kept.append(tok)
                    if tok in stop_ids:
                        stopped = True
                        break
                completion = Completion(self._decode(kept), len(kept), stopped)
                results[chunk[row // copies]].extend([completion] * (n if sampling.greedy else 1))
        return results


class SequentialBackend:
    """Wraps a backend to send one request per sample, as the official STAIR code does (for benchmarks)."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.tokenizer = inner.tokenizer

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, mode: Mode) -> list[list[Completion]]:
        return [[self.inner.generate([p], 1, sampling, mode)[0][0] for _ in range(n)] for p in prompts]


class VLLMBackend:
    """Offline vLLM engine with prefix caching: one request per prompt with `SamplingParams(n=...)`.

    Each request carries its own seed, derived from the engine seed, the call count and its place in the
    call, so the same calls in the same order draw the same samples (and a resumed search repeats them).
    `tensor_parallel_size` > 1 splits one engine over that many GPUs.
    """

    def __init__(self, path: str, seed: int = 0, dtype: str = "bfloat16", gpu_memory_utilization: float = 0.85,
                 trust_remote_code: bool = False, max_model_len: int | None = None, tensor_parallel_size: int = 1):
        from vllm import LLM  # optional GPU extra

        self.llm = LLM(model=str(path), seed=seed, dtype=dtype, enable_prefix_caching=True,
                       gpu_memory_utilization=gpu_memory_utilization, trust_remote_code=trust_remote_code,
                       max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size)
        self.tokenizer = self.llm.get_tokenizer()
        self.seed = seed
        self.calls = 0

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def sampling_state(self) -> dict:
        return {"calls": self.calls}  # each request's seed is derived from the call count

    def restore_sampling_state(self, state: dict) -> None:
        self.calls = state["calls"]

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, mode: Mode) -> list[list[Completion]]:
        from vllm import SamplingParams

        if not prompts:
            return []
        self.calls += 1
        params = [SamplingParams(
            n=1 if sampling.greedy else n,
            temperature=max(sampling.temperature, 0.0),
            top_p=sampling.top_p,
            top_k=sampling.top_k if sampling.top_k > 0 else -1,
            max_tokens=sampling.max_new_tokens,
            stop=stop_strings(mode),
            include_stop_str_in_output=True,
            skip_special_tokens=False,
            seed=self.seed * 1_000_003 + self.calls * 7919 + i,
        ) for i in range(len(prompts))]
        # Token ids, not text: vLLM would tokenize text with add_special_tokens and put a second BOS in front
        # of the one the chat template already wrote.
        token_prompts = [{"prompt_token_ids": ids} for ids in
                         self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
        outputs = self.llm.generate(token_prompts, params, use_tqdm=False)
        results = []
        for request in outputs:
            samples = [Completion(o.text, len(o.token_ids), o.finish_reason == "stop") for o in request.outputs]
            results.append(samples * n if sampling.greedy else samples)
        return results


class OpenAIBackend:
    """Any OpenAI-compatible /v1/completions server (vLLM serve, SGLang, TGI), requests sent concurrently."""

    def __init__(self, base_url: str, model: str, tokenizer_path: str, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 16, timeout_s: float = 120.0, trust_remote_code: bool = False):
        import os

        from transformers import AutoTokenizer

        key = os.environ.get(api_key_env, "")
        self.url = base_url.rstrip("/") + "/completions"
        self.headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        self.model, self.concurrency, self.timeout_s = model, concurrency, timeout_s
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, trust_remote_code=trust_remote_code)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def _one(self, prompt: str, n: int, sampling: Sampling, mode: Mode) -> list[Completion]:
        body = {
            "model": self.model, "prompt": prompt, "n": 1 if sampling.greedy else n,
            "max_tokens": sampling.max_new_tokens, "temperature": max(sampling.temperature, 0.0),
            "top_p": sampling.top_p, "stop": stop_strings(mode),
            # vLLM/SGLang extensions; servers that do not know them ignore them.
            "top_k": sampling.top_k if sampling.top_k > 0 else -1,
            "include_stop_str_in_output": True, "skip_special_tokens": False,
            "add_special_tokens": False,  # the prompt is chat-rendered: its BOS is already there
        }
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{self.url} answered {err.code}: {err.read()[:300]!r}") from None
        choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
        if len(choices) != body["n"]:
            raise RuntimeError(f"{self.url} returned {len(choices)} completions for n={body['n']}: the server must "
                               "honour n (vLLM serve and SGLang do)")
        texts = [c["text"] for c in choices]
        counts = self.count_tokens(texts)
        samples = [Completion(t, k, c.get("finish_reason") == "stop") for t, k, c in zip(texts, counts, choices)]
        return samples * n if sampling.greedy else samples

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, mode: Mode) -> list[list[Completion]]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda p: self._one(p, n, sampling, mode), prompts))


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
    gpu_memory_utilization: float = 0.85
    trust_remote_code: bool = False


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
                         concurrency=params.concurrency, trust_remote_code=params.trust_remote_code)


BACKENDS = {"transformers": _transformers, "vllm": _vllm, "openai": _openai}


def make_backend(path, params: BackendParams, seed: int = 0) -> Backend:
    """Build the backend named in `params.name` for the model at `path`."""
    if params.name not in BACKENDS:
        raise ValueError(f"backend.name={params.name!r} is not one of {sorted(BACKENDS)}")
    return BACKENDS[params.name](path, params, seed)
