"""The agent's command line and configuration file: ``init`` refuses a handler that is not
there, and relative paths in the file are relative to the file's folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ven_client import config as config_module
from ven_client import handler

ROOT = Path(__file__).resolve().parents[2]
BASE = ["--vtn-url", "https://vtn.example", "--client-id", "c1", "--client-secret", "s" * 20]


def ven_client(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``ven-client`` as a separate process, run in ``cwd``."""
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    env.pop("VEN_CLIENT_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "ven_client", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("handler_args, expected", [
    (["--handler-command", "/nonexistent/site-control --dispatch"],
     "'/nonexistent/site-control' is not found as an executable file"),
    (["--handler-command", "no-such-site-control-program"],
     "'no-such-site-control-program' is not found on PATH"),
    (["--handler-command", "./control.sh"], "control.sh' is not found as an executable file"),
    (["--handler-entry-point", "no_such_module_here:handle"],
     "handler_entry_point 'no_such_module_here:handle' cannot be loaded"),
    (["--handler-entry-point", "json:no_such_function"],
     "handler_entry_point 'json:no_such_function' cannot be loaded"),
    (["--handler-entry-point", "json:__doc__"], "is not callable"),
], ids=["absent-path", "not-on-path", "relative-absent", "no-module", "no-function",
        "not-callable"])
def test_init_refuses_a_handler_that_does_not_exist(tmp_path, handler_args, expected):
    config = tmp_path / "etc" / "config.toml"

    result = ven_client(tmp_path, "--config", str(config), "init", *BASE, *handler_args)

    assert result.returncode == 2, result.stdout
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not config.exists()


def test_init_refuses_a_handler_file_that_is_not_executable(tmp_path):
    script = tmp_path / "control.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)

    result = ven_client(tmp_path, "--config", "config.toml", "init", *BASE,
                        "--handler-command", "./control.sh")

    assert result.returncode == 2 and "is not found as an executable file" in result.stderr


def test_init_accepts_existing_handlers_and_writes_absolute_paths(tmp_path):
    script = tmp_path / "control.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)

    for args in (["--handler-command", "./control.sh --go"],
                 ["--handler-command", "sh -c true"],
                 ["--handler-entry-point", "json:dumps"]):
        result = ven_client(tmp_path, "--config", "config.toml", "init", "--force", *BASE,
                            "--state-dir", "state", *args)
        assert result.returncode == 0, result.stderr
    written = config_module.load(tmp_path / "config.toml")
    assert written.state_dir == str(tmp_path / "state")
    first = ven_client(tmp_path, "--config", "c2.toml", "init", *BASE,
                       "--handler-command", "./control.sh --go")
    assert first.returncode == 0
    assert config_module.load(tmp_path / "c2.toml").handler_command == [
        str(tmp_path / "control.sh"), "--go"]


def test_relative_paths_in_the_file_are_relative_to_its_folder_not_the_working_directory(
        tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "secret").write_text("s" * 20 + "\n")
    (folder / "control.sh").write_text("#!/bin/sh\nexit 0\n")
    (folder / "control.sh").chmod(0o755)
    (folder / "config.toml").write_text(
        'vtn_url = "https://vtn.example"\nclient_id = "c1"\n'
        'client_secret_file = "secret"\nstate_dir = "state"\ndrop_dir = "./drop"\n'
        'ca_bundle = "pki/ca.pem"\nsigning_key = "/abs/key.pem"\n'
        'handler_command = ["./control.sh", "--flag", "relative-arg"]\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = config_module.load(Path("../site/config.toml"))

    assert config.state_dir == str(folder / "state")
    assert config.drop_dir == str(folder / "drop")
    assert config.ca_bundle == str(folder / "pki" / "ca.pem")
    assert config.signing_key == "/abs/key.pem"
    assert config.secret() == "s" * 20
    assert config.handler_command == [str(folder / "control.sh"), "--flag", "relative-arg"]
    assert handler.problem(config) is None
    # The agent itself, started from another folder, finds its state beside the file.
    status = ven_client(elsewhere, "--config", str(folder / "config.toml"), "status")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["vtn"] == "https://vtn.example"
    assert (folder / "state" / "state.sqlite3").is_file()
    assert not (elsewhere / "state").exists()
