"""The official OpenAPI documents ship with the VTN, and a missing one fails in one sentence."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from tests.spec import BUNDLED_SPEC_DIR, REPO_DIR, SHARED_SPEC_DIR

SHIPPED = ("3.1.1/openadr3.yaml", "3.0.1/openadr3.yaml", "LICENSE", "NOTICE")


def test_the_documents_their_licence_and_notice_ship_in_the_package():
    package_data = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["vtn"]
    for name in SHIPPED:
        path = BUNDLED_SPEC_DIR / name
        assert path.is_file(), path
        relative = path.relative_to(REPO_DIR / "vtn").as_posix()
        assert any(fnmatch(relative, pattern) for pattern in package_data), relative


def test_the_default_setting_points_at_the_shipped_documents():
    # Read in a fresh interpreter without OPENADR_SPEC_DIR, whatever this run has set.
    env = {k: v for k, v in os.environ.items() if k != "OPENADR_SPEC_DIR"}
    default = subprocess.run(
        [sys.executable, "-c", "import config.settings as s; print(s.OPENADR_SPEC_DIR)"],
        cwd=REPO_DIR, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(default).resolve() == BUNDLED_SPEC_DIR.resolve()


# SHA-256 of the official files as published (OpenADR 3.1.1 and 3.0.1 with their Apache-2.0
# LICENSE and NOTICE): the shipped copies must be byte-identical, checked on every run.
OFFICIAL_SHA256 = {
    "3.1.1/openadr3.yaml": "0a85f28a91565b3e2c7488d2a7a7a9afb11ce3ef6b35afddb328484720077006",
    "3.0.1/openadr3.yaml": "3418d267d5a916265f5a1c7e08641da8c3507b39abf682d7902658b57fc2e7e7",
    "LICENSE": "c71d239df91726fc519c6eb72d318ec65820627232b2f796219e87dcf35d0ab4",
    "NOTICE": "756266fbca1073281507f180a5e5854c68976cda8441281644be78407ba5aa09",
}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_copies_are_byte_identical_to_the_official_ones(name):
    digest = hashlib.sha256((BUNDLED_SPEC_DIR / name).read_bytes()).hexdigest()
    assert digest == OFFICIAL_SHA256[name]
    if SHARED_SPEC_DIR.is_dir():  # the originals beside the project, where they are
        assert (BUNDLED_SPEC_DIR / name).read_bytes() == (SHARED_SPEC_DIR / name).read_bytes()


def _manage(tmp_path: Path, *args: str, spec_dir: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"OPENADR_SPEC_DIR": str(spec_dir), "VTN_VAR_DIR": str(tmp_path / "var")}
    env.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, str(REPO_DIR / "manage.py"), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [["sandbox", "--no-serve"], ["serve", "--bind",
                                                                  "127.0.0.1:1"]])
def test_a_missing_document_stops_the_command_with_one_sentence(tmp_path, command):
    spec_dir = tmp_path / "spec"
    (spec_dir / "3.1.1").mkdir(parents=True)
    (spec_dir / "3.1.1" / "openadr3.yaml").write_bytes(
        (BUNDLED_SPEC_DIR / "3.1.1" / "openadr3.yaml").read_bytes())

    result = _manage(tmp_path, *command, spec_dir=spec_dir)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(spec_dir / "3.0.1" / "openadr3.yaml") in lines[0]
    assert "3.1.1/openadr3.yaml is missing" not in lines[0]
    assert "OPENADR_SPEC_DIR" in lines[0]
    assert not (tmp_path / "var" / "vtn.sqlite3").exists()  # stopped before migrating


def test_a_request_validated_without_documents_raises_a_configuration_error(settings, tmp_path):
    from django.core.exceptions import ImproperlyConfigured

    from vtn import schemas

    settings.OPENADR_SPEC_DIR = tmp_path
    schemas.document.cache_clear()
    try:
        with pytest.raises(ImproperlyConfigured, match="OPENADR_SPEC_DIR"):
            schemas.document(schemas.VERSION_31)
    finally:
        schemas.document.cache_clear()
