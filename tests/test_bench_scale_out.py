"""The scale-out benchmark's pieces (bench/scale_out.py): its arguments and A-B-C-C-B-A
plan, the load generator's sessions spread over two ports and the count by Message-ID
at the sink, the three configurations it builds on a PostgreSQL cluster of its own with
pg_stat_statements, and the ratios it reports. A whole run takes over a minute: run the
benchmark itself for that."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from needed import unavailable
from private_postgres import missing_binaries

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import relay  # noqa: E402 (bench/relay.py)
import scale_out  # noqa: E402 (bench/scale_out.py)


def test_arguments_and_the_plan_alternate_the_three_configurations() -> None:
    args = scale_out.parse_args([])
    assert (args.messages, args.sessions, args.rounds) == (2000, 10, 1)
    args = scale_out.parse_args(["--messages", "50", "--sessions", "4", "--rounds", "2"])
    order = [scale_out.CONFIGURATIONS[i] for i in scale_out.plan(args.rounds)]
    assert order == ["sqlite", "pg-1", "pg-2", "pg-2", "pg-1", "sqlite"] * 2
    for bad in (["--sessions", "1"], ["--rounds", "0"], ["--messages", "0"]):
        with pytest.raises(SystemExit):
            scale_out.parse_args(bad)


def test_sessions_spread_over_both_ports_and_the_sink_is_counted_by_message_id(
    tmp_path: Path,
) -> None:
    for n in (1, 2):
        (tmp_path / f"sink{n}").mkdir()
    sinks = [relay.PythonSink(tmp_path / f"sink{n}", dump=tmp_path / f"dump{n}") for n in (1, 2)]
    for sink in sinks:
        sink.start()
    try:
        before = [s.sessions() for s in sinks]  # their start's probe of the port
        load = relay.run_loadgen_at([s.port for s in sinks], 4, 40, "run7", 30.0, None)
        assert load["accepted"] == 40
        assert relay.wait_until(lambda: sum(s.count() for s in sinks) == 40, 10.0)
        assert [s.sessions() - b for s, b in zip(sinks, before, strict=True)] == [2, 2]
    finally:
        for sink in sinks:
            sink.stop()
    first, second = (s.dump for s in sinks)
    assert first is not None and second is not None
    seen = scale_out.message_ids(first, 0, "run7") + scale_out.message_ids(second, 0, "run7")
    assert sorted(seen) == sorted(f"run7.{n}" for n in range(40))
    assert set(seen.values()) == {1}
    # A message delivered twice is counted twice; another run's and what came before
    # the offset are not counted.
    size = first.stat().st_size
    with first.open("ab") as dump:
        dump.write(b"Message-ID: <run7.3@bench.example.org>\r\n\r\nbody\r\n\r\n")
        dump.write(b"Message-ID: <run70.3@bench.example.org>\r\n\r\nbody\r\n\r\n")
    assert scale_out.message_ids(first, size, "run7") == Counter({"run7.3": 1})


def test_the_configurations_share_one_database_and_the_first_nodes_keys(
    tmp_path: Path,
) -> None:
    missing = missing_binaries()
    if missing is not None:
        unavailable(missing)
    with scale_out.running_postgres(scale_out.POSTGRES_SETTINGS) as server:
        scale_out.prepare_database(server)
        sqlite, one, two = scale_out.make_configurations(tmp_path, 2525, server)
        assert (sqlite.name, one.name, two.name) == ("sqlite", "pg-1", "pg-2")
        assert two.nodes[0] is one.nodes[0] and len(two.nodes) == 2
        settings = [yaml.safe_load(n.config.read_text()) for n in (*sqlite.nodes, *two.nodes)]
        assert "database_url" not in settings[0]
        assert settings[1]["database_url"] == settings[2]["database_url"]
        assert settings[1]["database_url"].endswith("/phigate")
        assert len({s["data_dir"] for s in settings}) == 3
        assert len({s["node"]["name"] for s in settings}) == 3
        assert len(set(sqlite.ports + two.ports)) == 3
        first, second = two.nodes
        # Every key file, including those the first start made, is the second node's too.
        keys = {p.relative_to(first.keys): p.read_bytes() for p in first.keys.rglob("*")}
        assert len(keys) > 2
        assert keys == {p.relative_to(second.keys): p.read_bytes() for p in second.keys.rglob("*")}
        # The statement clock counts the nodes' statements from its reset on, not its own.
        clock = scale_out.DatabaseClock(server)
        try:
            clock.reset()
            assert clock.read() == (0.0, 0)
            first.cli("queue", "ls", "--json")
            milliseconds, statements = clock.read()
            assert milliseconds > 0 and statements > 0
            assert clock.wal_ms() >= 0.0
        finally:
            clock.close()


def test_ratios_are_two_nodes_over_one_and_postgresql_over_sqlite() -> None:
    run = scale_out.RunResult(
        configuration="sqlite", nodes=1, sessions=10, accepted=100, refused={}, errors={},
        delivered_per_s=200.0, accepted_per_s=210.0, wall_seconds=0.5, other_cpu_percent=0.0,
        phigate_cpu_ms_per_message=2.0, postgres_cpu_ms_per_message=None,
        db_ms_per_message=None, db_share_of_wall=None, wal_ms_per_message=None,
        statements_per_message=None, top_statements={}, by_message_id=100,
        delivered_by_node=[100], duplicates=0,
        undelivered_ids=0, queue_left=0, stopped_cleanly=True, ok=True,
    )  # fmt: skip
    on_postgres = {
        "postgres_cpu_ms_per_message": 1.0, "db_ms_per_message": 0.5,
        "db_share_of_wall": 0.1, "wal_ms_per_message": 1.5, "statements_per_message": 10.0,
    }  # fmt: skip
    results = [
        run,
        replace(run, configuration="pg-1", delivered_per_s=100.0, **on_postgres),
        replace(run, configuration="pg-2", delivered_per_s=90.0, **on_postgres),
        replace(run, configuration="pg-2", delivered_per_s=110.0, **on_postgres),
    ]
    summaries = scale_out.summarise(results)
    found = scale_out.ratios(summaries)
    assert found["pg-2/pg-1"]["delivered_per_s"] == pytest.approx(1.0)
    assert found["pg-1/sqlite"]["delivered_per_s"] == pytest.approx(0.5)
    assert "db_ms_per_message" not in found["pg-1/sqlite"]  # SQLite has no such figure
    table = scale_out.format_table(summaries)
    assert "100 (90-110)" in table and "100/100 100/100" in table
