"""The realistic message mix of the head-to-head benchmark (bench/loadgen.py --mix).

Every message is fixed by its index in the run, so both systems get the same
sequence of sizes and contents:

- **size**, by count: 70% about 5 KB (a short note or notification), 25%
  about 50 KB (a letter or a discharge summary with a small attachment), 5%
  about 2 MB (a scanned referral or imaging report as a PDF). An assumption,
  not a measurement: most clinical mail is short and a few messages carry
  the bytes (the mean is about 118 KB, and the 2 MB messages carry 86% of
  them). The classes repeat every 20 messages (indexes 0-13, 14-18, 19), so
  even a short run has them in these shares.
- **PHI**: every third message (index % 3 == 0), across all three sizes (3
  and 20 are coprime). Its body names a patient with a date of birth, a
  medical record number and a diagnosis with its ICD-10 code, as a referral
  would; the others hold only administrative text.
- **shape**: 5 KB messages are plain text; 50 KB ones are text with a text
  attachment (clinic notes); 2 MB ones are text with a base64 PDF attachment
  (one page of text and an uncompressed grey scan, a valid PDF that text
  extraction reads). The text varies by index (sentences drawn with a
  seeded generator), so no body is one repeated line.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass

from pdf_writer import pdf_file

SMALL, MEDIUM, LARGE = 5 * 1024, 50 * 1024, 2 * 1024 * 1024
SIZE_CYCLE = (SMALL,) * 14 + (MEDIUM,) * 5 + (LARGE,)  # 70/25/5 by count
SIZE_CLASSES_KB = tuple(sorted({size // 1024 for size in SIZE_CYCLE}))  # for --mix-size
PHI_EVERY = 3  # a third of the messages carry PHI
BOUNDARY = "=_bench_mix_boundary"

# Administrative sentences without PHI: what a clinic sends besides patient mail.
SENTENCES = (
    "The quarterly infection control meeting moves to the second floor conference room.",
    "Please submit the updated on-call rota for the surgical team by Friday noon.",
    "The pharmacy will be closed for inventory on the first Monday of next month.",
    "Badge readers at the east entrance will be replaced during the weekend.",
    "Remember to complete the annual privacy and security training module.",
    "The cafeteria now offers a vegetarian option at lunch every weekday.",
    "Parking lot B is reserved for visitors while the garage is resurfaced.",
    "New printer drivers are available from the service desk portal.",
    "The laboratory courier pickup time changes to half past four.",
    "Volunteers are needed for the community health fair in the spring.",
    "Supply orders placed after Wednesday ship with the following week's delivery.",
    "The nursing education committee welcomes proposals for the next workshop series.",
)

PATIENTS = (
    ("Maria", "Gonzalez"),
    ("James", "Whitaker"),
    ("Aisha", "Rahman"),
    ("Robert", "Lindqvist"),
    ("Chen", "Wei"),
    ("Olivia", "Bennett"),
)
DIAGNOSES = (
    ("type 2 diabetes mellitus without complications", "E11.9"),
    ("essential hypertension", "I10"),
    ("chronic obstructive pulmonary disease", "J44.9"),
    ("major depressive disorder, single episode", "F32.9"),
    ("atrial fibrillation", "I48.91"),
)


@dataclass(frozen=True)
class MixedMessage:
    size: int  # the size class, bytes
    phi: bool
    content: bytes


def size_class(index: int) -> int:
    return SIZE_CYCLE[index % len(SIZE_CYCLE)]


def mix_index(number: int, only: int | None = None) -> int:
    """The mix's index of a run's `number`-th message: `number` itself, or with `only`
    (one of the sizes), the index of the mix's `number`-th message of that size, so that
    a run of one size class sends the very messages the whole mix holds of it."""
    if only is None:
        return number
    positions = [i for i, size in enumerate(SIZE_CYCLE) if size == only]
    if not positions:
        raise ValueError(f"no size class of {only} bytes in the mix")
    cycles, position = divmod(number, len(positions))
    return cycles * len(SIZE_CYCLE) + positions[position]


def carries_phi(index: int) -> bool:
    return index % PHI_EVERY == 0


def phi_paragraph(index: int) -> str:
    first, last = PATIENTS[index % len(PATIENTS)]
    diagnosis, code = DIAGNOSES[index % len(DIAGNOSES)]
    month, day, year = 1 + index % 12, 1 + index % 28, 1940 + index % 60
    mrn = 10_000_000 + (index * 7919) % 90_000_000
    return (
        f"Re: referral of {first} {last}, date of birth {month:02d}/{day:02d}/{year}, "
        f"MRN {mrn}.\r\n"
        f"Patient {first} {last} was seen in clinic today. Diagnosis: {diagnosis} "
        f"(ICD-10 {code}). Please schedule a follow-up visit within four weeks.\r\n\r\n"
    )


def filler_text(rng: random.Random, size: int) -> str:
    """Paragraphs of administrative sentences, about `size` bytes, CRLF line endings."""
    lines: list[str] = []
    length = 0
    while length < size:
        line = " ".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 3))) + "\r\n"
        if rng.random() < 0.2:
            line += "\r\n"
        lines.append(line)
        length += len(line)
    return "".join(lines)


def base64_lines(data: bytes) -> str:
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[i : i + 76] + "\r\n" for i in range(0, len(encoded), 76))


def scanned_pdf(rng: random.Random, size: int, title: str) -> bytes:
    """A one-page PDF of about `size` bytes: a line of text and a grey scan (raw pixels)."""
    text = f"BT /F1 12 Tf 72 720 Td ({title}) Tj ET".encode()
    width = 1024
    height = max(1, size // width)
    pixels = rng.randbytes(width * height)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> /XObject << /Im1 6 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Length %d >>\nstream\n%s\nendstream"
        % (width, height, len(pixels), pixels),
    ]
    return pdf_file(objects)


def attachment(filename: str, content_type: str, payload: bytes) -> str:
    return (
        f"--{BOUNDARY}\r\n"
        f'Content-Type: {content_type}; name="{filename}"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="{filename}"\r\n'
        "\r\n" + base64_lines(payload)
    )


def make_mixed_message(head: str, index: int) -> MixedMessage:
    """The message at `index` of the mix; `head` is the header block up to (not including)
    Content-Type, ending in CRLF."""
    size, phi = size_class(index), carries_phi(index)
    rng = random.Random(index)
    opening = phi_paragraph(index) if phi else ""
    text_part = opening + filler_text(rng, min(size, SMALL) - len(head) - len(opening))
    if size == SMALL:
        body = "Content-Type: text/plain; charset=us-ascii\r\n\r\n" + text_part
    else:
        room = size - len(head) - len(text_part) - 400  # the MIME headers
        if size == LARGE:
            payload = scanned_pdf(rng, room * 3 // 4, f"Document {index}")
            attached = attachment(f"document-{index}.pdf", "application/pdf", payload)
        else:
            notes = filler_text(rng, room * 3 // 4).encode()
            attached = attachment(f"notes-{index}.txt", "text/plain; charset=us-ascii", notes)
        body = (
            f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"\r\n\r\n'
            f"--{BOUNDARY}\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"{text_part}\r\n{attached}--{BOUNDARY}--\r\n"
        )
    return MixedMessage(size=size, phi=phi, content=(head + body).encode())
