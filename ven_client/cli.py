"""``ven-client``: the FSP polling agent's command line (docs/fsp-agent.md).

    ven-client init ...            write the configuration file
    ven-client keys generate       create the site signing key and register it
    ven-client keys register       (re)register the existing key's public half
    ven-client run                 poll in the foreground until SIGTERM/SIGINT
    ven-client once                one poll cycle
    ven-client status              state as JSON

The configuration file is ``--config``, else ``$VEN_CLIENT_CONFIG``, else
``/etc/ven-client/config.toml``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ven_client import __version__, handler, logs
from ven_client import config as config_module
from ven_client.config import Config, ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ven-client", description="GB flexibility FSP agent: an OpenADR 3 VEN that polls "
        "the operator's VTN, verifies and acknowledges dispatches and reports readings.")
    parser.add_argument("--config", type=Path, default=None,
                        help=f"configuration file (default ${config_module.ENV_CONFIG} or "
                             f"{config_module.DEFAULT_PATH})")
    parser.add_argument("--version", action="version", version=f"ven-client {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="write the configuration file")
    init.add_argument("--from-onboarding", type=Path, metavar="JSON",
                      help="the onboarding file from the operator console (everything, "
                           "the certificate bundle written beside the configuration) or the "
                           "JSON printed by `fsp onboard` or `pki onboard`")
    init.add_argument("--vtn-url", help="https://host[:port] of the VTN")
    init.add_argument("--openadr-version", choices=config_module.VERSIONS)
    init.add_argument("--client-id")
    init.add_argument("--client-secret")
    init.add_argument("--client-secret-file")
    init.add_argument("--client-cert")
    init.add_argument("--client-key")
    init.add_argument("--ca-bundle")
    init.add_argument("--insecure-skip-tls-verify", action="store_true",
                      help="do not verify the VTN's certificate (testing only)")
    init.add_argument("--ven-name")
    init.add_argument("--unit", action="append", dest="dispatch_units",
                      help="dispatch unit reference (repeatable; default: all of the VEN)")
    init.add_argument("--handler-command", help="command line run per instruction")
    init.add_argument("--handler-entry-point", help="module:function called per instruction")
    init.add_argument("--handler-timeout", type=float, dest="handler_timeout_s")
    init.add_argument("--poll-interval", type=float, dest="poll_interval_s")
    init.add_argument("--state-dir")
    init.add_argument("--drop-dir")
    init.add_argument("--jwks-file")
    init.add_argument("--json", action="store_true", help="write JSON instead of TOML")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    keys = sub.add_parser("keys", help="the site's acknowledgement signing key")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    generate = keys_sub.add_parser("generate", help="create the Ed25519 key pair and "
                                   "register its public half with the VTN")
    generate.add_argument("--kid", help="key id (default site-<date>-<random>)")
    generate.add_argument("--force", action="store_true",
                          help="replace an existing key (rotation: revoke the old kid after)")
    generate.add_argument("--no-register", action="store_true")
    keys_sub.add_parser("register", help="register the existing key's public half")

    sub.add_parser("run", help="poll in the foreground until SIGTERM or SIGINT")
    sub.add_parser("once", help="one poll cycle; exit 1 if the VTN could not be reached")
    sub.add_parser("status", help="state as JSON")
    return parser


def _config_path(args: argparse.Namespace) -> Path:
    return args.config or config_module.default_path()


def _load(args: argparse.Namespace, *, logs_to_stderr: bool = False) -> Config:
    """The configuration; logs go to stdout (``run``, ``once``) or, for commands whose
    stdout is a JSON result, to stderr."""
    config = config_module.load(_config_path(args))
    logs.configure(config.log_format, stream=sys.stderr if logs_to_stderr else None,
                   level=config.log_level)
    return config


def cmd_init(args: argparse.Namespace) -> int:
    path = _config_path(args)
    if path.exists() and not args.force:
        print(f"{path} exists; use --force to overwrite", file=sys.stderr)
        return 2
    values: dict = {}
    if args.from_onboarding:
        from ven_client import onboarding

        values.update(onboarding.values(args.from_onboarding, config_path=path,
                                        force=args.force))
    for name in ("vtn_url", "openadr_version", "client_id", "client_secret",
                 "client_secret_file", "client_cert", "client_key", "ca_bundle", "ven_name",
                 "dispatch_units", "handler_entry_point", "handler_timeout_s",
                 "poll_interval_s", "state_dir", "drop_dir", "jwks_file"):
        value = getattr(args, name)
        if value is not None:
            values[name] = value
    if args.handler_command:
        values["handler_command"] = shlex.split(args.handler_command)
    if args.insecure_skip_tls_verify:
        values["tls_verify"] = False
    # Paths given here are relative to where the command runs; the file keeps them absolute
    # (relative paths in the file would be read against the file's folder).
    config = config_module.resolve_paths(config_module.from_dict(values), Path.cwd())
    config.validate()
    refused = handler.problem(config)
    if refused:
        raise ConfigError(f"{refused}; nothing written")
    if args.json and path.suffix != ".json":
        path = path.with_suffix(".json")
    config_module.save(config, path)
    print(json.dumps({"config": str(path), "state_dir": config.state_dir}))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from gbflex_profile import jose
    from ven_client.transport import Transport

    path = _config_path(args)
    config = _load(args, logs_to_stderr=True)
    key_path = config.signing_key_path
    if args.keys_command == "generate":
        if key_path.exists() and not args.force:
            print(f"{key_path} exists; use --force to replace it", file=sys.stderr)
            return 2
        kid = args.kid or f"site-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
        key_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = key_path.with_name(key_path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(jose.private_key_pem(jose.generate_private_key()))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, key_path)
        config.signing_kid = kid
        if not config.signing_key:
            config.signing_key = str(key_path)
        config_module.save(config, path)
        logs.log("signing_key_generated", kid=kid, path=str(key_path))
        if args.no_register:
            return 0
    if not config.signing_kid or not key_path.exists():
        print("no signing key: run `ven-client keys generate`", file=sys.stderr)
        return 2
    public = jose.public_jwk(jose.load_private_key(key_path.read_bytes()), config.signing_kid)
    transport = Transport(config)
    url = f"{config.vtn_url.rstrip('/')}/dispatch/api/v1/site-keys"
    try:
        response = transport.request("POST", url, json={"jwk": public}, absolute=True)
        registered = response.status_code in (200, 201)
        if response.status_code == 409:  # registered before: fine if it is this very key
            listed = transport.request("GET", url, absolute=True)
            registered = listed.status_code == 200 and any(
                k.get("kid") == config.signing_kid and k.get("jwk", {}).get("x") == public["x"]
                and not k.get("revokedAt") for k in listed.json())
    finally:
        transport.close()
    if registered:
        logs.log("signing_key_registered", kid=config.signing_kid)
        print(json.dumps({"kid": config.signing_kid, "jwk": public, "registered": True}))
        return 0
    print(json.dumps({"kid": config.signing_kid, "registered": False,
                      "status": response.status_code, "error": response.text[:500]}))
    return 1


def _certificate_expiry(path: str) -> dict | None:
    if not path:
        return None
    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        return {"path": path, "error": str(exc)}
    not_after = certificate.not_valid_after_utc
    return {"path": path, "notAfter": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "daysLeft": (not_after - datetime.now(UTC)).days,
            "subject": certificate.subject.rfc4514_string()}


def _iso(seconds: object) -> str | None:
    if not isinstance(seconds, int | float):
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cmd_status(args: argparse.Namespace) -> int:
    from ven_client.store import Store

    config = _load(args, logs_to_stderr=True)
    store = Store(config.database_path)
    try:
        counts = dict(store.db.execute("SELECT state, count(*) FROM outbox GROUP BY state"))
        last_ok = store.get("last_poll_ok")
        stale_after = max(3 * config.poll_interval_s, 60)
        comms = store.get("comms_state", "unknown")
        if comms == "online" and isinstance(last_ok, int | float) and \
                time.time() - last_ok > stale_after:
            comms = "stale"  # the agent is not running, or stuck
        status = {
            "vtn": config.vtn_url, "openadrVersion": config.openadr_version,
            "ven": store.get("ven"), "lastPoll": _iso(store.get("last_poll")),
            "lastSuccessfulPoll": _iso(last_ok), "commsState": comms,
            "lastError": store.get("last_error") if comms != "online" else None,
            "clockSkewSeconds": store.get("clock_skew_s"),
            "push": store.get("push", "off"),
            "lastHeartbeat": _iso(store.get("last_heartbeat")),
            "lastDispatch": store.last_revision(),
            "pendingMessages": counts.get("pending", 0),
            "outbox": counts,
            "signingKid": config.signing_kid or None,
            "certificate": _certificate_expiry(config.client_cert),
        }
        if status["lastDispatch"]:
            for name in ("receivedAt", "actionedAt"):
                status["lastDispatch"][name] = _iso(status["lastDispatch"][name])
    finally:
        store.close()
    print(json.dumps(status, indent=2))
    return 0


def cmd_run(args: argparse.Namespace, *, once: bool) -> int:
    from ven_client.agent import Agent

    config = _load(args)
    return Agent(config).run(once=once)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "init":
            return cmd_init(args)
        if args.command == "keys":
            return cmd_keys(args)
        if args.command == "status":
            return cmd_status(args)
        return cmd_run(args, once=args.command == "once")
    except ConfigError as exc:
        print(f"ven-client: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
