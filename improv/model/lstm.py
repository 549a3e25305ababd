"""LSTM language model over improv tokens, in the line of Eck & Schmidhuber's blues LSTM.

Embedding -> multi-layer LSTM -> linear head. The chord and position tokens are part of
the stream, so the model is conditioned on the harmony and the metre by what it reads.
Id ``vocab_size`` is a start-of-stream token (BOS) the model reads first and never
predicts. :class:`LSTMStream` runs it one token at a time for the real-time engine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from improv.model.inputs import (
    Backend,
    BatchStream,
    ConditionedLM,
    InputsConfig,
    NumpyStream,
    lm_loss,
)

State = tuple[torch.Tensor, torch.Tensor]


@dataclass
class LSTMConfig(InputsConfig):
    n_embd: int = 96
    n_hidden: int = 384
    n_layer: int = 2
    dropout: float = 0.1


class LSTMLM(ConditionedLM):
    def __init__(self, config: LSTMConfig) -> None:
        super().__init__(config)
        self.config: LSTMConfig = config
        self.lstm = nn.LSTM(
            config.n_embd,
            config.n_hidden,
            config.n_layer,
            batch_first=True,
            dropout=config.dropout if config.n_layer > 1 else 0.0,
        )
        self.head = nn.Linear(config.n_hidden, config.vocab_size)

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
        x, tracks = self.embed(idx, key0, chord0)
        h, _ = self.lstm(x, state)  # (B, T, H)
        logits = self.read_out(self.head(self.drop(h)), tracks, pos0)
        return logits, lm_loss(logits, targets)


class LSTMStream(NumpyStream):
    """:class:`improv.model.api.StreamingLM` over an :class:`LSTMLM`, one token at a time.

    The step runs on float32 numpy arrays taken from the model once (torch's per-call
    overhead would dominate one token's step at this size), with the first layer's input
    projection folded into a table indexed by token. Every step makes new state arrays,
    so a snapshot is a reference to them.
    """

    def __init__(self, model: LSTMLM, name: str = "lstm") -> None:
        super().__init__(model, name)
        cfg = model.config
        self.config: LSTMConfig = cfg
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
        self._h: list[np.ndarray] = []
        self._c: list[np.ndarray] = []
        self.reset()

    def _reset_core(self) -> None:
        zeros = np.zeros(self.config.n_hidden, dtype=np.float32)
        self._h = [zeros] * self.config.n_layer
        self._c = [zeros] * self.config.n_layer

    def _core(self, read: int) -> None:
        cfg = self.config
        hidden = cfg.n_hidden
        h_out: list[np.ndarray] = []
        c_out: list[np.ndarray] = []
        x = self._h[0]  # placeholder for the layer input above layer 0
        for i in range(cfg.n_layer):
            if i == 0:
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

    def _core_logits(self) -> np.ndarray:
        logits: np.ndarray = self._h[-1] @ self.head_w + self.head_b
        return logits

    def snapshot(self) -> object:
        return (self._h, self._c, self._key, self._chord, self._where, self._log_probs)

    def restore(self, state: object) -> None:
        assert isinstance(state, tuple)
        self._h, self._c, self._key, self._chord, self._where, self._log_probs = state

    def describe(self) -> dict[str, Any]:
        params = sum(p.numel() for p in self.model.parameters())
        return {"kind": "lstm", "name": self._name, "params": params, **asdict(self.config)}


class LSTMBatch(BatchStream):
    """B rows of an :class:`LSTMStream`'s step, advanced together (its arrays, taken
    once, on the batch's backend): the hidden and cell states gain a batch axis."""

    def __init__(self, stream: LSTMStream, rows: int, backend: Backend | None = None) -> None:
        backend = backend or Backend()
        super().__init__(stream, rows, backend)
        a = backend.array
        self.n_hidden = stream.config.n_hidden
        self.n_layer = stream.config.n_layer
        self.table = a(stream.table)
        self.key_table = a(stream.key_table)
        self.chord_table = a(stream.chord_table)
        self.w_hh = [a(w) for w in stream.w_hh]
        self.w_ih = [a(w) for w in stream.w_ih]
        self.b = [a(b) for b in stream.b]
        self.head_w, self.head_b = a(stream.head_w), a(stream.head_b)
        self._h: list[Any] = []
        self._c: list[Any] = []

    def _fill_core(self, state: object) -> tuple[int, int, int]:
        assert isinstance(state, tuple)
        h, c, key, chord, where, _ = state
        a, rows = self.backend.array, self.rows
        self._h = [a(np.tile(x, (rows, 1))) for x in h]  # (B, H) per layer
        self._c = [a(np.tile(x, (rows, 1))) for x in c]
        return key, chord, where

    def _core(self, read: np.ndarray, active: np.ndarray) -> None:
        be, hidden = self.backend, self.n_hidden
        idx = be.index
        every = bool(active.all())
        x = self._h[0]
        for i in range(self.n_layer):
            if i == 0:
                gates = self.table[idx(read)] + self._h[0] @ self.w_hh[0]
                if self.config.n_keys:
                    gates = gates + self.key_table[idx(self._key)]
                if self.config.n_chords:
                    gates = gates + self.chord_table[idx(self._chord)]
            else:
                gates = x @ self.w_ih[i] + self._h[i] @ self.w_hh[i] + self.b[i]
            sig = 0.5 * (be.tanh(0.5 * gates[:, : 2 * hidden]) + 1.0)
            i_gate, f_gate = sig[:, :hidden], sig[:, hidden:]
            g_gate = be.tanh(gates[:, 2 * hidden : 3 * hidden])
            o_gate = 0.5 * (be.tanh(0.5 * gates[:, 3 * hidden :]) + 1.0)
            c = f_gate * self._c[i] + i_gate * g_gate
            x = o_gate * be.tanh(c)
            if every:
                self._h[i], self._c[i] = x, c
            else:
                rows = idx(np.flatnonzero(active))
                h_i, c_i = be.copy(self._h[i]), be.copy(self._c[i])
                h_i[rows], c_i[rows] = x[rows], c[rows]
                self._h[i], self._c[i] = h_i, c_i
                x = h_i

    def _core_logits(self) -> Any:
        return self._h[-1] @ self.head_w + self.head_b

    def _core_row(self, row: int) -> object:
        cp = self.backend.copy
        return [cp(h[row]) for h in self._h], [cp(c[row]) for c in self._c]

    def _restore_core_row(self, row: int, core: object) -> None:
        assert isinstance(core, tuple)
        hs, cs = core
        for i in range(self.n_layer):
            self._h[i] = self.backend.copy(self._h[i])
            self._c[i] = self.backend.copy(self._c[i])
            self._h[i][row], self._c[i][row] = hs[i], cs[i]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (np.tanh(0.5 * x) + 1.0)  # stable for large |x|
    return out
