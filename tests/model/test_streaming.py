"""Streaming steps equal the full forward pass, for both neural architectures."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from improv.model.api import StreamingLM, sequence_log_likelihoods
from improv.model.lstm import LSTMLM, LSTMConfig, LSTMStream
from improv.model.transformer import TransformerConfig, TransformerLM, TransformerStream

VOCAB = 50
KEY0 = 5  # ids 5..16 are KEY tokens: random streams change key often
CHORD0, CHORDS = 17, 3  # ids 17..19 are chords, the chord in force an input
BAR, WHERE = 20, 6  # ids 20..25 are BAR and POS_0..4: the position state
PITCH0, PITCHES = 26, 24  # ids 26..49 are pitches, read relative to the key
FRAME = {
    "key_start": KEY0,
    "n_keys": 12,
    "pitch_start": PITCH0,
    "n_pitches": PITCHES,
    "chord_start": CHORD0,
    "n_chords": CHORDS,
    "pos_start": BAR,
    "n_pos": WHERE,
}
Maker = Callable[[], tuple[torch.nn.Module, StreamingLM]]


def _perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights large enough that a wrong step would show (init is nearly uniform)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def _lstm() -> tuple[LSTMLM, LSTMStream]:
    torch.manual_seed(0)
    cfg = LSTMConfig(VOCAB, n_embd=16, n_hidden=24, n_layer=2, **FRAME)
    model = _perturbed(LSTMLM(cfg))
    assert isinstance(model, LSTMLM)
    return model, LSTMStream(model)


def _transformer(window: int = 8) -> tuple[TransformerLM, TransformerStream]:
    torch.manual_seed(0)
    cfg = TransformerConfig(VOCAB, n_layer=2, n_head=2, n_embd=16, window=window, **FRAME)
    model = _perturbed(TransformerLM(cfg))
    assert isinstance(model, TransformerLM)
    return model, TransformerStream(model)


def _tokens(n: int) -> list[int]:
    return [int(t) for t in np.random.default_rng(2).integers(0, VOCAB, n)]


def _assert_close(a: np.ndarray, b: np.ndarray) -> None:
    """Equal within 1e-4 where possible; pitches a key cannot reach are ~-1e4 in both."""
    possible = b > -1e3
    np.testing.assert_allclose(a[possible], b[possible], atol=1e-4)
    assert (a[~possible] < -1e3).all()


def _stream_log_probs(stream: StreamingLM, tokens: list[int]) -> np.ndarray:
    stream.reset()
    out = [stream.next_log_probs().copy()]
    for t in tokens:
        stream.advance([t])
        out.append(stream.next_log_probs().copy())
    return np.stack(out)


def _full_log_probs(model: torch.nn.Module, bos: int, tokens: list[int]) -> np.ndarray:
    with torch.no_grad():
        logits, _ = model(torch.tensor([[bos, *tokens]]))
    return F.log_softmax(logits[0], dim=-1).numpy()


@pytest.mark.parametrize("make", [_lstm, _transformer], ids=["lstm", "transformer"])
def test_stream_matches_full_forward(make: Maker) -> None:
    model, stream = make()
    assert isinstance(stream, StreamingLM)
    tokens = _tokens(40)  # past the transformer's window of 8
    streamed = _stream_log_probs(stream, tokens)
    full = _full_log_probs(model, VOCAB, tokens)
    assert streamed.shape == (41, VOCAB) and streamed.dtype == np.float32
    _assert_close(streamed, full)
    np.testing.assert_allclose(np.exp(streamed).sum(axis=1), 1.0, atol=1e-4)


def test_transformer_window_is_a_band() -> None:
    """Past the window, a 1-layer transformer sees exactly the last W tokens."""
    torch.manual_seed(0)
    cfg = TransformerConfig(VOCAB, n_layer=1, n_head=2, n_embd=16, window=6, **FRAME)
    model = _perturbed(TransformerLM(cfg))
    stream = TransformerStream(model)  # type: ignore[arg-type]
    tokens = _tokens(30)
    stream.advance(tokens)
    # full forward over only the last W tokens, at their absolute positions (BOS is 0),
    # with the key and chord in force before them
    keys = [t - KEY0 for t in tokens[:-6] if KEY0 <= t < KEY0 + 12]
    chords = [t - CHORD0 for t in tokens[:-6] if CHORD0 <= t < CHORD0 + CHORDS]
    wheres = [t - BAR for t in tokens[:-6] if BAR <= t < BAR + WHERE]
    key0 = torch.tensor([keys[-1] if keys else 12])
    chord0 = torch.tensor([chords[-1] if chords else CHORDS])
    pos0 = torch.tensor([wheres[-1] if wheres else WHERE])
    with torch.no_grad():
        logits, _ = model(
            torch.tensor([tokens[-6:]]),
            key0=key0,
            chord0=chord0,
            pos0=pos0,
            start_pos=len(tokens) + 1 - 6,
        )
    expected = F.log_softmax(logits[0, -1], dim=-1).numpy()
    _assert_close(stream.next_log_probs(), expected)
    # and a stream's far past does not matter: another history, same last W tokens and key
    other = TransformerStream(model)  # type: ignore[arg-type]
    prefix = [KEY0 + int(key0), CHORD0 + int(chord0), BAR + int(pos0)]
    prefix = prefix if chords and keys and wheres else []
    other.advance(prefix + tokens[-27:] if prefix else tokens)
    _assert_close(other.next_log_probs(), stream.next_log_probs())


@pytest.mark.parametrize("make", [_lstm, _transformer], ids=["lstm", "transformer"])
def test_snapshot_restore_rolls_back(make: Maker) -> None:
    _, stream = make()
    tokens = _tokens(30)
    stream.advance(tokens[:20])
    saved = stream.snapshot()
    before = stream.next_log_probs().copy()
    stream.advance(tokens[20:])
    assert not np.allclose(stream.next_log_probs(), before)
    stream.restore(saved)
    np.testing.assert_array_equal(stream.next_log_probs(), before)
    stream.advance(tokens[20:])  # the same continuation after a restore
    after = stream.next_log_probs().copy()
    stream.restore(saved)
    stream.advance(tokens[20:])
    np.testing.assert_allclose(stream.next_log_probs(), after, atol=1e-6)


@pytest.mark.parametrize("make", [_lstm, _transformer], ids=["lstm", "transformer"])
def test_score_equals_streamed_likelihoods(make: Maker) -> None:
    _, stream = make()
    tokens = _tokens(25)
    fast = sequence_log_likelihoods(stream, tokens)
    lp = _stream_log_probs(stream, tokens)
    slow = lp[np.arange(25), tokens]
    np.testing.assert_allclose(fast, slow, atol=1e-4)


@pytest.mark.parametrize("make", [_lstm, _transformer], ids=["lstm", "transformer"])
def test_out_of_range_token_is_refused(make: Maker) -> None:
    _, stream = make()
    with pytest.raises(ValueError, match="out of range"):
        stream.advance([VOCAB])


def test_long_full_pass_in_blocks_equals_stream() -> None:
    """Sequences longer than twice the window take the blockwise attention path."""
    model, stream = _transformer(window=4)
    tokens = _tokens(30)
    streamed = _stream_log_probs(stream, tokens)
    _assert_close(streamed, _full_log_probs(model, VOCAB, tokens))
