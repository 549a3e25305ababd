"""Batched streams: B rows advanced together give each row what a single stream gives,
for both architectures, on numpy and on torch (the CPU here; CUDA where present)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from improv.model.compose import RowsBatch, batch_device
from improv.model.inputs import Backend, BatchStream, NumpyStream
from improv.model.lstm import LSTMBatch
from improv.model.transformer import TransformerBatch
from tests.model.test_streaming import VOCAB, _lstm, _transformer

BACKENDS = ["numpy", "torch-cpu"] + (["torch-cuda"] if torch.cuda.is_available() else [])


def _backend(name: str) -> Backend:
    return Backend(None if name == "numpy" else name.removeprefix("torch-"))


def _batched(arch: str, rows: int, backend: Backend) -> tuple[NumpyStream, BatchStream]:
    if arch == "lstm":
        _, lstm = _lstm()
        return lstm, LSTMBatch(lstm, rows, backend)
    _, stream = _transformer(window=8)  # short: the ring buffers wrap within the test
    return stream, TransformerBatch(stream, rows, backend)


def _close(batch_lp: np.ndarray, single_lp: np.ndarray) -> None:
    playable = single_lp > -50.0  # the unplayable bias (-1e4) rounds coarsely in float32
    assert np.array_equal(np.isfinite(batch_lp), np.isfinite(single_lp))
    np.testing.assert_allclose(batch_lp[playable], single_lp[playable], atol=2e-4)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_a_batch_gives_the_log_probs_of_single_streams(arch: str, backend_name: str) -> None:
    rows = 4
    stream, batch = _batched(arch, rows, _backend(backend_name))
    rng = np.random.default_rng(3)
    stream.advance([int(t) for t in rng.integers(0, VOCAB, 11)])
    start = stream.snapshot()
    batch.fill(start)
    singles: list[object] = [start] * rows
    for _ in range(24):  # rows advance unevenly, as when chords are forced into some
        tokens = rng.integers(0, VOCAB, rows)
        active = rng.random(rows) < 0.7
        batch.advance(tokens, active)
        for row in np.flatnonzero(active):
            stream.restore(singles[row])
            stream.advance([int(tokens[row])])
            singles[row] = stream.snapshot()
        lp = batch.next_log_probs()
        for row in range(rows):
            stream.restore(singles[row])
            _close(lp[row], stream.next_log_probs())


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_a_row_snapshot_restores_that_row_alone(arch: str) -> None:
    stream, batch = _batched(arch, 3, Backend())
    batch.fill(stream.snapshot())
    batch.advance(np.array([7, 8, 9]), np.ones(3, dtype=bool))
    saved = batch.snapshot_row(1)
    before = batch.next_log_probs().copy()
    batch.advance(np.array([30, 31, 32]), np.ones(3, dtype=bool))
    batch.restore_row(1, saved)
    after = batch.next_log_probs()
    _close(after[1], before[1])
    assert not np.allclose(after[0], before[0])  # the others went on


def test_rows_over_a_single_stream_match_it() -> None:
    _, stream = _lstm()
    batch = RowsBatch(stream, 2)
    batch.fill(stream.snapshot())
    batch.advance(np.array([3, 40]), np.array([True, True]))
    lp = batch.next_log_probs()
    for row, token in enumerate((3, 40)):
        single = _lstm()[1]
        single.advance([token])
        _close(lp[row], single.next_log_probs())


def test_device_choice() -> None:
    assert batch_device("cpu") is None
    expected = "cuda" if torch.cuda.is_available() else None
    assert batch_device("auto") == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            batch_device("cuda")
