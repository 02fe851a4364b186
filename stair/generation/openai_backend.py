"""A client of any OpenAI-compatible /v1/completions server (`backend.name=openai`).

Two request dialects (`backend.completions_api`):
- `vllm` (vLLM serve, SGLang): n samples in one request, and vLLM's extensions that keep the format tokens and
  matched stop strings in the text and the prompt's BOS single (`top_k`, `include_stop_str_in_output`,
  `skip_special_tokens`, `add_special_tokens`).
- `openai` (`transformers serve`, TGI, llama.cpp and any server held to OpenAI's schema): only OpenAI's fields.
  Each sample is its own request with its own `seed`; `top_k` cannot be sent (the server's own setting
  applies); a prompt's BOS text is left to the server when its tokenizer adds one; a chunk whose matched stop
  string the server dropped gets its closing tag back (OpenAI's finish_reason does not say whether a stop
  string or the end of text ended it, so a chunk left open at the end of text is closed too). The format
  tokens reach the client because they are not special tokens of this project's tokenizers (servers decode
  with special tokens skipped).
"""

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from typing import Literal, get_args

from stair.format import OUTPUT_CLOSE, OUTPUT_OPEN, STEP_CLOSE, STEP_OPEN
from stair.generation.sampling import Completion, Mode, Sampling, request_seed, stop_strings

CompletionsAPI = Literal["vllm", "openai"]
_CLOSE_OF = {STEP_OPEN: STEP_CLOSE, OUTPUT_OPEN: OUTPUT_CLOSE}


def restore_stop(text: str, stops: list[str]) -> str:
    """`text` with the closing tag of its last chunk put back where a server ended it at a stop string and
    dropped the string (OpenAI's rule); unchanged if it already ends with a stop string or no chunk is open."""
    if any(text.endswith(s) for s in stops):
        return text
    last_open = max(_CLOSE_OF, key=text.rfind)
    close = _CLOSE_OF[last_open]
    opened = text.rfind(last_open)
    return text + close if opened >= 0 and close in stops and close not in text[opened:] else text


class OpenAIBackend:
    """An OpenAI-compatible /v1/completions server, requests sent concurrently."""

    def __init__(self, base_url: str, model: str, tokenizer_path: str, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 16, timeout_s: float = 120.0, trust_remote_code: bool = False,
                 completions_api: CompletionsAPI = "vllm", seed: int = 0):
        import os

        from transformers import AutoTokenizer

        if completions_api not in get_args(CompletionsAPI):
            raise ValueError(f"completions_api={completions_api!r} is not one of {get_args(CompletionsAPI)}")
        key = os.environ.get(api_key_env, "")
        self.url = base_url.rstrip("/") + "/completions"
        self.headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        self.model, self.concurrency, self.timeout_s = model, concurrency, timeout_s
        self.completions_api, self.seed, self._calls = completions_api, seed, count()
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, trust_remote_code=trust_remote_code)
        bos = self.tokenizer.bos_token
        adds_bos = bool(bos) and self.tokenizer("x")["input_ids"][:1] == [self.tokenizer.bos_token_id]
        self._server_bos = bos if adds_bos and completions_api == "openai" else ""

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def _post(self, body: dict) -> list[dict]:
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{self.url} answered {err.code}: {err.read()[:300]!r}") from None
        return sorted(payload["choices"], key=lambda c: c.get("index", 0))

    def _one(self, prompt: str, n: int, sampling: Sampling, mode: Mode, key: str) -> list[Completion]:
        stops = stop_strings(mode)
        body = {"model": self.model, "prompt": prompt, "max_tokens": sampling.max_new_tokens,
                "temperature": max(sampling.temperature, 0.0), "top_p": sampling.top_p, "stop": stops}
        draws = 1 if sampling.greedy else n
        if self.completions_api == "vllm":
            body |= {"n": draws, "top_k": sampling.top_k if sampling.top_k > 0 else -1,
                     "include_stop_str_in_output": True, "skip_special_tokens": False,
                     "add_special_tokens": False}  # the prompt is chat-rendered: its BOS is already there
            choices = self._post(body)
            if len(choices) != draws:
                raise RuntimeError(f"{self.url} returned {len(choices)} completions for n={draws}: the server must "
                                   "honour n (vLLM serve and SGLang do); set backend.completions_api: openai")
        else:
            if self._server_bos and prompt.startswith(self._server_bos):
                body["prompt"] = prompt[len(self._server_bos):]  # the server's tokenizer adds it
            choices = [self._post(body | {"seed": request_seed(self.seed, key, i)})[0] for i in range(draws)]
        texts = [restore_stop(c["text"], stops) if self.completions_api == "openai" and c.get("finish_reason") == "stop"
                 else c["text"] for c in choices]
        counts = self.count_tokens(texts)
        samples = [Completion(t, k, c.get("finish_reason") == "stop") for t, k, c in zip(texts, counts, choices)]
        return samples * n if sampling.greedy else samples

    def generate(self, prompts: Sequence[str], n: int, sampling: Sampling, mode: Mode) -> list[list[Completion]]:
        call = next(self._calls)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda i: self._one(prompts[i], n, sampling, mode, f"{call}/{i}"),
                                 range(len(prompts))))
