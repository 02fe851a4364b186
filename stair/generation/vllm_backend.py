"""An offline vLLM engine (`backend.name=vllm`, GPU); vLLM is an optional extra, imported when used."""

from collections.abc import Sequence

from stair.generation.sampling import Completion, Mode, Sampling, stop_strings


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
