"""Webhook notifications: callback checks, the outbox, delivery with retries.

The flow (see docs/notifications.md):

1. ``on_object_changed`` (the ``object_changed`` receiver, so after the commit) describes
   the change once (:class:`vtn.notifications.Change`, the object rendered in both wire
   versions) and hands it to :func:`fan_out`, through Celery when a broker is configured
   (the ``vtn.tasks.notify_change`` task) or on a background thread of this process in
   the embedded default. Never in the request that caused it.
2. :func:`fan_out` decides the recipients (``vtn.notifications.recipients``: operations,
   ``programID`` and ``targets`` filters, object privacy), writes one
   :class:`~vtn.models.WebhookDelivery` per recipient and starts :func:`drain` for each
   subscription on this process's delivery pool.
3. :func:`drain` delivers one subscription's pending notifications oldest first, holding
   a short lease on the subscription so no two workers deliver it at once (per
   subscription, notifications arrive in the order the changes committed). A failed
   attempt is retried later (``VTN_WEBHOOK_RETRY_DELAYS``, with jitter); when the last
   retry fails the subscription is marked broken, its pending notifications are
   abandoned and the security log says so. An update by its owner, or an operator's
   reset, repairs it.

One slow receiver holds one thread of the pool for at most the connect and read
timeouts per attempt, so others keep being delivered.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import threading
from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from vtn import background, callbacks, mqtt, notifications, ownership, selectors
from vtn import targets as target_rules
from vtn.auth import security_log
from vtn.errors import BadRequest
from vtn.models import Client, ObjectOwner, Subscription, WebhookDelivery
from vtn.notifications import Change, Subscriber
from vtn.schemas import VERSION_301
from vtn.wire.v31 import Wire31
from vtn.wire.v301 import Wire301

logger = logging.getLogger("vtn.webhooks")
State = WebhookDelivery.State

NOTIFICATION_ID_HEADER = "X-OpenADR-Notification-Id"
LEASE = timedelta(seconds=60)
ERROR_LIMIT = 500


# --- callback URLs ------------------------------------------------------------------------

def callback_problem(url: str, *, resolve: bool) -> str | None:
    """Why the VTN will not call ``url`` (None: it may), as a sentence naming the URL.

    The address policy is ``vtn.callbacks.refusal`` (no loopback, private, link-local or
    reserved address or local name unless ``VTN_CALLBACK_ALLOW_PRIVATE``); on top of it
    webhooks need HTTPS and no credentials in the URL and, with ``resolve``, every
    address the name resolves to must pass the same policy (checked again before every
    delivery, so a name that moves into the VTN's network is not called).
    """
    allow_private = settings.VTN_CALLBACK_ALLOW_PRIVATE
    reason = callbacks.refusal(url, allow_private=allow_private)
    if reason:
        return reason
    parts = urlsplit(url)
    if parts.scheme != "https":
        return f"callbackUrl {url!r} must be an https URL."
    if parts.username or parts.password:
        return f"callbackUrl {url!r} must not carry credentials (use bearerToken)."
    if allow_private or not resolve:
        return None
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return f"callbackUrl {url!r} has a host name that does not resolve."
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if callbacks.internal(address):
            return (f"callbackUrl {url!r} resolves to a loopback, link-local or private "
                    f"address ({address}); this VTN only calls back to public addresses.")
    return None


def check_callback_url(url: str, *, resolve: bool) -> None:
    """Raise a 400 problem when ``url`` is not a callback URL the VTN will call."""
    problem = callback_problem(url, resolve=resolve)
    if problem is not None:
        raise BadRequest(problem)


def _with_echo(url: str, value: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + [("echo", value)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def verify_callback(url: str, bearer_token: str | None) -> None:
    """The definition's check: ``GET url?echo=<random>`` must answer 200 with the value
    in its body. Raise a 400 problem saying what went wrong otherwise."""
    value = secrets.token_urlsafe(24)
    try:
        response = _session().get(_with_echo(url, value), headers=_auth(bearer_token),
                                  timeout=_timeouts(), allow_redirects=False,
                                  verify=_verify())
    except requests.RequestException as exc:
        raise BadRequest(f"callbackUrl {url!r} could not be verified: the echo request "
                         f"failed ({type(exc).__name__}).") from exc
    if response.status_code != 200:
        raise BadRequest(f"callbackUrl {url!r} could not be verified: the echo request "
                         f"answered HTTP {response.status_code}, not 200.")
    if value not in response.text[:10_000]:
        raise BadRequest(f"callbackUrl {url!r} could not be verified: the answer to the "
                         "echo request did not contain the echo value.")


def check_subscription_callbacks(operations: list[dict], previous: list[dict] | None) -> None:
    """Check every callback URL; verify (echo) those that are new or changed."""
    verify = settings.VTN_WEBHOOK_VERIFY_CALLBACKS
    known = {entry["callbackUrl"] for entry in previous or []}
    checked: set[str] = set()
    for entry in operations:
        url = entry["callbackUrl"]
        check_callback_url(url, resolve=verify)
        if verify and url not in known and url not in checked:
            verify_callback(url, entry.get("bearerToken"))
        checked.add(url)


# --- HTTP -----------------------------------------------------------------------------------

_local = threading.local()


def _session() -> requests.Session:
    """One keep-alive session per thread; proxies and .netrc from the environment ignored."""
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False
        session.max_redirects = 0
        _local.session = session
    return session


def _verify() -> str | bool:
    return settings.VTN_WEBHOOK_CA_BUNDLE or True


def _timeouts() -> tuple[float, float]:
    return (settings.VTN_WEBHOOK_CONNECT_TIMEOUT, settings.VTN_WEBHOOK_READ_TIMEOUT)


def _auth(bearer_token: str | None) -> dict:
    return {"Authorization": f"Bearer {bearer_token}"} if bearer_token else {}


def post(delivery: WebhookDelivery) -> str | None:
    """One attempt; None on a 2xx answer, otherwise what went wrong."""
    return send(delivery.callback_url, delivery.body, bearer_token=delivery.bearer_token,
                notification_id=str(delivery.notification_id))


def send(url: str, body: dict, *, bearer_token: str | None, notification_id: str
         ) -> str | None:
    """POST ``body`` as JSON to ``url`` once, under the callback address policy, timeouts
    and TLS settings of every webhook; None on a 2xx answer, otherwise what went wrong.
    ``notification_id`` goes in a header so the receiver can drop a repeat."""
    problem = callback_problem(url, resolve=True)
    if problem is not None:
        return problem[:ERROR_LIMIT]
    headers = {**_auth(bearer_token), NOTIFICATION_ID_HEADER: notification_id,
               "User-Agent": "gb-flex-vtn-webhooks"}
    try:
        response = _session().post(url, json=body, headers=headers,
                                   timeout=_timeouts(), allow_redirects=False,
                                   verify=_verify())
        response.close()
    except requests.RequestException as exc:
        return f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT]
    if 200 <= response.status_code < 300:
        return None
    if 300 <= response.status_code < 400:
        return f"HTTP {response.status_code} (redirects are not followed)"
    return f"HTTP {response.status_code}"


# --- scheduling -------------------------------------------------------------------------------

def _uses_celery() -> bool:
    return not settings.CELERY_TASK_ALWAYS_EAGER


def drain_later(subscription_id: str, delay: float) -> None:
    """Deliver this subscription's notifications again after ``delay`` seconds."""
    if _uses_celery():
        drain_subscription.apply_async((subscription_id,), countdown=max(delay, 0))
    else:
        timer = threading.Timer(max(delay, 0), background.submit, (drain, subscription_id))
        timer.daemon = True
        timer.start()


# --- after a commit ---------------------------------------------------------------------------

def describe(object_type: str, operation: str, instance) -> Change:
    """The change as plain data, the object rendered in full in both wire versions."""
    program_id, owner, program_labels = None, None, None
    render = {"PROGRAM": "program_out", "EVENT": "event_out", "REPORT": "report_out",
              "SUBSCRIPTION": "subscription_out", "VEN": "ven_out",
              "RESOURCE": "resource_out"}[object_type]
    if object_type == "PROGRAM":
        program_id = instance.pk
    elif object_type == "EVENT":
        program_id = instance.program_id
        program_labels = tuple(sorted(target_rules.labels(instance.program.targets)))
    elif object_type in ("REPORT", "SUBSCRIPTION"):
        program_id = instance.program_id
        owner = instance.client_id
    elif object_type == "VEN":
        owner = instance.client_id
    elif object_type == "RESOURCE":
        owner = instance.ven.client_id
    bodies: dict[str, dict | None] = {}
    for wire in (Wire31(), Wire301()):
        method = getattr(wire, render)
        if object_type == "SUBSCRIPTION" and wire.version == VERSION_301 \
                and instance.program_id is None:
            bodies[wire.version] = None  # 3.0.1 cannot express a subscription to no program
        elif object_type in ("PROGRAM", "EVENT"):
            bodies[wire.version] = method(instance, None)
        else:
            bodies[wire.version] = method(instance)
    return Change(object_type=object_type, operation=operation, object_id=str(instance.pk),
                  owners=ownership.owners_of_change(object_type, instance),
                  program_id=program_id, owner=owner,
                  labels=tuple(sorted(target_rules.labels(instance.targets))),
                  program_labels=program_labels, targets=instance.targets or [],
                  bodies=bodies)


def on_object_changed(sender, *, object_type: str, operation: str, instance, **kwargs) -> None:
    """Receiver of ``object_changed`` (sent after commit): hand the change to fan_out."""
    hooks = settings.VTN_WEBHOOKS_ENABLED and Subscription.objects.filter(
        broken_at__isnull=True).exists()
    publish = mqtt.enabled()
    if not hooks and not publish:
        return
    try:
        change = describe(object_type, operation, instance).as_dict()
    except Exception:  # a notification must never fail the request that committed
        logger.exception("could not describe %s %s for notification", object_type, operation)
        return
    if _uses_celery():
        try:
            if hooks:
                notify_change.delay(change)
            if publish:
                mqtt.publish_mqtt.delay(change)
        except Exception:
            logger.exception("could not queue the notification of %s %s", object_type,
                             operation)
    else:
        if hooks:
            background.submit(fan_out, change)
        if publish:
            background.submit(mqtt.publish_change, change)


# --- fan-out and delivery ---------------------------------------------------------------------

def subscribers() -> list[Subscriber]:
    """Live subscriptions of live clients (a revoked client is notified of nothing)."""
    rows = list(Subscription.objects.filter(broken_at__isnull=True).only(
        "id", "client_id", "program_id", "object_operations", "targets", "wire_version"))
    roles = dict(Client.objects.filter(
        application__client_id__in={row.client_id for row in rows}, revoked=False,
    ).values_list("application__client_id", "role"))
    ven_ids = {row.client_id for row in rows if roles.get(row.client_id) == Client.Role.VEN}
    granted = selectors.granted_labels_by_client(ven_ids)
    reaches = {client_id: ownership.reach_of_client(client_id) for client_id in
               {row.client_id for row in rows if roles.get(row.client_id) == Client.Role.BL}}
    return [Subscriber(id=row.id, client_id=row.client_id, reach=reaches.get(row.client_id),
                       is_bl=roles[row.client_id] == Client.Role.BL,
                       program_id=row.program_id, object_operations=row.object_operations,
                       labels=frozenset(target_rules.labels(row.targets)),
                       wire_version=row.wire_version,
                       granted=granted.get(row.client_id, frozenset()))
            for row in rows if row.client_id in roles]


def fan_out(change: dict) -> int:
    """Write the outbox rows for one change and start delivering them; the number.

    The common case takes a short path: the leases of every subscription concerned are
    taken in one statement, and a subscription with nothing older pending gets its new
    notification posted straight away (one write afterwards). The others, and every
    failure, go through :func:`drain`.
    """
    found = notifications.recipients(Change.from_dict(change), subscribers())
    if not found:
        return 0
    rows = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(subscription_id=r.subscription_id, callback_url=r.callback_url,
                        bearer_token=r.bearer_token, body=r.body) for r in found)
    by_subscription: dict[str, list[WebhookDelivery]] = {}
    for row in rows:
        by_subscription.setdefault(row.subscription_id, []).append(row)
    held = _acquire_many(list(by_subscription))
    ours = [row.pk for row in rows]
    behind = set(WebhookDelivery.objects.filter(
        subscription_id__in=held, state=State.PENDING).exclude(pk__in=ours)
        .values_list("subscription_id", flat=True)) if held else set()
    slow_path = [sid for sid in by_subscription
                 if sid not in held or sid in behind or len(by_subscription[sid]) > 1]
    _release_many([sid for sid in slow_path if sid in held])
    for subscription_id in by_subscription:
        if subscription_id in slow_path:
            background.submit(drain, subscription_id)
        else:
            background.submit(_deliver_fresh, subscription_id, by_subscription[subscription_id][0])
    return len(rows)


def _free() -> Q:
    return Q(draining_until__isnull=True) | Q(draining_until__lt=timezone.now())


def _acquire_many(subscription_ids: list[str]) -> set[str]:
    token = secrets.token_hex(16)
    Subscription.objects.filter(_free(), pk__in=subscription_ids, broken_at__isnull=True
                                ).update(draining_until=timezone.now() + LEASE, lease=token)
    return set(Subscription.objects.filter(pk__in=subscription_ids, lease=token)
               .values_list("pk", flat=True))


def _release_many(subscription_ids: list[str]) -> None:
    if subscription_ids:
        Subscription.objects.filter(pk__in=subscription_ids).update(draining_until=None,
                                                                    lease="")


def _acquire(subscription_id: str) -> bool:
    return bool(_acquire_many([subscription_id]))


def _release(subscription_id: str) -> None:
    _release_many([subscription_id])


def _pending(subscription_id: str):
    return WebhookDelivery.objects.filter(subscription_id=subscription_id, state=State.PENDING)


def _head_due(subscription_id: str) -> bool:
    """Whether the oldest pending notification may be tried now (a later one never
    overtakes it)."""
    head = _pending(subscription_id).order_by("id").values_list("next_attempt_at",
                                                                 flat=True).first()
    return head is not None and head <= timezone.now()


def _deliver_fresh(subscription_id: str, delivery: WebhookDelivery) -> None:
    """The short path: the lease is held and ``delivery`` is the only pending row.

    A success is recorded in a batch with others (:func:`_flush`), which also gives the
    lease up; a failure is recorded at once, as in :func:`drain`.
    """
    try:
        error = post(delivery)
    except BaseException:
        _release(subscription_id)
        raise
    if error is None:
        with _done_lock:
            _done.append((subscription_id, delivery.pk))
            start = len(_done) == 1
        if start:
            timer = threading.Timer(FLUSH_DELAY, background.submit, (_flush,))
            timer.daemon = True
            timer.start()
        return
    _record_failure(subscription_id, delivery, error)
    _release(subscription_id)
    if _head_due(subscription_id):
        drain(subscription_id)


FLUSH_DELAY = 0.2
_done: list[tuple[str, int]] = []
_done_lock = threading.Lock()


def _flush() -> None:
    """Record a batch of short-path successes in one transaction and give their leases up;
    subscriptions that got more work meanwhile are drained."""
    with _done_lock:
        batch = list(_done)
        _done.clear()
    if not batch:
        return
    now = timezone.now()
    subscription_ids = list(dict.fromkeys(sid for sid, _ in batch))
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk__in=[pk for _, pk in batch]).update(
            state=State.DELIVERED, delivered_at=now, attempts=1, last_error="")
        Subscription.objects.filter(pk__in=subscription_ids).update(
            last_delivery_at=now, delivery_failures=0, last_error="", draining_until=None,
            lease="")
    more = set(WebhookDelivery.objects.filter(subscription_id__in=subscription_ids,
                                              state=State.PENDING)
               .values_list("subscription_id", flat=True))
    for subscription_id in more:
        background.submit(drain, subscription_id)


def drain(subscription_id: str) -> None:
    """Deliver a subscription's due notifications in order (see the module doc)."""
    while _acquire(subscription_id):
        try:
            _drain_held(subscription_id)
        finally:
            _release(subscription_id)
        # A change queued while the lease was held found it taken: look once more.
        if not _head_due(subscription_id):
            return


def _drain_held(subscription_id: str) -> None:
    while True:
        head = _pending(subscription_id).order_by("id").first()
        if head is None:
            return
        now = timezone.now()
        if head.next_attempt_at > now:
            drain_later(subscription_id, (head.next_attempt_at - now).total_seconds())
            return
        if not _attempt(subscription_id, head):
            return


def _attempt(subscription_id: str, head: WebhookDelivery) -> bool:
    """Post ``head`` and record the outcome (the lease is extended); True when delivered.

    A failure schedules the retry, or breaks the subscription when the schedule is
    exhausted.
    """
    error = post(head)
    now = timezone.now()
    if error is None:
        with transaction.atomic():
            WebhookDelivery.objects.filter(pk=head.pk).update(
                state=State.DELIVERED, delivered_at=now, attempts=head.attempts + 1,
                last_error="")
            Subscription.objects.filter(pk=subscription_id).update(
                last_delivery_at=now, delivery_failures=0, last_error="",
                draining_until=now + LEASE)
        return True
    _record_failure(subscription_id, head, error)
    return False


def _record_failure(subscription_id: str, head: WebhookDelivery, error: str) -> None:
    """Schedule the retry of a failed attempt, or break the subscription."""
    now = timezone.now()
    attempts = head.attempts + 1
    delay = notifications.retry_delay(attempts, settings.VTN_WEBHOOK_RETRY_DELAYS)
    logger.info("webhook delivery %s to %s failed (attempt %d): %s",
                head.notification_id, head.callback_url, attempts, error)
    if delay is None:
        _break(subscription_id, head, attempts, error)
        return
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=head.pk).update(
            attempts=attempts, last_error=error[:ERROR_LIMIT],
            next_attempt_at=now + timedelta(seconds=delay))
        Subscription.objects.filter(pk=subscription_id).update(
            delivery_failures=attempts, last_error=error[:ERROR_LIMIT])
    drain_later(subscription_id, delay)


def _break(subscription_id: str, head: WebhookDelivery, attempts: int, error: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=head.pk).update(attempts=attempts,
                                                          last_error=error[:ERROR_LIMIT])
        abandoned = _pending(subscription_id).update(state=State.ABANDONED)
        Subscription.objects.filter(pk=subscription_id).update(
            broken_at=now, delivery_failures=attempts, last_error=error[:ERROR_LIMIT])
    owner = Subscription.objects.filter(pk=subscription_id).values_list(
        "client_id", flat=True).first() or ""
    logger.warning("subscription %s marked broken after %d attempts: %s", subscription_id,
                   attempts, error)
    security_log.record(
        security_log.Kind.WEBHOOK_BROKEN, client_id=owner,
        detail=f"subscription {subscription_id}: callback {head.callback_url} failed "
               f"{attempts} times ({error[:200]}); {abandoned} pending notification(s) "
               "dropped; deliveries stop until the owner updates the subscription or an "
               "operator resets it")


def repair(subscription: Subscription) -> None:
    """Clear the broken state (an owner's update); pending rows to dropped URLs go."""
    urls = {entry["callbackUrl"] for entry in subscription.object_operations}
    _pending(subscription.pk).exclude(callback_url__in=urls).update(state=State.ABANDONED)
    # Delivery state moves under the request's feet: keep what the workers wrote.
    current: Mapping[str, object] = Subscription.objects.filter(pk=subscription.pk).values(
        "draining_until", "last_delivery_at").first() or {}
    for name, value in current.items():
        setattr(subscription, name, value)
    subscription.broken_at = None
    subscription.delivery_failures = 0
    subscription.last_error = ""


def reset(subscription_id: str, *, operator: str, owners: frozenset[str] | None = None
          ) -> bool:
    """An operator's reset of a broken subscription; False if it was not broken, or (with
    ``owners``, the operators the staff member works for) not within them."""
    broken = Subscription.objects.filter(pk=subscription_id, broken_at__isnull=False)
    updated = ownership.narrowed(broken, owners, ObjectOwner.Kind.SUBSCRIPTION).update(
        broken_at=None, delivery_failures=0, last_error="")
    if updated:
        owner = Subscription.objects.filter(pk=subscription_id).values_list(
            "client_id", flat=True).first() or ""
        security_log.record(security_log.Kind.WEBHOOK_RESET, client_id=owner,
                            detail=f"subscription {subscription_id} reset by {operator}")
    return bool(updated)


def resume_due() -> int:
    """Start delivering every live subscription whose oldest notification is due and
    that no worker holds (a worker that stopped mid-way leaves such rows behind)."""
    now = timezone.now()
    candidates = WebhookDelivery.objects.filter(
        state=State.PENDING, next_attempt_at__lte=now, subscription__broken_at__isnull=True,
    ).filter(Q(subscription__draining_until__isnull=True)
             | Q(subscription__draining_until__lt=now)
             ).values_list("subscription_id", flat=True).distinct()
    started = 0
    for subscription_id in list(candidates):
        if _head_due(subscription_id):
            background.submit(drain, subscription_id)
            started += 1
    return started


# --- Celery tasks (listed in vtn/tasks.py; defined here because a retry queues its own) ----

@shared_task(name="vtn.tasks.notify_change")
def notify_change(change: dict) -> int:
    """Fan one committed change out to the webhook subscriptions that may see it."""
    return fan_out(change)


@shared_task(name="vtn.tasks.drain_subscription")
def drain_subscription(subscription_id: str) -> None:
    """Deliver one subscription's due notifications (a retry's wake-up)."""
    background.submit(drain, subscription_id)


@shared_task(name="vtn.tasks.resume_webhook_deliveries")
def resume_webhook_deliveries() -> int:
    """Beat, every minute: resume due deliveries a stopped worker left behind."""
    return resume_due()
