"""A small LLM server on 127.0.0.1 speaking the real wire formats, for tests.

* OpenAI-compatible ``POST /v1/chat/completions``: ``stream=false`` → one JSON
  ``chat.completion``; ``stream=true`` → SSE ``data: {chunk}\\n\\n`` events ending
  with ``data: [DONE]``.
* Ollama ``POST /api/chat``: NDJSON lines (``{"message": {...}, "done": false}`` …
  then ``"done": true``), or one JSON object when ``stream`` is false.

Behaviour is scripted per request with ``Reply`` objects (queued with ``script``;
``default`` answers the rest): the reply text (or a function of the request
body), an HTTP error status, a delay before answering, a dropped connection, a
malformed stream, a slow drip of chunks, a pause mid-stream. The token cap of the
request (``max_completion_tokens``/``max_tokens``, Ollama's ``num_predict``) is
honoured as real servers do: one chunk per token, then ``finish_reason: "length"``.
Every request is recorded in ``requests``, with how many chunks were sent and
whether the client went away before the end.

It speaks HTTP/1.1 with chunked bodies for streams, so a dropped connection
looks to the client exactly like a server dying mid-answer.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FakeLLMServer", "RecordedRequest", "Reply", "unused_port"]


@dataclass
class Reply:
    """How the server answers one request.

    Attributes:
        text: the assistant's reply, or a function of the request body returning it.
        status: HTTP status; anything but 200 sends the wire format's error body.
        delay: seconds to wait before answering (interrupted when the server stops).
        drop: close the connection without finishing (streams: after half the chunks).
        malformed: put an unparsable line into the stream (after the first chunk).
        truncate: end the stream cleanly after half the chunks, without the final event.
        words_per_chunk: how many words each streamed chunk carries.
        interval: seconds between streamed chunks (a slow, steady drip).
        pause_at: before which chunk (0 = the first token, after the headers) to pause ``pause`` seconds.
        pause: the length of that pause (a stalled generation).
        ignore_cap: stream the whole text even past the request's token cap (a server that ignores it).
    """

    text: str | Callable[[dict], str] = "I have no script for this request."
    status: int = 200
    delay: float = 0.0
    drop: bool = False
    malformed: bool = False
    truncate: bool = False
    words_per_chunk: int = 1
    interval: float = 0.0
    pause_at: int | None = None
    pause: float = 0.0
    ignore_cap: bool = False


@dataclass
class RecordedRequest:
    """One request as received, and how its answer went.

    Attributes:
        chunks_sent: content chunks written so far (streams).
        client_gone: the client closed the connection before the answer was complete.
        closed: set when the server has finished with the request (answered, or the client went away).
    """

    path: str
    headers: dict[str, str]
    body: dict
    chunks_sent: int = 0
    client_gone: bool = False
    closed: threading.Event = field(default_factory=threading.Event)

    @property
    def messages(self) -> list[dict]:
        return self.body.get("messages", [])

    def content(self, role: str) -> str:
        """Text of the first message with ``role`` ("system", "user"); "" if none."""
        return next((str(m.get("content", "")) for m in self.messages if m.get("role") == role), "")


def unused_port() -> int:
    """A port nothing listens on (bound then released), for "server down" tests."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pieces(text: str, words: int) -> list[str]:
    tokens = re.findall(r"\s*\S+", text) or [text]
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


def _token_cap(body: dict) -> int | None:
    """The request's answer-length cap, in the wire format's own field (None if absent)."""
    options = body.get("options") or {}
    cap = body.get("max_completion_tokens") or body.get("max_tokens") or options.get("num_predict")
    return int(cap) if isinstance(cap, int) and cap > 0 else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args):
        pass

    # -- plumbing -----------------------------------------------------------------
    def _send_json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def _chunk(self, data: str) -> None:
        raw = data.encode()
        self.wfile.write(b"%X\r\n%s\r\n" % (len(raw), raw))
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- routing ------------------------------------------------------------------
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        path = self.path.split("?")[0].rstrip("/")
        self.record = RecordedRequest(path, {k.lower(): v for k, v in self.headers.items()}, body)
        reply = self.server.owner._next(self.record)
        try:
            if reply.delay and self._wait(reply.delay):
                return
            if path.endswith("/chat/completions"):
                self._openai(body, reply)
            elif path == "/api/chat":
                self._ollama(body, reply)
            else:
                self._send_json(404, {"error": f"no route {path}"})
        except (BrokenPipeError, ConnectionResetError):
            self.record.client_gone = True  # the client gave up (a deadline, a cancelled request)
            self.close_connection = True
        finally:
            self.record.closed.set()

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; True (and the connection dropped) when the server is stopping meanwhile."""
        if self.server.owner._stopping.wait(seconds):
            self._drop()
            return True
        return False

    def _pace(self, reply: Reply, i: int) -> bool:
        """The scripted pause or drip before content chunk ``i``; True when the server is stopping."""
        if reply.pause_at == i and reply.pause and self._wait(reply.pause):
            return True
        return bool(i and reply.interval and self._wait(reply.interval))

    def _capped(self, body: dict, reply: Reply, pieces: list[str]) -> tuple[list[str], bool]:
        """``pieces`` cut to the request's token cap (one piece = one token); True when cut."""
        cap = None if reply.ignore_cap else _token_cap(body)
        return (pieces[:cap], True) if cap is not None and len(pieces) > cap else (pieces, False)

    def _text(self, body: dict, reply: Reply) -> str:
        return reply.text(body) if callable(reply.text) else reply.text

    def _openai(self, body: dict, reply: Reply) -> None:
        if reply.status != 200:
            self._send_json(reply.status, {"error": {"message": "scripted failure", "type": "server_error", "code": None}})
            return
        if reply.drop and not body.get("stream"):
            self._drop()
            return
        text, model, created = self._text(body, reply), body.get("model", "fake"), int(time.time())
        if not body.get("stream"):
            self._send_json(200, {
                "id": "chatcmpl-fake", "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split()), "total_tokens": 10 + len(text.split())},
            })
            return

        def event(delta: dict, finish: str | None = None) -> None:
            chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            self._chunk(f"data: {json.dumps(chunk)}\n\n")

        self._start_stream("text/event-stream")
        event({"role": "assistant", "content": ""})
        pieces, capped = self._capped(body, reply, _pieces(text, reply.words_per_chunk))
        for i, piece in enumerate(pieces):
            if self._cut_stream(reply, i, len(pieces)) or self._pace(reply, i):
                return
            event({"content": piece})
            self.record.chunks_sent += 1
            if reply.malformed and i == 0:
                self._chunk('data: {"choices": [{"delta": {"content": \n\n')
        event({}, "length" if capped else "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            self._chunk("data: " + json.dumps({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                                               "model": model, "choices": [],
                                               "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}) + "\n\n")
        self._chunk("data: [DONE]\n\n")
        self._end_stream()

    def _cut_stream(self, reply: Reply, i: int, total: int) -> bool:
        """Half-way through a scripted drop/truncate: end the stream that way; True when it ended."""
        if i < max(1, total // 2) or not (reply.drop or reply.truncate):
            return False
        if reply.drop:
            self._drop()
        else:
            self._end_stream()
        return True

    def _ollama(self, body: dict, reply: Reply) -> None:
        if reply.status != 200:
            self._send_json(reply.status, {"error": "scripted failure"})
            return
        model, stamp = body.get("model", "fake"), "2025-01-01T00:00:00.000000Z"
        final = {"model": model, "created_at": stamp, "message": {"role": "assistant", "content": ""}, "done": True,
                 "done_reason": "stop", "total_duration": 1000, "prompt_eval_count": 10, "eval_count": 5}
        stream = body.get("stream", True)
        if reply.drop and not stream:
            self._drop()
            return
        text = self._text(body, reply)
        if not stream:
            self._send_json(200, {**final, "message": {"role": "assistant", "content": text}})
            return
        self._start_stream("application/x-ndjson")
        pieces, capped = self._capped(body, reply, _pieces(text, reply.words_per_chunk))
        for i, piece in enumerate(pieces):
            if self._cut_stream(reply, i, len(pieces)) or self._pace(reply, i):
                return
            line = {"model": model, "created_at": stamp, "message": {"role": "assistant", "content": piece}, "done": False}
            self._chunk(json.dumps(line) + "\n")
            self.record.chunks_sent += 1
            if reply.malformed and i == 0:
                self._chunk('{"message": {"content": \n')
        self._chunk(json.dumps({**final, "done_reason": "length"} if capped else final) + "\n")
        self._end_stream()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # clients keep connections alive; stopping must not wait for them
    owner: FakeLLMServer

    def handle_error(self, request, client_address) -> None:
        pass  # clients that gave up (timeouts, drops) make writes fail; that is the point of those tests


@dataclass
class FakeLLMServer:
    """The server; use as a context manager or call ``start``/``stop``.

    Attributes:
        default: the reply for requests beyond the scripted ones.
        requests: every request received, in order.
    """

    default: Reply = field(default_factory=Reply)
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue: list[Reply] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return self._server.server_address[1]

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def ollama_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply | str) -> FakeLLMServer:
        """Queue replies for the next requests, in order (a str is ``Reply(text=...)``)."""
        with self._lock:
            self._queue.extend(Reply(text=r) if isinstance(r, str) else r for r in replies)
        return self

    def _next(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self._queue.pop(0) if self._queue else self.default

    def start(self) -> FakeLLMServer:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a scripted delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
