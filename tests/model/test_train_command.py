"""``improv train`` and ``improv bench model`` end to end, on a small generated corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from improv.cli import main
from improv.corpus.synthetic import write_generated_corpus
from improv.model.checkpoint import load_model


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    write_generated_corpus(folder, n_solos=8, seed=3, choruses=1)
    return folder


def _train(corpus: Path, out: Path, arch: str, *extra: str) -> int:
    return main(
        [
            "train",
            "--data",
            str(corpus),
            "--arch",
            arch,
            "--size",
            "xs",
            "--steps",
            "4",
            "--batch-size",
            "4",
            "--seq-len",
            "32",
            "--threads",
            "1",
            "--out",
            str(out),
            *extra,
        ]
    )


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_train_writes_a_self_describing_checkpoint(arch: str, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / f"{arch}.pt"
    assert _train(corpus, out, arch) == 0
    loaded = load_model(out, device="cpu")
    ckpt = loaded.checkpoint
    assert ckpt.arch == arch and ckpt.size == "xs"
    assert ckpt.training["command"].startswith("improv train --data")
    assert ckpt.training["steps"] == 4
    assert ckpt.data["solos"] == 8 and ckpt.data["val_solos"] >= 1
    assert ckpt.data["attribution"]
    assert ckpt.metrics["val_bits_per_note"] > 0
    assert ckpt.metrics["baseline_val_bits_per_note"] > 0
    assert ckpt.markov is not None and loaded.baseline().vocab_size == loaded.stream().vocab_size
    assert not (tmp_path / f"{arch}.pt.resume").exists()


def test_bench_model_reports_step_times(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lstm.pt"
    assert _train(corpus, out, "lstm") == 0
    capsys.readouterr()
    assert main(["bench", "model", "--model", str(out), "--json", "--steps", "200"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("step_ms_p50", "step_ms_p99", "tokens_per_second", "realtime_factor"):
        assert result[key] > 0
    assert result["step_ms_p50"] <= result["step_ms_p99"]
    assert result["threads"] == 1


@pytest.mark.parametrize("bad", ["missing", "empty", "file"])
def test_bad_data_is_a_usage_error(bad: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    if bad == "empty":
        data.mkdir()
    elif bad == "file":
        data.write_text("not a folder")
    assert _train(data, tmp_path / "m.pt", "lstm") == 2


def test_resume_without_a_saved_state_is_a_usage_error(corpus: Path, tmp_path: Path) -> None:
    assert _train(corpus, tmp_path / "m.pt", "lstm", "--resume") == 2


def test_bad_model_for_bench_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 100)
    assert main(["bench", "model", "--model", str(bad), "--json"]) == 1
    assert main(["bench", "model", "--model", str(tmp_path / "absent.pt")]) == 2


def test_baseline_only_refits_the_markov_model(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "lstm.pt"
    assert _train(corpus, out, "lstm") == 0
    weights = load_model(out, device="cpu").checkpoint.state_dict
    assert _train(corpus, out, "lstm", "--baseline-only") == 0
    ckpt = load_model(out, device="cpu").checkpoint
    assert ckpt.training["baseline_command"].endswith("--baseline-only")
    for name, tensor in weights.items():
        assert torch.equal(tensor, ckpt.state_dict[name])
    assert _train(corpus, tmp_path / "absent.pt", "lstm", "--baseline-only") == 2
