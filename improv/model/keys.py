"""The key in force at each position of a token stream, as an extra model input.

Chord tokens name roots relative to the key, pitches are absolute, and the key is
stated once, in the stream's header. A window of a long stream (a training window, a
transformer's attention span, a session hours long) has long lost that header, so the
models do not have to remember it: both add an embedding of the key in force to every
token's. The key in force is a plain function of the tokens seen (the last ``KEY``
token; ``n_keys`` meaning none yet), tracked the same way in the full pass and in the
streaming step.
"""

from __future__ import annotations

import torch


def key_track(
    idx: torch.Tensor, key_start: int, n_keys: int, key0: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, T) key index in force at each position of ``idx`` (B, T), the token included.

    ``key0`` (B,) is the key in force before the first position (default: none yet).
    """
    batch, t = idx.shape
    is_key = (idx >= key_start) & (idx < key_start + n_keys)
    pos = torch.arange(t, device=idx.device).expand(batch, t)
    last = torch.where(is_key, pos, torch.full_like(pos, -1)).cummax(dim=1).values  # (B, T)
    values = idx.gather(1, last.clamp(min=0)) - key_start
    if key0 is None:
        key0 = torch.full((batch,), n_keys, dtype=torch.long, device=idx.device)
    return torch.where(last >= 0, values, key0[:, None].expand(batch, t))


def key_of(token: int, key_start: int, n_keys: int, current: int) -> int:
    """The key in force after ``token`` (the streaming step's counterpart)."""
    return token - key_start if key_start <= token < key_start + n_keys else current
