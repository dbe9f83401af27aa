"""The consent API of a running phigate, over real HTTP: tokens and scopes, the
grant/revoke/opt-out/query/history round trip, validation errors, OpenAPI, HTTPS,
several processes, and failures that answer without a traceback."""

from __future__ import annotations

import json
import socket
import sqlite3
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Phigate, wait_until
from openapi_spec_validator import validate
from webgate import add_token, base_url, store, web_gate

from gateway.app import bind_web_socket
from gateway.audit.verify import verify
from gateway.config import Settings, WebConfig
from gateway.web.server import WebSetupError
from gateway.web.tokens import TokenError

GRANTS = "/api/v1/consent/grants"
REVOCATIONS = "/api/v1/consent/revocations"
OPT_OUTS = "/api/v1/consent/opt-outs"
QUERY = "/api/v1/consent/query"
HISTORY = "/api/v1/consent/history"
CANARY = "Canary.Webapi7k2@Example.ORG"  # stored as Canary.Webapi7k2@example.org
CANARY_MARK = "webapi7k2"


@dataclass
class Api:
    gw: Phigate
    client: httpx.Client
    tokens: dict[str, str]

    def post(self, path: str, body: dict[str, Any], token: str | None = "crm") -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        return self.client.post(path, json=body, headers=headers)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    gw = web_gate(tmp_path_factory.mktemp("web-api"))
    tokens = {
        "crm": add_token(gw, "crm", "consent"),
        "reports": add_token(gw, "reports", "consent:read"),
        "intake": add_token(gw, "intake", "consent:write"),
        "gone": add_token(gw, "gone", "consent"),
    }
    gw.cli("token", "revoke", "gone")
    with gw, httpx.Client(base_url=base_url(gw), timeout=10) as client:
        yield Api(gw, client, tokens)
        assert gw.stop() == 0  # the web server stops with the rest, cleanly


def _states(api: Api, addresses: list[str], purpose: str = "marketing") -> dict[str, str]:
    response = api.post(QUERY, {"addresses": addresses, "purpose": purpose})
    assert response.status_code == 200, response.text
    return {row["address"]: row["state"] for row in response.json()["results"]}


# --- tokens and scopes -------------------------------------------------------------------


def test_no_token_is_401_with_a_bearer_challenge(api: Api) -> None:
    response = api.post(QUERY, {"addresses": ["a@example.org"], "purpose": "marketing"}, None)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "phigate token add" in response.json()["detail"]


def test_unknown_and_revoked_tokens_are_401(api: Api) -> None:
    body = {"addresses": ["a@example.org"], "purpose": "marketing"}
    for headers in (
        {"Authorization": "Bearer phg_not-a-token"},
        {"Authorization": f"Bearer {api.tokens['gone']}"},
        {"Authorization": f"Basic {api.tokens['crm']}"},
    ):
        assert api.client.post(QUERY, json=body, headers=headers).status_code == 401


def test_scopes_decide_what_a_token_may_do(api: Api) -> None:
    grant = {"address": "scopes@example.org", "purpose": "marketing"}
    refused = api.post(GRANTS, grant, "reports")
    assert refused.status_code == 403
    assert "consent:write" in refused.json()["detail"]
    assert api.post(HISTORY, {"address": "scopes@example.org"}, "reports").json() == {"records": []}
    assert api.post(GRANTS, grant, "intake").status_code == 201
    query = {"addresses": ["x@example.org"], "purpose": "marketing"}
    assert api.post(QUERY, query, "intake").status_code == 403
    assert api.post(GRANTS, grant, "crm").status_code == 201


def test_token_use_and_revocation_show_in_token_ls(api: Api) -> None:
    api.post(HISTORY, {"address": "ls@example.org"}, "reports")
    listed = {t["name"]: t for t in api.gw.json("token", "ls")}
    assert listed["reports"]["scopes"] == ["consent:read"]
    assert listed["crm"]["scopes"] == ["consent:read", "consent:write"]
    assert listed["reports"]["last_used_at"] is not None
    assert listed["gone"]["revoked_at"] is not None
    assert "secret" not in json.dumps(listed) and api.tokens["crm"] not in json.dumps(listed)


def test_token_cli_adds_and_refuses_with_exit_2(api: Api) -> None:
    made = api.gw.json("token", "add", "cli-made", "--scope", "consent:write")
    assert made["scopes"] == ["consent:write"] and made["token"].startswith("phg_")
    headers = {"Authorization": f"Bearer {made['token']}"}
    history = api.client.post(HISTORY, json={"address": "a@example.org"}, headers=headers)
    assert history.status_code == 403
    taken = api.gw.cli("token", "add", "crm", "--scope", "consent", check=False)
    assert taken.returncode == 2 and "exists already" in taken.stderr
    unknown = api.gw.cli("token", "revoke", "nobody", check=False)
    assert unknown.returncode == 2 and "phigate token ls" in unknown.stderr


# --- the registry through the API ---------------------------------------------------------


def test_grant_revoke_opt_out_query_history_round_trip(api: Api) -> None:
    address = "round.trip@example.org"
    assert _states(api, [address]) == {address: "none"}
    created = api.post(
        GRANTS,
        {
            "address": address,
            "patient_id": "MRN-77",
            "purpose": "marketing",
            "granted_at": "2024-01-15T09:00:00Z",
            "document_ref": "ehr:forms/8812",
        },
    )
    assert created.status_code == 201, created.text
    assert _states(api, [address, "other@example.org"]) == {
        address: "granted",
        "other@example.org": "none",
    }
    assert _states(api, [address], "marketing/flu-clinic") == {address: "granted"}
    # Remunerated: a plain marketing authorization does not count for it.
    assert _states(api, [address], "marketing/sponsored") == {address: "none"}

    revoked = api.post(REVOCATIONS, {"patient_id": "MRN-77", "purpose": "marketing"})
    assert revoked.status_code == 200 and revoked.json() == {"records": 1}
    assert _states(api, [address]) == {address: "revoked"}

    again = api.post(GRANTS, {"address": address, "purpose": "marketing/flu-clinic"})
    assert again.status_code == 201
    assert _states(api, [address], "marketing/flu-clinic") == {address: "granted"}
    assert api.post(OPT_OUTS, {"address": address}).json() == {"recorded": True}
    assert api.post(OPT_OUTS, {"address": address}).json() == {"recorded": False}
    assert _states(api, [address], "marketing/flu-clinic") == {address: "opted_out"}

    records = api.post(HISTORY, {"address": address}, "reports").json()["records"]
    assert [r["kind"] for r in records] == ["grant", "revoke", "grant", "opt_out"]
    assert {r["actor"] for r in records} == {"api:crm"}
    assert records[0]["document_ref"] == "ehr:forms/8812"
    assert records[0]["effective_at"] == 1705309200.0
    by_patient = api.post(HISTORY, {"patient_id": "MRN-77"}, "reports").json()["records"]
    assert [r["kind"] for r in by_patient] == ["grant", "revoke", "grant", "opt_out"]


def test_every_change_is_audited_under_the_token_name(api: Api) -> None:
    address = "audited@example.org"
    api.post(GRANTS, {"address": address, "purpose": "marketing"}, "intake")
    api.post(OPT_OUTS, {"address": address, "purpose": "marketing/flu-clinic"}, "crm")
    with store(api.gw) as db, db.reading() as conn:
        report = verify(conn, db.audit_key)
    assert report.events > 0 and report.problems == []
    rows = sqlite3.connect(api.gw.db_path).execute(
        "SELECT event, detail FROM audit_events WHERE recipients LIKE ?", (f"%{address}%",)
    )
    events = {event: detail for event, detail in rows}
    assert "actor=api:intake" in events["consent_granted"]
    assert "actor=api:crm" in events["consent_opted_out"]
    tokens_audit = sqlite3.connect(api.gw.db_path).execute(
        "SELECT result, principal FROM audit_events WHERE event = 'api_token'"
    )
    assert ("revoked", "gone") in set(tokens_audit)


def test_query_keeps_the_order_and_normalises_domains(api: Api) -> None:
    api.post(GRANTS, {"address": "Mixed.Case@Example.ORG", "purpose": "marketing"})
    body = {"addresses": ["z@example.org", "Mixed.Case@EXAMPLE.org"], "purpose": "Marketing"}
    response = api.post(QUERY, body, "reports").json()
    assert response == {
        "purpose": "marketing",
        "results": [
            {"address": "z@example.org", "state": "none"},
            {"address": "Mixed.Case@example.org", "state": "granted"},
        ],
    }


# --- validation errors -------------------------------------------------------------------


def _errors(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {".".join(map(str, e["loc"])): e["msg"] for e in response.json()["detail"]}


def test_validation_errors_name_the_field_and_the_problem(api: Api) -> None:
    query = {"addresses": ["ok@example.org", "no-at-sign"], "purpose": "marketing"}
    errors = _errors(api.post(QUERY, query))
    assert list(errors) == ["body.addresses.1"]
    assert "local-part@domain" in errors["body.addresses.1"]

    errors = _errors(api.post(GRANTS, {"address": "a@example.org", "purpose": "marketing/nope"}))
    assert "unknown purpose" in errors["body.purpose"]
    assert "marketing/flu-clinic" in errors["body.purpose"]

    errors = _errors(api.post(GRANTS, {"purpose": "marketing"}))
    assert "give `address`, `patient_id` or both" in errors["body"]

    grant = {"address": "a@example.org", "purpose": "marketing"}
    errors = _errors(api.post(GRANTS, {**grant, "granted_at": "2024-01-01T00:00:00"}))
    assert "timezone" in errors["body.granted_at"]

    errors = _errors(api.post(GRANTS, {**grant, "colour": "red"}))
    assert list(errors) == ["body.colour"]

    errors = _errors(api.post(GRANTS, {**grant, "purpose": "marketing/sponsored"}))
    assert "third party" in errors["body.body"]

    errors = _errors(api.post(QUERY, {"addresses": [], "purpose": "marketing"}))
    assert list(errors) == ["body.addresses"]


def test_validation_errors_do_not_echo_the_input(api: Api) -> None:
    response = api.post(QUERY, {"addresses": [f"{CANARY_MARK} x@y"], "purpose": "marketing"})
    assert response.status_code == 422
    assert CANARY_MARK not in response.text


def test_oversized_bodies_are_refused(api: Api) -> None:
    big = {"addresses": ["a@example.org"], "purpose": "marketing", "pad": "x" * 1_200_000}
    assert api.post(QUERY, big).status_code == 413


# --- OpenAPI and what is not served ---------------------------------------------------------


def test_openapi_document_is_valid_and_lists_the_routes(api: Api) -> None:
    response = api.client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    # The send API's routes are tests/test_send_api.py's.
    paths = {p: ops for p, ops in document["paths"].items() if not p.startswith("/api/v1/messages")}
    assert set(paths) == {
        GRANTS, REVOCATIONS, OPT_OUTS, QUERY, HISTORY, "/api/v1/portal/messages/{queue_id}/recall",
    }  # fmt: skip
    assert all(set(ops) == {"post"} for ops in paths.values())
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert not any(path.startswith("/unsubscribe") for path in document["paths"])


def test_no_swagger_ui_or_other_pages(api: Api) -> None:
    for path in ("/docs", "/redoc", "/", "/unsubscribe"):
        assert api.client.get(path).status_code == 404


def _web_requests(api: Api) -> list[dict[str, Any]]:
    return [e for e in api.gw.log_events() if e["event"] == "web_request"]


def test_the_log_holds_route_templates_not_addresses(api: Api) -> None:
    before = len(_web_requests(api))
    api.post(GRANTS, {"address": CANARY, "purpose": "marketing"})
    api.post(QUERY, {"addresses": [CANARY], "purpose": "marketing"}, "reports")
    api.post(HISTORY, {"address": CANARY}, "reports")
    # A request is logged once its response has gone out: the last may lag a little.
    wait_until(
        lambda: (
            sum(r["route"] in (GRANTS, QUERY, HISTORY) for r in _web_requests(api)[before:]) >= 3
        ),
        10,
        0.02,
    )
    log = api.gw.log_text()
    assert CANARY_MARK not in log.lower()
    # Only these three: an earlier test's last request may be logged after `before`.
    requests = [r for r in _web_requests(api)[before:] if r["route"] in (GRANTS, QUERY, HISTORY)]
    assert {"route": GRANTS, "status": 201, "token": "crm"}.items() <= requests[0].items()
    assert [r["route"] for r in requests] == [GRANTS, QUERY, HISTORY]
    assert "Traceback" not in log


# --- HTTPS, several processes, failures ---------------------------------------------------


def test_https_with_the_server_certificate_on_two_processes(tmp_path: Path) -> None:
    gw = web_gate(tmp_path, web={"tls": True}, processes=2)
    token = add_token(gw, "crm", "consent")
    certificate = Path(gw.settings["data_dir"]) / "tls/server.crt"
    context = ssl.create_default_context(cafile=str(certificate))
    with gw:
        # Both processes serve the one socket (each announces it once it does).
        wait_until(
            lambda: len({e["pid"] for e in gw.log_events() if e["event"] == "web_ready"}) == 2
        )
        body = {"addresses": ["a@example.org"], "purpose": "marketing"}
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(10):  # new connections, spread over the processes
            with httpx.Client(base_url=base_url(gw), verify=context, timeout=10) as client:
                assert client.post(QUERY, json=body, headers=headers).status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):  # plain HTTP to the TLS socket
            httpx.get(f"http://{gw.settings['web']['address']}/api/openapi.json", timeout=5)
        assert gw.stop() == 0


def test_a_failure_is_a_plain_500_without_traceback(tmp_path: Path) -> None:
    gw = web_gate(tmp_path)
    token = add_token(gw, "crm", "consent")
    with gw, httpx.Client(base_url=base_url(gw), timeout=10) as client:
        # The store breaks under the running server: the token lookup fails.
        sqlite3.connect(gw.db_path).execute("DROP TABLE api_tokens")
        response = client.post(
            QUERY,
            json={"addresses": [CANARY], "purpose": "marketing"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 500
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == "Internal error: the request was not completed."
    log = gw.log_text()
    assert "Traceback" not in log and "api_tokens" not in log and CANARY_MARK not in log.lower()
    assert any(e["event"] == "web_error" for e in gw.log_events())


def test_web_disabled_binds_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), web=WebConfig(enabled=False))
    assert bind_web_socket(settings) is None
    assert not (tmp_path / "keys").exists()  # nor makes an unsubscribe key


def test_a_taken_web_address_is_a_clear_start_up_error(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        settings = Settings(data_dir=str(tmp_path), web=WebConfig(address=address))
        with pytest.raises(WebSetupError, match=r"set web\.address to a free HOST:PORT"):
            bind_web_socket(settings)


def test_bad_tokens_names_and_scopes_are_refused(tmp_path: Path) -> None:
    gw = web_gate(tmp_path)
    with pytest.raises(TokenError, match="not a valid token name"):
        add_token(gw, "no spaces", "consent")
    with pytest.raises(TokenError, match="unknown scope"):
        add_token(gw, "x", "consent:admin")
    with pytest.raises(TokenError, match="at least one scope"):
        add_token(gw, "x")
