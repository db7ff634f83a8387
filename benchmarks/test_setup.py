"""What the test suite's set-up steps cost, the old way against the way it runs now.

Each pair runs in interleaved rounds (old, new, old, new, ...) on this machine, so a change
of load hits both sides alike; the figure of merit is the median over rounds of old/new.

1. ``test database``: a worker's test database. Old: migrate an empty database (what
   pytest-django did in every worker). New: ``CREATE DATABASE ... TEMPLATE`` of the
   migrated template, then ``migrate`` finding nothing to apply (``tests/fixtures/database.py``).
2. ``own cluster``: the schema in a database of another PostgreSQL server (the outage and
   restore-drill tests' own clusters). Old: migrate. New: ``pg_restore`` of the template's
   dump (``tests/fixtures/server.py``). Measured on the suite's server, in a fresh database.
3. ``password``: one staff password hashed and checked in-process. Old: Django's PBKDF2.
   New: the fast hasher in-process tests use for the session (``tests/fixtures/api.py``).
4. ``django start-up``: one ``manage.py help``. Old: without bytecode files of the
   project's own modules, as under ``PYTHONDONTWRITEBYTECODE=1`` on a fresh clone (those
   modules are compiled again by every process). New: reusing the ones the first process
   wrote (``make test`` unsets the variable).
5. ``bl client``: a business-logic client created and granted its operators on a test
   server's database. Old: two ``manage.py`` processes. New: one (``VtnServer.manage_many``).

Prints, per pair and round, wall seconds and CPU seconds (the process and its children),
then the medians and the median ratio old/new, the load average before and after, and
the machine, as JSON.

Usage: ``DATABASE_URL=postgres://... python benchmarks/test_setup.py [--rounds 3]``.
PostgreSQL is required (the template steps exist only there). Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from benchmarks.poll import machine  # noqa: E402
from tests.fixtures.server import (  # noqa: E402
    E2EDatabase,
    VtnServer,
    _admin_connection,
    _is_postgres,
    _migrate,
    _postgres_template,
    _postgres_tool,
    _with_database,
    run_manage,
    template_dump,
)


def cpu_seconds() -> float:
    """User + system CPU of this process and its waited-for children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(step: Callable[[], None]) -> dict:
    cpu, wall = cpu_seconds(), time.perf_counter()
    step()
    return {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu}


class Databases:
    """Fresh databases on the suite's server, dropped at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.names: list[str] = []

    def create(self, template: str | None = None) -> str:
        name = f"vtn_bench_{secrets.token_hex(4)}"
        with _admin_connection(self.url) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'
                         + (f' TEMPLATE "{template}"' if template else ""))
        self.names.append(name)
        return _with_database(self.url, name)

    def drop_all(self) -> None:
        with _admin_connection(self.url) as conn:
            for name in self.names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.names.clear()


def pairs(url: str, databases: Databases, workdir: Path
          ) -> dict[str, tuple[Callable[[], None], Callable[[], None]]]:
    template = _postgres_template(url)
    dump = template_dump(url)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
           "SECRET_KEY": secrets.token_urlsafe(50), "VTN_VAR_DIR": str(workdir)}

    def migrate_empty() -> None:
        _migrate(databases.create(), workdir)

    def clone_template() -> None:
        run_manage({**env, "DATABASE_URL": databases.create(template)}, "migrate",
                   "--no-input", "-v", "0")

    def restore_dump() -> None:
        subprocess.run([_postgres_tool("pg_restore") or "pg_restore", "--no-owner",
                        "--exit-on-error", "--dbname", databases.create(), str(dump)],
                       check=True, capture_output=True)

    from django.contrib.auth.hashers import MD5PasswordHasher, PBKDF2PasswordHasher

    def hash_with(hasher) -> Callable[[], None]:
        def step() -> None:
            encoded = hasher.encode("Pa55-word-long", hasher.salt())
            assert hasher.verify("Pa55-word-long", encoded)
        return step

    server = VtnServer(workdir / "server", E2EDatabase(url, workdir))
    databases.names.append(server.database.name)  # dropped with the others
    counter = iter(range(10**6))

    def two_processes() -> None:
        made = json.loads(server.manage("oadr_client", "create", "--role", "bl", "--name",
                                        f"bench-old-{next(counter)}").stdout)
        server.manage("operator_scope", "set", "--client", made["client_id"],
                      "--operator", "NGED-EM")

    def one_process() -> None:
        server.create_client("bl", "bench-new", operators=["NGED-EM"])

    cold, warm = workdir / "pycache-cold", workdir / "pycache-warm"

    def start_django(prefix: Path, write: bool) -> Callable[[], None]:
        startup = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        startup |= {"PYTHONPYCACHEPREFIX": str(prefix), "DATABASE_URL": url}
        if not write:
            startup["PYTHONDONTWRITEBYTECODE"] = "1"
        return lambda: run_manage(startup, "help")

    start_django(warm, True)()  # the first run of a suite writes them
    # Without them, as on a fresh clone: the installed packages' bytecode exists (pip wrote
    # it), the project's own modules have none and are compiled on every start-up.
    start_django(cold, True)()
    project = cold / str(ROOT).lstrip("/")
    for entry in project.iterdir() if project.exists() else ():
        if entry.name != ".venv":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    return {"test database": (migrate_empty, clone_template),
            "django start-up": (start_django(cold, False), start_django(warm, True)),
            "own cluster": (migrate_empty, restore_dump),
            "password": (hash_with(PBKDF2PasswordHasher()), hash_with(MD5PasswordHasher())),
            "bl client": (two_processes, one_process)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", action="append", help="run only this pair (repeatable)")
    options = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not _is_postgres(url):
        sys.exit("DATABASE_URL must name a PostgreSQL server")
    import django

    django.setup()
    load_before = os.getloadavg()
    databases = Databases(url)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="vtn-bench-setup-") as directory:
        try:
            steps = pairs(url, databases, Path(directory))
            for name, (old, new) in steps.items():
                if options.only and name not in options.only:
                    continue
                rounds = []
                for _ in range(options.rounds):
                    rounds.append({"old": measure(old), "new": measure(new)})
                    print(json.dumps({"pair": name, **rounds[-1]}), flush=True)
                results[name] = {
                    side: {k: statistics.median(r[side][k] for r in rounds)
                           for k in ("wall_s", "cpu_s")} for side in ("old", "new")}
                results[name]["median_ratio_old_over_new"] = {
                    k: statistics.median(r["old"][k] / max(r["new"][k], 1e-9) for r in rounds)
                    for k in ("wall_s", "cpu_s")}
        finally:
            databases.drop_all()
    print(json.dumps({"rounds": options.rounds, "results": results,
                      "load_average_before": load_before,
                      "load_average_after": os.getloadavg(), "machine": machine()}, indent=2))


if __name__ == "__main__":
    main()
