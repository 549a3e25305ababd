"""One set of ``--model`` names for every command (improv.model.registry)."""

from __future__ import annotations

import pytest

from improv.cli import main
from improv.errors import UsageError
from improv.model.registry import check_model, shipped_models


@pytest.mark.parametrize("command", ["jam", "eval", "bench model"])
def test_every_command_takes_the_shipped_names(command: str) -> None:
    for name in shipped_models():
        assert check_model(name, command) == "checkpoint"
    with pytest.raises(UsageError, match="no such checkpoint"):
        check_model("no-such-model", command)


def test_jam_takes_rules_and_markov_and_eval_markov() -> None:
    assert check_model("rules", "jam") == "rules"
    assert check_model("markov", "jam") == "markov"
    assert check_model("markov", "eval") == "markov"


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["eval", "--model", "rules"], "no note probabilities"),
        (["bench", "model", "--model", "rules"], "no model steps"),
    ],
)
def test_a_name_a_command_cannot_use_says_why_in_one_line(
    argv: list[str], why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert why in err and "no such checkpoint" not in err and "Traceback" not in err
