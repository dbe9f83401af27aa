"""One-click unsubscribe (RFC 8058): the signed links, and the pages of a running phigate.

A GET never unsubscribes; a POST with List-Unsubscribe=One-Click (form or
multipart) records the opt-out once; replays, tampered and expired links
record nothing; and no address appears in a link, a URL or the log.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from harness import Phigate
from webgate import base_url, history, links, local_path, settings_of, state, store, web_gate

from gateway.app import unsubscribe_links
from gateway.config import Settings, UnsubscribeConfig, WebConfig
from gateway.consent import registry
from gateway.consent.links import KEY_FILE, LinkError, UnsubscribeLinks, load_key

ONE_CLICK = {"List-Unsubscribe": "One-Click"}
CANARY_LOCAL = "Canary.Unsub5h8w"
CANARY_MARK = "unsub5h8w"
DAY = 86400.0


@dataclass
class Site:
    gw: Phigate
    client: httpx.Client
    links: UnsubscribeLinks

    def link(self, address: str, purpose: str = "marketing", now: float | None = None) -> str:
        """The path of a fresh one-click link for an address that has granted `purpose`."""
        with store(self.gw) as db, db.transaction() as conn:
            registry.grant(
                conn,
                registry.Grant(address, None, purpose, time.time() - DAY, None, "ehr"),
                actor="test",
                now=time.time(),
            )
        url, _mailto = self.links.links(address, purpose, time.time() if now is None else now)
        return local_path(url)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    gw = web_gate(tmp_path_factory.mktemp("unsubscribe"))
    with gw, httpx.Client(base_url=base_url(gw), timeout=10) as client:
        yield Site(gw, client, links(gw))


def _opt_outs(gw: Phigate, address: str) -> list[dict[str, object]]:
    return [r for r in history(gw, address) if r["kind"] == "opt_out"]


def _title(page: httpx.Response) -> str:
    found = re.search(r"<h1>(.*?)</h1>", page.text)
    assert found, page.text
    return found.group(1)


# --- the pages ---------------------------------------------------------------------------


def test_get_shows_a_confirmation_and_changes_nothing(site: Site) -> None:
    address = "get.only@example.org"
    path = site.link(address)
    for _ in range(3):  # a scanner, a preview, the recipient
        page = site.client.get(path)
        assert page.status_code == 200
        assert _title(page) == "Unsubscribe?"
    assert "g***@example.org" in page.text and address not in page.text
    assert '<form method="post">' in page.text
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page.text
    assert state(site.gw, address) == "granted"
    assert _opt_outs(site.gw, address) == []


def test_pages_load_nothing_from_elsewhere_and_are_not_cached(site: Site) -> None:
    page = site.client.get(site.link("headers@example.org"))
    assert not re.search(r"\b(src|href)=", page.text)
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"


def test_one_click_post_records_the_opt_out_at_once(site: Site) -> None:
    address = "one.click@example.org"
    path = site.link(address)
    page = site.client.post(path, data=ONE_CLICK)
    assert page.status_code == 200
    assert _title(page) == "You are unsubscribed"
    assert "o***@example.org" in page.text
    assert state(site.gw, address) == "opted_out"
    [opt_out] = _opt_outs(site.gw, address)
    token_id = site.links.read(path.rsplit("/", 1)[1], time.time()).token_id
    assert opt_out["source"] == "unsubscribe"
    assert opt_out["document_ref"] == token_id  # the opt-out's reference
    assert opt_out["actor"] == "recipient"


def test_replay_says_already_unsubscribed_and_records_nothing(site: Site) -> None:
    address = "replay@example.org"
    path = site.link(address)
    assert site.client.post(path, data=ONE_CLICK).status_code == 200
    audit_before = _audit_count(site.gw)
    again = site.client.post(path, data=ONE_CLICK)
    assert again.status_code == 200
    assert _title(again) == "You were already unsubscribed"
    assert len(_opt_outs(site.gw, address)) == 1
    assert _audit_count(site.gw) == audit_before


def _audit_count(gw: Phigate) -> int:
    query = "SELECT count(*) FROM audit_events"
    return int(sqlite3.connect(gw.db_path).execute(query).fetchone()[0])


def test_multipart_one_click_body_works(site: Site) -> None:
    address = "multipart@example.org"
    path = site.link(address)
    with_file = site.client.post(path, files={"List-Unsubscribe": ("a.txt", b"One-Click")})
    assert with_file.status_code == 400  # form fields only, no uploads
    assert state(site.gw, address) == "granted"
    page = site.client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    assert page.request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert page.status_code == 200, page.text
    assert _title(page) == "You are unsubscribed"
    assert state(site.gw, address) == "opted_out"


def test_post_without_one_click_changes_nothing(site: Site) -> None:
    address = "no.one.click@example.org"
    path = site.link(address)
    for body in ({}, {"List-Unsubscribe": "one-click-please"}):
        page = site.client.post(path, data=body)
        assert page.status_code == 400
        assert _title(page) == "Unsubscribe?"  # the button is offered again
    assert state(site.gw, address) == "granted"


def test_tampered_and_truncated_links_are_400_and_record_nothing(site: Site) -> None:
    address = "tampered@example.org"
    path = site.link(address)
    token = path.rsplit("/", 1)[1]
    middle = len(token) // 2
    flipped = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    for bad in (flipped, token[:-3], token[:20], "x", token + "AA"):
        for response in (
            site.client.get(f"/unsubscribe/{bad}"),
            site.client.post(f"/unsubscribe/{bad}", data=ONE_CLICK),
        ):
            assert response.status_code == 400
            assert _title(response) == "This unsubscribe link is not valid"
    assert state(site.gw, address) == "granted"


def test_expired_links_are_410_and_record_nothing(site: Site) -> None:
    address = "expired@example.org"
    lifetime = settings_of(site.gw).unsubscribe.link_days * DAY
    path = site.link(address, now=time.time() - lifetime - 5)
    for response in (site.client.get(path), site.client.post(path, data=ONE_CLICK)):
        assert response.status_code == 410
        assert _title(response) == "This unsubscribe link has expired"
        assert "more recent message" in response.text
    assert state(site.gw, address) == "granted"
    fresh = site.link(address, now=time.time() - lifetime + 60)  # not yet expired
    assert site.client.post(fresh, data=ONE_CLICK).status_code == 200


def test_a_sub_purpose_link_opts_out_of_that_sub_purpose_only(site: Site) -> None:
    address = "flu@example.org"
    site.link(address)  # granted for marketing, which covers flu-clinic
    path = site.link(address, "marketing/flu-clinic")
    page = site.client.get(path)
    assert "Flu clinic invitations" in page.text
    assert site.client.post(path, data=ONE_CLICK).status_code == 200
    assert state(site.gw, address, "marketing/flu-clinic") == "opted_out"
    assert state(site.gw, address, "marketing") == "granted"


def test_a_canary_address_never_reaches_the_log_or_a_url(site: Site) -> None:
    address = f"{CANARY_LOCAL}@example.org"
    url, mailto = site.links.links(address, "marketing", time.time())
    for made in (url, mailto):
        assert CANARY_MARK not in made.lower()
    path = site.link(address)
    pages = [
        site.client.get(path),
        site.client.post(path, data=ONE_CLICK),
        site.client.post(path, data=ONE_CLICK),
    ]
    assert state(site.gw, address) == "opted_out"
    for page in pages:
        assert CANARY_MARK not in page.text.lower()
        assert CANARY_MARK not in str(page.url).lower()
    log = site.gw.log_text()
    assert CANARY_MARK not in log.lower()
    assert "/unsubscribe/{token}" in log and path not in log  # route templates, no tokens


# --- the links ---------------------------------------------------------------------------


def _settings(tmp_path: Path, public_url: str = "") -> Settings:
    return Settings(
        data_dir=str(tmp_path),
        hostname="mail.example-health.org",
        web=WebConfig(public_url=public_url),
        unsubscribe=UnsubscribeConfig(link_days=30, mailto_local_part="unsub"),
    )


def test_links_have_the_configured_form_and_read_back(tmp_path: Path) -> None:
    made = unsubscribe_links(_settings(tmp_path, public_url="https://optout.example-health.org/"))
    now = time.time()
    url, mailto = made.links("jane.roe@example.org", "marketing/flu-clinic", now)
    assert re.fullmatch(r"https://optout\.example-health\.org/unsubscribe/[A-Za-z0-9_-]+", url)
    assert re.fullmatch(r"mailto:unsub\+[a-z2-7]+@mail\.example-health\.org", mailto)
    request = made.read(url.rsplit("/", 1)[1], now)
    assert (request.address, request.purpose) == ("jane.roe@example.org", "marketing/flu-clinic")
    assert request.expires_at == int(now) + 30 * DAY
    default = unsubscribe_links(_settings(tmp_path))
    assert default.links("a@example.org", "marketing", now)[0].startswith(
        "https://mail.example-health.org/unsubscribe/"
    )


def test_links_never_contain_the_address_or_its_local_part(tmp_path: Path) -> None:
    made = unsubscribe_links(_settings(tmp_path))
    now = time.time()
    for n in range(200):
        address = f"{CANARY_LOCAL}{n}@Patients.Example.org"
        url, mailto = made.links(address, "marketing", now)
        for text in (url.lower(), mailto.lower()):
            assert CANARY_MARK not in text and "patients.example" not in text


def test_each_link_is_new_and_a_link_of_another_key_is_invalid(tmp_path: Path) -> None:
    now = time.time()
    ours = unsubscribe_links(_settings(tmp_path / "ours"))
    theirs = unsubscribe_links(_settings(tmp_path / "theirs"))
    first, second = (ours.links("a@example.org", "marketing", now)[0] for _ in range(2))
    assert first != second
    assert (
        ours.read(first.rsplit("/", 1)[1], now).token_id
        != ours.read(second.rsplit("/", 1)[1], now).token_id
    )
    with pytest.raises(LinkError) as caught:
        ours.read(theirs.links("a@example.org", "marketing", now)[0].rsplit("/", 1)[1], now)
    assert caught.value.kind == "invalid"
    with pytest.raises(LinkError) as caught:
        ours.read(first.rsplit("/", 1)[1], now + 31 * DAY)
    assert caught.value.kind == "expired"


def test_the_mailto_address_fits_rfc_5321_and_names_one_recipient_and_purpose(
    tmp_path: Path,
) -> None:
    """The mailto local part stays within 64 octets: it carries a keyed hash of
    (purpose, address), the same for every message, different for anything else."""
    made = unsubscribe_links(_settings(tmp_path))
    other_key = unsubscribe_links(_settings(tmp_path / "other"))
    now = time.time()

    def local_part(links: UnsubscribeLinks, address: str, purpose: str) -> str:
        mailto = links.links(address, purpose, now)[1]
        return mailto[len("mailto:") : mailto.index("@")]

    long_address = "a.very.long.local.part.for.a.patient.mailbox@" + "x" * 60 + ".example.org"
    first = local_part(made, long_address, "marketing")
    assert len(first) <= 64 and re.fullmatch(r"unsub\+[a-z2-7]{24}", first)
    assert local_part(made, long_address, "marketing") == first
    assert local_part(made, long_address, "marketing/flu-clinic") != first
    assert local_part(made, "b@example.org", "marketing") != first
    assert local_part(other_key, long_address, "marketing") != first


def _key_in(directory: str, out: multiprocessing.Queue[bytes]) -> None:
    out.put(load_key(Path(directory)))


def test_the_key_is_made_once_private_and_shared_by_racing_processes(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    workers = [context.Process(target=_key_in, args=(str(keys), out)) for _ in range(8)]
    for worker in workers:
        worker.start()
    found = {out.get(timeout=20) for _ in workers}
    for worker in workers:
        worker.join(timeout=20)
    assert len(found) == 1 and len(found.pop()) == 32
    assert os.stat(keys / KEY_FILE).st_mode & 0o777 == 0o600
    assert sorted(p.name for p in keys.iterdir()) == [KEY_FILE]  # no temporary files left


def test_an_unsafe_key_file_is_refused(tmp_path: Path) -> None:
    from gateway.store.keyring import KeyringError

    load_key(tmp_path)
    os.chmod(tmp_path / KEY_FILE, 0o644)
    with pytest.raises(KeyringError, match="chmod 600"):
        load_key(tmp_path)
