"""Local control: hand an instruction to the site's controller and get its answer.

Two kinds of handler (docs/fsp-agent.md, "Handler contract"):

* a command (``handler_command``, an argv list): the instruction arrives as one JSON
  object on stdin; exit code 0 means ACCEPTED, anything else FAILED. Its stdout may be
  a JSON object ``{"outcome": "ACCEPTED"|"FAILED", "reason": "..."}`` that overrides
  that. The command runs in a process group of its own; on timeout the group is killed.
* a Python entry point (``handler_entry_point``, ``module:function``): called with the
  instruction dict; returns None/True (ACCEPTED), False (FAILED), or a dict as above.
  An exception is FAILED with its text as the reason.

Either way a handler that does not finish within the timeout is FAILED with reason
``handler timed out after N s``.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import Any

from ven_client.config import Config

OUTCOMES = ("ACCEPTED", "FAILED")
MAX_REASON = 500


@dataclass(frozen=True)
class Result:
    outcome: str  # ACCEPTED or FAILED
    reason: str = ""


def _from_answer(answer: object, default: Result) -> Result:
    if answer is None or answer is True:
        return default
    if answer is False:
        return Result("FAILED", default.reason or "handler returned false")
    if isinstance(answer, dict):
        outcome = str(answer.get("outcome") or default.outcome).upper()
        if outcome not in OUTCOMES:
            return Result("FAILED", f"handler answered an unknown outcome {outcome!r}")
        reason = str(answer.get("reason") or "")[:MAX_REASON]
        if outcome == "FAILED" and not reason:
            reason = default.reason or "handler reported failure"
        return Result(outcome, reason if outcome == "FAILED" else "")
    return Result("FAILED", f"handler answered {type(answer).__name__}, not an object")


def run_command(argv: list[str], instruction: dict, timeout_s: float) -> Result:
    """Run ``argv`` with ``instruction`` as JSON on stdin."""
    try:
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        return Result("FAILED", f"handler could not start: {exc}")
    try:
        stdout, stderr = process.communicate(json.dumps(instruction).encode(),
                                             timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.communicate()
        return Result("FAILED", f"handler timed out after {timeout_s:g} s")
    if process.returncode == 0:
        default = Result("ACCEPTED")
    else:
        tail = stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        default = Result("FAILED", (f"handler exited with {process.returncode}"
                                    + (f": {tail[0]}" if tail[0] else ""))[:MAX_REASON])
    text = stdout.decode(errors="replace").strip()
    if not text:
        return default
    try:
        answer = json.loads(text.splitlines()[-1])
    except ValueError:
        return default
    return _from_answer(answer, default) if isinstance(answer, dict) else default


def load_entry_point(spec: str) -> Any:
    """The object ``module:attribute`` names (imported)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"handler_entry_point {spec!r} is not module:function")
    target = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def run_entry_point(spec: str, instruction: dict, timeout_s: float) -> Result:
    """Call the Python function named by ``spec`` in a thread, waiting ``timeout_s``."""
    try:
        function = load_entry_point(spec)
    except (ImportError, AttributeError, ValueError) as exc:
        return Result("FAILED", f"handler could not be loaded: {exc}")
    box: dict = {}

    def call() -> None:
        try:
            box["answer"] = function(dict(instruction))
        except Exception as exc:  # any failure of local control is FAILED
            box["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=call, name="handler", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        return Result("FAILED", f"handler timed out after {timeout_s:g} s")
    if "error" in box:
        return Result("FAILED", box["error"][:MAX_REASON])
    return _from_answer(box.get("answer"), Result("ACCEPTED"))


def problem(config: Config) -> str | None:
    """Why the configured handler cannot run (a program that is not there or not
    executable, an entry point that does not import), or None."""
    if config.handler_command:
        program = config.handler_command[0]
        found = shutil.which(program) if "/" not in program else (
            program if os.path.isfile(program) and os.access(program, os.X_OK) else None)
        if found is None:
            where = "on PATH" if "/" not in program else "as an executable file"
            return f"handler_command: {program!r} is not found {where}"
        return None
    if config.handler_entry_point:
        try:
            target = load_entry_point(config.handler_entry_point)
        except (ImportError, AttributeError, ValueError) as exc:
            return f"handler_entry_point {config.handler_entry_point!r} cannot be loaded: {exc}"
        if not callable(target):
            return f"handler_entry_point {config.handler_entry_point!r} is not callable"
    return None


def run(config: Config, instruction: dict) -> Result:
    """Run the configured handler; with none configured every instruction is FAILED."""
    if config.handler_command:
        return run_command(list(config.handler_command), instruction,
                           config.handler_timeout_s)
    if config.handler_entry_point:
        return run_entry_point(config.handler_entry_point, instruction,
                               config.handler_timeout_s)
    return Result("FAILED", "no handler configured")
