"""LSTM language model over improv tokens, in the line of Eck & Schmidhuber's blues LSTM.

Embedding -> multi-layer LSTM -> linear head. The chord and position tokens are part of
the stream, so the model is conditioned on the harmony and the metre by what it reads.
Id ``vocab_size`` is a start-of-stream token (BOS) the model reads first and never
predicts. :class:`LSTMStream` runs it one token at a time for the real-time engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from improv.model.keys import HarmonyBias, PitchFrame, key_of, key_track

State = tuple[torch.Tensor, torch.Tensor]


@dataclass
class LSTMConfig:
    vocab_size: int
    n_embd: int = 96
    n_hidden: int = 384
    n_layer: int = 2
    dropout: float = 0.1
    key_start: int = 0  # id of KEY_0; the key in force is an input (see improv.model.keys)
    n_keys: int = 0  # 0: no key input (a vocabulary without KEY tokens)
    pitch_start: int = 0  # id of PITCH_0: pitches read relative to the key (keys.PitchFrame)
    chord_start: int = 0  # id of the first CHORD token; the chord in force is an input
    n_chords: int = 0  # 0: no chord input
    pos_start: int = 0  # id of BAR (POS_t follow it): the position in force, for the
    n_pos: int = 0  # harmony bias (keys.HarmonyBias; with the pitch frame and chords)
    n_pitches: int = 0  # 0: pitches read as they are


class LSTMLM(nn.Module):
    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size + 1, config.n_embd)  # +1: BOS
        # key in force, n_keys + 1 rows: the last one is "no key yet"
        self.wke = nn.Embedding(config.n_keys + 1, config.n_embd) if config.n_keys else None
        # chord in force, n_chords + 1 rows: the last one is "no chord yet"
        self.wce = nn.Embedding(config.n_chords + 1, config.n_embd) if config.n_chords else None
        self.frame = (
            PitchFrame(config.vocab_size, config.pitch_start, config.n_pitches, config.n_keys)
            if config.n_keys and config.n_pitches
            else None
        )
        self.harmony = (
            HarmonyBias(
                config.n_chords,
                config.n_pos,
                config.pitch_start,
                config.n_pitches,
                config.vocab_size,
            )
            if self.frame is not None and config.n_chords and config.n_pos
            else None
        )
        self.drop = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            config.n_embd,
            config.n_hidden,
            config.n_layer,
            batch_first=True,
            dropout=config.dropout if config.n_layer > 1 else 0.0,
        )
        self.head = nn.Linear(config.n_hidden, config.vocab_size)

    @property
    def bos(self) -> int:
        return self.config.vocab_size

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        key0: torch.Tensor | None = None,
        chord0: torch.Tensor | None = None,
        pos0: torch.Tensor | None = None,
        state: State | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits of the next token at every position, and the mean loss given targets.

        ``idx`` (B, T) token ids; ``targets`` (B, T), -1 where not scored; ``key0``,
        ``chord0`` and ``pos0`` (B,) the key, chord and position state in force before
        ``idx`` (default: none yet).
        """
        keys = None
        idx0 = idx  # the tokens as heard (idx becomes the frame's tokens)
        if self.wke is not None:
            c = self.config
            keys = key_track(idx, c.key_start, c.n_keys, key0)  # (B, T)
        if self.frame is not None and keys is not None:
            idx = self.frame.read_tokens(idx, keys)
        x = self.wte(idx)  # (B, T, E)
        if self.wke is not None and keys is not None:
            x = x + self.wke(keys)
        chords = None
        if self.wce is not None:
            c = self.config
            chords = key_track(idx0, c.chord_start, c.n_chords, chord0)  # (B, T)
            x = x + self.wce(chords)
        x = self.drop(x)
        h, _ = self.lstm(x, state)  # (B, T, H)
        logits = self.head(self.drop(h))  # (B, T, V)
        if self.harmony is not None and chords is not None:
            c = self.config
            logits = self.harmony(logits, chords, key_track(idx0, c.pos_start, c.n_pos, pos0))
        if self.frame is not None and keys is not None:
            logits = self.frame.write_logits(logits, keys)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1
            )
        return logits, loss


class LSTMStream:
    """:class:`improv.model.api.StreamingLM` over an :class:`LSTMLM`, one token at a time.

    The step runs on float32 numpy arrays taken from the model once (torch's per-call
    overhead would dominate one token's step at this size), with the first layer's input
    projection folded into a table indexed by token. Every step makes new state arrays,
    so a snapshot is a reference to them.
    """

    def __init__(self, model: LSTMLM, name: str = "lstm") -> None:
        self.model = model.eval()
        cfg = model.config
        self.config = cfg
        self._name = name
        sd = {k: v.detach().cpu().double().numpy() for k, v in model.state_dict().items()}
        # gate pre-activations: W_ih x + b_ih + W_hh h + b_hh, gates ordered i, f, g, o
        self.table = (
            sd["wte.weight"] @ sd["lstm.weight_ih_l0"].T
            + sd["lstm.bias_ih_l0"]
            + sd["lstm.bias_hh_l0"]
        ).astype(np.float32)  # (V + 1, 4H)
        self.key_table = (
            (sd["wke.weight"] @ sd["lstm.weight_ih_l0"].T).astype(np.float32)
            if cfg.n_keys
            else np.zeros((1, 4 * cfg.n_hidden), dtype=np.float32)
        )  # (n_keys + 1, 4H): the key input's share of the gates
        self.chord_table = (
            (sd["wce.weight"] @ sd["lstm.weight_ih_l0"].T).astype(np.float32)
            if cfg.n_chords
            else np.zeros((1, 4 * cfg.n_hidden), dtype=np.float32)
        )  # (n_chords + 1, 4H): the chord input's share
        self.w_hh = [
            np.ascontiguousarray(sd[f"lstm.weight_hh_l{i}"].T, dtype=np.float32)
            for i in range(cfg.n_layer)
        ]  # (H, 4H)
        self.w_ih = [
            np.ascontiguousarray(sd[f"lstm.weight_ih_l{i}"].T, dtype=np.float32)
            for i in range(cfg.n_layer)
        ]  # (H or E, 4H); layer 0 unused (folded into the table)
        self.b = [
            (sd[f"lstm.bias_ih_l{i}"] + sd[f"lstm.bias_hh_l{i}"]).astype(np.float32)
            for i in range(cfg.n_layer)
        ]
        self.head_w = np.ascontiguousarray(sd["head.weight"].T, dtype=np.float32)  # (H, V)
        self.head_b = sd["head.bias"].astype(np.float32)
        zeros = np.zeros(cfg.n_hidden, dtype=np.float32)
        self._h: list[np.ndarray] = [zeros] * cfg.n_layer
        self._c: list[np.ndarray] = [zeros] * cfg.n_layer
        self._key = cfg.n_keys  # none yet
        self._chord = cfg.n_chords
        self._where = cfg.n_pos  # position state (BAR, POS_t or none), for the harmony bias
        self.frame = model.frame
        self.harmony = model.harmony.vectors() if model.harmony is not None else None
        self.beat_class = (
            model.harmony.beat_class.numpy() if model.harmony is not None else np.zeros(1, int)
        )
        self._log_probs: np.ndarray | None = None
        self.reset()

    @property
    def name(self) -> str:
        return self._name

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    def reset(self) -> None:
        zeros = np.zeros(self.config.n_hidden, dtype=np.float32)
        self._h = [zeros] * self.config.n_layer
        self._c = [zeros] * self.config.n_layer
        self._key = self.config.n_keys
        self._chord = self.config.n_chords
        self._where = self.config.n_pos
        self._step(self.model.bos)

    def advance(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            if not 0 <= token < self.vocab_size:
                raise ValueError(f"token id out of range 0..{self.vocab_size - 1}: {token}")
            self._step(token)

    def _step(self, token: int) -> None:
        cfg = self.config
        self._key = key_of(token, cfg.key_start, cfg.n_keys, self._key)
        self._chord = key_of(token, cfg.chord_start, cfg.n_chords, self._chord)
        self._where = key_of(token, cfg.pos_start, cfg.n_pos, self._where)
        hidden = cfg.n_hidden
        h_out: list[np.ndarray] = []
        c_out: list[np.ndarray] = []
        x = self._h[0]  # placeholder for the layer input above layer 0
        for i in range(cfg.n_layer):
            if i == 0:
                read = token if self.frame is None else int(self.frame.read[self._key, token])
                gates = self.table[read] + self._h[0] @ self.w_hh[0]
                if cfg.n_keys:
                    gates = gates + self.key_table[self._key]
                if cfg.n_chords:
                    gates = gates + self.chord_table[self._chord]
            else:
                gates = x @ self.w_ih[i] + self._h[i] @ self.w_hh[i] + self.b[i]
            sig = _sigmoid(gates[: 2 * hidden])
            i_gate, f_gate = sig[:hidden], sig[hidden:]
            g_gate = np.tanh(gates[2 * hidden : 3 * hidden])
            o_gate = _sigmoid(gates[3 * hidden :])
            c = f_gate * self._c[i] + i_gate * g_gate
            x = o_gate * np.tanh(c)
            h_out.append(x)
            c_out.append(c)
        self._h, self._c = h_out, c_out
        self._log_probs = None

    def next_log_probs(self) -> np.ndarray:
        if self._log_probs is None:
            logits = (self._h[-1] @ self.head_w + self.head_b).astype(np.float64)
            if self.harmony is not None:
                logits += self.harmony[self._chord, self.beat_class[self._where]]
            if self.frame is not None:
                logits = logits[self.frame.write[self._key]] + self.frame.bias[self._key]
            m = logits.max()
            lp = logits - (m + np.log(np.exp(logits - m).sum()))
            self._log_probs = lp.astype(np.float32)
        return self._log_probs

    def snapshot(self) -> object:
        return (self._h, self._c, self._key, self._chord, self._where, self._log_probs)

    def restore(self, state: object) -> None:
        assert isinstance(state, tuple)
        self._h, self._c, self._key, self._chord, self._where, self._log_probs = state

    def score(self, tokens: Sequence[int]) -> np.ndarray:
        """Log-likelihood of each token from a fresh stream, in one forward pass."""
        if len(tokens) == 0:
            return np.zeros(0)
        with torch.inference_mode():
            idx = torch.tensor([[self.model.bos, *tokens[:-1]]], dtype=torch.long)
            logits, _ = self.model(idx.to(next(self.model.parameters()).device))
            lp = F.log_softmax(logits[0].double().cpu(), dim=-1)
            target = torch.tensor(list(tokens), dtype=torch.long)
            return lp.gather(1, target[:, None])[:, 0].numpy()

    def describe(self) -> dict[str, Any]:
        params = sum(p.numel() for p in self.model.parameters())
        return {"kind": "lstm", "name": self._name, "params": params, **asdict(self.config)}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (np.tanh(0.5 * x) + 1.0)  # stable for large |x|
    return out
