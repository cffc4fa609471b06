"""Help texts generated from the protocol registry and the configuration dataclasses (:mod:`nanonb.bench.catalog`)."""

import dataclasses
import sys

import pytest

from nanonb.bench import catalog
from nanonb.bench import run as bench_run
from nanonb.cli import main as cli_main


def _help(argv, capsys, main=bench_run.main) -> str:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own --help exits 0
        rc = exc.code
    assert rc in (0, None)
    return capsys.readouterr().out


def test_every_registered_protocol_has_a_description():
    """The lead adds a CATALOG entry for every new protocol; this fails until then."""
    missing = sorted(set(bench_run.PROTOCOLS) - set(catalog.CATALOG))
    assert not missing, f"protocols without a description in nanonb/bench/catalog.py CATALOG: {missing}"
    stale = sorted(set(catalog.CATALOG) - set(bench_run.PROTOCOLS))
    assert not stale, f"CATALOG entries for protocols that are not registered: {stale}"
    for name, info in catalog.CATALOG.items():
        for text in (info.summary, info.runtime, info.data):
            assert text and "``" not in text and ":class:" not in text, (name, text)


@pytest.mark.parametrize("argv", [["--help"], ["-h"]])
def test_overview_lists_every_protocol_with_runtime_and_data(argv, capsys):
    out = _help(argv, capsys)
    for name in bench_run.PROTOCOLS:
        assert f"\n  {name}\n" in out, name
    assert out.count("runtime on 2 cores:") == len(bench_run.PROTOCOLS)
    assert out.count("data: ") == len(bench_run.PROTOCOLS)
    assert "``" not in out


@pytest.mark.parametrize("protocol", sorted(bench_run.PROTOCOLS))
def test_protocol_help_lists_every_config_key(protocol, capsys):
    out = _help([protocol, "--help"], capsys)
    cls = catalog.config_class(protocol, bench_run.protocol_function(protocol))
    assert cls is not None, f"{protocol}: no configuration dataclass found for --set"
    for f in dataclasses.fields(cls):
        assert f"\n  {f.name} = " in out, f"{protocol} --help does not list --set key {f.name!r}"
    assert "runtime on 2 cores:" in out and "data: " in out and "``" not in out


def test_new_config_field_appears_in_help_without_editing_the_catalog(capsys, monkeypatch):
    @dataclasses.dataclass
    class ToyConfig:
        alpha: float = 0.5
        shots: tuple = (1, 5)

        @classmethod
        def quick(cls):
            return cls(shots=(1,))

    def run_toy(quick: bool = False, seed: int = 0, progress: bool = True, config: ToyConfig | None = None,
                extra_knob: int = 3, **options):
        raise AssertionError("help must not run the protocol")

    run_toy.__annotations__["config"] = ToyConfig | None  # resolvable without a module-level name
    module = type(sys)("nanonb_toy_catalog")
    module.run_toy = run_toy
    monkeypatch.setitem(sys.modules, "nanonb_toy_catalog", module)
    monkeypatch.setitem(bench_run.PROTOCOLS, "toy", "nanonb_toy_catalog:run_toy")
    out = _help(["toy", "--help"], capsys)
    assert "no description yet" in out  # an unlisted protocol still gets a help text
    assert "  alpha = 0.5" in out and "  shots = (1, 5)   [quick: (1,)]" in out and "  extra_knob = 3" in out
    assert "\n  toy\n" in _help(["--help"], capsys)


def test_nanonb_bench_help_is_the_bench_help(capsys):
    out = _help(["bench", "--help"], capsys, main=cli_main)
    assert "usage: nanonb bench" in out and "runtime on 2 cores:" in out and "calisol" in out
    assert "positional arguments:\n  args" not in out
    assert "n_episodes = " in _help(["bench", "calisol", "--help"], capsys, main=cli_main)


def test_quickstart_help_states_defaults_runtime_and_data(capsys):
    out = " ".join(_help(["quickstart", "--help"], capsys, main=cli_main).split())
    for text in ("hold out Pt", "1/5/10 shots", "default: nanonb-quickstart", "minutes on 2 CPU cores",
                 "Data: none to download", "no progress bars", "default: 0"):
        assert text in out, text
