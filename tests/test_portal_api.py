"""Recall by the sending system, over real HTTP to a running phigate, and the
server's expiry task: tokens and scopes, what is recalled and shredded, what
is audited, and the answers for unknown and closed messages."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Phigate, audit_mark, audit_since, wait_until
from openapi_spec_validator import validate
from portal_copies import Made, make_copy, open_copy
from webgate import add_token, base_url, store, web_gate

from gateway.store import portal
from gateway.store.keyring import Keyring

CANARY = b"Lab result: canary-portal-api-3w7"
RECALL = "/api/v1/portal/messages/{}/recall"


@dataclass
class Api:
    gw: Phigate
    client: httpx.Client
    tokens: dict[str, str]
    keyring: Keyring
    expired_at_start: Made

    def recall(
        self, queue_id: str, body: dict[str, Any] | None = None, token: str | None = "ehr"
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        return self.client.post(RECALL.format(queue_id), json=body, headers=headers)

    def copy(self, recipient: str, queue_id: str | None = None, **kwargs: Any) -> Made:
        with store(self.gw) as db, db.transaction() as conn:
            return make_copy(
                conn, self.keyring, recipient, CANARY, now=time.time(), queue_id=queue_id, **kwargs
            )

    def state(self, made: Made) -> tuple[str, bytes | None]:
        with store(self.gw) as db, db.reading() as conn:
            found = portal.by_id(conn, made.id)
            assert found is not None
            return found.state, open_copy(conn, self.keyring, made)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    gw = web_gate(tmp_path_factory.mktemp("portal-api"))
    keyring = Keyring(Path(gw.settings["data_dir"]) / "keys")
    made = gw.json("token", "add", "ehr", "--scope", "portal")  # as an admin makes it
    assert made["scopes"] == ["portal:recall"]
    tokens = {"ehr": made["token"], "crm": add_token(gw, "crm", "consent")}
    with store(gw) as db, db.transaction() as conn:
        late = make_copy(conn, keyring, "late@home.example", CANARY, now=time.time(), expires_in=-5)
    with gw, httpx.Client(base_url=base_url(gw), timeout=10) as client:
        yield Api(gw, client, tokens, keyring, late)
        assert gw.stop() == 0


def test_no_token_is_401_and_a_token_without_the_scope_is_403(api: Api) -> None:
    made = api.copy("pat@home.example")
    anonymous = api.recall(made.queue_id, token=None)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert "--scope portal:recall" in anonymous.json()["detail"]
    consent_only = api.recall(made.queue_id, token="crm")
    assert consent_only.status_code == 403
    assert "portal:recall" in consent_only.json()["detail"]
    assert api.state(made) == ("waiting", CANARY)  # neither touched it


def test_recall_shreds_every_copy_and_is_audited_under_the_token_name(api: Api) -> None:
    made = api.copy("pat@home.example")
    other = api.copy("kim@home.example", queue_id=made.queue_id)
    mark = audit_mark(api.gw)
    response = api.recall(made.queue_id)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "queue_id": made.queue_id,
        "recalled": ["pat@home.example", "kim@home.example"],
    }
    assert api.state(made) == ("recalled", None) and api.state(other) == ("recalled", None)
    events = audit_since(api.gw, mark)
    assert {(e["event"], e["recipients"], e["detail"]) for e in events} == {
        ("portal_recalled", '["pat@home.example"]', "by=api:ehr"),
        ("portal_recalled", '["kim@home.example"]', "by=api:ehr"),
    }

    again = api.recall(made.queue_id)
    assert again.status_code == 409
    assert "no open copy (2 recalled)" in again.json()["detail"]
    assert "home.example" not in again.text  # no addresses in the answer
    assert audit_since(api.gw, mark) == events  # nothing more recorded


def test_recall_of_one_recipient_and_the_answers_for_unknown_ones(api: Api) -> None:
    made = api.copy("pat@home.example")
    other = api.copy("kim@home.example", queue_id=made.queue_id)
    one = api.recall(made.queue_id, {"recipient": "kim@HOME.example"})  # as phigate stores it
    assert one.status_code == 200 and one.json()["recalled"] == ["kim@home.example"]
    assert api.state(other)[0] == "recalled" and api.state(made) == ("waiting", CANARY)

    nobody = api.recall(made.queue_id, {"recipient": "nobody@home.example"})
    assert nobody.status_code == 404 and "no copy for that recipient" in nobody.json()["detail"]
    unknown = api.recall("0000000000000000000NONE")
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "no portal message 0000000000000000000NONE"}
    assert api.state(made) == ("waiting", CANARY)


def test_bad_input_is_422_naming_the_field(api: Api) -> None:
    made = api.copy("pat@home.example")
    for body, field in (
        ({"recipient": "not an address"}, "body.recipient"),
        ({"recipient": "a@home.example", "colour": "red"}, "body.colour"),
    ):
        response = api.recall(made.queue_id, body)
        assert response.status_code == 422
        assert [".".join(map(str, e["loc"])) for e in response.json()["detail"]] == [field]
    for queue_id in ("x" * 33, "bad%20id"):
        assert api.recall(queue_id).status_code == 422
    assert api.state(made) == ("waiting", CANARY)


def test_a_copy_past_its_time_at_start_is_closed_by_the_expiry_task(api: Api) -> None:
    made = api.expired_at_start
    wait_until(lambda: api.state(made)[0] == "expired", timeout=10)
    assert api.state(made) == ("expired", None)
    late = api.recall(made.queue_id)
    assert late.status_code == 409 and "(1 expired)" in late.json()["detail"]


def test_the_openapi_document_describes_recall(api: Api) -> None:
    document = api.client.get("/api/openapi.json").json()
    validate(document)
    operation = document["paths"]["/api/v1/portal/messages/{queue_id}/recall"]["post"]
    assert operation["security"] == [{"HTTPBearer": []}]
    assert {"200", "404", "409", "422"} <= set(operation["responses"])
    assert not operation["requestBody"].get("required", False)  # the body is optional


def test_the_log_names_the_route_and_token_not_the_recipient(api: Api) -> None:
    made = api.copy("canary.log.3w7@home.example")
    assert api.recall(made.queue_id, {"recipient": made.recipient}).status_code == 200
    recall = {"route": RECALL.format("{queue_id}"), "status": 200, "token": "ehr"}

    def recall_logged() -> bool:
        requests = [e for e in api.gw.log_events() if e["event"] == "web_request"]
        return any(recall.items() <= request.items() for request in requests)

    # A request is logged once its response has gone out: a moment after the client has it.
    wait_until(recall_logged, 10, 0.02)
    log = api.gw.log_text()
    assert "canary" not in log.lower() and made.queue_id not in log
    assert "Traceback" not in log
