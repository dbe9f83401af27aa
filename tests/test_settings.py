"""Settings loading: strict YAML, located error messages, template, CLI overrides."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from gateway.config import Settings
from gateway.settings_loader import SettingsError, load_settings, template_text
from gateway.strict_yaml import Mark, YamlError, load_yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "gateway" / "templates" / "phigate.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "phigate.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    return [str(problem) for problem in info.value.problems]


def only_problem(path: Path) -> YamlError:
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert len(info.value.problems) == 1, str(info.value)
    return info.value.problems[0]


# --- defaults and template ---------------------------------------------------


def test_no_file_gives_embedded_defaults() -> None:
    settings = load_settings(None)
    assert settings == Settings()
    assert settings.data_dir == "./phigate-data"
    assert settings.delivery.mode == "sandbox"
    assert [listener.name for listener in settings.listeners] == ["submission"]


def test_empty_file_gives_defaults_with_data_dir_next_to_file(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing configured yet\n")
    settings = load_settings(path)
    assert settings.data_dir == str(tmp_path / "phigate-data")
    assert settings.model_copy(update={"data_dir": Settings().data_dir}) == Settings()


def test_template_loads_with_default_values() -> None:
    settings = load_settings(TEMPLATE)
    # data_dir: . means the directory holding the file.
    assert settings.data_dir == str(TEMPLATE.parent)
    assert settings.dev_principal is False
    # Apart from data_dir, the template documents the defaults exactly.
    assert settings.model_copy(update={"data_dir": Settings().data_dir}) == Settings()
    assert template_text() == TEMPLATE.read_text(encoding="utf-8")


def _field_names(model: type[BaseModel]) -> set[str]:
    names = set(model.model_fields)
    for info in model.model_fields.values():
        annotation: Any = info.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                names |= _field_names(candidate)
    return names


def test_template_mentions_every_setting() -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    missing = sorted(name for name in _field_names(Settings) if f"{name}:" not in text)
    assert missing == []
    assert "\ndev_principal: false\n" in text
    assert "\ndata_dir: .\n" in text


def _uncomment_block(text: str, first_line: str) -> str:
    """Uncomment the run of "# " lines starting at the one reading `first_line`."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip() == first_line)
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    index = start
    while index < len(lines) and lines[index].startswith(indent + "# "):
        lines[index] = indent + lines[index][len(indent) + 2 :]
        index += 1
    return "\n".join(lines)


def test_template_commented_examples_are_valid(tmp_path: Path) -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    text = _uncomment_block(text, "# - name: smtps")
    text = _uncomment_block(text, "# - name: inbound")
    text = text.replace("relay_networks: []\n", "")
    text = _uncomment_block(text, "# relay_networks:")
    text = text.replace("  mode: sandbox\n", "  mode: smarthost\n")
    text = text.replace("  smarthost: null\n", "  smarthost: relay.example.org:587\n")
    path = tmp_path / "phigate.yaml"
    path.write_text(text, encoding="utf-8")

    settings = load_settings(path)
    assert [(lsn.name, lsn.tls, lsn.host_port) for lsn in settings.listeners] == [
        ("submission", "starttls", ("127.0.0.1", 2525)),
        ("inbound", "starttls", ("0.0.0.0", 25)),
        ("smtps", "implicit", ("0.0.0.0", 465)),
    ]
    inbound = settings.listeners[1].effective_limits(settings.limits)
    assert (inbound.max_connections, inbound.max_connections_per_ip) == (100, 5)
    assert inbound.max_session_seconds == settings.limits.max_session_seconds
    assert settings.relay_networks[0].name == "ehr-cluster"
    assert settings.relay_networks[0].networks == ["10.20.0.0/16", "192.168.7.12/32"]
    assert settings.relay_networks[0].domains == ["clinic.example.org"]
    assert settings.delivery.mode == "smarthost"
    assert settings.delivery.smarthost == "relay.example.org:587"


# --- relative data_dir ---------------------------------------------------------


def test_relative_data_dir_is_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    path = write(conf_dir, "data_dir: ../var/phigate\n")
    # Started from somewhere else entirely: the file's directory still wins.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(path)
    assert settings.data_dir == str(tmp_path / "var" / "phigate")
    assert settings.path("keys") == tmp_path / "var" / "phigate" / "keys"


def test_absolute_data_dir_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "abs-data"
    path = write(tmp_path, f'data_dir: "{target}"\n')
    assert load_settings(path).data_dir == str(target)


def test_values_from_file_are_used(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        hostname: mail.clinic.example
        delivery:
          workers: 4
          retry_schedule: [30, 90.5]
          tls: required
        limits:
          idle_timeout: 60
        received_header:
          include_helo: TRUE
        """,
    )
    settings = load_settings(path)
    assert settings.hostname == "mail.clinic.example"
    assert settings.delivery.workers == 4
    assert settings.delivery.retry_schedule == [30.0, 90.5]
    assert settings.delivery.tls == "required"
    assert settings.limits.idle_timeout == 60.0
    assert settings.received_header.include_helo is True


# --- located error messages ----------------------------------------------------


def test_typo_key_suggests_the_closest_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        hostname: mail.example.org

        delievery:
          workers: 8
        """,
    )
    problem = only_problem(path)
    assert (problem.line, problem.column) == (3, 1)
    assert problem.key == "delievery"
    assert str(problem) == (
        f'{path}:3:1: delievery: unknown key "delievery". Fix: did you mean "delivery"?'
    )


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        received_header:
          zzz: true
        """,
    )
    assert problems(path) == [
        f'{path}:2:3: received_header.zzz: unknown key "zzz". Fix: remove it; the keys '
        'allowed here are "include_client_ip", "include_helo".'
    ]


def test_wrong_type_names_dotted_key_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        delivery:
          mode: sandbox
          workers: eight
        """,
    )
    problem = only_problem(path)
    assert (problem.source, problem.line, problem.column) == (str(path), 3, 12)
    assert problem.key == "delivery.workers"
    assert str(problem) == (
        f'{path}:3:12: delivery.workers: expected a whole number, got "eight". '
        "Fix: write a number such as 8."
    )


def test_quoted_number_is_told_to_drop_the_quotes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        delivery:
          connect_timeout: "30"
        """,
    )
    assert problems(path) == [
        f'{path}:2:20: delivery.connect_timeout: expected a number, got the text "30". '
        "Fix: remove the quotes: 30."
    ]


def test_yes_is_not_a_boolean(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        log_level: info
        dev_principal: yes
        """,
    )
    problem = only_problem(path)
    assert (problem.line, problem.column, problem.key) == (2, 16, "dev_principal")
    assert str(problem) == (
        f"{path}:2:16: dev_principal: yes is not a boolean here: only true and false are. "
        'Fix: write true or false, or put it in quotes ("yes") if you mean the text.'
    )


@pytest.mark.parametrize("word", ["no", "On", "OFF", "y", "N", "Yes"])
def test_yaml11_booleans_are_refused_inside_lists_too(tmp_path: Path, word: str) -> None:
    path = write(
        tmp_path,
        f"""
        listeners:
          - name: submission
            require_tls: {word}
        """,
    )
    problem = only_problem(path)
    assert (problem.line, problem.key) == (3, "listeners[0].require_tls")
    assert problem.message == f"{word} is not a boolean here: only true and false are"
    assert "write true or false" in problem.hint


def test_quoted_yes_is_a_type_error_not_a_boolean(tmp_path: Path) -> None:
    path = write(tmp_path, 'dev_principal: "yes"\n')
    assert problems(path) == [
        f'{path}:1:16: dev_principal: expected true or false, got "yes". '
        "Fix: write true or false, without quotes."
    ]


def test_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        delivery:
          workers: 4
          mode: mx
          workers: 16
        """,
    )
    problem = only_problem(path)
    assert (problem.line, problem.column) == (4, 3)
    assert str(problem) == (
        f'{path}:4:3: delivery.workers: duplicate key "workers" (first on line 2, again on '
        "line 4). Fix: keep only one of them; otherwise one would silently override the other."
    )


def test_octal_looking_number_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        limits:
          max_recipients: 0100
        """,
    )
    problem = only_problem(path)
    assert (problem.line, problem.column, problem.key) == (2, 19, "limits.max_recipients")
    assert "0100 has a leading zero" in problem.message
    assert 'put it in quotes ("0100")' in problem.hint
    assert "without the leading zero" in problem.hint


def test_sexagesimal_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        limits:
          idle_timeout: 1:30
        """,
    )
    assert problems(path) == [
        f"{path}:2:17: limits.idle_timeout: 1:30 looks like a time, which some YAML readers "
        'take as a base-60 number. Fix: put it in quotes ("1:30"); for a duration write the '
        "number of seconds."
    ]


def test_address_with_port_is_still_text(tmp_path: Path) -> None:
    # HOST:PORT must not trip the base-60 rule.
    path = write(
        tmp_path,
        """
        listeners:
          - address: 10.1.2.3:587
        """,
    )
    assert load_settings(path).listeners[0].host_port == ("10.1.2.3", 587)


def test_syntax_error_reports_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        delivery:
          workers: 8
         mode: mx
        """,
    )
    problem = only_problem(path)
    assert (problem.line, problem.column) == (3, 2)
    assert "while parsing a block mapping that starts on line 1" in problem.message
    assert problem.hint == "indent this line exactly like the other keys of the same section"
    assert str(problem).startswith(f"{path}:3:2: expected <block end>")


def test_tab_indentation_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "phigate.yaml"
    path.write_text("delivery:\n\tworkers: 8\n", encoding="utf-8")
    problem = only_problem(path)
    assert (problem.line, problem.column) == (2, 1)
    assert "indent with spaces" in problem.hint


def test_unclosed_quote_points_where_it_opens(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        hostname: mail.example.org
        postmaster: "postmaster@example.org
        log_level: info
        """,
    )
    problem = only_problem(path)
    assert (problem.line, problem.column) == (2, 13)
    assert problem.message == "found unexpected end of stream (while scanning a quoted scalar)"
    assert problem.hint == "close the quote or bracket that was opened"


def test_unknown_key_in_list_item(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        listeners:
          - name: submission
            address: 127.0.0.1:2525
          - name: smtps
            address: 0.0.0.0:465
            tlz: implicit
        """,
    )
    problem = only_problem(path)
    assert (problem.line, problem.column) == (6, 5)
    assert str(problem) == (
        f'{path}:6:5: listeners[1].tlz: unknown key "tlz". Fix: did you mean "tls"?'
    )


def test_missing_key_is_reported_at_its_parent(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        relay_networks:
          - networks: [10.0.0.0/8]
            domains: [clinic.example.org]
        """,
    )
    assert problems(path) == [
        f'{path}:2:5: relay_networks[0].name: missing required key "name". '
        'Fix: add "name: ..." here.'
    ]


def test_bad_choice_suggests_the_closest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        delivery:
          mode: smarthst
        """,
    )
    assert problems(path) == [
        f'{path}:2:9: delivery.mode: expected one of "sandbox", "smarthost", "mx", '
        'got "smarthst". Fix: did you mean "smarthost"?'
    ]


def test_validator_errors_point_at_the_bad_list_item(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        relay_networks:
          - name: ehr
            networks:
              - 10.0.0.0/8
              - 10.0.0.300/32
            domains: [clinic.example.org]
        """,
    )
    assert problems(path) == [
        f"{path}:5:9: relay_networks[0].networks[1]: '10.0.0.300/32' is not a network. "
        "Fix: write a network in CIDR form, e.g. 10.20.0.0/16 or 192.168.1.7/32."
    ]


def test_listener_checks_point_at_listeners(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        hostname: mx.example.org
        listeners:
          - name: a
          - name: a
            address: 0.0.0.0:465
        """,
    )
    assert problems(path) == [
        f"{path}:2:1: listeners: listener names must be unique. "
        'Fix: give each listener its own "name".'
    ]


def test_every_problem_is_reported_in_line_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        data_dir: 5
        tls:
        delivery:
          workers: 0
          retry_schedule: "60"
        limits:
          max_recipients: 1.5
        """,
    )
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert [(p.line, p.key) for p in info.value.problems] == [
        (1, "data_dir"),
        (2, "tls"),
        (4, "delivery.workers"),
        (5, "delivery.retry_schedule"),
        (7, "limits.max_recipients"),
    ]
    assert str(info.value).split("\n") == [
        f'{path}:1:11: data_dir: expected text, got 5. Fix: put the value in quotes: "5".',
        f"{path}:2:1: tls: expected a section of settings, got an empty value. Fix: indent "
        "its settings under it, or delete the line to use the defaults.",
        f"{path}:4:12: delivery.workers: must be greater than 0, got 0. Fix: use a value "
        "greater than 0, such as 8.",
        f'{path}:5:19: delivery.retry_schedule: expected a list, got "60". Fix: write one '
        'item per line starting with "- ", or [a, b] on one line.',
        f"{path}:7:19: limits.max_recipients: expected a whole number, got 1.5. Fix: write "
        "a number such as 100.",
    ]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- hostname: x\n")
    problem = only_problem(path)
    assert (problem.line, problem.column) == (1, 1)
    assert problem.message == "the file must hold key: value settings, but it holds a list"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hostname: &h mail\npostmaster: *h\n", "anchors (&h) are not supported"),
        ("hostname: !!str mail\n", "tags such as !!str are not supported"),
        ("hostname: !custom mail\n", "tags such as !custom are not supported"),
        ("delivery:\n  <<: {workers: 2}\n", "merge keys (<<) are not supported"),
    ],
)
def test_anchors_tags_and_merge_keys_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "phigate.yaml"
    path.write_text(text, encoding="utf-8")
    problem = only_problem(path)
    assert problem.message == message
    assert problem.line is not None
    assert problem.line == (2 if "<<" in text else 1)


def test_missing_file_is_a_settings_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert problems(path) == [
        f"{path}: cannot read the settings file: No such file or directory. "
        "Fix: check the path and that phigate may read it."
    ]


# --- CLI overrides -------------------------------------------------------------


def test_listen_override_keeps_first_listener_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        listeners:
          - name: lan
            address: 10.0.0.1:25
            tls: none
            require_tls: false
            allow_networks_without_auth: true
          - name: smtps
            address: 0.0.0.0:465
            tls: implicit
        """,
    )
    settings = load_settings(path, {"listen": ["127.0.0.1:2600", "[::1]:2601"]})
    assert [(lsn.name, lsn.address) for lsn in settings.listeners] == [
        ("listen1", "127.0.0.1:2600"),
        ("listen2", "[::1]:2601"),
    ]
    for listener in settings.listeners:
        assert listener.tls == "none"
        assert listener.require_tls is False
        assert listener.allow_networks_without_auth is True
    assert settings.listeners[1].host_port == ("::1", 2601)


@pytest.mark.parametrize(
    ("deliver", "mode", "smarthost"),
    [
        ("sandbox", "sandbox", None),
        ("mx", "mx", None),
        ("smarthost://relay.example.org:587", "smarthost", "relay.example.org:587"),
    ],
)
def test_deliver_override(deliver: str, mode: str, smarthost: str | None) -> None:
    settings = load_settings(None, {"deliver": deliver})
    assert settings.delivery.mode == mode
    assert settings.delivery.smarthost == smarthost
    assert settings.delivery.workers == Settings().delivery.workers


def test_data_dir_override_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "data_dir: from-file\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(path, {"data_dir": "cli-data", "listen": None, "deliver": None})
    assert settings.data_dir == os.path.join(str(tmp_path), "cli-data")
    # None means "flag not given": everything else is untouched.
    assert settings.listeners == Settings().listeners


def test_bad_overrides_name_the_flag() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(
            None,
            {"listen": ["localhost", "1.2.3.4:25", "1.2.3.4:25"], "deliver": "smtp://relay:25"},
        )
    assert str(info.value).split("\n") == [
        "--listen: 'localhost' is not HOST:PORT. "
        "Fix: write HOST:PORT, e.g. --listen 127.0.0.1:2525 or --listen [::1]:2525.",
        '--listen: "1.2.3.4:25" is given twice. Fix: give each address once.',
        '--deliver: "smtp://relay:25" is not a delivery mode. '
        "Fix: write --deliver sandbox, --deliver mx or --deliver smarthost://HOST:PORT.",
    ]
    assert all(p.line is None for p in info.value.problems)


def test_smarthost_override_needs_a_port() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(None, {"deliver": "smarthost://relay.example.org"})
    assert str(info.value) == (
        '--deliver: "smarthost://relay.example.org" does not name a HOST:PORT after '
        "smarthost://. Fix: write e.g. --deliver smarthost://mail.example.org:587."
    )


def test_empty_data_dir_override_is_refused() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(None, {"data_dir": ""})
    assert str(info.value) == (
        "--data-dir: needs a directory. Fix: write e.g. --data-dir /var/lib/phigate."
    )


# --- strict_yaml on its own ------------------------------------------------------


def test_load_yaml_types_and_positions() -> None:
    doc = load_yaml(
        textwrap.dedent("""
            on: true
            n1: 1_000
            f: [1.5, 1e3, .inf]
            nothing: ~
            when: 2024-01-02
            items:
              - name: a
                flag: False
        """).lstrip("\n"),
        "policy.yaml",
    )
    assert doc.data == {
        "on": True,  # keys are literal text: `on` stays "on"
        "n1": 1000,
        "f": [1.5, 1000.0, float("inf")],
        "nothing": None,
        "when": "2024-01-02",
        "items": [{"name": "a", "flag": False}],
    }
    assert doc.marks[("items",)] == Mark(6, 1)
    assert doc.marks[("items", 0, "flag")] == Mark(8, 5)
    assert doc.value_marks[("items", 0, "flag")] == Mark(8, 11)
    assert doc.mark(("f", 1)) == Mark(3, 10)
    # A path missing from the document falls back to its closest ancestor.
    assert doc.mark(("items", 0, "absent")) == Mark(7, 5)
    error = doc.error(("items", 0, "flag"), "flag must be true here", "write flag: true")
    assert str(error) == (
        "policy.yaml:8:11: items[0].flag: flag must be true here. Fix: write flag: true."
    )


def test_load_yaml_empty_document() -> None:
    doc = load_yaml("# just a comment\n", "x.yaml")
    assert doc.data is None
    assert doc.mark(("a",)) == Mark(1, 1)


def test_load_yaml_control_character() -> None:
    with pytest.raises(YamlError) as info:
        load_yaml("a: 1\nb: \x07\n", "x.yaml")
    assert (info.value.line, info.value.column) == (2, 4)
    assert info.value.message == "unacceptable character #x0007"


def test_a_listener_cannot_override_the_shared_auth_limits(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        listeners:
          - name: inbound
            limits:
              max_connections: 10
              auth_lockout_after: 50
        """,
    )
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:3:5: listeners[0].limits: ")
    assert "auth_lockout_after count AUTH failures across all listeners" in problem
    assert "top-level `limits`" in problem


def test_negative_dns_cache_seconds_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        delivery:
          dns_cache_seconds: -1
        """,
    )
    assert str(only_problem(path)) == (
        f"{path}:2:22: delivery.dns_cache_seconds: must be at least 0, got -1. Fix: use a "
        "value at least 0, such as 60."
    )
