"""Variable-order Markov model over token ids: the baseline, the fallback, the quick learner.

Why it is built this way:

- Counts live in a prefix tree of n-grams, as in Pachet's Continuator, stored as flat
  numpy arrays in breadth-first order: the children of a context are contiguous, a
  child is one binary search on ``parent * V + symbol`` away, scoring a corpus is
  vectorised over all positions, and the model serialises as a few integer arrays.
- Orders are blended as in IDyOM's models of melodic expectation (Pearce 2005):
  interpolated smoothing, escape method C, AX or D, update exclusion. The maximum order
  is chosen on validation data (:func:`fit_markov`), so the baseline is a fair one.
  Rare long n-grams are pruned to a node budget; what a context loses to pruning goes
  to its escape, so a pruned model stays calibrated.
- During a session, :meth:`MarkovModel.learn` feeds a short-term model (a dictionary
  trie with the same blending), as in IDyOM's long- plus short-term configuration. The
  two are mixed with a fixed weight: on WJazzD, learning each phrase of a solo after
  hearing it, IDyOM's entropy-weighted mixtures made the next phrases less likely, a
  fixed weight of about 0.08 made them more likely. The long-term arrays never change,
  so their per-context distributions are cached, and learning a call takes about a
  millisecond.
"""

from __future__ import annotations

import lzma
import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Escape = Literal["c", "ax", "d"]
TokenSeq = Sequence[int] | np.ndarray
"""A token sequence: a list of ids or an integer array."""
ESCAPES: tuple[Escape, ...] = ("c", "ax", "d")

DEFAULT_MAX_NODES = 1_000_000
"""Node budget of the long-term trie: a node takes about 1.2 bytes once compressed, so
the default model stays near 1.2 MB, next to a neural model in a checkpoint of 10 MB."""

SESSION_CONTEXTS = 20_000
"""The session model's contexts at most (about 300 bytes each) ..."""
SESSION_TOKENS = 2048
"""... then it keeps what the last calls of at most this many tokens taught it."""
MAX_STATE_BYTES = 128 << 20
"""The trie's arrays together, decompressed (the shipped baseline's: 12 MB)."""
MAX_RATIO = 100
"""Their compression ratio at most (the shipped one's: 9 to 25) ..."""
MIN_LIMIT = 1 << 20
"""... beyond a first MiB each (small models' arrays are mostly zeros)."""
STATE_FORMAT = "improv-markov/2"

DEFAULT_SESSION_WEIGHT = 0.08
"""Share of the session model in the distribution once something was learned."""

_PRUNE_DEPTH = 3  # n-grams this long or longer may be pruned to fit the node budget
_WORK_FACTOR = 4  # counting keeps up to this many times the budget, to choose from

_PACKED = {"symbols": "<i2", "n_children": "<i2", "counts": "<i4", "pruned": "<i4"}
"""Serialised trie arrays and their little-endian types (see :meth:`MarkovModel.to_state`)."""

_CACHE_SIZE = 1024
"""Long-term distributions kept, by deepest context node: 3.5 MB at most (4,096 held
14 MB, filled by a flood's random contexts; a miss costs about 0.01 ms a step)."""


def _blend_params(
    total: np.ndarray,
    distinct: np.ndarray,
    singles: np.ndarray,
    kept_distinct: np.ndarray,
    pruned_total: np.ndarray,
    escape: Escape,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Discount, escape weight and denominator of each context, so that blending reads
    ``p_k(s) = (count(s) - discount + escape_w * p_{k-1}(s)) / denom``.

    ``total``, ``distinct`` and ``singles`` describe all the symbols a context has seen,
    ``kept_distinct`` those its pruned tree still holds; the probability of the pruned
    ones goes to the lower orders, so pruning never makes a context overconfident.
    Method C escapes with the number of distinct symbols, AX (Moffat's X) with the number
    seen once plus one, D (Howard) discounts every count by a half.
    """
    total = total.astype(np.float64)
    pruned = pruned_total.astype(np.float64)
    if escape == "d":
        return 0.5, 0.5 * kept_distinct + pruned, np.maximum(total, 1.0)
    esc = distinct if escape == "c" else singles + 1
    esc = esc.astype(np.float64)
    return 0.0, esc + pruned, np.maximum(total + esc, 1.0)


def _as_sequences(sequences: Iterable[TokenSeq], vocab_size: int) -> list[np.ndarray]:
    out = []
    for index, seq in enumerate(sequences):
        arr = np.asarray(seq, dtype=np.int64).reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
            bad = int(arr[(arr < 0) | (arr >= vocab_size)][0])
            raise ValueError(f"sequence {index}: token id {bad} outside 0..{vocab_size - 1}")
        out.append(arr)
    return out


def _flatten(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """All tokens in one array, and each token's position inside its sequence."""
    if not seqs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    tok = np.concatenate(seqs)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return tok, np.arange(len(tok), dtype=np.int64) - starts


# --------------------------------------------------------------------------- counting


@dataclass
class _NgramCounts:
    """The n-grams of a corpus up to ``max_depth`` tokens, as a prefix tree.

    Node 0 is the empty context; nodes are in breadth-first order sorted by
    (parent, symbol). ``raw`` is how often the n-gram occurs; ``ux`` its count under
    update exclusion: the number of distinct tokens seen before it, plus one if it
    opens a sequence (so an online PPM with update exclusion would have counted it).
    Rare long n-grams may be dropped while counting, to bound memory; ``dropped[:, j]``
    is what node ``j`` lost that way (total count, number, singletons of its children).
    """

    vocab_size: int
    parent: np.ndarray  # (nodes,) int64, -1 for the root
    symbol: np.ndarray  # (nodes,) int64, -1 for the root
    depth: np.ndarray  # (nodes,) int64
    raw: np.ndarray  # (nodes,) int64
    ux: np.ndarray  # (nodes,) int64
    dropped: np.ndarray  # (3, nodes) int64
    tokens: int


_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)


def _count_ngrams(
    seqs: list[np.ndarray], vocab_size: int, max_depth: int, max_nodes: int
) -> _NgramCounts:
    """Count every n-gram level by level, vectorised over all positions.

    N-grams of :data:`_PRUNE_DEPTH`+ tokens rarer than a threshold (rising with depth)
    are dropped once the tree would outgrow ``max_nodes``; the update-exclusion counts
    use a 64-bit rolling hash of each n-gram, so dropping never distorts them.
    """
    tok, pos = _flatten(seqs)
    n_tok = len(tok)
    parents: list[np.ndarray] = [np.array([-1])]
    symbols: list[np.ndarray] = [np.array([-1])]
    depths: list[np.ndarray] = [np.array([0])]
    raws: list[np.ndarray] = [np.array([n_tok])]
    uxs: list[np.ndarray] = [np.array([0])]
    lost_parent: list[np.ndarray] = []  # parents of dropped n-grams, and their counts
    lost_count: list[np.ndarray] = []
    n_nodes, threshold = 1, 1
    prev_first = 0  # first node id of the previous level
    prev_at = np.zeros(n_tok, dtype=np.int64)  # node of the (d-1)-gram ending at i, or -1
    prev_hash = np.zeros(n_tok, dtype=np.uint64)  # hash of the (d-1)-gram ending at i
    for d in range(1, max_depth + 1):
        idx = np.nonzero(pos >= d - 1)[0]
        if d == 1:
            prefix = np.zeros(len(idx), dtype=np.int64)
            hashes = tok[idx].astype(np.uint64) + np.uint64(1)
        else:
            prefix = prev_at[idx - 1]
            hashes = prev_hash[idx - 1] * _HASH_MUL + tok[idx].astype(np.uint64) + np.uint64(1)
            # update-exclusion counts of the previous level: distinct left extensions
            _, first = np.unique(hashes, return_index=True)
            suffix = prev_at[idx[first]]
            ux_prev = np.bincount(suffix[suffix >= 0] - prev_first, minlength=len(uxs[-1]))
            opening = prev_at[np.nonzero(pos == d - 2)[0]]
            ux_prev[np.unique(opening[opening >= 0]) - prev_first] += 1
            uxs[-1] = ux_prev
        live = prefix >= 0
        uniq, inverse, counts = np.unique(
            prefix[live] * vocab_size + tok[idx[live]], return_inverse=True, return_counts=True
        )
        if d >= _PRUNE_DEPTH:
            ranked = np.sort(counts)[::-1]
            room = max_nodes - n_nodes
            if len(ranked) > room:
                threshold = max(threshold, int(ranked[max(room, 0)]) + 1)
        keep = counts >= threshold
        lost_parent.append(uniq[~keep] // vocab_size)
        lost_count.append(counts[~keep])
        new_ids = np.cumsum(keep) - 1 + n_nodes
        at = np.full(n_tok, -1, dtype=np.int64)
        at[idx[live]] = np.where(keep[inverse.reshape(-1)], new_ids[inverse.reshape(-1)], -1)
        parents.append(uniq[keep] // vocab_size)
        symbols.append(uniq[keep] % vocab_size)
        depths.append(np.full(int(keep.sum()), d))
        raws.append(counts[keep])
        uxs.append(counts[keep].copy())  # replaced by the next level, when there is one
        prev_first, n_nodes = n_nodes, n_nodes + int(keep.sum())
        prev_at, prev_hash[idx] = at, hashes
        if not keep.any():
            break
    lp, lc = np.concatenate(lost_parent), np.concatenate(lost_count)
    dropped = np.stack(
        [
            np.bincount(lp, weights=lc, minlength=n_nodes),
            np.bincount(lp, minlength=n_nodes),
            np.bincount(lp, weights=lc == 1, minlength=n_nodes),
        ]
    ).astype(np.int64)
    return _NgramCounts(
        vocab_size,
        np.concatenate(parents),
        np.concatenate(symbols),
        np.concatenate(depths),
        np.concatenate(raws),
        np.concatenate(uxs),
        dropped,
        n_tok,
    )


def _prune_threshold(counts: _NgramCounts, order: int, max_nodes: int) -> int:
    """Smallest count an n-gram of :data:`_PRUNE_DEPTH`+ tokens needs to fit ``max_nodes``.

    A count threshold keeps the tree closed under prefixes and suffixes (neither can be
    rarer than the n-gram), which the streaming context chain relies on.
    """
    in_order = counts.depth <= order + 1
    always = int(np.count_nonzero(in_order & (counts.depth < _PRUNE_DEPTH)))
    deep = np.sort(counts.raw[in_order & (counts.depth >= _PRUNE_DEPTH)])[::-1]
    room = max(0, max_nodes - always)
    if len(deep) <= room:
        return 1
    return int(deep[room]) + 1 if room else int(deep[0]) + 1


def _build_trie(
    counts: _NgramCounts,
    order: int,
    escape: Escape,
    update_exclusion: bool,
    max_nodes: int,
) -> _Trie:
    """The long-term trie of one maximum order: truncated, pruned, compacted."""
    threshold = _prune_threshold(counts, order, max_nodes)
    in_order = counts.depth <= order + 1
    keep = in_order & ((counts.depth < _PRUNE_DEPTH) | (counts.raw >= threshold))
    keep[0] = True
    use_raw = (counts.depth == order + 1) | (not update_exclusion)
    used = np.where(use_raw, counts.raw, counts.ux)
    # what each kept context loses to pruning: its pruned children's counts
    lost = np.nonzero(in_order & ~keep)[0]
    lost = lost[keep[counts.parent[lost]]]
    lost_parent = counts.parent[lost]
    n_all = len(counts.parent)
    pruned = np.stack(
        [
            np.bincount(lost_parent, weights=used[lost], minlength=n_all),
            np.bincount(lost_parent, minlength=n_all),
            np.bincount(lost_parent, weights=used[lost] == 1, minlength=n_all),
        ]
    ).astype(np.int64)
    pruned += np.where(counts.depth <= order, counts.dropped, 0)
    pruned = pruned[:, keep]
    new_id = np.cumsum(keep) - 1
    nodes = np.nonzero(keep)[0][1:]
    n_children = np.bincount(new_id[counts.parent[nodes]], minlength=len(nodes) + 1)
    return _Trie(
        counts.vocab_size,
        order,
        escape,
        counts.symbol[nodes],
        n_children,
        used[nodes],
        pruned,
        threshold,
    )


# --------------------------------------------------------------------------- long term


class _Trie:
    """A frozen, compacted prefix tree of one maximum order (see the module docstring).

    Node ``j >= 1`` has ``symbol[j]``, blending ``count[j]`` (raw at the top level, the
    update-exclusion count below it, unless exclusion is off) and children
    ``child_start[j]:child_start[j + 1]``; ``keys[j - 1] = parent * V + symbol``.
    ``pruned[:, j]`` is what node ``j`` lost to pruning: the total count, the number and
    the number of singletons of its pruned children.
    """

    def __init__(
        self,
        vocab_size: int,
        order: int,
        escape: Escape,
        symbols: np.ndarray,
        n_children: np.ndarray,
        counts: np.ndarray,
        pruned: np.ndarray | None = None,
        threshold: int = 1,
    ) -> None:
        n = len(n_children)
        if pruned is None:
            pruned = np.zeros((3, n), dtype=np.int64)
        if not 1 <= vocab_size <= np.iinfo(np.int16).max:
            raise ValueError(f"vocabulary size {vocab_size} outside 1..32767")
        if (
            len(symbols) != n - 1
            or len(counts) != n - 1
            or int(n_children.sum()) != n - 1
            or pruned.shape != (3, n)
        ):
            raise ValueError("inconsistent Markov trie arrays")
        self.vocab_size = vocab_size
        self.order = order
        self.escape: Escape = escape
        self.threshold = threshold
        self.n_children = np.asarray(n_children, dtype=np.int64)
        self.pruned = np.asarray(pruned, dtype=np.int64)
        parent = np.repeat(np.arange(n, dtype=np.int64), self.n_children)
        self.keys = parent * vocab_size + np.asarray(symbols, dtype=np.int64)
        if len(self.keys) and (np.any(np.diff(self.keys) <= 0) or symbols.min() < 0):
            raise ValueError("Markov trie arrays are not in breadth-first order")
        if len(symbols) and symbols.max() >= vocab_size:
            raise ValueError("Markov trie symbol outside the vocabulary")
        self.symbol = np.concatenate([[-1], symbols]).astype(np.int64)
        self.raw = np.asarray(counts, dtype=np.int64)
        raw_count = np.concatenate([[0.0], counts]).astype(np.float64)
        self.child_start = np.concatenate([[1], 1 + np.cumsum(self.n_children)])
        total = np.bincount(parent, weights=raw_count[1:], minlength=n) + self.pruned[0]
        single = np.bincount(parent, weights=raw_count[1:] == 1, minlength=n) + self.pruned[2]
        distinct = self.n_children + self.pruned[1]
        discount, self.escape_w, self.denom = _blend_params(
            total, distinct, single, self.n_children, self.pruned[0], escape
        )
        self.count = np.where(raw_count > 0, raw_count - discount, 0.0)
        self.depth = np.zeros(n, dtype=np.int64)
        lo, hi, d = 1, int(self.child_start[1]), 1
        while lo < hi:
            self.depth[lo:hi] = d
            lo, hi, d = hi, int(self.child_start[hi]), d + 1

    @property
    def nodes(self) -> int:
        return len(self.n_children)

    @property
    def contexts(self) -> int:
        """Nodes that can be contexts (the top level only holds counts); they come first."""
        return int(np.searchsorted(self.depth, self.order, side="right"))

    def children(self, parents: np.ndarray, symbols: np.ndarray) -> np.ndarray:
        """Node of each (parent, symbol), -1 where absent (or where parent is -1)."""
        query = parents * self.vocab_size + symbols
        idx = np.searchsorted(self.keys, query)
        idx = np.minimum(idx, max(len(self.keys) - 1, 0))
        found = (parents >= 0) & (len(self.keys) > 0)
        if len(self.keys):
            found &= self.keys[idx] == query
        return np.where(found, idx + 1, -1)

    def chain_after(self, chain: tuple[int, ...], token: int) -> tuple[int, ...]:
        """Context chain (node of the last k tokens, k = 0, 1, ...) after one more token."""
        extendable = np.array(chain[: self.order], dtype=np.int64)
        nxt = self.children(extendable, np.full(len(extendable), token))
        missing = np.nonzero(nxt < 0)[0]
        depth = int(missing[0]) if len(missing) else len(nxt)
        return (0, *nxt[:depth].tolist())

    def probs(self, chain: tuple[int, ...]) -> np.ndarray:
        """Blended distribution (float64) of the next token after a context chain."""
        p = np.full(self.vocab_size, 1.0 / self.vocab_size)
        for node in chain:
            lo, hi = self.child_start[node], self.child_start[node + 1]
            if lo == hi:
                continue
            denom = self.denom[node]
            p *= self.escape_w[node] / denom
            p[self.symbol[lo:hi]] += self.count[lo:hi] / denom
        return p

    def score(self, seqs: list[np.ndarray]) -> np.ndarray:
        """Natural-log probability of every token given its sequence's earlier tokens,
        each sequence from a fresh stream; all positions at once."""
        tok, pos = _flatten(seqs)
        p = np.full(len(tok), 1.0 / self.vocab_size)
        ctx = np.zeros(len(tok), dtype=np.int64)
        for k in range(self.order + 1):
            if k:
                prev = np.full(len(tok), -1, dtype=np.int64)
                idx = np.nonzero(pos >= k)[0]
                prev[idx] = self.children(ctx[idx - 1], tok[idx - 1])
                ctx = prev
            safe = np.maximum(ctx, 0)
            live = (ctx >= 0) & (self.n_children[safe] > 0)
            target = self.children(np.where(live, ctx, -1), tok)
            c = np.where(target >= 0, self.count[np.maximum(target, 0)], 0.0)
            blended = (c + self.escape_w[safe] * p) / np.where(live, self.denom[safe], 1.0)
            p = np.where(live, blended, p)
        out: np.ndarray = np.log(p)
        return out


# --------------------------------------------------------------------------- short term


class _ShortTerm:
    """A small, growing PPM model of what the performer played in this session."""

    def __init__(self, vocab_size: int, order: int, escape: Escape) -> None:
        self.vocab_size = vocab_size
        self.order = order
        self.escape: Escape = escape
        self.contexts: dict[tuple[int, ...], dict[int, int]] = {}
        self._cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, float]] = {}
        self._recent: deque[Sequence[int]] = deque()
        self._recent_tokens = 0
        self.tokens = 0

    def learn(self, seq: Sequence[int]) -> None:
        """Learn a call; past :data:`SESSION_CONTEXTS` contexts the model is rebuilt
        from the last :data:`SESSION_TOKENS` tokens learned, so a long gig (or a flood
        of notes in one call) stays bounded."""
        seq = seq[-SESSION_TOKENS:]
        self._recent.append(seq)
        self._recent_tokens += len(seq)
        while self._recent_tokens > SESSION_TOKENS:
            self._recent_tokens -= len(self._recent.popleft())
        self._count(seq)
        if len(self.contexts) > SESSION_CONTEXTS:
            self.contexts, self.tokens = {}, 0
            for recent in self._recent:
                self._count(recent)
        self._cache.clear()

    def _count(self, seq: Sequence[int]) -> None:
        """Online PPM update with update exclusion: count a token from the longest
        context down to the first one that had already seen it."""
        for i, token in enumerate(seq):
            for k in range(min(i, self.order), -1, -1):
                counts = self.contexts.setdefault(tuple(seq[i - k : i]), {})
                seen = token in counts
                counts[token] = counts.get(token, 0) + 1
                if seen:
                    break
        self.tokens += len(seq)

    def probs(self, history: tuple[int, ...]) -> np.ndarray:
        p = np.full(self.vocab_size, 1.0 / self.vocab_size)
        for k in range(min(len(history), self.order) + 1):
            blend = self._blend(history[len(history) - k :])
            if blend is None:
                break  # every longer context is unseen too
            symbols, alpha, gamma = blend
            p *= gamma
            p[symbols] += alpha
        return p

    def _blend(self, context: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, float] | None:
        """A context's symbols, their blending weights and its escape weight (cached)."""
        cached = self._cache.get(context)
        if cached is not None:
            return cached
        counts = self.contexts.get(context)
        if not counts:
            return None
        symbols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        values = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        distinct = np.array([len(counts)])
        discount, esc, denom = _blend_params(
            np.array([values.sum()]),
            distinct,
            np.array([np.count_nonzero(values == 1)]),
            distinct,
            np.zeros(1),
            self.escape,
        )
        cached = (symbols, (values - discount) / denom[0], float(esc[0] / denom[0]))
        self._cache[context] = cached
        return cached


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class _Stream:
    chain: tuple[int, ...]  # long-term context nodes, order 0 upwards
    recent: tuple[int, ...]  # last tokens, for the short-term model


class MarkovModel:
    """PPM-blended variable-order Markov model; a :class:`~improv.model.api.StreamingLM`,
    :class:`~improv.model.api.OnlineLearner` and :class:`~improv.model.api.SequenceScorer`.

    ``session_weight`` is the share of the session model (what :meth:`learn` learned) in
    the next-token distribution; raise it to make the model echo the performer more.
    """

    def __init__(
        self,
        trie: _Trie,
        *,
        stm_order: int | None = None,
        session_weight: float = DEFAULT_SESSION_WEIGHT,
    ) -> None:
        if not 0.0 <= session_weight <= 1.0:
            raise ValueError(f"session weight must lie in [0, 1]: {session_weight}")
        self._trie = trie
        self._stm = _ShortTerm(
            trie.vocab_size, trie.order if stm_order is None else stm_order, trie.escape
        )
        self.session_weight = session_weight
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._stream = _Stream((0,), ())
        self._out: np.ndarray | None = None
        self._packed: dict[str, bytes] | None = None
        self.info: dict[str, Any] = {}

    # -- construction -----------------------------------------------------------------

    @classmethod
    def from_sequences(
        cls,
        sequences: Iterable[TokenSeq],
        vocab_size: int,
        order: int,
        *,
        escape: Escape = "c",
        update_exclusion: bool = True,
        max_nodes: int = DEFAULT_MAX_NODES,
    ) -> MarkovModel:
        """Fit one given maximum order (no validation); see :func:`fit_markov`."""
        seqs = _as_sequences(sequences, vocab_size)
        counts = _count_ngrams(seqs, vocab_size, order + 1, _WORK_FACTOR * max_nodes)
        model = cls(_build_trie(counts, order, escape, update_exclusion, max_nodes))
        model.info = {"train_tokens": counts.tokens, "update_exclusion": update_exclusion}
        return model

    # -- StreamingLM ------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"markov-o{self._trie.order}"

    @property
    def vocab_size(self) -> int:
        return self._trie.vocab_size

    @property
    def order(self) -> int:
        return self._trie.order

    def reset(self) -> None:
        self._stream = _Stream((0,), ())
        self._out = None

    def advance(self, tokens: Sequence[int]) -> None:
        if not len(tokens):
            return
        chain, recent = self._stream.chain, self._stream.recent
        for token in tokens:
            t = int(token)
            if not 0 <= t < self.vocab_size:
                raise ValueError(f"token id {t} outside 0..{self.vocab_size - 1}")
            chain = self._trie.chain_after(chain, t)
            recent = (*recent, t)[-self._stm.order :] if self._stm.order else ()
        self._stream = _Stream(chain, recent)
        self._out = None

    def next_log_probs(self) -> np.ndarray:
        if self._out is None:
            p = self._long_term(self._stream.chain)
            if self._stm.tokens:
                w = self.session_weight
                p = (1.0 - w) * p + w * self._stm.probs(self._stream.recent)
            self._out = np.log(p).astype(np.float32)
        return self._out

    def snapshot(self) -> object:
        return self._stream

    def restore(self, state: object) -> None:
        if not isinstance(state, _Stream):
            raise TypeError("not a Markov model snapshot")
        self._stream = state
        self._out = None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "markov",
            "order": self._trie.order,
            "escape": self._trie.escape,
            "nodes": self._trie.nodes,
            "prune_threshold": self._trie.threshold,
            "session_tokens": self._stm.tokens,
            "session_contexts": len(self._stm.contexts),  # bounded: SESSION_CONTEXTS
            **self.info,
        }

    # -- OnlineLearner / SequenceScorer ------------------------------------------------

    def learn(self, tokens: Sequence[int]) -> None:
        """Add a sequence (the performer's last call) to the short-term model."""
        seq = [int(t) for t in tokens]
        bad = [t for t in seq if not 0 <= t < self.vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} outside 0..{self.vocab_size - 1}")
        self._stm.learn(seq)
        self._out = None

    def forget(self) -> None:
        """Drop what was learned in the session (a new performer, a new session)."""
        self._stm = _ShortTerm(self.vocab_size, self._stm.order, self._stm.escape)
        self._out = None

    def score(self, tokens: Sequence[int]) -> np.ndarray:
        seqs = _as_sequences([tokens], self.vocab_size)
        if not self._stm.tokens:
            return self._trie.score(seqs)
        saved = self._stream
        self.reset()
        out = np.empty(len(tokens), dtype=np.float64)
        for i, token in enumerate(seqs[0].tolist()):
            out[i] = float(self.next_log_probs()[token])
            self.advance((token,))
        self.restore(saved)
        return out

    def score_many(self, sequences: Iterable[TokenSeq]) -> list[np.ndarray]:
        """:meth:`score` of many sequences at once (long-term model only)."""
        seqs = _as_sequences(sequences, self.vocab_size)
        flat = self._trie.score(seqs)
        return np.split(flat, np.cumsum([len(s) for s in seqs])[:-1]) if seqs else []

    # -- internals --------------------------------------------------------------------

    def _long_term(self, chain: tuple[int, ...]) -> np.ndarray:
        key = chain[-1]
        p = self._cache.get(key)
        if p is None:
            p = self._trie.probs(chain)
            self._cache[key] = p
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return p

    # -- serialisation ----------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Plain tensors and scalars, loadable with ``torch.load(weights_only=True)``.

        The trie's arrays are stored compressed (xz) as uint8 tensors: mostly small
        counts and zeros, they shrink about tenfold. The long-term model only: what was
        learned in a session is not kept.
        """
        import torch

        if self._packed is None:
            trie = self._trie
            self._packed = {
                name: lzma.compress(np.ascontiguousarray(arr, dtype=_PACKED[name]).tobytes())
                for name, arr in (
                    ("symbols", trie.symbol[1:]),
                    ("n_children", trie.n_children),
                    ("counts", trie.raw),
                    ("pruned", trie.pruned[:, : trie.contexts].reshape(-1)),
                )
            }
        return {
            "format": STATE_FORMAT,
            "vocab_size": self._trie.vocab_size,
            "order": self._trie.order,
            "escape": self._trie.escape,
            "threshold": self._trie.threshold,
            "stm_order": self._stm.order,
            "session_weight": self.session_weight,
            "arrays": {
                name: torch.frombuffer(bytearray(blob), dtype=torch.uint8)
                for name, blob in self._packed.items()
            },
            "info": dict(self.info),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MarkovModel:
        """Rebuild from :meth:`to_state`; a clear ``ValueError`` for anything else."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a Markov model state (expected format {STATE_FORMAT!r})")
        try:
            escape = state["escape"]
            if escape not in ESCAPES:
                raise ValueError(f"unknown escape method {escape!r}")
            budget = [MAX_STATE_BYTES]
            arrays = {
                name: np.frombuffer(
                    _inflate(np.asarray(state["arrays"][name], dtype=np.uint8).tobytes(), budget),
                    dtype=dtype,
                ).astype(np.int64)
                for name, dtype in _PACKED.items()
            }
            trie = _Trie(
                int(state["vocab_size"]),
                int(state["order"]),
                escape,
                arrays["symbols"],
                arrays["n_children"],
                arrays["counts"],
                _pad_columns(arrays["pruned"].reshape(3, -1), len(arrays["n_children"])),
                int(state["threshold"]),
            )
            model = cls(
                trie,
                stm_order=int(state["stm_order"]),
                session_weight=float(state.get("session_weight", DEFAULT_SESSION_WEIGHT)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"incomplete Markov model state: {exc}") from exc
        except lzma.LZMAError as exc:
            raise ValueError(f"corrupt Markov model state: {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"unusable Markov model state: {exc}") from exc
        model.info = dict(state.get("info", {}))
        return model


def _inflate(blob: bytes, budget: list[int]) -> bytes:
    """xz-decompress at most ``MAX_RATIO`` times the input (or ``MIN_LIMIT``) and what
    is left of ``budget[0]`` (then lowered): a crafted checkpoint cannot inflate to GB."""
    limit = min(budget[0], max(MIN_LIMIT, MAX_RATIO * len(blob)))
    decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    out = decompressor.decompress(blob, max_length=limit)
    if not decompressor.eof and len(out) < limit:
        raise lzma.LZMAError("compressed data ends early")
    if not decompressor.eof:
        raise ValueError(
            f"an array inflates past {limit:,} bytes ({len(blob):,} compressed): not a real model"
        )
    budget[0] -= len(out)
    return out


def _pad_columns(arr: np.ndarray, width: int) -> np.ndarray:
    """``arr`` widened with zero columns to ``width`` (pruning data stops at the leaves)."""
    out = np.zeros((arr.shape[0], width), dtype=arr.dtype)
    out[:, : arr.shape[1]] = arr
    return out


# --------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class MarkovFit:
    """A fitted model and the validation figures that chose its maximum order."""

    model: MarkovModel
    val_bits: dict[int, float] = field(default_factory=dict)  # order -> bits per token
    order: int = 0


def fit_markov(
    train: Iterable[TokenSeq],
    val: Iterable[TokenSeq],
    vocab_size: int,
    *,
    orders: Iterable[int] = range(1, 12),
    escape: Escape = "c",
    update_exclusion: bool = True,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> MarkovFit:
    """Count n-grams once, then pick the maximum order with the fewest validation bits.

    Each candidate order is pruned to ``max_nodes`` before it is scored, so the figures
    are those of the model that is kept.
    """
    candidates = sorted(set(orders))
    if not candidates or candidates[0] < 0:
        raise ValueError("orders must be non-negative and not empty")
    train_seqs = _as_sequences(train, vocab_size)
    val_seqs = [s for s in _as_sequences(val, vocab_size) if len(s)]
    if len(candidates) > 1 and not val_seqs:
        raise ValueError("validation sequences are needed to choose the maximum order")
    counts = _count_ngrams(train_seqs, vocab_size, candidates[-1] + 1, _WORK_FACTOR * max_nodes)
    val_tokens = sum(len(s) for s in val_seqs)
    val_bits: dict[int, float] = {}
    best: _Trie | None = None
    for order in candidates:
        trie = _build_trie(counts, order, escape, update_exclusion, max_nodes)
        if val_seqs:
            bits = float(-trie.score(val_seqs).sum() / math.log(2) / val_tokens)
            val_bits[order] = bits
            if best is None or bits < val_bits[best.order]:
                best = trie
        else:
            best = trie
    assert best is not None
    model = MarkovModel(best)
    model.info = {
        "train_tokens": counts.tokens,
        "val_tokens": val_tokens,
        "update_exclusion": update_exclusion,
        "val_bits_per_token": {str(k): round(v, 4) for k, v in val_bits.items()},
    }
    return MarkovFit(model, val_bits, best.order)
