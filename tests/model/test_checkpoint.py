"""Checkpoints: round trip, and clear refusal of files that are not ours or not usable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from improv.errors import ImprovError, UsageError
from improv.model.build import build_model
from improv.model.checkpoint import (
    CheckpointError,
    load_model,
    make_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from improv.model.markov import fit_markov
from improv.model.registry import DEFAULT_MODEL, models_dir, resolve_model
from improv.tokens import TOKENIZER_VERSION, VOCAB


def _tokens(n: int, seed: int) -> list[int]:
    return [int(t) for t in np.random.default_rng(seed).integers(0, VOCAB.size, n)]


@pytest.fixture(params=["lstm", "transformer"])
def saved(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model(request.param, "xs", VOCAB.size)
    markov = fit_markov([_tokens(300, 1)], [_tokens(50, 2)], VOCAB.size, orders=[1, 2]).model
    ckpt = make_checkpoint(
        model,
        "xs",
        data={"attribution": "test data", "train_tokens": 300},
        training={"command": "improv train --data x --out y", "seconds": 1.0},
        metrics={"val_bits_per_note": 9.9},
        markov=markov,
    )
    path = tmp_path / f"{request.param}.pt"
    save_checkpoint(ckpt, path)
    return path


def test_round_trip_keeps_weights_metadata_and_baseline(saved: Path) -> None:
    loaded = load_model(saved, device="cpu")
    ckpt = loaded.checkpoint
    assert ckpt.arch == saved.stem
    assert ckpt.tokenizer["version"] == TOKENIZER_VERSION
    assert ckpt.tokenizer["names"] == list(VOCAB.names)
    assert ckpt.data["attribution"] == "test data"
    assert ckpt.training["command"].startswith("improv train")
    assert ckpt.metrics == {"val_bits_per_note": 9.9}
    assert ckpt.code["improv"]
    info = ckpt.describe()
    assert "state_dict" not in info and info["params"] == ckpt.params
    json.dumps(info)  # model cards and logs take it as JSON
    # the stream of the loaded model is the saved model's
    tokens = _tokens(20, 3)
    stream = loaded.stream()
    stream.advance(tokens)
    again = load_model(saved, device="cpu").stream()
    again.advance(tokens)
    np.testing.assert_array_equal(stream.next_log_probs(), again.next_log_probs())
    baseline = loaded.baseline()
    baseline.advance(tokens)
    assert np.isclose(np.exp(baseline.next_log_probs()).sum(), 1.0, atol=1e-4)


def test_checkpoint_loads_with_weights_only(saved: Path) -> None:
    raw = torch.load(saved, weights_only=True)
    assert raw["format"].startswith("improv-checkpoint")


def test_other_tokenizer_version_is_refused(saved: Path, tmp_path: Path) -> None:
    raw = torch.load(saved, weights_only=True)
    raw["tokenizer"]["version"] = TOKENIZER_VERSION + 1
    other = tmp_path / "other.pt"
    torch.save(raw, other)
    with pytest.raises(CheckpointError, match="tokenizer version"):
        load_model(other, device="cpu")


def test_other_vocabulary_is_refused(saved: Path, tmp_path: Path) -> None:
    raw = torch.load(saved, weights_only=True)
    raw["tokenizer"]["fingerprint"] = "0" * 16
    other = tmp_path / "other.pt"
    torch.save(raw, other)
    with pytest.raises(CheckpointError, match="vocabulary"):
        load_model(other, device="cpu")


def test_truncated_file_is_refused(saved: Path, tmp_path: Path) -> None:
    data = saved.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable improv checkpoint"):
        load_model(cut, device="cpu")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
        json.dumps({"format": "improv-checkpoint/1"}).encode(),
    ],
    ids=["empty", "random-bytes", "json"],
)
def test_wrong_files_are_refused(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "wrong.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        read_checkpoint(path)


def test_foreign_torch_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not an improv checkpoint"):
        read_checkpoint(path)


def test_missing_and_unknown_models_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such checkpoint"):
        resolve_model(tmp_path / "absent.pt")
    with pytest.raises(UsageError, match="no such checkpoint"):
        resolve_model("no-such-model")
    with pytest.raises(UsageError, match="folder"):
        resolve_model(tmp_path)
    assert issubclass(CheckpointError, ImprovError)


def test_default_model_is_named_in_models_folder() -> None:
    assert models_dir().name == "models"
    assert DEFAULT_MODEL
    if (models_dir() / f"{DEFAULT_MODEL}.pt").is_file():
        assert resolve_model(None) == models_dir() / f"{DEFAULT_MODEL}.pt"
