"""An OpenAI-compatible fine-tuning API on 127.0.0.1, in a thread: files, jobs, events, cancel.

    server = FakeFineTuning(progress=["validating_files", "running", "running", "succeeded"])
    base_url = server.start()                # http://127.0.0.1:PORT/v1
    server.fail("POST", "/v1/fine_tuning/jobs", 400, "model gpt-x cannot be fine-tuned")   # next matching call
    ...
    server.stop()

Each GET of a job moves it one state along `progress` (a scripted run), adding an event per move; a job that
reaches "running" logs "Step N/M: training loss=..." events as OpenAI does. `fail_job_with` makes scripted jobs
end "failed" with that error instead. Uploaded files are kept (`files[id]["content"]`) for tests to read.
"""

from __future__ import annotations

import json
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fakes.http import send_json


class BadRequest(Exception):
    """A request the API refuses with HTTP 400 and this message."""


class FakeFineTuning:
    def __init__(self, progress: list[str] | None = None, fail_job_with: str | None = None, steps: int = 4):
        self.progress = progress or ["validating_files", "queued", "running", "running", "succeeded"]
        self.fail_job_with = fail_job_with
        self.steps = steps
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.events: dict[str, list[dict]] = {}
        self.requests: list[tuple[str, str]] = []
        self.errors: list[tuple[str, str, int, str]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self._n = 0

    def fail(self, method: str, path_prefix: str, status: int, message: str) -> None:
        """Answer the next `method` request whose path starts with `path_prefix` with an API error."""
        self.errors.append((method, path_prefix, status, message))

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return

            def do_GET(self):
                fake._handle(self, "GET")

            def do_POST(self):
                fake._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    # handling ---------------------------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n:04d}"

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: dict) -> None:
        send_json(h, status, body)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        path = h.path.split("?", 1)[0]
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        with self.lock:
            self.requests.append((method, path))
            for i, (m, prefix, status, message) in enumerate(self.errors):
                if m == method and path.startswith(prefix):
                    del self.errors[i]
                    return self._send(h, status, {"error": {"message": message, "type": "invalid_request_error",
                                                            "param": None, "code": None}})
            try:
                status, answer = self._route(method, path, body, h.headers.get("Content-Type", ""))
            except KeyError as exc:
                status, answer = 404, {"error": {"message": f"No such object: {exc}", "type": "invalid_request_error"}}
            except BadRequest as exc:
                status, answer = 400, {"error": {"message": str(exc), "type": "invalid_request_error"}}
        self._send(h, status, answer)

    def _route(self, method: str, path: str, body: bytes, ctype: str) -> tuple[int, dict]:
        parts = path.strip("/").split("/")  # v1 fine_tuning jobs ID [events|cancel]
        if method == "POST" and path == "/v1/files":
            return 200, self._upload(body, ctype)
        if method == "POST" and path == "/v1/fine_tuning/jobs":
            return 200, self._create(json.loads(body))
        if parts[:3] == ["v1", "fine_tuning", "jobs"] and len(parts) >= 4:
            job_id = parts[3]
            job = self.jobs[job_id]
            if len(parts) == 4 and method == "GET":
                self._advance(job)
                return 200, self._public(job)
            if parts[4] == "events":
                return 200, {"object": "list", "data": list(reversed(self.events[job_id])), "has_more": False}
            if parts[4] == "cancel" and method == "POST":
                job["status"] = "cancelled"
                self._event(job, "Fine-tuning job cancelled")
                return 200, self._public(job)
        return 404, {"error": {"message": f"unknown route {method} {path}", "type": "invalid_request_error"}}

    def _upload(self, body: bytes, ctype: str) -> dict:
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
        fields = {p.get_param("name", header="content-disposition"): p for p in msg.iter_parts()}
        content = fields["file"].get_payload(decode=True)
        purpose = fields["purpose"].get_payload(decode=True).decode()
        file_id = self._id("file")
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                               "filename": fields["file"].get_filename(), "purpose": purpose, "status": "processed",
                               "content": content.decode()}
        return {k: v for k, v in self.files[file_id].items() if k != "content"}

    def _create(self, req: dict) -> dict:
        if req.get("training_file") not in self.files:
            raise KeyError(req.get("training_file"))
        method = req.get("method") or {"type": "supervised"}
        if method.get("type") == "dpo":
            for name in ("training_file", "validation_file"):
                if req.get(name):
                    self._check_preference_file(self.files[req[name]])
        job_id = self._id("ftjob")
        job = {"id": job_id, "object": "fine_tuning.job", "model": req["model"], "created_at": int(time.time()),
               "status": self.progress[0], "training_file": req["training_file"],
               "validation_file": req.get("validation_file"), "hyperparameters": req.get("hyperparameters") or {},
               "fine_tuned_model": None, "finished_at": None, "error": None, "organization_id": "org-test",
               "result_files": [], "seed": req.get("seed") or 0, "trained_tokens": None, "suffix": req.get("suffix"),
               "method": req.get("method") or {"type": "supervised"},
               "_script": list(self.progress[1:]), "_step": 0}
        self.jobs[job_id] = job
        self.events[job_id] = []
        self._event(job, f"Created fine-tuning job: {job_id}")
        return self._public(job)

    @staticmethod
    def _check_preference_file(file: dict) -> None:
        """As the API checks a DPO file: input messages, one assistant message on each side."""
        for n, line in enumerate(file["content"].splitlines(), 1):
            row = json.loads(line)
            sides = [row.get("preferred_output"), row.get("non_preferred_output")]
            messages = (row.get("input") or {}).get("messages")
            if not isinstance(messages, list) or not messages or not all(
                    isinstance(s, list) and len(s) == 1 and s[0].get("role") == "assistant" for s in sides):
                raise BadRequest(f"Invalid file format. Line {n}: a preference example needs input.messages and one "
                                 "assistant message in preferred_output and in non_preferred_output")

    def _advance(self, job: dict) -> None:
        if job["status"] in ("succeeded", "failed", "cancelled") or not job["_script"]:
            return
        state = job["_script"].pop(0)
        if state == "succeeded" and self.fail_job_with:
            state = "failed"
        if state == "running":
            job["_step"] += 1
            self._event(job, f"Step {job['_step']}/{self.steps}: training loss={2.0 / job['_step']:.4f}")
            if job.get("validation_file"):  # as OpenAI reports it: a metrics event with the validation loss
                self._event(job, f"Step {job['_step']}/{self.steps}: validation loss", kind="metrics",
                            data={"step": job["_step"], "train_loss": 2.0 / job["_step"],
                                  "valid_loss": 2.5 / job["_step"], "total_steps": self.steps})
        if state == "succeeded":
            job["fine_tuned_model"] = f"ft:{job['model']}:org-test::{job['id'][-4:]}"
            job["finished_at"] = int(time.time())
            job["trained_tokens"] = 1234
            self._event(job, "The job has successfully completed")
        if state == "failed":
            job["error"] = {"code": "invalid_training_file", "message": self.fail_job_with, "param": "training_file"}
            self._event(job, f"Fine-tuning job failed: {self.fail_job_with}", level="error")
        job["status"] = state

    def _event(self, job: dict, message: str, level: str = "info", kind: str = "message",
               data: dict | None = None) -> None:
        self.events[job["id"]].append({"object": "fine_tuning.job.event", "id": self._id("ftevent"),
                                       "created_at": int(time.time()), "level": level, "message": message,
                                       "type": kind, "data": data or {}})

    @staticmethod
    def _public(job: dict) -> dict:
        return {k: v for k, v in job.items() if not k.startswith("_")}
