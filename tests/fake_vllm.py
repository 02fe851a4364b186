"""A stand-in for the pinned vLLM (`vllm==0.33.0`, pyproject's `vllm` extra), for contract tests without a GPU.

Install it as the `vllm` module (`monkeypatch.setitem(sys.modules, "vllm", fake_vllm)`): `stair.generation`
then runs its real VLLMBackend code against it. It has exactly the names and fields of vLLM that the
backend uses, with vLLM's defaults and meaning, and rejects any other keyword (a typo in the backend fails a
test, as the real constructors would fail on a GPU machine):

- `LLM(model, *, seed, dtype, enable_prefix_caching, gpu_memory_utilization, trust_remote_code, max_model_len,
  tensor_parallel_size)`: vllm/entrypoints/llm.py (`LLM.__init__`: model, trust_remote_code,
  tensor_parallel_size, dtype, seed, gpu_memory_utilization are named parameters; enable_prefix_caching and
  max_model_len go through **kwargs to `EngineArgs`, which rejects unknown names). `LLM.get_tokenizer()`
  returns the model folder's Hugging Face tokenizer. `LLM.generate(prompts, sampling_params, *, use_tqdm)`:
  one `RequestOutput` per prompt, in order; `sampling_params` is one `SamplingParams` or a sequence of one per
  prompt. Prompts are `TokensPrompt` dicts `{"prompt_token_ids": [...]}` (vllm/inputs: `TokensPrompt`).
- `SamplingParams(n=1, temperature=1.0, top_p=1.0, top_k=0, seed=None, stop=None, max_tokens=16, logprobs=None,
  skip_special_tokens=True, include_stop_str_in_output=False)`: vllm/sampling_params.py (top_k 0 or -1 = all
  tokens; `stop` strings end a sample and are cut from its text unless include_stop_str_in_output).
- `RequestOutput.outputs: list[CompletionOutput]`, `CompletionOutput(index, text, token_ids, cumulative_logprob,
  logprobs, finish_reason, stop_reason)`: vllm/outputs.py (finish_reason "stop" at a stop string or the end
  of text, "length" at max_tokens; stop_reason the stop string matched, None at the end of text).
- `vllm serve`'s `/v1/completions` (tests/completions_server.py, answered by `scripted_answer`):
  vllm/entrypoints/openai/completion/protocol.py (`CompletionRequest` fields; `CompletionResponse` with
  choices of `CompletionResponseChoice(index, text, logprobs, finish_reason, stop_reason, token_ids,
  prompt_logprobs, prompt_token_ids)` and `usage`).

Checked against the vLLM source (github vllm-project/vllm: sampling_params.py at 00388f65, outputs.py at
003d3ee2, entrypoints/openai/completion/protocol.py at 002032ee, entrypoints/llm.py at 0012cf69) and the
SamplingParams reference at docs.vllm.ai; the 0.33.0 tag itself could not be fetched here, so a field
renamed in that exact release would be missed: the GPU check (benchmarks/gpu_check.py) runs the real one.

Generation is scripted, not a model: a sample is one of `SCRIPT` (drawn with the request's seed), as tokens of
the model's tokenizer, cut at the first stop string or at max_tokens as vLLM cuts them.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass

from stair.format import render_output, render_step
from tests.completions_server import Answer

# What the engine "generates": a step, a whole answer, a text that runs past any max_tokens, a text ending at EOS.
SCRIPT = [render_step("Plain", "Step one."), render_step("Plain", "Step two.") + render_output("4"),
          "No end at all " * 8, "Short."]


@dataclass(kw_only=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: str | list[str] | None = None
    max_tokens: int | None = 16
    logprobs: int | None = None
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False

    def __post_init__(self) -> None:  # vLLM's own checks (SamplingParams._verify_args)
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}.")
        if self.temperature < 0:
            raise ValueError(f"temperature must be non-negative, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.top_k < -1:
            raise ValueError(f"top_k must be 0 (disable), or at least 1, got {self.top_k}.")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}.")


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: Sequence[int]
    cumulative_logprob: float | None
    logprobs: list | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int] | None
    prompt_logprobs: list | None
    outputs: list[CompletionOutput]
    finished: bool


def complete(tokenizer, params: SamplingParams, index: int) -> CompletionOutput:
    """One sample as vLLM returns it: cut at the first stop string (kept if asked) or at max_tokens."""
    rng = random.Random(f"{params.seed}:{index}") if params.seed is not None else random
    text = SCRIPT[1] if params.temperature == 0 else rng.choice(SCRIPT)
    stops = [params.stop] if isinstance(params.stop, str) else params.stop or []
    hits = [(text.find(s), s) for s in stops if s in text]
    finish, stop_reason = "stop", None
    if hits:
        at, stop_reason = min(hits)
        text = text[: at + (len(stop_reason) if params.include_stop_str_in_output else 0)]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if params.max_tokens is not None and len(ids) > params.max_tokens:
        ids, finish, stop_reason = ids[: params.max_tokens], "length", None
        text = tokenizer.decode(ids, skip_special_tokens=params.skip_special_tokens)
    return CompletionOutput(index, text, ids, None, None, finish, stop_reason)


class LLM:
    instances: list["LLM"] = []  # every engine built, for tests to inspect

    def __init__(self, model: str, *, seed: int | None = None, dtype: str = "auto", enable_prefix_caching: bool = True,
                 gpu_memory_utilization: float = 0.9, trust_remote_code: bool = False, max_model_len: int | None = None,
                 tensor_parallel_size: int = 1):
        from transformers import AutoTokenizer

        self.kwargs = dict(model=model, seed=seed, dtype=dtype, enable_prefix_caching=enable_prefix_caching,
                           gpu_memory_utilization=gpu_memory_utilization, trust_remote_code=trust_remote_code,
                           max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size)
        self._tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        self.requests: list[tuple[dict, SamplingParams]] = []
        LLM.instances.append(self)

    def get_tokenizer(self):
        return self._tokenizer

    def generate(self, prompts, sampling_params=None, *, use_tqdm: bool = True) -> list[RequestOutput]:
        prompts = [prompts] if isinstance(prompts, (str, dict)) else list(prompts)
        if sampling_params is None:
            sampling_params = SamplingParams()
        if isinstance(sampling_params, SamplingParams):
            sampling_params = [sampling_params] * len(prompts)
        if len(sampling_params) != len(prompts):
            raise ValueError("The lengths of prompts and sampling_params must be the same.")
        outputs = []
        for number, (prompt, params) in enumerate(zip(prompts, sampling_params)):
            if not isinstance(prompt, dict) or set(prompt) != {"prompt_token_ids"}:
                raise TypeError(f"the stand-in takes TokensPrompt dicts only, got {prompt!r}")
            self.requests.append((prompt, params))
            samples = [complete(self._tokenizer, params, i) for i in range(params.n)]
            outputs.append(RequestOutput(str(number), None, list(prompt["prompt_token_ids"]), None, samples, True))
        return outputs


def scripted_answer(model_folder: str, honour_n: bool = True) -> Answer:
    """`vllm serve`'s choices for a /v1/completions request, scripted (for tests/completions_server.py).

    `honour_n=False` answers one choice whatever `n` asks, as some OpenAI-compatible servers do.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_folder)

    def answer(body: dict) -> list[dict]:
        params = SamplingParams(
            n=body.get("n", 1), temperature=body.get("temperature", 1.0), top_p=body.get("top_p", 1.0),
            top_k=body.get("top_k", 0), seed=body.get("seed"), stop=body.get("stop"),
            max_tokens=body.get("max_tokens", 16), skip_special_tokens=body.get("skip_special_tokens", True),
            include_stop_str_in_output=body.get("include_stop_str_in_output", False))
        samples = [complete(tokenizer, params, i) for i in range(params.n if honour_n else 1)]
        return [{"index": s.index, "text": s.text, "finish_reason": s.finish_reason, "stop_reason": s.stop_reason}
                for s in samples]

    return answer
