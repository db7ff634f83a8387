"""Shared pytest configuration. Fixtures live in plugin modules, one per concern."""

pytest_plugins = [
    "tests.fixtures.parallel",
    "tests.fixtures.requirements",
    "tests.fixtures.ordering",
    "tests.fixtures.handlers",
    "tests.fixtures.worlds",
    "tests.fixtures.api",
    "tests.fixtures.server",
    "tests.fixtures.database",
    "tests.fixtures.security",
    "tests.fixtures.dispatch",
    "tests.fixtures.worker",
    "tests.fixtures.agent",
    "tests.fixtures.console",
    "tests.fixtures.browser",
    "tests.fixtures.postgres",
]


def pytest_configure(config) -> None:
    """In-process tests subscribe with loopback callbacks, as the test servers allow."""
    from django.conf import settings

    settings.VTN_CALLBACK_ALLOW_PRIVATE = True
