"""Decoder-only causal transformer over improv tokens, with a bounded attention window.

nanoGPT-shaped (pre-LayerNorm blocks, GELU MLP), with two changes for streaming:

- Attention is *banded*: a token attends to itself and the ``window - 1`` tokens before
  it, never further, in training and in inference alike. So the per-token cost is
  bounded however long a jam lasts, and the key/value cache is a ring buffer of
  ``window`` slots per layer.
- Positions are rotary (RoPE): attention scores depend only on the distance between
  two tokens, so a key cached at absolute position ``p`` stays valid as the window
  slides. The angles are computed in float64 so that they stay exact in long streams.

The full forward pass ``forward(idx, start_pos=p)`` and the streaming
:class:`TransformerStream` compute the same function of the same tokens; the stream
matches the full pass within float32 rounding, past the window too.
Id ``vocab_size`` is a start-of-stream token (BOS) the model reads first.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from improv.model.inputs import (
    Backend,
    BatchStream,
    ConditionedLM,
    InputsConfig,
    NumpyStream,
    lm_loss,
)

_GELU_C = np.float32(math.sqrt(2.0 / math.pi))  # GELU, tanh form (as GPT-2)


@dataclass
class TransformerConfig(InputsConfig):
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    window: int = 256  # attention span in tokens, the query included
    dropout: float = 0.1
    rope_base: float = 10000.0


def rope_tables(
    positions: np.ndarray, head_dim: int, base: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles, (T, head_dim // 2), computed in float64."""
    inv_freq = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = positions.astype(np.float64)[:, None] * inv_freq[None, :]
    cos = torch.from_numpy(np.cos(angles).astype(np.float32))
    sin = torch.from_numpy(np.sin(angles).astype(np.float32))
    return cos, sin


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (first half, second half) of the last axis; x (..., T, hd)."""
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def band_mask(queries: range, keys: range, window: int) -> torch.Tensor:
    """Boolean (len(queries), len(keys)), True where query i may see key j:
    ``i - window < j <= i`` (absolute positions)."""
    i = torch.arange(queries.start, queries.stop)[:, None]
    j = torch.arange(keys.start, keys.stop)[None, :]
    return (j <= i) & (j > i - window)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.n_head = config.n_head
        self.head_dim = config.n_embd // config.n_head
        assert self.head_dim % 2 == 0, "rotary positions need an even head size"
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.dropout = config.dropout
        self.window = config.window

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        p = self.dropout if self.training else 0.0
        if x.size(1) <= 2 * self.window:
            mask = band_mask(range(T), range(T), self.window).to(x.device)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:  # long sequences (scoring a whole solo): a block of queries, its keys only
            blocks = []
            for s in range(0, T, self.window):
                e, ks = min(s + self.window, T), max(0, s - self.window + 1)
                blocks.append(
                    F.scaled_dot_product_attention(
                        q[:, :, s:e],
                        k[:, :, ks:e],
                        v[:, :, ks:e],
                        attn_mask=band_mask(range(s, e), range(ks, e), self.window).to(x.device),
                        dropout_p=p,
                    )
                )
            y = torch.cat(blocks, dim=2)  # (B, nh, T, hd)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cos, sin)
        return x + self.mlp(self.ln_2(x))


class TransformerLM(ConditionedLM):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        self.config: TransformerConfig = config
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2's scaled residual init
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        key0: torch.Tensor | None = None,
        chord0: torch.Tensor | None = None,
        pos0: torch.Tensor | None = None,
        start_pos: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits at every position (B, T, V), and the mean loss given targets (-1: skip).

        ``key0``, ``chord0`` and ``pos0`` (B,) are the key, chord and position state in
        force before ``idx`` (default: none yet).
        ``start_pos`` is the absolute stream position of ``idx[:, 0]``; with rotary
        positions and banded attention it changes nothing but rounding, and is there so
        that a stream and a full pass use the very same angles.
        """
        T = idx.size(1)
        cos, sin = rope_tables(
            np.arange(start_pos, start_pos + T),
            self.config.n_embd // self.config.n_head,
            self.config.rope_base,
        )
        cos, sin = cos.to(idx.device), sin.to(idx.device)
        x, tracks = self.embed(idx, key0, chord0)
        for block in self.h:
            x = block(x, cos, sin)
        logits = self.read_out(self.lm_head(self.ln_f(x)), tracks, pos0)
        return logits, lm_loss(logits, targets)


class TransformerStream(NumpyStream):
    """:class:`improv.model.api.StreamingLM` over a :class:`TransformerLM`.

    Each layer keeps a ring buffer of ``window`` rotated keys and values; a step writes
    one slot and attends over the filled ones (order does not matter to attention).
    The step runs on plain float32 numpy arrays taken from the model once: at this size
    torch's per-call overhead, not arithmetic, would dominate a single token's step.
    """

    def __init__(self, model: TransformerLM, name: str = "transformer") -> None:
        super().__init__(model, name)
        cfg = model.config
        self.config: TransformerConfig = cfg
        self._params = sum(p.numel() for p in model.parameters())
        self.head_dim = cfg.n_embd // cfg.n_head
        sd = {k: v.detach().cpu().float().numpy().copy() for k, v in model.state_dict().items()}
        self.wte = sd["wte.weight"]
        self.wke = sd["wke.weight"] if cfg.n_keys else None
        self.wce = sd["wce.weight"] if cfg.n_chords else None
        self.layers = []
        for i in range(cfg.n_layer):
            p = f"h.{i}."
            self.layers.append(
                {
                    "ln1_w": sd[p + "ln_1.weight"],
                    "ln1_b": sd[p + "ln_1.bias"],
                    "attn_w": np.ascontiguousarray(sd[p + "attn.c_attn.weight"].T),
                    "attn_b": sd[p + "attn.c_attn.bias"],
                    "proj_w": np.ascontiguousarray(sd[p + "attn.c_proj.weight"].T),
                    "proj_b": sd[p + "attn.c_proj.bias"],
                    "ln2_w": sd[p + "ln_2.weight"],
                    "ln2_b": sd[p + "ln_2.bias"],
                    "fc_w": np.ascontiguousarray(sd[p + "mlp.c_fc.weight"].T),
                    "fc_b": sd[p + "mlp.c_fc.bias"],
                    "fc2_w": np.ascontiguousarray(sd[p + "mlp.c_proj.weight"].T),
                    "fc2_b": sd[p + "mlp.c_proj.bias"],
                }
            )
        self.lnf_w, self.lnf_b = sd["ln_f.weight"], sd["ln_f.bias"]
        self.head_w = np.ascontiguousarray(sd["lm_head.weight"].T)  # (C, V)
        self.inv_freq = cfg.rope_base ** (
            -np.arange(0, self.head_dim, 2, dtype=np.float64) / self.head_dim
        )
        shape = (cfg.n_layer, cfg.n_head, cfg.window, self.head_dim)
        self._k = np.zeros(shape, dtype=np.float32)
        self._v = np.zeros(shape, dtype=np.float32)
        self._pos = 0
        self._x: np.ndarray = np.zeros(cfg.n_embd, dtype=np.float32)
        self.reset()

    def _reset_core(self) -> None:
        self._pos = 0

    @staticmethod
    def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        mu = x.mean()
        d = x - mu
        var = (d * d).mean()
        out: np.ndarray = d * (1.0 / np.sqrt(var + 1e-5)) * w + b
        return out

    def _core(self, read: int) -> None:
        cfg = self.config
        nh, hd, half = cfg.n_head, self.head_dim, self.head_dim // 2
        angles = self._pos * self.inv_freq
        cos = np.cos(angles).astype(np.float32)
        sin = np.sin(angles).astype(np.float32)
        slot = self._pos % cfg.window
        filled = min(self._pos + 1, cfg.window)
        scale = np.float32(1.0 / math.sqrt(hd))
        x = self.wte[read]  # (C,)
        if self.wke is not None:
            x = x + self.wke[self._key]
        if self.wce is not None:
            x = x + self.wce[self._chord]
        for i, layer in enumerate(self.layers):
            h = self._layer_norm(x, layer["ln1_w"], layer["ln1_b"])
            qkv = h @ layer["attn_w"] + layer["attn_b"]  # (3C,)
            q, k, v = (a.reshape(nh, hd) for a in np.split(qkv, 3))  # (nh, hd)
            q = np.concatenate(
                (q[:, :half] * cos - q[:, half:] * sin, q[:, :half] * sin + q[:, half:] * cos),
                axis=1,
            )
            k = np.concatenate(
                (k[:, :half] * cos - k[:, half:] * sin, k[:, :half] * sin + k[:, half:] * cos),
                axis=1,
            )
            self._k[i, :, slot] = k
            self._v[i, :, slot] = v
            keys, values = self._k[i, :, :filled], self._v[i, :, :filled]  # (nh, n, hd)
            att = np.einsum("hd,hnd->hn", q, keys) * scale  # (nh, n)
            att = np.exp(att - att.max(axis=1, keepdims=True))
            att /= att.sum(axis=1, keepdims=True)
            y = np.einsum("hn,hnd->hd", att, values).reshape(-1)  # (C,)
            x = x + (y @ layer["proj_w"] + layer["proj_b"])
            h = self._layer_norm(x, layer["ln2_w"], layer["ln2_b"])
            h = h @ layer["fc_w"] + layer["fc_b"]
            h = 0.5 * h * (1.0 + np.tanh(_GELU_C * (h + np.float32(0.044715) * h * h * h)))
            x = x + (h @ layer["fc2_w"] + layer["fc2_b"])
        self._x = x
        self._pos += 1

    def _core_logits(self) -> np.ndarray:
        logits: np.ndarray = self._layer_norm(self._x, self.lnf_w, self.lnf_b) @ self.head_w
        return logits

    def snapshot(self) -> object:
        # Copies are bounded by the window; only the slots written since need saving,
        # but a whole copy is simpler and costs microseconds at these sizes.
        state = (self._pos, self._key, self._chord, self._where, self._x, self._log_probs)
        return (*state, self._k.copy(), self._v.copy())

    def restore(self, state: object) -> None:
        assert isinstance(state, tuple)
        self._pos, self._key, self._chord, self._where, self._x, self._log_probs, k, v = state
        np.copyto(self._k, k)
        np.copyto(self._v, v)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "transformer",
            "name": self._name,
            "params": self._params,
            **asdict(self.config),
        }


class TransformerBatch(BatchStream):
    """B rows of a :class:`TransformerStream`'s step, advanced together: each row has
    its own ring buffers and stream position (rows advance by different numbers of
    tokens when chord changes are forced into some of them)."""

    def __init__(
        self, stream: TransformerStream, rows: int, backend: Backend | None = None
    ) -> None:
        backend = backend or Backend()
        super().__init__(stream, rows, backend)
        cfg = stream.config
        a = backend.array
        self.head_dim = stream.head_dim
        self.wte = a(stream.wte)
        self.wke = a(stream.wke) if stream.wke is not None else None
        self.wce = a(stream.wce) if stream.wce is not None else None
        self.layers = [{k: a(v) for k, v in layer.items()} for layer in stream.layers]
        self.lnf_w, self.lnf_b = a(stream.lnf_w), a(stream.lnf_b)
        self.head_w = a(stream.head_w)
        self.inv_freq = stream.inv_freq
        self.slots = np.arange(cfg.window)
        self._pos = np.zeros(rows, dtype=np.int64)
        self._k: list[Any] = []  # per layer (B, nh, window, hd)
        self._v: list[Any] = []
        self._x: Any = None  # (B, C)

    def _fill_core(self, state: object) -> tuple[int, int, int]:
        assert isinstance(state, tuple)
        pos, key, chord, where, x, _, k, v = state
        a, rows = self.backend.array, self.rows
        self._pos[:] = pos
        self._x = a(np.tile(x, (rows, 1)))
        self._k = [a(np.repeat(k[i][None], rows, axis=0)) for i in range(len(k))]
        self._v = [a(np.repeat(v[i][None], rows, axis=0)) for i in range(len(v))]
        return key, chord, where

    def _layer_norm(self, x: Any, w: Any, b: Any) -> Any:
        be = self.backend
        d = x - be.mean(x, 1)
        var = be.mean(d * d, 1)
        return d * (1.0 / be.sqrt(var + 1e-5)) * w + b

    def _core(self, read: np.ndarray, active: np.ndarray) -> None:
        cfg, be = self.config, self.backend
        idx = be.index
        nh, hd, half = cfg.n_head, self.head_dim, self.head_dim // 2
        n = self.rows
        angles = self._pos[:, None] * self.inv_freq[None, :]  # (B, hd/2), float64
        cos = be.array(np.cos(angles))[:, None, :]  # (B, 1, hd/2)
        sin = be.array(np.sin(angles))[:, None, :]
        live = np.flatnonzero(active)
        rows, slots = idx(live), idx(self._pos[live] % cfg.window)
        filled = np.minimum(self._pos + 1, cfg.window)
        hidden = be.array(np.where(self.slots[None, :] < filled[:, None], 0.0, -np.inf))
        scale = 1.0 / math.sqrt(hd)
        x = self.wte[idx(read)]  # (B, C)
        if self.wke is not None:
            x = x + self.wke[idx(self._key)]
        if self.wce is not None:
            x = x + self.wce[idx(self._chord)]
        for i, layer in enumerate(self.layers):
            h = self._layer_norm(x, layer["ln1_w"], layer["ln1_b"])
            qkv = h @ layer["attn_w"] + layer["attn_b"]  # (B, 3C)
            q, k, v = (
                qkv[:, j * cfg.n_embd : (j + 1) * cfg.n_embd].reshape(n, nh, hd) for j in range(3)
            )
            q = be.cat(
                (
                    q[..., :half] * cos - q[..., half:] * sin,
                    q[..., :half] * sin + q[..., half:] * cos,
                ),
                2,
            )
            k = be.cat(
                (
                    k[..., :half] * cos - k[..., half:] * sin,
                    k[..., :half] * sin + k[..., half:] * cos,
                ),
                2,
            )
            self._k[i][rows, :, slots] = k[rows]
            self._v[i][rows, :, slots] = v[rows]
            att = be.einsum("bhd,bhnd->bhn", q, self._k[i]) * scale + hidden[:, None, :]
            att = be.exp(att - be.amax(att, 2))
            att = att / be.sum(att, 2)
            y = be.einsum("bhn,bhnd->bhd", att, self._v[i]).reshape(n, -1)  # (B, C)
            x = x + (y @ layer["proj_w"] + layer["proj_b"])
            h = self._layer_norm(x, layer["ln2_w"], layer["ln2_b"])
            h = h @ layer["fc_w"] + layer["fc_b"]
            h = 0.5 * h * (1.0 + be.tanh(float(_GELU_C) * (h + 0.044715 * h * h * h)))
            x = x + (h @ layer["fc2_w"] + layer["fc2_b"])
        if bool(active.all()):
            self._x = x
        else:
            kept = be.copy(self._x)
            kept[rows] = x[rows]
            self._x = kept
        self._pos[live] += 1

    def _core_logits(self) -> Any:
        return self._layer_norm(self._x, self.lnf_w, self.lnf_b) @ self.head_w

    def _core_row(self, row: int) -> object:
        cp = self.backend.copy
        return (
            int(self._pos[row]),
            cp(self._x[row]),
            [cp(k[row]) for k in self._k],
            [cp(v[row]) for v in self._v],
        )

    def _restore_core_row(self, row: int, core: object) -> None:
        assert isinstance(core, tuple)
        pos, x, ks, vs = core
        self._pos[row] = pos
        self._x = self.backend.copy(self._x)
        self._x[row] = x
        for i in range(len(self._k)):
            self._k[i][row] = ks[i]
            self._v[i][row] = vs[i]
