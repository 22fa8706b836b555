"""The ``samstar`` command reports samstar's own errors in one line and lets bugs keep their traceback."""

from __future__ import annotations

import pytest

import samstar_env.data.cli as data_cli
from samstar_env.cli import main
from samstar_env.errors import (
    CLI_ERRORS,
    InputError,
    MissingExtraError,
    MissingFileError,
    ResumeMismatchError,
    RewardError,
    TaskFileError,
)


def test_error_types_are_the_ones_callers_already_catch():
    assert issubclass(InputError, ValueError) and issubclass(TaskFileError, InputError)
    assert issubclass(MissingFileError, InputError) and issubclass(MissingFileError, FileNotFoundError)
    assert issubclass(MissingExtraError, ImportError)
    assert issubclass(RewardError, RuntimeError) and issubclass(ResumeMismatchError, RuntimeError)
    for exc in (InputError, TaskFileError, MissingFileError, MissingExtraError, RewardError, ResumeMismatchError):
        assert issubclass(exc, CLI_ERRORS), exc
    for exc in (ValueError, TypeError, KeyError, RuntimeError, FileNotFoundError, ImportError):
        assert not issubclass(exc, CLI_ERRORS), exc


@pytest.mark.parametrize(
    "error", [InputError("unknown task 'x'"), MissingExtraError('pip install "samstar[em]"'), RewardError("size_window", "nan")]
)
def test_own_errors_are_one_line_with_status_2(monkeypatch, capsys, error):
    def fail() -> list[dict]:
        raise error

    monkeypatch.setattr(data_cli, "task_table", fail)
    assert main(["data", "list"]) == 2
    err = capsys.readouterr().err
    assert err == f"samstar data: error: {error}\n"


@pytest.mark.parametrize("error", [TypeError("a bug"), KeyError("a bug"), ValueError("a bug"), RuntimeError("a bug")])
def test_programming_errors_keep_their_traceback(monkeypatch, error):
    def fail() -> list[dict]:
        raise error

    monkeypatch.setattr(data_cli, "task_table", fail)
    with pytest.raises(type(error), match="a bug"):
        main(["data", "list"])


def test_bad_input_names_the_input(tmp_path, capsys):
    assert main(["data", "preview", str(tmp_path / "missing.png"), "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("samstar data: error: ") and "missing.png: no such file" in err and err.count("\n") == 1
