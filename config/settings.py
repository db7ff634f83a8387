"""Settings for the VTN. Every value comes from the environment, with safe defaults.

The embedded default needs no services: SQLite under ``var/``, Celery tasks run
in-process, and a development secret key generated once and kept under ``var/``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VTN_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def _development_secret_key() -> str:
    path = VAR_DIR / "secret_key"
    if not path.exists():
        # Several processes may start at once on a fresh directory (gunicorn workers,
        # parallel tests): the key appears whole or not at all, and the first one wins.
        draft = VAR_DIR / f".secret_key.{os.getpid()}"
        draft.write_text(secrets.token_urlsafe(64))
        draft.chmod(0o600)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY") or _development_secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    # django.contrib.admin with the OTP admin site (console/admin_site.py).
    "console.apps.VtnAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "oauth2_provider",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "vtn",
    "dispatch",
    "settlement",
    "conformance",
    "console",
    # manage.py serve, health probes, error handlers (webserver/).
    "webserver",
]

MIDDLEWARE = [
    # Outermost: every problem document in the media type the client's Accept prefers.
    "vtn.api.errors.ProblemMediaTypeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on HTML pages; 413 for bodies over VTN_MAX_BODY_BYTES.
    "webserver.security_headers.SecurityHeadersMiddleware",
    # A NUL in the path or query string is refused before any view queries with it.
    "vtn.api.errors.RefuseNulMiddleware",
    # The verified TLS client certificate (own socket or trusted proxy); revoked ones get 401.
    "vtn.api.middleware.ClientCertificateMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # ETag / If-None-Match: an unchanged poll answer costs the client a 304, not a body.
    "django.middleware.http.ConditionalGetMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.user.is_verified(): the operator console requires a TOTP second factor.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # After the response: a VEN's authenticated request moves its site's last-seen time.
    "dispatch.middleware.LastSeenMiddleware",
]
# The operator console's middleware: API requests (bearer tokens, no cookies, no pages)
# skip them. Paths under these prefixes run MIDDLEWARE without these entries
# (webserver/routing.py); everything else runs all of MIDDLEWARE.
VTN_CONSOLE_ONLY_MIDDLEWARE = [
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
VTN_LEAN_PATH_PREFIXES = ["/openadr3/", "/healthz", "/readyz"]

# Conformance sandbox (docs/conformance.md). Never enable these on a production VTN.
CONFORMANCE_FAULTS_ENABLED = env_bool("CONFORMANCE_FAULTS_ENABLED", False)
CONFORMANCE_SELF_SERVICE = env_bool("CONFORMANCE_SELF_SERVICE", False)
CONFORMANCE_OPERATOR = os.environ.get("CONFORMANCE_OPERATOR", "ENWL")
CONFORMANCE_MAX_FSPS = int(os.environ.get("CONFORMANCE_MAX_FSPS", "50"))
CONFORMANCE_ONBOARD_RATE_PER_HOUR = int(os.environ.get("CONFORMANCE_ONBOARD_RATE_PER_HOUR", "10"))
# Self-service FSPs expire (clients and certificates revoked) this many hours after onboarding.
CONFORMANCE_FSP_TTL_HOURS = float(os.environ.get("CONFORMANCE_FSP_TTL_HOURS", "72"))
# The key-rotation scenario retires the sandbox operator's key for this many minutes only,
# and keeps at most this many retired keys in the JWKS (older ones leave it at once).
CONFORMANCE_ROTATED_KEY_VERIFY_MINUTES = float(
    os.environ.get("CONFORMANCE_ROTATED_KEY_VERIFY_MINUTES", "60"))
CONFORMANCE_ROTATED_KEYS_KEPT = int(os.environ.get("CONFORMANCE_ROTATED_KEYS_KEPT", "2"))
if CONFORMANCE_FAULTS_ENABLED:
    MIDDLEWARE.insert(1, "conformance.middleware.FaultInjectionMiddleware")

ROOT_URLCONF = "config.urls"
# A failed CSRF check answers like every other error: a problem, or the console's page.
CSRF_FAILURE_VIEW = "webserver.handlers.csrf_failure"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'vtn.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "600")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        # IMMEDIATE: a transaction takes the write lock when it begins, so concurrent
        # writers wait (up to the timeout) instead of failing with "database is locked".
        # Commands and workers wait this long; `serve` shortens it for web requests to
        # SQLITE_LOCK_TIMEOUT_SECONDS (webserver/server.py), then answers 503.
        {"timeout": float(os.environ.get("SQLITE_BATCH_LOCK_TIMEOUT_SECONDS", "20")),
         "transaction_mode": "IMMEDIATE",
         "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# SQLite only: a web request waits at most this long for another writer's lock, then
# answers 503 with Retry-After (vtn/api/errors.py) rather than keeping the client waiting.
SQLITE_LOCK_TIMEOUT_SECONDS = float(os.environ.get("SQLITE_LOCK_TIMEOUT_SECONDS", "5"))
# Retry-After (seconds) of the 503 answered while the database is down or locked.
VTN_RETRY_AFTER_SECONDS = int(os.environ.get("VTN_RETRY_AFTER_SECONDS", "5"))

CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL.startswith("redis://"):
    # Short timeouts: the rate-limit counters fall back to this process when Redis does
    # not answer (vtn/auth/ratelimit.py), and should find out quickly.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": CACHE_URL,
                          "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# People's passwords keep Django's slow default (first); client secrets, 256-bit random
# values, use a keyed fast hash (vtn/auth/hashers.py, OAUTH2_PROVIDER's CLIENT_SECRET_HASHER).
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "vtn.auth.hashers.ClientSecretHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns about a missing STATIC_ROOT
# WhiteNoise serves static files (Swagger UI assets) straight from the apps: no collectstatic.
WHITENOISE_USE_FINDERS = True

# --- OpenADR / VTN -------------------------------------------------------------------------

# The official OpenAPI documents the VTN validates against; a copy ships in vtn/openapi/.
OPENADR_SPEC_DIR = Path(os.environ.get("OPENADR_SPEC_DIR") or BASE_DIR / "vtn" / "openapi")
VTN_PUBLIC_URL = os.environ.get("VTN_PUBLIC_URL", "https://127.0.0.1:8443")
VTN_TLS_CERT = os.environ.get("VTN_TLS_CERT", str(VAR_DIR / "pki" / "server.pem"))
VTN_TLS_KEY = os.environ.get("VTN_TLS_KEY", str(VAR_DIR / "pki" / "server.key"))
VTN_TLS_CLIENT_CA = os.environ.get("VTN_TLS_CLIENT_CA", "")
VTN_PAGE_DEFAULT = int(os.environ.get("VTN_PAGE_DEFAULT", "50"))
VTN_PAGE_MAX = 50  # both documents cap `limit` at 50
# MQTT notifier (docs/notifications.md): on only when the broker URL is set. The VTN
# publishes with VTN_MQTT_USERNAME/PASSWORD; clients are told VTN_MQTT_PUBLIC_URIS (default:
# the broker URL) and VTN_MQTT_AUTHENTICATION, which must say how the broker really
# authenticates them (ANONYMOUS only for development).
VTN_MQTT_BROKER_URL = os.environ.get("VTN_MQTT_BROKER_URL", "")
VTN_MQTT_PUBLIC_URIS = env_list("VTN_MQTT_PUBLIC_URIS", [])
VTN_MQTT_AUTHENTICATION = os.environ.get("VTN_MQTT_AUTHENTICATION", "ANONYMOUS")
VTN_MQTT_USERNAME = os.environ.get("VTN_MQTT_USERNAME", "")
VTN_MQTT_PASSWORD = os.environ.get("VTN_MQTT_PASSWORD", "")
VTN_MQTT_CLIENT_ID = os.environ.get("VTN_MQTT_CLIENT_ID", "")
VTN_MQTT_CA_BUNDLE = os.environ.get("VTN_MQTT_CA_BUNDLE", "")
VTN_MQTT_TOPIC_PREFIX = os.environ.get("VTN_MQTT_TOPIC_PREFIX", "openadr3")
# With CERTIFICATE, the CA certificate a client needs to verify the broker (the binding's
# caCert): this file, else VTN_MQTT_CA_BUNDLE, else the operator CA in VTN_PKI_DIR.
VTN_MQTT_PUBLIC_CA_FILE = os.environ.get("VTN_MQTT_PUBLIC_CA_FILE", "")
MQTT_AUTHENTICATION_METHODS = ("ANONYMOUS", "OAUTH2_BEARER_TOKEN", "CERTIFICATE")
if VTN_MQTT_AUTHENTICATION not in MQTT_AUTHENTICATION_METHODS:
    raise ImproperlyConfigured(f"VTN_MQTT_AUTHENTICATION must be one of "
                               f"{', '.join(MQTT_AUTHENTICATION_METHODS)}")
if VTN_MQTT_BROKER_URL and VTN_MQTT_AUTHENTICATION == "CERTIFICATE" and not all(
        uri.startswith(("mqtts://", "ssl://"))
        for uri in VTN_MQTT_PUBLIC_URIS or [VTN_MQTT_BROKER_URL]):
    # Client certificates exist only on TLS: advertising them on a plain listener is a lie.
    raise ImproperlyConfigured("VTN_MQTT_AUTHENTICATION=CERTIFICATE needs mqtts:// public "
                               "URIs (VTN_MQTT_PUBLIC_URIS)")
# Admin of Mosquitto's dynamic security plugin: with OAUTH2_BEARER_TOKEN or CERTIFICATE the
# VTN provisions each client's broker account and topic access (vtn/mqtt_acl.py) and
# publishes as this user.
VTN_MQTT_DYNSEC_USERNAME = os.environ.get("VTN_MQTT_DYNSEC_USERNAME", "")
VTN_MQTT_DYNSEC_PASSWORD = os.environ.get("VTN_MQTT_DYNSEC_PASSWORD", "")
# Webhook notifications (docs/notifications.md). Callback URLs must be HTTPS; ones that
# name or resolve to loopback, private, link-local or reserved addresses are refused
# unless VTN_CALLBACK_ALLOW_PRIVATE is true (below; sandbox and tests only).
VTN_WEBHOOKS_ENABLED = env_bool("VTN_WEBHOOKS_ENABLED", True)
# The echo check of a new callback URL (GET callbackUrl?echo=...). Never turn it off in
# production: only test suites that store subscriptions to unreachable hosts do.
VTN_WEBHOOK_VERIFY_CALLBACKS = env_bool("VTN_WEBHOOK_VERIFY_CALLBACKS", True)
# CA bundle used to verify receivers' certificates; empty: the system's trust store.
VTN_WEBHOOK_CA_BUNDLE = os.environ.get("VTN_WEBHOOK_CA_BUNDLE", "")
VTN_WEBHOOK_CONNECT_TIMEOUT = float(os.environ.get("VTN_WEBHOOK_CONNECT_TIMEOUT", "3"))
VTN_WEBHOOK_READ_TIMEOUT = float(os.environ.get("VTN_WEBHOOK_READ_TIMEOUT", "5"))
# Seconds to wait before each retry of a failed delivery (each with +-20 % jitter); after
# the last one fails the subscription is marked broken. Five tries over about half an hour.
VTN_WEBHOOK_RETRY_DELAYS = [float(v) for v in env_list("VTN_WEBHOOK_RETRY_DELAYS",
                                                       ["30", "120", "480", "1200"])]
# Receivers delivered to at once by one process (one slow receiver holds one of these).
VTN_WEBHOOK_CONCURRENCY = int(os.environ.get("VTN_WEBHOOK_CONCURRENCY", "16"))
# Subscription callbacks may point at loopback, link-local or private addresses only when
# this is true (tests and the sandbox); see vtn/callbacks.py.
VTN_CALLBACK_ALLOW_PRIVATE = env_bool("VTN_CALLBACK_ALLOW_PRIVATE", False)
# How long a client's Idempotency-Key is remembered (vtn/idempotency.py); the beat task
# `vtn.tasks.purge_idempotency_keys` deletes older records.
IDEMPOTENCY_KEY_RETENTION_HOURS = float(os.environ.get("IDEMPOTENCY_KEY_RETENTION_HOURS", "72"))

# --- Transport security (docs/security.md) ----------------------------------------------------

# Whether new VEN clients must present their bound TLS client certificate. False suits this
# development configuration; set it to true in production. BL clients never default to it.
VTN_REQUIRE_MTLS_DEFAULT = env_bool("VTN_REQUIRE_MTLS_DEFAULT", False)
# Reverse proxies (IPs or CIDRs) whose client-certificate header is believed. Empty: none.
VTN_TRUSTED_PROXIES = env_list("VTN_TRUSTED_PROXIES", [])
# The header a trusted proxy puts the verified, URL-encoded PEM client certificate in.
VTN_CLIENT_CERT_HEADER = os.environ.get("VTN_CLIENT_CERT_HEADER", "X-SSL-Client-Cert")
# Where `manage.py pki` keeps the CA, issued certificates and crl.pem by default.
VTN_PKI_DIR = Path(os.environ.get("VTN_PKI_DIR", VAR_DIR / "pki"))
VTN_CERT_EXPIRY_WARNING_DAYS = int(os.environ.get("VTN_CERT_EXPIRY_WARNING_DAYS", "30"))
# Rates as "N/unit" or "N/<k><unit>" (unit: s, min, h, day), e.g. "30/min", "5/10s".
VTN_TOKEN_RATE = os.environ.get("VTN_TOKEN_RATE", "30/min")
# Failed authentications per (source address, the client or certificate they name), and per
# address for credentials that name nothing valid. Valid credentials never meet these.
VTN_AUTH_FAILURE_RATE = os.environ.get("VTN_AUTH_FAILURE_RATE", "10/min")
VTN_AUTH_FAILURE_ADDRESS_RATE = os.environ.get("VTN_AUTH_FAILURE_ADDRESS_RATE", "30/min")
# While the shared cache (Redis) does not answer, rate-limit counters live in each process;
# the shared cache is tried again after this many seconds.
VTN_RATELIMIT_RETRY_SECONDS = float(os.environ.get("VTN_RATELIMIT_RETRY_SECONDS", "5"))
# Key of the HMAC-SHA256 that stores client secrets (256-bit random values); defaults to one
# derived from SECRET_KEY (so changing SECRET_KEY without setting this invalidates every
# client secret).
VTN_CLIENT_SECRET_KEY = os.environ.get("VTN_CLIENT_SECRET_KEY", "")

# --- GB dispatch profile (docs/gb-dispatch-profile.md) -------------------------------------

# Encrypts operators' dispatch signing keys at rest; defaults to SECRET_KEY (so changing
# SECRET_KEY without setting this makes stored signing keys unreadable).
DISPATCH_SIGNING_KEY_PASSPHRASE = os.environ.get("DISPATCH_SIGNING_KEY_PASSPHRASE", "")
# How long a retired signing key stays in /.well-known/jwks.json for verification.
DISPATCH_SIGNING_KEY_VERIFY_DAYS = int(os.environ.get("DISPATCH_SIGNING_KEY_VERIFY_DAYS", "90"))
# Cache-Control max-age of the JWKS, in seconds.
DISPATCH_JWKS_MAX_AGE = int(os.environ.get("DISPATCH_JWKS_MAX_AGE", "300"))

# A VEN's requests move its site's last-seen time at most once per this many seconds
# (per web process); comms are lost after a site's shortest product heartbeat interval
# times the grace factor without a request or heartbeat.
DISPATCH_LAST_SEEN_RESOLUTION_SECONDS = float(
    os.environ.get("DISPATCH_LAST_SEEN_RESOLUTION_SECONDS", "15"))
DISPATCH_COMMS_GRACE_FACTOR = float(os.environ.get("DISPATCH_COMMS_GRACE_FACTOR", "1.5"))
# How often each web process records that the VTN is serving (vtn/serving.py); a silence
# longer than three beats is a VTN outage, which the comms check does not blame on FSPs.
VTN_SERVING_BEAT_SECONDS = float(os.environ.get("VTN_SERVING_BEAT_SECONDS", "10"))
# On PostgreSQL each web process learns of changes to the cache counters (what VENs may
# see, revocations) from notifications (vtn/generations.py), and re-reads them at least this
# often (seconds) whatever it heard.
VTN_CHANGE_RECHECK_SECONDS = float(os.environ.get("VTN_CHANGE_RECHECK_SECONDS", "1"))
# How often at most a process looks for change notifications (a non-blocking check of its
# listening socket; vtn/generations.py). A change is acted on within this of arriving.
VTN_CHANGE_CHECK_SECONDS = float(os.environ.get("VTN_CHANGE_CHECK_SECONDS", "0.002"))
# How often the beat task `dispatch.tasks.check_comms` runs.
DISPATCH_COMMS_CHECK_SECONDS = int(os.environ.get("DISPATCH_COMMS_CHECK_SECONDS", "30"))

# --- REST framework and OAuth2 -------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["vtn.auth.authentication.ClientTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["vtn.auth.permissions.HasOperationScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["vtn.api.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "vtn.api.problems.problem_exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "vtn.api.negotiation.JSONOnly",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(os.environ.get("VTN_TOKEN_LIFETIME_SECONDS", "3600")),
    "SCOPES": {
        "read_all": "Read every object (business logic)",
        "read_targets": "Read programs and events whose targets the VEN was granted",
        "read_ven_objects": "Read the VEN's own vens, resources, reports and subscriptions",
        "write_programs": "Create, update and delete programs",
        "write_events": "Create, update and delete events",
        "write_reports": "Create, update and delete reports",
        "write_subscriptions": "Create, update and delete subscriptions",
        "write_vens": "Create, update and delete vens and resources",
    },
    "ALLOWED_GRANT_TYPES": ["client_credentials"],
    "PKCE_REQUIRED": False,
    "OAUTH2_VALIDATOR_CLASS": "vtn.auth.validator.VtnOAuth2Validator",
    "CLIENT_SECRET_HASHER": "vtn_hmac_sha256",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "GB flexibility VTN",
    "VERSION": "0.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Errors: RFC 7807 problems as application/json or application/problem+json.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "vtn.api.openapi.problem_responses"],
}

# --- Celery ---------------------------------------------------------------------------------

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Beat and the workers keep reconnecting to the broker however long Redis is away, at
# start-up and afterwards (Celery's default gives up after 100 attempts), so scheduling
# resumes by itself when Redis returns.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Tasks marked acks_late (a statement's settlement) are acknowledged when they finish; one
# whose worker died is handed out again once the broker's visibility timeout has passed
# (seconds; longer than any task runs, since a task still running then is handed out a
# second time too, which settlement tolerates). Each worker takes one task at a time, so
# a long statement does not hold others back behind it.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "1800")),
    "unacked_restore_interval": 2, "unacked_restore_throttle": 1}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# Retention (docs/operations.md): days each kind is kept; 0 keeps it forever. The daily
# task dispatch.tasks.purge_retained never deletes what a kept statement or the audit
# chain needs.
RETENTION_HEARTBEAT_DAYS = int(os.environ.get("RETENTION_HEARTBEAT_DAYS", "90"))
RETENTION_SECURITY_LOG_DAYS = int(os.environ.get("RETENTION_SECURITY_LOG_DAYS", "730"))
RETENTION_METER_READING_DAYS = int(os.environ.get("RETENTION_METER_READING_DAYS", "2557"))

# --- Security headers ------------------------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
# Every HTML page (console, admin, API docs): this origin only, no inline script
# (webserver/security_headers.py; docs/security.md, "Headers and limits").
VTN_CSP = os.environ.get(
    "VTN_CSP",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'")
# The API docs (Swagger UI adds a <style> element as it renders): inline styles allowed,
# scripts still from this origin only.
VTN_CSP_DOCS = os.environ.get("VTN_CSP_DOCS", VTN_CSP.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"))
# The largest request body accepted (bytes): larger ones get 413 with a problem body.
VTN_MAX_BODY_BYTES = int(os.environ.get("VTN_MAX_BODY_BYTES", str(1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = VTN_MAX_BODY_BYTES
SECURE_HSTS_SECONDS = int(os.environ.get("VTN_HSTS_SECONDS", "31536000"))
SECURE_PROXY_SSL_HEADER = None
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
# Operator console (docs/console.md): staff sessions end after CONSOLE_SESSION_SECONDS
# (default 8 hours) or when the browser closes, whichever comes first.
LOGIN_URL = "/console/login"
SESSION_COOKIE_AGE = int(os.environ.get("CONSOLE_SESSION_SECONDS", "28800"))
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- Staff logins: console and admin (docs/security.md, "Staff logins") ----------------------

# Whether this process serves the Django admin at /admin/. Set it to false on the public
# listener and run a second `manage.py serve` with it true on a management-only bind.
VTN_ADMIN_ENABLED = env_bool("VTN_ADMIN_ENABLED", True)
# The admin never shows TOTP keys (django-otp's own switch; console/admin.py goes further).
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# Failed logins (console/login_throttle.py): free failures per key, then a delay doubling
# from the base up to the maximum, and a lockout of an address (or of an account from one
# address) after LOGIN_THROTTLE_LOCKOUT_FAILURES attempts, for LOGIN_THROTTLE_LOCKOUT_SECONDS
# or until `manage.py login_lockouts clear`.
LOGIN_THROTTLE_FREE_FAILURES = int(os.environ.get("LOGIN_THROTTLE_FREE_FAILURES", "5"))
LOGIN_THROTTLE_BASE_DELAY_SECONDS = float(
    os.environ.get("LOGIN_THROTTLE_BASE_DELAY_SECONDS", "1"))
LOGIN_THROTTLE_MAX_DELAY_SECONDS = float(os.environ.get("LOGIN_THROTTLE_MAX_DELAY_SECONDS", "60"))
LOGIN_THROTTLE_LOCKOUT_FAILURES = int(os.environ.get("LOGIN_THROTTLE_LOCKOUT_FAILURES", "20"))
LOGIN_THROTTLE_LOCKOUT_SECONDS = float(os.environ.get("LOGIN_THROTTLE_LOCKOUT_SECONDS", "3600"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}

APPEND_SLASH = False
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"

# --- Settlement: UFTP (Shapeshifter) export --------------------------------------------------
# Internet domains of exported FlexSettlement messages (docs/settlement.md, "UFTP export"):
# "{operator}" and "{fsp}" become the statement's operator code and FSP identifier as DNS
# labels. The defaults are placeholders under the reserved .example domain.
SETTLEMENT_UFTP_SENDER_DOMAIN = os.environ.get("SETTLEMENT_UFTP_SENDER_DOMAIN",
                                               "{operator}.dso.example")
SETTLEMENT_UFTP_RECIPIENT_DOMAIN = os.environ.get("SETTLEMENT_UFTP_RECIPIENT_DOMAIN",
                                                  "{fsp}.agr.example")
