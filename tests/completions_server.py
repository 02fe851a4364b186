"""`vllm serve`'s /v1/completions on 127.0.0.1 for tests: the request check, the reply and the server's
lifecycle, once; what the choices are is the caller's (`answer`: scripted samples, a model's generate, a
fixed rating).

The schema is vLLM's (vllm/entrypoints/openai/completion/protocol.py: `CompletionRequest` fields;
`CompletionResponse` with choices of `CompletionResponseChoice(index, text, logprobs, finish_reason,
stop_reason, token_ids, prompt_logprobs, prompt_token_ids)` and `usage`), checked as tests/fake_vllm.py
says. vLLM logs and ignores a field it does not know; this server answers 400 instead, so a client that sends
a misspelled or foreign field fails its test. With `api_key` it asks for `Authorization: Bearer <api_key>`
as `vllm serve --api-key` does (401 otherwise).
"""

import json
import threading
from collections.abc import Callable
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# `CompletionRequest` fields of vllm serve that a client of this project may send.
COMPLETION_REQUEST_FIELDS = {
    "model", "prompt", "echo", "frequency_penalty", "logit_bias", "logprobs", "max_tokens", "n", "presence_penalty",
    "seed", "stop", "stream", "suffix", "temperature", "top_p", "user", "top_k", "min_p", "repetition_penalty",
    "stop_token_ids", "include_stop_str_in_output", "ignore_eos", "min_tokens", "skip_special_tokens",
    "spaces_between_special_tokens", "add_special_tokens",
}
# A choice's fields that an `answer` may leave out, with vLLM's value when nothing asked for them.
CHOICE_DEFAULTS = {"logprobs": None, "stop_reason": None, "token_ids": None,
                   "prompt_logprobs": None, "prompt_token_ids": None}

Answer = Callable[[dict], list[dict]]  # a request's body -> its choices ({"index", "text", "finish_reason", ...})


def request_error(path: str, body: dict, served_name: str) -> str | None:
    """Why vllm serve (held to the fields above) refuses this request, or None if it answers it."""
    unknown = sorted(set(body) - COMPLETION_REQUEST_FIELDS)
    if path != "/v1/completions":
        return f"no route {path}"
    if unknown:
        return f"fields not in CompletionRequest: {unknown}"
    if body.get("model") != served_name:
        return f"the model `{body.get('model')}` does not exist (served: {served_name})"
    return None


@contextmanager
def serve_completions(served_name: str, answer: Answer, api_key: str | None = None):
    """Serve `served_name` until the block ends; yields (base_url ending in /v1, every request body received).

    A well-formed request is answered with `answer(body)`'s choices (missing fields filled as vLLM fills
    them); any other with vLLM's 400 error object naming what is wrong.
    """
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(body)
            if api_key is not None and self.headers.get("Authorization") != f"Bearer {api_key}":
                self.reply(401, {"error": "Unauthorized"})
                return
            if (error := request_error(self.path, body, served_name)) is not None:
                self.reply(400, {"object": "error", "message": error, "type": "BadRequestError", "param": None,
                                 "code": 400})
                return
            choices = [{**CHOICE_DEFAULTS, **choice} for choice in answer(body)]
            self.reply(200, {"id": f"cmpl-{len(received)}", "object": "text_completion", "created": 0,
                             "model": served_name, "choices": choices, "service_tier": None,
                             "system_fingerprint": None, "kv_transfer_params": None,
                             "usage": {"prompt_tokens": 0, "total_tokens": 0, "completion_tokens": 0,
                                       "prompt_tokens_details": None}})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1", received
    finally:
        server.shutdown()
        server.server_close()
