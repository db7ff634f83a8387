"""Two VTN nodes behind nginx on one database stay coherent (docs/operations.md, "Scale-out").

Each node is a ``manage.py serve`` with two worker processes, each keeping its own caches
(resolved tokens, granted labels, rendered poll answers). nginx fronts them as
docs/nginx-vtn.conf describes: one listener balancing over both nodes, and, for this test,
one listener per node so that a request can be sent to a chosen node. A change made through
node A must be in node B's very next answer, with no pause between the two requests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from tests.fixtures.api import event_body, program_body
from tests.fixtures.requirements import need_postgresql
from tests.fixtures.server import VtnServer, free_port
from tests.vtn.test_transport_security import (
    NGINX_CONF,
    ExtraServer,
    Nginx,
    _nginx_binary,
    nginx_site_config,
)

pytestmark = pytest.mark.xdist_group("scale_out")

V31 = "3.1.0"


def two_node_config(*, balanced_port: int, node_ports: dict[str, int],
                    listen_ports: dict[str, int], pki_dir) -> str:
    """docs/nginx-vtn.conf with both nodes in its upstream, plus one listener per node."""
    text = nginx_site_config(listen_port=balanced_port, upstream_port=0, pki_dir=pki_dir)
    servers = "\n    ".join(f"server 127.0.0.1:{port};" for port in node_ports.values())
    text = text.replace("server 127.0.0.1:0;", servers)
    block = text[text.index("server {"):]
    for node, port in node_ports.items():
        text += (f"\nupstream vtn_{node} {{\n    server 127.0.0.1:{port};\n    keepalive 8;\n}}\n"
                 + block.replace(f"listen 127.0.0.1:{balanced_port} ssl;",
                                 f"listen 127.0.0.1:{listen_ports[node]} ssl;")
                        .replace("proxy_pass http://vtn;", f"proxy_pass http://vtn_{node};"))
    return text


class Cluster:
    def __init__(self, server: VtnServer, nginx: Nginx, listen_ports: dict[str, int],
                 nodes: dict[str, ExtraServer]) -> None:
        self.server = server
        self.nodes = nodes
        backends = {node: extra.port for node, extra in nodes.items()}
        self.nginx = nginx
        self.backends = {node: f"http://127.0.0.1:{port}/openadr3/{V31}"
                         for node, port in backends.items()}
        self.urls = {node: f"https://localhost:{port}/openadr3/{V31}"
                     for node, port in listen_ports.items()}
        self.balanced = f"https://localhost:{nginx.port}/openadr3/{V31}"

    def get(self, node: str, token: str, path: str, **headers: str) -> requests.Response:
        return requests.get(f"{self.urls[node]}/{path}", verify=self.server.ca_bundle,
                            timeout=30, headers={"Authorization": f"Bearer {token}", **headers})

    def send(self, method: str, node: str, token: str, path: str, body: dict
             ) -> requests.Response:
        return requests.request(method, f"{self.urls[node]}/{path}", json=body, timeout=30,
                                verify=self.server.ca_bundle,
                                headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def cluster(vtn_server: VtnServer) -> Iterator[Cluster]:
    binary = _nginx_binary()
    vtn_server.manage("pki", "crl", "--dir", str(vtn_server.pki_dir))  # nginx needs a CRL
    nodes: dict[str, ExtraServer] = {}
    nginx = None
    try:
        # Node B runs on granian: the two servers of `manage.py serve --server` side by side.
        for node, server in (("a", "gthread"), ("b", "granian")):
            nodes[node] = ExtraServer(vtn_server, f"node-{node}",
                                      {"VTN_TRUSTED_PROXIES": "127.0.0.1"},
                                      insecure_http=True, workers=2, server=server)
        listen_ports = {node: free_port() for node in nodes}
        balanced = free_port()
        nginx = Nginx(binary, vtn_server.workdir / "nginx-two-nodes",
                      two_node_config(balanced_port=balanced,
                                      node_ports={n: s.port for n, s in nodes.items()},
                                      listen_ports=listen_ports,
                                      pki_dir=vtn_server.pki_dir), balanced)
        yield Cluster(vtn_server, nginx, listen_ports, nodes)
    finally:
        if nginx is not None:
            nginx.stop()
        for server in nodes.values():
            server.stop(graceful=False)


@pytest.fixture(scope="module")
def bl_token(vtn_server: VtnServer) -> str:
    return vtn_server.token(vtn_server.create_client("bl", "scale-bl"))


def ven_token(server: VtnServer) -> tuple[dict, str]:
    credentials = server.create_client("ven", "scale-ven", ven="scale-ven")
    return credentials, server.token(credentials)


def names(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(event["eventName"] for event in response.json())


def warm_every_worker(cluster: Cluster, node: str, token: str, path: str) -> requests.Response:
    """Poll a node often enough that both of its workers likely hold the answer: each poll
    on a new connection straight to the node (nginx would reuse one upstream connection,
    so one worker), then once through nginx."""
    for _ in range(8):
        direct = requests.get(f"{cluster.backends[node]}/{path}", timeout=30,
                              headers={"Authorization": f"Bearer {token}",
                                       "Connection": "close"})
        assert direct.status_code == 200, direct.text
    answer = cluster.get(node, token, path)
    assert answer.content == direct.content
    return answer


def test_the_nginx_config_names_one_upstream_to_add_nodes_to() -> None:
    text = NGINX_CONF.read_text()
    assert len(re.findall(r"^upstream vtn \{", text, re.M)) == 1
    assert "proxy_pass http://vtn;" in text


def test_balanced_listener_reaches_both_nodes(cluster: Cluster, bl_token: str) -> None:
    for _ in range(4):
        answer = requests.get(f"{cluster.balanced}/programs", verify=cluster.server.ca_bundle,
                              timeout=30, headers={"Authorization": f"Bearer {bl_token}"})
        assert answer.status_code == 200, answer.text
    log = (cluster.nginx.workdir / "access.log").read_text()
    assert log.count("GET /openadr3/3.1.0/programs") >= 4


def test_event_changes_through_a_are_in_bs_very_next_poll(cluster: Cluster,
                                                          bl_token: str) -> None:
    _, token = ven_token(cluster.server)
    program = cluster.send("POST", "a", bl_token, "programs", program_body(V31))
    assert program.status_code == 201, program.text
    program_id = program.json()["id"]
    path = f"events?programID={program_id}"
    before = warm_every_worker(cluster, "b", token, path)
    assert names(before) == []

    created = cluster.send("POST", "a", bl_token, "events", event_body(V31, program_id))
    assert created.status_code == 201, created.text
    event = created.json()
    after_create = cluster.get("b", token, path, **{"If-None-Match": before.headers["ETag"]})
    assert names(after_create) == [event["eventName"]]

    warm_every_worker(cluster, "b", token, path)
    renamed = {**event_body(V31, program_id), "eventName": event["eventName"] + "-renamed"}
    updated = cluster.send("PUT", "a", bl_token, f"events/{event['id']}", renamed)
    assert updated.status_code == 200, updated.text
    assert names(cluster.get("b", token, path)) == [renamed["eventName"]]

    warm_every_worker(cluster, "b", token, path)
    deleted = cluster.send("DELETE", "a", bl_token, f"events/{event['id']}", {})
    assert deleted.status_code == 200, deleted.text
    assert names(cluster.get("b", token, path)) == []
    assert cluster.get("b", token, f"events/{event['id']}").status_code == 404


def test_a_client_revoked_through_a_is_refused_on_bs_very_next_request(
        cluster: Cluster) -> None:
    credentials, token = ven_token(cluster.server)
    warm_every_worker(cluster, "b", token, "events")
    warm_every_worker(cluster, "a", token, "events")
    # The operator's command on node A (same database and settings as that node).
    cluster.server.manage("oadr_client", "revoke", credentials["client_id"])
    refused = cluster.get("b", token, "events")
    assert refused.status_code == 401, refused.text
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert cluster.get("a", token, "events").status_code == 401


def test_on_postgresql_every_worker_heard_the_changes_by_notification(cluster: Cluster) -> None:
    need_postgresql(cluster.server.database.is_postgres,
                    "change notification (SQLite nodes read the counters per request)")
    for node in cluster.nodes.values():
        log = node.log_path.read_text(errors="replace")
        assert "change notifications unavailable" not in log
