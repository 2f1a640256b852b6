"""Exit codes of the command line: 2 for anything the spec, its data or its checkpoint
caused (a located error, no traceback), 3 and one line asking for a report for a bug in
ocdsl (the traceback only with --debug)."""

from __future__ import annotations

import pytest

from ocdsl import cli
from ocdsl.cli import EXIT_INTERNAL_ERROR, EXIT_USER_ERROR, main
from tests.graph.test_graph import TINY, write


@pytest.fixture
def broken_validate(monkeypatch):
    """``validate`` raising what a bug in ocdsl would raise."""
    def boom(args):
        raise ZeroDivisionError("division by zero\nsecond line")
    monkeypatch.setitem(cli.COMMANDS, "validate", boom)


def test_internal_error_is_one_line_asking_for_a_report_and_exit_3(tmp_path, capsys, broken_validate):
    assert main(["validate", str(write(tmp_path, TINY))]) == EXIT_INTERNAL_ERROR == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("ocdsl: internal error (ZeroDivisionError: division by zero\\nsecond line)")
    assert "report" in err and cli.REPORT_TO in err and "--debug" in err


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_adds_the_traceback(tmp_path, capsys, broken_validate, where):
    spec = str(write(tmp_path, TINY))
    argv = ["--debug", "validate", spec] if where == "before" else ["validate", spec, "--debug"]
    assert main(argv) == EXIT_INTERNAL_ERROR
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in boom" in err
    assert err.rstrip().splitlines()[-1].startswith("ocdsl: internal error (ZeroDivisionError")


def test_user_error_stays_exit_2_with_debug(tmp_path, capsys):
    p = write(tmp_path, TINY + "\n[bogus]\n")
    assert main(["validate", str(p), "--debug"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"{p}:" in err and ": error:" in err and "Traceback" not in err


@pytest.mark.parametrize("cmd", ["validate", "compile", "graph", "check", "data", "bench", "run", "eval",
                                 "export"])
def test_a_missing_spec_file_is_exit_2_for_every_command(tmp_path, capsys, cmd):
    missing = tmp_path / "nowhere.toml"
    extra = {"run": ["--out", str(tmp_path / "run")], "eval": [str(tmp_path)], "export": [str(tmp_path)]}
    assert main([cmd, str(missing), *extra.get(cmd, [])]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"{missing}") and ": error:" in err and "Traceback" not in err


@pytest.mark.parametrize("cmd", ["compile", "graph", "data"])
def test_an_output_path_that_is_a_folder_or_under_a_file_is_exit_2(tmp_path, capsys, cmd):
    spec = str(write(tmp_path, TINY))
    (tmp_path / "a_file").write_text("")
    for out in (tmp_path, tmp_path / "a_file" / "x.png"):
        assert main([cmd, spec, "-o", str(out)]) == EXIT_USER_ERROR, out
        err = capsys.readouterr().err
        assert err.startswith(f"{out}: error: -o: ") and "Traceback" not in err


def test_run_out_naming_a_file_is_exit_2_and_leaves_it_alone(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("mine")
    assert main(["run", str(write(tmp_path, TINY)), "--out", str(target), "--steps", "1"]) == EXIT_USER_ERROR
    assert "is a file, not a run directory" in capsys.readouterr().err
    assert target.read_text() == "mine"


@pytest.mark.parametrize("argv", [["data", "-n", "0"], ["data", "-n", "-3"], ["bench", "--rounds", "0"],
                                  ["bench", "--batch", "0"]])
def test_counts_below_one_are_usage_errors(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as e:
        main([argv[0], str(write(tmp_path, TINY)), *argv[1:]])
    assert e.value.code == EXIT_USER_ERROR
    assert "expected an integer >= 1" in capsys.readouterr().err
