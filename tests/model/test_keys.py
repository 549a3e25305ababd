"""Key, chord and position state as model inputs; the key frame; the harmony bias."""

from __future__ import annotations

import numpy as np
import torch

from improv.model.build import stream_for
from improv.model.dataset import TokenData
from improv.model.keys import UNPLAYABLE, HarmonyBias, PitchFrame, beat_classes, key_track
from improv.model.train import Trainer, TrainOptions
from improv.music.chords import QualityClass
from improv.tokens import VOCAB


def test_key_track_follows_the_last_key_token() -> None:
    idx = torch.tensor([[0, 3, 0, 0, 5, 0]])  # key tokens are ids 3..5 (3 keys)
    assert key_track(idx, 3, 3).tolist() == [[3, 0, 0, 0, 2, 2]]
    assert key_track(idx, 3, 3, torch.tensor([1])).tolist() == [[1, 0, 0, 0, 2, 2]]


def test_pitch_frame_reads_and_writes_relative_to_the_key() -> None:
    frame = PitchFrame(vocab_size=20, pitch_start=5, n_pitches=15, n_keys=12)
    assert frame.read[3, 5 + 10] == 5 + 7  # pitch 10 in key 3 reads as pitch 7
    assert frame.write[3, 5 + 10] == 5 + 7  # and its logit is the frame's pitch 7
    assert frame.bias[3, 5 + 2] == UNPLAYABLE  # below the key's reach
    assert frame.bias[3, 5 + 3] == 0.0
    assert (frame.read[12] == np.arange(21)).all()  # no key yet: tokens as they are
    assert frame.read[3, 2] == 2 and frame.write[3, 2] == 2  # other tokens unchanged


def test_beat_classes() -> None:
    classes = beat_classes(49)  # BAR, POS_0 .. POS_47, none
    assert classes[0] == classes[-1] == 4  # unknown
    assert [classes[1 + t] for t in (0, 24, 12, 36, 6, 3)] == [0, 0, 1, 1, 2, 3]


def test_harmony_bias_adds_a_pitch_class_row() -> None:
    bias = HarmonyBias(n_chords=2, n_pos=49, pitch_start=4, n_pitches=24, vocab_size=30)
    with torch.no_grad():
        bias.table[1, 0, 7] = 0.1  # chord 1, strong beat, pitch class 7
    logits = torch.zeros(1, 1, 30)
    out = bias(logits, torch.tensor([[1]]), torch.tensor([[1]]))  # POS_0: strong beat
    hot = torch.nonzero(out[0, 0]).flatten().tolist()
    assert hot == [4 + 7, 4 + 19]  # both octaves of pitch class 7, nothing else
    np.testing.assert_allclose(bias.vectors()[1, 0], out[0, 0].detach().numpy())


def test_harmony_is_learnt_in_a_few_steps() -> None:
    """Pitch = chord root + a chord tone: a tiny LSTM picks the chord up within 60 steps."""
    rng = np.random.default_rng(0)

    def stream(notes: int) -> np.ndarray:
        out = [VOCAB.key(0)]
        for i in range(notes):
            if i % 4 == 0:
                root = int(rng.integers(12))
                out += [VOCAB.bar, VOCAB.pos(0), VOCAB.chord(root, QualityClass.DOMINANT)]
            pitch = 60 + (root + int(rng.choice([0, 4, 7]))) % 12
            out += [VOCAB.pos(12 * (i % 4) + 1), VOCAB.vel(5), VOCAB.pitch(pitch), VOCAB.dur(6)]
        return np.asarray(out, dtype=np.int16)

    data = TokenData(
        [stream(120) for _ in range(30)],
        np.ones(30),
        [stream(120)],
        VOCAB.size,
        key_ids=(VOCAB.key_ids.start, 12),
        pitch_ids=(VOCAB.pitch_ids.start, 128),
        chord_ids=(VOCAB.chord_ids.start, len(VOCAB.chord_ids)),
        pos_ids=(VOCAB.bar, 1 + len(VOCAB.pos_ids)),
    )
    options = TrainOptions(
        arch="lstm", size="xs", steps=60, batch_size=16, seq_len=64, lr=3e-3, warmup=10
    )
    trainer = Trainer(data, options, torch.device("cpu"))
    trainer.run()
    lm = stream_for(trainer.model, "lstm")
    tones = {0: [64, 67], 5: [65, 69]}  # the chord tones the two chords do not share
    mass: dict[tuple[int, int], float] = {}
    for root in tones:
        lm.reset()
        chord = VOCAB.chord(root, QualityClass.DOMINANT)
        lm.advance([VOCAB.key(0), VOCAB.bar, VOCAB.pos(0), chord, VOCAB.pos(1), VOCAB.vel(5)])
        p = np.exp(lm.next_log_probs()[VOCAB.pitch_ids.start : VOCAB.pitch_ids.stop])
        for other, pitches in tones.items():
            mass[root, other] = float(sum(p[x] for x in pitches))
    assert mass[0, 0] > 3 * mass[5, 0]  # E and G over C7, not over F7
    assert mass[5, 5] > 3 * mass[0, 5]  # A and F over F7, not over C7
