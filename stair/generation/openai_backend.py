"""A client of any OpenAI-compatible /v1/completions server (`backend.name=openai`)."""

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from stair.generation.sampling import Completion, Mode, Sampling, stop_strings


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
