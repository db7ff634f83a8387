"""Deterministic listing order: skip/limit paging over real HTTPS while objects are created.

Every collection is ordered by creation (then id), so an object created while a client
pages lands after everything that existed when it started: paging never repeats or skips
an object. Here 120 programs (and 120 events) are paged through, 7 at a time, through
both versions, while another client keeps creating more between the pages.
"""

from __future__ import annotations

import threading

import pytest

from tests.fixtures.server import VERSIONS, VtnServer

COUNT = 120
PAGE = 7


def create(session, server: VtnServer, collection: str, body: dict) -> dict:
    response = session.post(server.url("3.1.0", collection), json=body, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def bl(vtn_server: VtnServer):
    token = vtn_server.token(vtn_server.create_client("bl", "paging-bl"))
    with vtn_server.session(token) as session:
        yield session


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("collection", ["programs", "events"])
def test_paging_while_objects_are_created(vtn_server: VtnServer, bl, version: str,
                                          collection: str) -> None:
    prefix = vtn_server.unique(f"page-{collection}")
    program = create(bl, vtn_server, "programs", {"programName": f"{prefix}-parent"})

    def body(n: int) -> dict:
        if collection == "programs":
            return {"programName": f"{prefix}-{n:04d}"}
        # Priorities run against creation order, so an order by priority would show.
        return {"programID": program["id"], "eventName": f"{prefix}-{n:04d}",
                "priority": COUNT - n % 10,
                "intervals": [{"id": 0, "payloads": [{"type": "PRICE", "values": [n]}]}]}

    name_field = "programName" if collection == "programs" else "eventName"
    # Pages are read with a programID filter for events, and a name prefix check for
    # programs, so objects of other tests do not matter (they only add pages).
    query = {"programID": program["id"]} if collection == "events" else {}
    created = [create(bl, vtn_server, collection, body(n))[name_field] for n in range(COUNT)]

    stop = threading.Event()
    extra: list[str] = []

    def keep_creating() -> None:
        with vtn_server.session(bl.headers["Authorization"].split()[1]) as writer:
            n = COUNT
            while not stop.is_set():
                extra.append(create(writer, vtn_server, collection, body(n))[name_field])
                n += 1

    writer = threading.Thread(target=keep_creating, daemon=True)
    writer.start()
    seen: list[str] = []
    skip = 0
    try:
        while True:
            response = bl.get(vtn_server.url(version, collection),
                              params={**query, "skip": skip, "limit": PAGE}, timeout=30)
            assert response.status_code == 200, response.text
            page = [item[name_field] for item in response.json()]
            seen += [name for name in page if name.startswith(prefix + "-0")]
            if len(page) < PAGE or len([n for n in seen if n in set(created)]) >= COUNT:
                break
            skip += PAGE
    finally:
        stop.set()
        writer.join(timeout=60)
    assert extra, "nothing was created while paging"
    assert len(seen) == len(set(seen)), "an object was listed twice"
    original = [name for name in seen if name in set(created)]
    assert original == created, "an object was skipped or the order changed"
    # What was created while paging, and seen, came after all of the originals, in order.
    late = [name for name in seen if name not in set(created)]
    assert late == extra[:len(late)]
