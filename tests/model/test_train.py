"""Training: tiny models on synthetic token streams learn, and runs resume exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from improv.model.build import ARCHS
from improv.model.dataset import TokenData
from improv.model.train import Trainer, TrainOptions, evaluate_streams, stream_for

VOCAB = 24


def _stream(rng: np.random.Generator, n: int) -> np.ndarray:
    """A mostly deterministic walk (next = 5 * last + 1 mod V), with some noise."""
    out = [int(rng.integers(VOCAB))]
    for _ in range(n - 1):
        noisy = rng.random() < 0.1
        out.append(int(rng.integers(VOCAB)) if noisy else (out[-1] * 5 + 1) % VOCAB)
    return np.asarray(out, dtype=np.int16)


@pytest.fixture(scope="module")
def data() -> TokenData:
    rng = np.random.default_rng(0)
    train = [_stream(rng, 200) for _ in range(16)]
    val = [_stream(rng, 200) for _ in range(2)]
    return TokenData(train, np.ones(len(train)), val, VOCAB)


def _options(arch: str, steps: int = 40) -> TrainOptions:
    return TrainOptions(
        arch=arch,
        size="xs",
        steps=steps,
        batch_size=8,
        seq_len=32,
        lr=1e-2,
        warmup=5,
        eval_every=10,
        eval_windows=4,
        dropout=0.0,
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_loss_falls(arch: str, data: TokenData) -> None:
    trainer = Trainer(data, _options(arch), torch.device("cpu"))
    before = trainer.validation_loss()
    assert trainer.run() is True
    after = trainer.validation_loss()
    assert before is not None and after is not None
    assert after < 0.6 * before  # ~3.2 nats (uniform) down towards the walk's ~0.5
    stream = stream_for(trainer.model, arch)
    assert evaluate_streams(stream, data.val) < 0.6 * before


@pytest.mark.parametrize("arch", ARCHS)
def test_interrupted_run_resumes_to_the_same_weights(
    arch: str, data: TokenData, tmp_path: Path
) -> None:
    whole = Trainer(data, _options(arch, steps=12), torch.device("cpu"))
    whole.run()

    first = Trainer(data, _options(arch, steps=12), torch.device("cpu"))
    assert first.run(should_stop=lambda: first.step >= 5) is False
    first.save_state(tmp_path / "state")
    second = Trainer(data, _options(arch, steps=12), torch.device("cpu"))
    second.load_state(tmp_path / "state")
    assert second.step == 5
    assert second.run() is True
    for (name, a), b in zip(
        whole.model.state_dict().items(), second.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)


def test_seeds_repeat(data: TokenData) -> None:
    a = Trainer(data, _options("lstm", steps=3), torch.device("cpu"))
    b = Trainer(data, _options("lstm", steps=3), torch.device("cpu"))
    a.run()
    b.run()
    assert a.history == b.history


def test_blues_weight_draws_weighted_streams() -> None:
    rng = np.random.default_rng(1)
    streams = [_stream(rng, 100) for _ in range(2)]
    data = TokenData(streams, np.array([1.0, 4.0]), [], VOCAB)
    trainer = Trainer(data, _options("lstm"), torch.device("cpu"))
    assert trainer._p[1] == pytest.approx(0.8)
