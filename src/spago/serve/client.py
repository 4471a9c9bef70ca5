"""A client of the spago servers (and of the Go spaGO's, which answer the same JSON): one method per endpoint,
each returning the server's JSON answer as a dict.

    from spago.serve.client import Client
    with Client("https://localhost:1987", insecure=True) as client:   # insecure: a self-signed certificate
        client.answer("Who lives in Paris?", "John lives in Paris.")["answers"]
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from ..errors import SpagoError

__all__ = ["Client", "ServerError"]


class ServerError(SpagoError):
    """The server answered with an error status; `status` and the server's `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the server answered {status}: {message}")
        self.status, self.message = status, message


class Client:
    """`server` is the base URL (http:// or https://). `insecure` skips certificate checks (self-signed
    certificates); `ca_file` trusts one certificate authority (or self-signed certificate) instead."""

    def __init__(self, server: str, insecure: bool = False, ca_file: str | os.PathLike | None = None,
                 timeout: float = 60.0) -> None:
        import httpx

        if not server.startswith(("http://", "https://")):
            raise SpagoError(f"--server must be an http:// or https:// URL, got {server!r}")
        self.server = server.rstrip("/")
        verify: Any = False if insecure else (os.fspath(ca_file) if ca_file is not None else True)
        if ca_file is not None and not insecure:
            import ssl

            verify = ssl.create_default_context(cafile=os.fspath(ca_file))
        self._http = httpx.Client(base_url=self.server, verify=verify, timeout=timeout)
        self._errors = (httpx.HTTPError,)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        """One call; the JSON answer, or `ServerError` for an error status, `SpagoError` if unreachable."""
        try:
            response = self._http.request(method, path, json=body)
        except self._errors as exc:
            hint = " (a self-signed certificate? try --insecure)" if "CERTIFICATE" in str(exc).upper() else ""
            raise SpagoError(f"cannot reach {self.server}{path}: {exc}{hint}") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            message = data.get("error", response.text) if isinstance(data, dict) else response.text
            raise ServerError(response.status_code, str(message))
        if not isinstance(data, dict):
            raise SpagoError(f"{self.server}{path} did not answer a JSON object: {response.text[:200]!r}")
        return data

    # -- endpoints --------------------------------------------------------------------------------------------
    def health(self) -> dict:
        return self.request("GET", "/health")

    def answer(self, question: str, passage: str, max_answers: int = 3, max_answer_length: int = 20,
               min_confidence: float = 0.0) -> dict:
        return self.request("POST", "/answer", {"question": question, "passage": passage, "options": {
            "maxAnswers": max_answers, "maxAnswerLength": max_answer_length, "minConfidence": min_confidence}})

    def analyze(self, text: str, merge_entities: bool = False, filter_not_entities: bool = False) -> dict:
        return self.request("POST", "/analyze", {"text": text, "options": {
            "mergeEntities": merge_entities, "filterNotEntities": filter_not_entities}})

    def encode(self, text: str | Sequence[str], pooling: str | None = None) -> dict:
        """One text: {"data": vector}; a list of texts: {"data": [vector, ...]}."""
        body: dict = {"text": text} if isinstance(text, str) else {"texts": list(text)}
        if pooling is not None:
            body["pooling"] = pooling
        return self.request("POST", "/encode", body)

    def similarity(self, texts: Sequence[str], pooling: str | None = None) -> dict:
        body: dict = {"texts": list(texts)}
        if pooling is not None:
            body["pooling"] = pooling
        return self.request("POST", "/similarity", body)

    def search(self, query: str, top_k: int = 5) -> dict:
        return self.request("POST", "/search", {"query": query, "options": {"topK": top_k}})

    def predict(self, text: str, top_k: int = 5) -> dict:
        return self.request("POST", "/predict", {"text": text, "options": {"topK": top_k}})

    def discriminate(self, text: str) -> dict:
        return self.request("POST", "/discriminate", {"text": text})

    def classify(self, text: str, text_pair: str | None = None) -> dict:
        return self.request("POST", "/classify", {"text": text, "textPair": text_pair})
