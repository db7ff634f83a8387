"""Settings for the VTN. Every value comes from the environment, with safe defaults.

The embedded default needs no services: SQLite under ``var/``, Celery tasks run
in-process, and a development secret key generated once and kept under ``var/``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

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
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY") or _development_secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
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
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A NUL in the path or query string is refused before any view queries with it.
    "vtn.api.errors.RefuseNulMiddleware",
    # The verified TLS client certificate (own socket or trusted proxy); revoked ones get 401.
    "vtn.auth.mtls.ClientCertificateMiddleware",
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

# Conformance sandbox (docs/conformance.md). Never enable these on a production VTN.
CONFORMANCE_FAULTS_ENABLED = env_bool("CONFORMANCE_FAULTS_ENABLED", False)
CONFORMANCE_SELF_SERVICE = env_bool("CONFORMANCE_SELF_SERVICE", False)
CONFORMANCE_OPERATOR = os.environ.get("CONFORMANCE_OPERATOR", "ENWL")
CONFORMANCE_MAX_FSPS = int(os.environ.get("CONFORMANCE_MAX_FSPS", "50"))
CONFORMANCE_ONBOARD_RATE_PER_HOUR = int(os.environ.get("CONFORMANCE_ONBOARD_RATE_PER_HOUR", "10"))
if CONFORMANCE_FAULTS_ENABLED:
    MIDDLEWARE.insert(1, "conformance.middleware.FaultInjectionMiddleware")

ROOT_URLCONF = "config.urls"
# A failed CSRF check answers like every other error: a problem, or the console's page.
CSRF_FAILURE_VIEW = "vtn.api.errors.csrf_failure"
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
        {"timeout": 20, "transaction_mode": "IMMEDIATE",
         "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL.startswith("redis://"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": CACHE_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

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

OPENADR_SPEC_DIR = Path(os.environ.get("OPENADR_SPEC_DIR", BASE_DIR.parent / "shared" / "openadr3"))
VTN_PUBLIC_URL = os.environ.get("VTN_PUBLIC_URL", "https://127.0.0.1:8443")
VTN_TLS_CERT = os.environ.get("VTN_TLS_CERT", str(VAR_DIR / "pki" / "server.pem"))
VTN_TLS_KEY = os.environ.get("VTN_TLS_KEY", str(VAR_DIR / "pki" / "server.key"))
VTN_TLS_CLIENT_CA = os.environ.get("VTN_TLS_CLIENT_CA", "")
VTN_PAGE_DEFAULT = int(os.environ.get("VTN_PAGE_DEFAULT", "50"))
VTN_PAGE_MAX = 50  # both documents cap `limit` at 50
VTN_MQTT_BROKER_URL = os.environ.get("VTN_MQTT_BROKER_URL", "")
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
VTN_AUTH_FAILURE_RATE = os.environ.get("VTN_AUTH_FAILURE_RATE", "10/min")

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
# How often the beat task `dispatch.tasks.check_comms` runs.
DISPATCH_COMMS_CHECK_SECONDS = int(os.environ.get("DISPATCH_COMMS_CHECK_SECONDS", "30"))

# --- REST framework and OAuth2 -------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["vtn.auth.authentication.ClientTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["vtn.auth.permissions.HasOperationScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
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
}

SPECTACULAR_SETTINGS = {
    "TITLE": "GB flexibility VTN",
    "VERSION": "0.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery ---------------------------------------------------------------------------------

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Retention (docs/operations.md): days each kind is kept; 0 keeps it forever. The daily
# task dispatch.tasks.purge_retained never deletes what a kept statement or the audit
# chain needs.
RETENTION_HEARTBEAT_DAYS = int(os.environ.get("RETENTION_HEARTBEAT_DAYS", "90"))
RETENTION_SECURITY_LOG_DAYS = int(os.environ.get("RETENTION_SECURITY_LOG_DAYS", "730"))
RETENTION_METER_READING_DAYS = int(os.environ.get("RETENTION_METER_READING_DAYS", "2557"))

# --- Security headers ------------------------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_HSTS_SECONDS = int(os.environ.get("VTN_HSTS_SECONDS", "31536000"))
SECURE_PROXY_SSL_HEADER = None
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
# Operator console (docs/console.md): staff sessions end after CONSOLE_SESSION_SECONDS
# (default 8 hours) or when the browser closes, whichever comes first.
LOGIN_URL = "/console/login"
SESSION_COOKIE_AGE = int(os.environ.get("CONSOLE_SESSION_SECONDS", "28800"))
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

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
