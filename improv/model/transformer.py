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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from improv.model.keys import HarmonyBias, PitchFrame, key_of, key_track

_GELU_C = np.float32(math.sqrt(2.0 / math.pi))  # GELU, tanh form (as GPT-2)


@dataclass
class TransformerConfig:
    vocab_size: int
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    window: int = 256  # attention span in tokens, the query included
    dropout: float = 0.1
    rope_base: float = 10000.0
    key_start: int = 0  # id of KEY_0; the key in force is an input (see improv.model.keys)
    n_keys: int = 0  # 0: no key input (a vocabulary without KEY tokens)
    pitch_start: int = 0  # id of PITCH_0: pitches read relative to the key (keys.PitchFrame)
    chord_start: int = 0  # id of the first CHORD token; the chord in force is an input
    n_chords: int = 0  # 0: no chord input
    pos_start: int = 0  # id of BAR (POS_t follow it): the position in force, for the
    n_pos: int = 0  # harmony bias (keys.HarmonyBias; with the pitch frame and chords)
    n_pitches: int = 0  # 0: pitches read as they are


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


class TransformerLM(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
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
        keys = None
        idx0 = idx  # the tokens as heard (idx becomes the frame's tokens)
        if self.wke is not None:
            c = self.config
            keys = key_track(idx, c.key_start, c.n_keys, key0)  # (B, T)
        if self.frame is not None and keys is not None:
            idx = self.frame.read_tokens(idx, keys)
        x = self.wte(idx)  # (B, T, C)
        if self.wke is not None and keys is not None:
            x = x + self.wke(keys)
        chords = None
        if self.wce is not None:
            c = self.config
            chords = key_track(idx0, c.chord_start, c.n_chords, chord0)  # (B, T)
            x = x + self.wce(chords)
        x = self.drop(x)
        for block in self.h:
            x = block(x, cos, sin)
        logits = self.lm_head(self.ln_f(x))  # (B, T, V)
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


class TransformerStream:
    """:class:`improv.model.api.StreamingLM` over a :class:`TransformerLM`.

    Each layer keeps a ring buffer of ``window`` rotated keys and values; a step writes
    one slot and attends over the filled ones (order does not matter to attention).
    The step runs on plain float32 numpy arrays taken from the model once: at this size
    torch's per-call overhead, not arithmetic, would dominate a single token's step.
    """

    def __init__(self, model: TransformerLM, name: str = "transformer") -> None:
        cfg = model.config
        self.model = model.eval()
        self.config = cfg
        self._name = name
        self._params = sum(p.numel() for p in model.parameters())
        self.head_dim = cfg.n_embd // cfg.n_head
        sd = {k: v.detach().cpu().float().numpy().copy() for k, v in model.state_dict().items()}
        self.wte = sd["wte.weight"]
        self.wke = sd["wke.weight"] if cfg.n_keys else None
        self.wce = sd["wce.weight"] if cfg.n_chords else None
        self._key = cfg.n_keys  # none yet
        self._chord = cfg.n_chords
        self._where = cfg.n_pos  # position state (BAR, POS_t or none), for the harmony bias
        self.frame = model.frame
        self.harmony = model.harmony.vectors() if model.harmony is not None else None
        self.beat_class = (
            model.harmony.beat_class.numpy() if model.harmony is not None else np.zeros(1, int)
        )
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
        self._log_probs: np.ndarray | None = None
        self.reset()

    @property
    def name(self) -> str:
        return self._name

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    def reset(self) -> None:
        self._pos = 0
        self._key = self.config.n_keys
        self._chord = self.config.n_chords
        self._where = self.config.n_pos
        self._step(self.config.vocab_size)  # BOS

    def advance(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            if not 0 <= token < self.vocab_size:
                raise ValueError(f"token id out of range 0..{self.vocab_size - 1}: {token}")
            self._step(token)

    @staticmethod
    def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        mu = x.mean()
        d = x - mu
        var = (d * d).mean()
        out: np.ndarray = d * (1.0 / np.sqrt(var + 1e-5)) * w + b
        return out

    def _step(self, token: int) -> None:
        cfg = self.config
        nh, hd, half = cfg.n_head, self.head_dim, self.head_dim // 2
        angles = self._pos * self.inv_freq
        cos = np.cos(angles).astype(np.float32)
        sin = np.sin(angles).astype(np.float32)
        slot = self._pos % cfg.window
        filled = min(self._pos + 1, cfg.window)
        scale = np.float32(1.0 / math.sqrt(hd))
        if self.wke is not None:
            self._key = key_of(token, cfg.key_start, cfg.n_keys, self._key)
        read = token if self.frame is None else int(self.frame.read[self._key, token])
        x = self.wte[read]  # (C,)
        if self.wke is not None:
            x = x + self.wke[self._key]
        if self.wce is not None:
            self._chord = key_of(token, cfg.chord_start, cfg.n_chords, self._chord)
            x = x + self.wce[self._chord]
        self._where = key_of(token, cfg.pos_start, cfg.n_pos, self._where)
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
        self._log_probs = None

    def next_log_probs(self) -> np.ndarray:
        if self._log_probs is None:
            h = self._layer_norm(self._x, self.lnf_w, self.lnf_b)
            logits = (h @ self.head_w).astype(np.float64)
            if self.harmony is not None:
                logits += self.harmony[self._chord, self.beat_class[self._where]]
            if self.frame is not None:
                logits = logits[self.frame.write[self._key]] + self.frame.bias[self._key]
            m = logits.max()
            lp = logits - (m + np.log(np.exp(logits - m).sum()))
            self._log_probs = lp.astype(np.float32)
        return self._log_probs

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

    def score(self, tokens: Sequence[int]) -> np.ndarray:
        """Log-likelihood of each token from a fresh stream, in one full (banded) pass."""
        if len(tokens) == 0:
            return np.zeros(0)
        with torch.inference_mode():
            idx = torch.tensor([[self.config.vocab_size, *tokens[:-1]]], dtype=torch.long)
            logits, _ = self.model(idx.to(next(self.model.parameters()).device))
            lp = F.log_softmax(logits[0].double().cpu(), dim=-1)
            target = torch.tensor(list(tokens), dtype=torch.long)
            return lp.gather(1, target[:, None])[:, 0].numpy()

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "transformer",
            "name": self._name,
            "params": self._params,
            **asdict(self.config),
        }
