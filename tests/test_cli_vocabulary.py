"""One CLI vocabulary (docs/cli.md): one spelling per concept, defaults shown in ``--help``, an example in every
command's help, and old spellings that still work for one release with a message naming the new flag."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import pytest
from PIL import Image

from dnnjpeg.cli import _REGISTRY, _spell_option, build_parser, main
from dnnjpeg.cli._flags import Deprecated

MODEL = ["--model", "efficientnet_lite0", "--data", "d"]


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, ``tables show`` included."""
    parsers: dict[str, argparse.ArgumentParser] = {}
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers.update(action.choices)
    for action in parsers["tables"]._actions:
        if isinstance(action, argparse._SubParsersAction):
            parsers["tables show"] = action.choices["show"]
    return parsers


def visible(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and not isinstance(a, Deprecated)]


def parse(argv: list[str]) -> dict:
    return vars(build_parser().parse_args(argv))


# (command and the arguments it needs, old spelling, new spelling, the flag the message names)
RENAMED = [
    (["evaluate", *MODEL, "--standard", "50"], ["--workers", "3"], ["--jpeg-threads", "3"], "--jpeg-threads"),
    (["family", *MODEL, "--name", "x", "--out", "x.json"], ["--workers", "3"], ["--jpeg-threads", "3"],
     "--jpeg-threads"),
    (["crossval", *MODEL, "--methods", "sorted"], ["--seed", "5"], ["--bootstrap-seed", "5"], "--bootstrap-seed"),
    (["validate", *MODEL, "--table", "resnet50"], ["--seed", "7"], ["--bootstrap-seed", "7"], "--bootstrap-seed"),
    (["compare-families", "a", "b", *MODEL], ["--seed", "7"], ["--bootstrap-seed", "7"], "--bootstrap-seed"),
    (["validate", *MODEL, "--table", "resnet50"], ["--encoders", "mozjpeg"], ["--compare-encoders", "mozjpeg"],
     "--compare-encoders"),
    (["family", *MODEL, "--name", "x", "--out", "x.json"], ["--encoders", "none"], ["--compare-encoders", "none"],
     "--compare-encoders"),
    (["recompress", "src", "dst", "--table", "resnet50"], ["--report", "r.json"], ["--report-json", "r.json"],
     "--report-json"),
    (["recompress", "src", "dst", "--table", "resnet50"], ["--trellis"], ["--writer", "trellis"], "--writer trellis"),
    (["compress", "a.png", "a.jpg", "--table", "resnet50"], ["--trellis"], ["--writer", "trellis"],
     "--writer trellis"),
    (["recompress", "src", "dst", "--table", "resnet50"], ["--strip"], ["--strip-metadata"], "--strip-metadata"),
    (["compress", "a.png", "a.jpg", "--table", "resnet50"], ["--strip"], ["--strip-metadata"], "--strip-metadata"),
    (["export", "resnet50", "--format", "json"], ["--output", "t.json"], ["--out", "t.json"], "--out"),
]


@pytest.mark.parametrize(("base", "old", "new", "flag"), RENAMED, ids=[f"{r[0][0]} {r[1][0]}" for r in RENAMED])
def test_old_spelling_parses_like_the_new_one_and_names_it(base, old, new, flag, capsys) -> None:
    parsed = parse([*base, *old])
    assert capsys.readouterr().err == f"dnnjpeg {base[0]}: {old[0]} is deprecated, use {flag}\n"
    assert parse([*base, *new]) == parsed
    assert "deprecated" not in capsys.readouterr().err


def test_old_spellings_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "resnet50", "--format", "json", "--output", str(tmp_path / "t.json")]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["luma"][0] == 17
    assert capsys.readouterr().err == "dnnjpeg export: --output is deprecated, use --out\n"
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(src / "a.png")
    assert main(["recompress", str(src), str(tmp_path / "dst"), "--table", "resnet50", "--workers", "0",
                 "--strip", "--report", str(tmp_path / "r.json"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "dnnjpeg recompress: --strip is deprecated, use --strip-metadata\n" in err
    assert "dnnjpeg recompress: --report is deprecated, use --report-json\n" in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["summary"]["ok"], report["summary"]["exit_code"]) == (1, 0)
    # model commands: the message comes at parse time, before the command's own error (no model is loaded)
    assert main(["validate", *MODEL, "--table", "nope", "--seed", "1", "--encoders", "none"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == ["dnnjpeg validate: --seed is deprecated, use --bootstrap-seed",
                         "dnnjpeg validate: --encoders is deprecated, use --compare-encoders"]
    assert lines[2].startswith("dnnjpeg validate: error: unknown table 'nope'")
    assert main(["evaluate", *MODEL, "--uncompressed", "--quality", "5", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dnnjpeg evaluate: --workers is deprecated, use --jpeg-threads\ndnnjpeg evaluate: error: ")


def test_crossval_seed_keeps_its_meaning_for_one_release(capsys: pytest.CaptureFixture[str]) -> None:
    """crossval --seed seeded the bootstrap: it still does (deprecated), so the same command gives the same
    results; the search seed stays --search-seed until --seed takes that meaning, as in tune and family."""
    args = parse(["crossval", *MODEL, "--methods", "sorted", "--seed", "3"])
    assert (args["search_seed"], args["bootstrap_seed"]) == (0, 3)
    assert capsys.readouterr().err == "dnnjpeg crossval: --seed is deprecated, use --bootstrap-seed\n"
    args = parse(["crossval", *MODEL, "--methods", "sorted", "--search-seed", "4"])
    assert (args["search_seed"], args["bootstrap_seed"]) == (4, 0)
    assert capsys.readouterr().err == ""


def test_workers_always_counts_processes() -> None:
    meanings = {}
    for name, parser in commands().items():
        for action in visible(parser):
            if "--workers" in action.option_strings:
                meanings[name] = (action.dest, action.help.startswith("worker processes"))
            if "--jpeg-threads" in action.option_strings:
                assert action.dest == "jpeg_threads" and "JPEG" in action.help, name
    assert meanings == {"tune": ("workers", True), "recompress": ("workers", True)}
    args = parse(["tune", *MODEL, "--method", "sorted", "--budget", "1", "--out", "t.json", "--workers", "2",
                  "--jpeg-threads", "3"])
    assert (args["workers"], args["jpeg_threads"]) == (2, 3)


def test_one_spelling_per_concept() -> None:
    old = {"--output", "--search-seed", "--encoders", "--trellis", "--strip", "--report-file"}
    for name, parser in commands().items():
        flags = {f for a in visible(parser) for f in a.option_strings}
        # crossval's search seed keeps --search-seed for one release (its --seed is still the bootstrap's)
        assert not flags & (old - {"--search-seed"} if name == "crossval" else old), name
        for action in visible(parser):
            if action.dest == "out":
                assert action.option_strings == ["-o", "--out"], name
            if action.dest == "seed":
                assert action.help.startswith("search seed"), name
            if action.dest == "report":
                assert action.metavar == "DIR", name
    assert _spell_option(commands()["export"], "out") == "--out PATH"  # errors name the new flag


def test_project_is_one_pair_with_each_commands_default() -> None:
    tune = ["tune", *MODEL, "--method", "sorted", "--budget", "1", "--out", "t.json", "--quality", "50"]
    family = ["family", *MODEL, "--name", "x", "--out", "x.json"]
    assert parse(tune)["project"] is False and parse([*tune, "--project"])["project"] is True
    assert parse(family)["project"] is True and parse([*family, "--no-project"])["project"] is False
    assert parse([*family, "--project"])["project"] is True
    for name in ("tune", "family"):
        helps = {f: a.help for a in visible(commands()[name]) for f in a.option_strings}
        default = "--no-project" if name == "tune" else "--project"
        assert helps[default].endswith("(the default)"), name


def test_metadata_writer_and_report_defaults() -> None:
    compress = parse(["compress", "a.png", "a.jpg", "--table", "resnet50"])
    assert (compress["keep_metadata"], compress["writer"]) == (True, None)
    assert parse(["compress", "a.png", "a.jpg", "--table", "resnet50", "--keep-metadata"])["keep_metadata"] is True
    with pytest.raises(SystemExit):
        parse(["compress", "a.png", "a.jpg", "--table", "resnet50", "--writer", "mozjpeg"])  # files: libjpeg|trellis
    assert parse(["evaluate", *MODEL, "--standard", "50", "--writer", "mozjpeg"])["writer"] == "mozjpeg"
    assert parse(["validate", *MODEL, "--table", "t", "--report", "out/"])["report"] == "out/"
    assert parse(["recompress", "s", "d", "--table", "t", "--report-json", "r.json"])["report_json"] == Path("r.json")


def test_defaults_are_shown_in_help() -> None:
    for name, parser in commands().items():
        for action in visible(parser):
            if action.default in (None, True, False, [], argparse.SUPPRESS) or action.help == argparse.SUPPRESS:
                continue
            assert "%(default)s" in action.help, f"{name} {action.option_strings}"


def test_library_defaults_are_the_flags_defaults() -> None:
    from dnnjpeg.cli._flags import parse_qualities
    from dnnjpeg.search.family import DEFAULT_FAMILY_QUALITIES, FamilyTuneOptions
    from dnnjpeg.search.runner import CURVE_QUALITIES
    from dnnjpeg.validation.crossval import CrossvalOptions

    family = parse(["family", *MODEL, "--name", "x", "--out", "x.json"])
    for key in ("k", "budget", "signal", "seed", "space", "project", "choose_by", "stage", "fold_seed"):
        assert family[key] == getattr(FamilyTuneOptions(), key), key
    assert parse_qualities(family["qualities"]) == list(DEFAULT_FAMILY_QUALITIES)
    cv = parse(["crossval", *MODEL, "--methods", "sorted"])
    assert (cv["k"], cv["budget"], cv["search_seed"], cv["resamples"]) == (5, 100, 0, CrossvalOptions().resamples)
    tune = parse(["tune", *MODEL, "--method", "sorted", "--budget", "1", "--out", "t.json"])
    assert parse_qualities(tune["curve_qualities"]) == list(CURVE_QUALITIES)


def test_every_command_help_shows_a_working_example(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for name, (_, examples, _) in _REGISTRY.items():
        assert examples, name
        assert main([name, "--help"]) == 0
        out = capsys.readouterr().out
        for example in examples:
            assert example in out, name
            argv = shlex.split(example, comments=True)
            assert argv[:2] == ["dnnjpeg", name]
            parser.parse_args(argv[1:])  # exits (and fails the test) on a flag that does not exist
        assert capsys.readouterr().err == "", name
    assert main(["tables", "show", "--help"]) == 0
    assert "dnnjpeg tables show efficientnet_lite0 --quality 50" in capsys.readouterr().out
