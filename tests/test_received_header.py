"""The Received header intake adds: trace fields as the admin allows, dated to the second."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from gateway.config import ReceivedHeaderConfig
from gateway.intake import Submission, received_header

_SUBMISSION = Submission(
    listener="submission",
    principal="ehr1",
    client_ip="192.0.2.7",
    helo="ehr.test",
    tls=True,
    authenticated=True,
    sender="a@clinic.example.org",
    recipients=("b@partner.test",),
    content=b"Subject: s\r\n\r\nbody\r\n",
)


def _date_of(header: bytes) -> float:
    return parsedate_to_datetime(header.decode().rsplit(";", 1)[1].strip()).timestamp()


def test_each_message_is_dated_to_its_own_second() -> None:
    options = ReceivedHeaderConfig()
    start = 1_780_000_000.25
    # Two messages in one second, one in the next and one a day later, then the first
    # second again: the date follows the message's time whatever came before it.
    for now in (start, start + 0.5, start + 1.0, start + 86_400.9, start + 0.7):
        header = received_header(_SUBMISSION, "Q1", "phigate.test", options, now)
        assert _date_of(header) == int(now)


def test_the_client_is_named_only_where_the_admin_allows() -> None:
    hidden = received_header(_SUBMISSION, "Q1", "phigate.test", ReceivedHeaderConfig(), 0.0)
    assert hidden.startswith(b"Received: by phigate.test (phigate) with ESMTPSA id Q1;\r\n\t")
    assert b"192.0.2.7" not in hidden and b"ehr.test" not in hidden
    shown = received_header(
        _SUBMISSION,
        "Q1",
        "phigate.test",
        ReceivedHeaderConfig(include_client_ip=True, include_helo=True),
        0.0,
    )
    assert shown.startswith(b"Received: from ehr.test ([192.0.2.7])\r\n\tby phigate.test ")
