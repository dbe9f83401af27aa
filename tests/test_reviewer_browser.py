"""The reviewer's pages in a real browser (Debian's Chromium via Playwright, JavaScript
off) against a running server: sign-in with a password and a TOTP code, audit search,
a message's timeline, roles that may not see a page, lockout, session timeouts, CSRF,
and every page view in the audit trail without a filter's value or a word of content.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from harness import Phigate, audit_mark, audit_since, message, wait_until
from playwright import sync_api
from sqlalchemy import select, update
from webgate import add_person, base_url, settings_of, store, web_gate

from gateway.store.schema import audit_events, web_sessions
from gateway.web import factors, sessions, users

CHROMIUM = Path("/usr/bin/chromium")  # Debian's, installed by scripts/test
PASSWORD = "correct horse battery staple"
SENDER = "dr@clinic.example.org"
RECIPIENT = "canary-rcpt-7q2@partner.test"
CANARY_SUBJECT = "canary-subject-7q2 Lab results"
CANARY_BODY = "canary-body-7q2 SSN 123-45-6789"
LOCKOUT_ATTEMPTS = 3
PAGE_SIZE = 2  # a message's events fill more than one page
AUDITORS = ("audrey", "lucy", "sam", "rita", "ida", "abe", "cora", "kay", "remy")


@dataclass
class Env:
    gw: Phigate
    base: str
    browser: sync_api.Browser
    queue_id: str
    secrets: dict[str, str]  # name -> TOTP secret


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("reviewer")
    gw = web_gate(
        tmp,
        reviewer={
            "lockout_attempts": LOCKOUT_ATTEMPTS,
            "page_size": PAGE_SIZE,
            "sign_ins_per_minute": 1000,  # every test signs in from 127.0.0.1
        },
    )
    secret = gw.add_principal("ehr1", "clinic.example.org")
    people = {
        name: add_person(gw, name, role, PASSWORD, totp)
        for name, role, totp in (
            # Each signs in with a code once: a code is used once, and a second
            # sign-in within its 30 seconds would need the next one.
            *((name, "auditor", True) for name in AUDITORS),
            ("otto", "operator", False),
            ("nora", "admin", False),  # admin without TOTP: may not sign in
        )
    }
    with gw, sync_api.sync_playwright() as playwright:
        gw.submit(
            secret, SENDER, [RECIPIENT], message(SENDER, RECIPIENT, CANARY_SUBJECT, CANARY_BODY)
        )
        wait_until(lambda: any(e["event"] == "delivered" for e in audit_since(gw, 0)))
        [queue_id] = {
            e["queue_id"] for e in gw.json("audit", "search", "--event", "accepted")["events"]
        }
        # --no-sandbox: Chromium's sandbox needs user namespaces, which containers lack.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield Env(gw, base_url(gw), browser, queue_id, {k: v for k, v in people.items() if v})
        finally:
            browser.close()


def new_page(env: Env) -> sync_api.Page:
    """A fresh browser profile with JavaScript off: the pages must work without it."""
    return env.browser.new_context(java_script_enabled=False).new_page()


def type_password(base: str, page: sync_api.Page, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/review/sign-in")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def type_code(page: sync_api.Page, code: str) -> None:
    page.get_by_label("Code from your authenticator app").fill(code)
    page.get_by_role("button", name="Continue").click()


def sign_in(env: Env, page: sync_api.Page, name: str) -> None:
    type_password(env.base, page, name)
    sync_api.expect(page.locator("h1")).to_have_text("Your code")
    type_code(page, pyotp.TOTP(env.secrets[name]).now())
    sync_api.expect(page.locator("h1")).to_have_text("Reviewer")


def views(env: Env, mark: int) -> list[dict[str, object]]:
    return [e for e in web_events(env, mark) if e["event"] == "web_view"]


def web_events(env: Env, mark: int) -> list[dict[str, object]]:
    return [e for e in audit_since(env.gw, mark) if str(e["event"]).startswith("web_")]


def actors(env: Env, mark: int) -> list[str]:
    with store(env.gw) as db, db.reading() as conn:
        rows = conn.execute(
            select(audit_events.c.actor).where(audit_events.c.id > mark).order_by(audit_events.c.id)
        )
        return [str(r.actor) for r in rows if r.actor]


def test_sign_in_with_totp_search_open_a_timeline_and_sign_out(env: Env) -> None:
    mark = audit_mark(env.gw)
    page = new_page(env)
    page.goto(f"{env.base}/review/audit")
    sync_api.expect(page.locator("h1")).to_have_text("Sign in")  # not signed in yet
    sign_in(env, page, "audrey")
    [cookie] = [c for c in page.context.cookies() if c["name"] == "review_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/review/"
    sync_api.expect(page.get_by_role("banner")).to_contain_text("audrey (auditor)")

    page.get_by_role("navigation").get_by_role("link", name="Audit search").click()
    sync_api.expect(page.locator("h1")).to_have_text("Audit search")
    page.get_by_label("Recipient", exact=True).fill(RECIPIENT.upper())  # any case
    page.get_by_label("Event kinds (space-separated)").fill("accepted policy delivered")
    page.get_by_role("button", name="Search").click()
    status = page.get_by_role("status")
    sync_api.expect(status).to_contain_text("3 matching events: accepted 1, delivered 1, policy 1")
    rows = page.get_by_role("table").locator("tbody tr")
    sync_api.expect(rows).to_have_count(PAGE_SIZE)
    sync_api.expect(rows.first).to_contain_text("policy")  # decided before it was accepted
    assert page.get_by_label("Recipient", exact=True).input_value() == RECIPIENT.upper()

    page.get_by_role("link", name=env.queue_id).first.click()
    sync_api.expect(page.locator("h1")).to_have_text(f"Message {env.queue_id}")
    summary = page.locator("dl.facts").first
    sync_api.expect(summary).to_contain_text("ehr1")
    sync_api.expect(summary).to_contain_text(SENDER)
    steps = page.locator("ol.steps")
    sync_api.expect(steps).to_contain_text("Accepted: accepted (queued)")
    sync_api.expect(steps).to_contain_text("Decision: policy")
    sync_api.expect(steps).to_contain_text("Attempt: delivered (2.0.0)")
    # Metadata only: the pages never show content.
    html = page.content()
    assert CANARY_SUBJECT not in html and CANARY_BODY not in html

    page.get_by_role("button", name="Sign out").click()
    sync_api.expect(page.locator("h1")).to_have_text("You are signed out")
    page.goto(f"{env.base}/review/audit")
    sync_api.expect(page.locator("h1")).to_have_text("Sign in")
    page.context.close()

    events = web_events(env, mark)
    kinds = [(e["event"], e["result"]) for e in events]
    assert ("web_sign_in", "ok") in kinds and ("web_sign_out", "ok") in kinds
    seen = [e["detail"] for e in views(env, mark)]
    assert seen == [
        "page=home",
        "page=audit_search filters=-",  # the search form before any filter
        "page=audit_search filters=event,recipient",
        f"page=timeline queue={env.queue_id}",
    ]
    assert set(actors(env, mark)) == {"web:audrey"}
    # Which kinds of filter were used, never their values; no content anywhere.
    recorded = repr(audit_since(env.gw, mark)).lower()
    for canary in (RECIPIENT, CANARY_SUBJECT.lower(), CANARY_BODY.lower(), PASSWORD):
        assert canary not in recorded
    log = env.gw.log_text().lower()
    for canary in (CANARY_SUBJECT.lower(), CANARY_BODY.lower(), PASSWORD, RECIPIENT):
        assert canary not in log


def test_search_pages_through_results_and_explains_a_bad_filter(env: Env) -> None:
    page = new_page(env)
    sign_in(env, page, "sam")
    page.goto(f"{env.base}/review/audit?since=yesterday")
    sync_api.expect(page.get_by_role("alert")).to_contain_text("is not a date or time")
    response = page.goto(f"{env.base}/review/audit?tls=bogus")
    assert response is not None and response.status == 400
    sync_api.expect(page.get_by_role("alert")).to_contain_text("must be one of pkix")
    # An `after` that is no event id starts from the first page.
    response = page.goto(f"{env.base}/review/audit?queue_id={env.queue_id}&after=9{'9' * 30}")
    assert response is not None and response.status == 200
    sync_api.expect(page.get_by_role("status")).to_contain_text("3 matching events")
    # One event per page: the next page starts after it and keeps the filters.
    page.goto(f"{env.base}/review/audit?queue_id={env.queue_id}")
    first = page.get_by_role("table").locator("tbody tr").first.locator("td").first.inner_text()
    page.get_by_role("link", name="Next page").click()
    assert "queue_id=" + env.queue_id in page.url and "after=" in page.url
    second = page.get_by_role("table").locator("tbody tr").first.locator("td").first.inner_text()
    assert int(second) > int(first)
    page.context.close()


def test_a_role_that_may_not_see_a_page_gets_403(env: Env) -> None:
    mark = audit_mark(env.gw)
    page = new_page(env)
    type_password(env.base, page, "otto")  # operator: no TOTP required by default
    sync_api.expect(page.locator("h1")).to_have_text("Reviewer")
    sync_api.expect(page.get_by_role("main")).to_contain_text("Your role has no pages here")
    nav = page.get_by_role("navigation")
    sync_api.expect(nav.get_by_role("link", name="Audit search")).to_have_count(0)
    sync_api.expect(nav.get_by_role("link", name="Reports")).to_have_count(0)
    for path in ("/review/audit", f"/review/audit/messages/{env.queue_id}", "/review/reports"):
        response = page.goto(env.base + path)
        assert response is not None and response.status == 403, path
        sync_api.expect(page.locator("h1")).to_have_text("You may not see this page")
    forbidden = [e for e in views(env, mark) if e["result"] == "forbidden"]
    assert [e["detail"] for e in forbidden] == ["page=audit", "page=audit", "page=reports"]

    # An auditor reads the report page's slot; the nav names it.
    auditor = new_page(env)
    sign_in(env, auditor, "rita")
    auditor.get_by_role("navigation").get_by_role("link", name="Reports").click()
    sync_api.expect(auditor.locator("h1")).to_have_text("Reports")

    # A role changed by an admin applies from the next request on.
    env.gw.cli("user", "role", "otto", "auditor")
    response = page.goto(f"{env.base}/review/audit")
    assert response is not None and response.status == 200
    # Disabled: the session ends at once.
    env.gw.cli("user", "disable", "otto")
    page.goto(f"{env.base}/review/audit")
    sync_api.expect(page.locator("h1")).to_have_text("Sign in")
    page.context.close()
    auditor.context.close()


def test_an_auditor_reads_the_compliance_report_with_its_charts(env: Env) -> None:
    mark = audit_mark(env.gw)
    page = new_page(env)
    sign_in(env, page, "remy")
    page.get_by_role("navigation").get_by_role("link", name="Reports").click()
    sync_api.expect(page.locator("h1")).to_have_text("Reports")
    page.get_by_label("From (date or ISO time, UTC)").fill("2099-01-02")
    page.get_by_label("To (the whole day included)").fill("2099-01-01")
    page.get_by_role("button", name="Show the report").click()
    sync_api.expect(page.get_by_role("alert")).to_contain_text("swap them")

    today = time.strftime("%Y-%m-%d", time.gmtime())
    response = page.goto(f"{env.base}/review/reports?from={today}&to={today}")
    assert response is not None and response.status == 200
    sync_api.expect(page.locator("h1")).to_have_text("Compliance report")
    sync_api.expect(page.locator("body")).to_contain_text("ehr1")  # volume by principal
    chart = page.locator("svg").first
    box = chart.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 50
    # The report's own stylesheet is the one thing its CSP allows; nothing is fetched.
    csp = response.headers["content-security-policy"]
    style = page.locator("style").first.inner_text()
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp and "script-src" not in csp
    assert "default-src 'none'" in csp
    html = page.content()
    for canary in (CANARY_SUBJECT, CANARY_BODY, RECIPIENT):
        assert canary not in html
    page.context.close()
    assert [e["detail"] for e in views(env, mark)][-2:] == [
        "page=reports",
        "page=report range=given",
    ]


def test_an_admin_without_totp_may_not_sign_in(env: Env) -> None:
    page = new_page(env)
    type_password(env.base, page, "nora")
    sync_api.expect(page.locator("h1")).to_have_text("A second factor is needed")
    sync_api.expect(page.get_by_role("main")).to_contain_text("phigate user totp enroll nora")
    response = page.goto(f"{env.base}/review/")
    assert response is not None
    sync_api.expect(page.locator("h1")).to_have_text("Sign in")
    page.context.close()


def test_wrong_passwords_and_codes_lock_the_person_out(env: Env) -> None:
    mark = audit_mark(env.gw)
    page = new_page(env)
    type_password(env.base, page, "lucy", "not the password at all")
    sync_api.expect(page.get_by_role("alert")).to_contain_text("name or password is not right")
    type_password(env.base, page, "lucy")  # right password, then a wrong code
    type_code(page, "000000" if pyotp.TOTP(env.secrets["lucy"]).now() != "000000" else "111111")
    sync_api.expect(page.get_by_role("alert")).to_contain_text("That code is not right")
    type_password(env.base, page, "lucy", "still not the password")
    sync_api.expect(page.locator("h1")).to_have_text("Too many wrong attempts")
    # Locked: even the right password does not sign in now.
    type_password(env.base, page, "lucy")
    sync_api.expect(page.locator("h1")).to_have_text("Too many wrong attempts")
    events = [(e["result"], e["detail"]) for e in web_events(env, mark)]
    assert events == [
        ("failed", "wrong password, attempt 1"),
        ("failed", "wrong code, attempt 2"),
        ("failed", "wrong password, attempt 3"),
        ("locked", None),
        ("refused", "locked"),
    ]
    [lucy] = [u for u in env.gw.json("user", "ls") if u["name"] == "lucy"]
    assert lucy["state"] == "locked"

    env.gw.cli("user", "unlock", "lucy")
    sign_in(env, page, "lucy")
    page.context.close()


def test_a_session_ends_when_idle_and_at_its_absolute_lifetime(env: Env) -> None:
    idle = settings_of(env.gw).reviewer.idle_minutes * 60
    for name, column, moved_back in (
        ("ida", "last_seen_at", idle + 1),  # idle too long
        ("abe", "expires_at", 1),  # the absolute lifetime ended a second ago
    ):
        page = new_page(env)
        sign_in(env, page, name)
        page.goto(f"{env.base}/review/audit")
        sync_api.expect(page.locator("h1")).to_have_text("Audit search")
        [cookie] = [c for c in page.context.cookies() if c["name"] == "review_session"]
        mine = web_sessions.c.session_hash == sessions.secret_hash(cookie["value"])
        with store(env.gw) as db, db.transaction() as conn:
            conn.execute(
                update(web_sessions).where(mine).values({column: time.time() - moved_back})
            )
        page.goto(f"{env.base}/review/audit")
        sync_api.expect(page.locator("h1")).to_have_text("Sign in")
        with store(env.gw) as db, db.reading() as conn:
            assert conn.execute(select(web_sessions).where(mine)).first() is None  # ended
        page.context.close()


def test_forms_without_their_csrf_token_are_refused(env: Env) -> None:
    mark = audit_mark(env.gw)
    page = new_page(env)
    page.goto(f"{env.base}/review/sign-in")  # sets the CSRF cookie
    form = {"name": "cora", "password": PASSWORD}
    for token in (None, "0" * 64):
        data = form if token is None else {**form, "csrf": token}
        response = page.request.post(f"{env.base}/review/sign-in", form=data)
        assert response.status == 403 and "This form has expired" in response.text()
    assert not web_events(env, mark)  # refused before the password was looked at

    # Signed in, a forged sign-out is refused and the session lives on.
    sign_in(env, page, "cora")
    response = page.request.post(f"{env.base}/review/sign-out", form={"csrf": "forged"})
    assert response.status == 403
    page.goto(f"{env.base}/review/audit")
    sync_api.expect(page.locator("h1")).to_have_text("Audit search")
    page.context.close()


def test_a_secret_sealed_under_another_web_key_asks_to_enrol_again(env: Env) -> None:
    """Fail closed, with a way out: keys/web.key was replaced since wendy enrolled."""
    with store(env.gw) as db, db.transaction() as conn:
        users.add(conn, "wendy", "auditor", factors.hash_password(PASSWORD), time.time(), "cli:t")
        sealed = factors.seal_totp(os.urandom(32), "wendy", factors.new_totp("wendy").secret)
        users.set_totp(conn, "wendy", sealed, time.time(), "cli:test")
    page = new_page(env)
    type_password(env.base, page, "wendy")
    type_code(page, "123456")
    sync_api.expect(page.locator("h1")).to_have_text("Your code cannot be checked")
    sync_api.expect(page.get_by_role("main")).to_contain_text("phigate user totp enroll wendy")
    page.goto(f"{env.base}/review/audit")
    sync_api.expect(page.locator("h1")).to_have_text("Sign in")
    page.context.close()


def test_pages_are_navigable_by_keyboard_with_landmarks(env: Env) -> None:
    page = new_page(env)
    page.goto(f"{env.base}/review/sign-in")
    page.keyboard.press("Tab")
    sync_api.expect(page.get_by_role("link", name="Skip to the content")).to_be_focused()
    page.keyboard.press("Tab")
    sync_api.expect(page.get_by_label("Name")).to_be_focused()
    page.keyboard.type("kay")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("h1")).to_have_text("Your code")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.type(pyotp.TOTP(env.secrets["kay"]).now())
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("h1")).to_have_text("Reviewer")
    for role in ("banner", "navigation", "main"):
        sync_api.expect(page.get_by_role(role)).to_have_count(1)
    page.goto(f"{env.base}/review/audit")
    # Every field of the search form has a label.
    for field in page.locator("form.filters input, form.filters select").all():
        field_id = field.get_attribute("id")
        assert field_id and page.locator(f"label[for={field_id}]").count() == 1
    page.context.close()


def test_one_client_may_try_only_so_many_sign_ins_a_minute(env: Env, tmp_path: Path) -> None:
    """Whatever the names: one password tried against many is slowed too."""
    with web_gate(tmp_path, reviewer={"sign_ins_per_minute": 2}) as gw:
        page = new_page(env)  # the shared browser, against this server of its own
        for name in ("ann", "ben"):
            type_password(base_url(gw), page, name)
            sync_api.expect(page.get_by_role("alert")).to_contain_text("is not right")
        type_password(base_url(gw), page, "cal")
        sync_api.expect(page.locator("h1")).to_have_text("Too many sign-in attempts")
        page.context.close()
