"""The suite's own rule for missing system programs: skipped and summarised locally,
failed when CI sets VTN_TEST_REQUIRE_ALL=1 (tests/fixtures/requirements.py)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# The inner run needs neither Django nor a cache: only the plugin under test.
INNER_ARGS = ("-p", "tests.fixtures.requirements", "-p", "no:django", "-p", "no:cacheprovider")

INNER = """
import sys

from tests.fixtures.requirements import need_executable, need_python, need_redis


def test_needs_a_missing_program():
    need_executable("no-such-program-here", "apt-get install no-such-package")


def test_needs_another_missing_program():
    need_executable("no-such-program-here", "apt-get install no-such-package")


def test_needs_an_unreachable_redis():
    need_redis("redis://127.0.0.1:1/0")


def test_needs_a_python_that_is_not_there():
    need_python((2, 1), [sys.executable])


def test_present_program_is_returned():
    assert need_executable("sh", "apt-get install dash").endswith("/sh")
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.delenv("VTN_TEST_REQUIRE_ALL", raising=False)
    pytester.makepyfile(test_inner=INNER)
    return pytester


def test_missing_programs_are_skipped_and_named_in_one_summary_line(inner):
    result = inner.runpytest(*INNER_ARGS)

    result.assert_outcomes(passed=1, skipped=4)
    summary = [line for line in result.outlines if "for missing system programs" in line]
    assert len(summary) == 1, result.outlines
    line = summary[0]
    assert line.startswith("SKIPPED 4 tests for missing system programs")
    assert "no-such-program-here (2): apt-get install no-such-package" in line
    assert "Redis at redis://127.0.0.1:1/0 (1): apt-get install redis-server" in line
    assert "python2.1 (1): apt-get install python2.1 python2.1-venv" in line
    assert "VTN_TEST_REQUIRE_ALL=1" in line


def test_ci_switch_turns_every_such_skip_into_a_failure(inner, monkeypatch):
    monkeypatch.setenv("VTN_TEST_REQUIRE_ALL", "1")

    result = inner.runpytest(*INNER_ARGS)

    result.assert_outcomes(passed=1, failed=4)
    assert not [line for line in result.outlines if "for missing system programs" in line]
    result.stdout.fnmatch_lines(["*needs no-such-program-here (install: apt-get install "
                                 "no-such-package)*VTN_TEST_REQUIRE_ALL is set*"])


def test_a_run_with_nothing_missing_prints_no_summary(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.delenv("VTN_TEST_REQUIRE_ALL", raising=False)
    pytester.makepyfile(test_inner="def test_fine():\n    assert True\n")

    result = pytester.runpytest(*INNER_ARGS)

    result.assert_outcomes(passed=1)
    assert not [line for line in result.outlines if "missing system programs" in line]


PROCESS_INNER = """
import pytest

from tests.fixtures.requirements import starts_processes


@pytest.fixture(scope="module")
@starts_processes
def own_server():
    return "a server of the module's own"


@pytest.fixture
def site(own_server):
    return own_server


@pytest.fixture
def vtn_server():
    return "the shared one, by name"


def test_through_another_fixture(site):
    assert site


def test_by_a_shared_fixture_name(vtn_server):
    assert vtn_server


def test_in_process():
    assert True
"""


def test_tests_using_a_process_fixture_are_left_out_of_the_fast_loop(pytester: pytest.Pytester):
    # `make test-fast` deselects "process": a module's own server fixture declared with
    # @starts_processes marks every test that needs it, even through another fixture.
    pytester.makepyfile(test_inner=PROCESS_INNER)

    fast = pytester.runpytest(*INNER_ARGS, "-m", "not process", "-v")
    fast.assert_outcomes(passed=1, deselected=2)
    fast.stdout.fnmatch_lines(["*test_in_process PASSED*"])
    pytester.runpytest(*INNER_ARGS, "-m", "process").assert_outcomes(passed=2, deselected=1)
