"""Statements in a real browser (Playwright with Debian's chromium): a statement with a
held line, the same statement once the meter data arrived (money), and disputed, each
built by the settlement services and looked at through the console as staff would.
Served by pytest-django's live server on 127.0.0.1 (plain HTTP, so the test turns the
Secure cookie flag off). Screenshots go to ``test-artifacts/console/``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from settlement import services
from tests.console.test_console_browser import shot
from tests.fixtures.console import create_staff, totp_code
from tests.settlement.test_settlement_statements import (  # noqa: F401  (settled: a fixture)
    MONTH,
    T0,
    readings,
    settled,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def orm_beside_playwright(monkeypatch):
    """Playwright's sync API keeps an event loop on this thread; the test's own ORM calls
    (the settlement services) are synchronous and safe here, as Django's docs allow."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def console_page(live_server, browser, settings):  # noqa: F811
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    staff = create_staff("officer", "settlement officer")
    page = browser.new_page()
    page.goto(f"{live_server.url}/console/login")
    page.get_by_label("Username").fill(staff.username)
    page.get_by_label("Password").fill(staff.password)
    page.get_by_label("Authenticator code").fill(totp_code(staff.otpauth_uri))
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/console/")
    return page, live_server.url


def assert_fits_the_window(page) -> None:
    """The page does not scroll sideways: the wide lines table scrolls in its own box."""
    page_width, window_width = page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]")
    assert page_width <= window_width, (page_width, window_width)


def test_held_priced_and_disputed_statements_in_the_browser(console_page, settled):  # noqa: F811
    page, base = console_page
    contract, _ = settled
    readings("hp1", T0 + timedelta(minutes=30), [None])  # one period's meter data missing
    held = services.settle_month(contract=contract, month=MONTH)
    assert held.held_lines == 1
    response = page.goto(f"{base}/console/statements/{held.pk}")
    assert response.status == 200
    assert page.locator("tr.line-held").count() == 1
    assert "missing: 2026-09-16 17:30:00 UTC" in page.locator("tr.line-held").inner_text()
    assert "1 held line" in page.inner_text("main")
    assert_fits_the_window(page)
    shot(page, "16-statement-held")

    readings("hp1", T0 + timedelta(minutes=30), [40])  # the late data arrives
    priced = services.settle_month(contract=contract, month=MONTH)
    page.goto(f"{base}/console/statements/{priced.pk}")
    assert page.locator("svg.chart").count() == 1
    totals = page.locator("section[aria-labelledby='h-totals']").inner_text()
    assert "Net (GBP)" in totals and "26.50" in totals
    assert_fits_the_window(page)
    shot(page, "17-statement-money")

    page.get_by_role("button", name="Issue to the FSP").click()
    page.wait_for_selector("text=issued.")
    services.dispute(statement_id=priced.pk, client_id="fsp", reason="meter was replaced",
                     lines=[{"line": 1, "reason": "reading too low"}])
    page.goto(f"{base}/console/statements/{priced.pk}")
    assert page.inner_text("#statement-status") == "disputed"
    assert "line 1: reading too low" in page.locator("li.dispute").inner_text()
    shot(page, "18-statement-disputed")
    page.get_by_label("Resolution").fill("meter data confirmed")
    page.get_by_role("button", name="Resolve the disputes").click()
    page.wait_for_selector("text=disputes resolved.")

    page.goto(f"{base}/console/statements?status=disputed")
    shot(page, "19-statements-filtered")
