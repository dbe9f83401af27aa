"""gateway.mail.message.parse feeds the parser in pieces (to bound its memory on large
messages): the result must be what parsing the whole message at once gives, wherever a
piece ends: inside a CRLF, a header, a MIME boundary line or a base64 line.
"""

from __future__ import annotations

import email.policy
import os
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from gateway.mail import message as parsing


def multipart(padding: int) -> bytes:
    mail = EmailMessage()
    mail["From"] = "lab@clinic.example.org"
    mail["To"] = "doctor@partner.example.com"
    mail["Subject"] = "scan " + "x" * padding
    mail.set_content("The scan is attached.\n" * 3)
    mail.add_attachment(
        os.urandom(3 * parsing._PIECE // 4), maintype="application", subtype="pdf", filename="s.pdf"
    )
    mail.add_attachment("second part\n" * 20000, subtype="plain", filename="notes.txt")
    return mail.as_bytes(policy=email.policy.SMTP)


def whole(data: bytes) -> bytes:
    return BytesParser(policy=email.policy.compat32).parsebytes(data).as_bytes()


@pytest.mark.parametrize("padding", range(0, 80, 7))
def test_pieces_parse_as_the_whole_message_does(padding: int) -> None:
    data = multipart(padding)
    assert len(data) > 2 * parsing._PIECE
    parsed = parsing.parse(data).message
    assert parsed.as_bytes() == whole(data)
    attachments = [part.get_payload(decode=True) for part in parsed.walk()][2:]
    assert len(attachments[0]) == 3 * parsing._PIECE // 4
    assert attachments[1] == b"second part\r\n" * 20000


def test_a_piece_that_ends_between_cr_and_lf() -> None:
    line = b"a line of text\r\n"
    head = b"Subject: plain\r\nMessage-ID: <p@example.org>\r\n\r\n"
    # Pad so that a piece ends right after a CR.
    body = b"x" * (parsing._PIECE - len(head) - 1) + b"\r\n" + line * 50000
    data = head + body
    assert data[parsing._PIECE - 1 : parsing._PIECE + 1] == b"\r\n"
    parsed = parsing.parse(data)
    assert parsed.message_id == "<p@example.org>"
    assert parsed.message.as_bytes() == whole(data)
