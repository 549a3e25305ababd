"""The token language improv's models speak, encoded and decoded as the music happens.

One vocabulary serves performer and agent alike, so a model learns how one player answers
another. A stream reads left to right in time: ``BAR`` crosses a bar line, ``POS_t`` sets the
position in the bar (ticks), ``CHORD_r_q`` states the chord in force (root relative to the
key), a note is ``VEL PITCH DUR+``, and ``PHRASE_PERFORMER`` / ``PHRASE_AGENT`` ...
``PHRASE_END`` delimit phrases. Encoding is incremental (live note events in, the tokens
they determine out, never waiting for the future) and so is decoding (tokens in, playable
note events out as soon as they are determined). Pure: no torch, mido or asyncio.
See ``docs/tokens.md`` for the grammar and an example.

Parts: ``vocab`` (the table), ``encoder``, ``grammar`` (next-token masks), ``decoder``,
``phrases`` (whole phrases and solos). Their public names are re-exported here.
"""

from __future__ import annotations

from improv.tokens.decoder import (
    BarLine as BarLine,
)
from improv.tokens.decoder import (
    DecodedEvent as DecodedEvent,
)
from improv.tokens.decoder import (
    NoteEnd as NoteEnd,
)
from improv.tokens.decoder import (
    NoteStart as NoteStart,
)
from improv.tokens.decoder import (
    PhraseEnd as PhraseEnd,
)
from improv.tokens.decoder import (
    PhraseStart as PhraseStart,
)
from improv.tokens.decoder import (
    StreamDecoder as StreamDecoder,
)
from improv.tokens.decoder import (
    chord_change_parts as chord_change_parts,
)
from improv.tokens.encoder import (
    ChordSource as ChordSource,
)
from improv.tokens.encoder import (
    StreamEncoder as StreamEncoder,
)
from improv.tokens.grammar import (
    ALLOWED_KINDS as ALLOWED_KINDS,
)
from improv.tokens.grammar import (
    GrammarState as GrammarState,
)
from improv.tokens.grammar import (
    Phase as Phase,
)
from improv.tokens.grammar import (
    allowed_mask as allowed_mask,
)
from improv.tokens.phrases import (
    RoleSpec as RoleSpec,
)
from improv.tokens.phrases import (
    decode_phrase as decode_phrase,
)
from improv.tokens.phrases import (
    encode_phrase as encode_phrase,
)
from improv.tokens.phrases import (
    encode_solo as encode_solo,
)
from improv.tokens.vocab import (
    CHORD_QUALITIES as CHORD_QUALITIES,
)
from improv.tokens.vocab import (
    DEFAULT_VELOCITY_BIN as DEFAULT_VELOCITY_BIN,
)
from improv.tokens.vocab import (
    MAX_BAR_TICKS as MAX_BAR_TICKS,
)
from improv.tokens.vocab import (
    MAX_DUR_TICKS as MAX_DUR_TICKS,
)
from improv.tokens.vocab import (
    ROLES as ROLES,
)
from improv.tokens.vocab import (
    TOKENIZER_VERSION as TOKENIZER_VERSION,
)
from improv.tokens.vocab import (
    VOCAB as VOCAB,
)
from improv.tokens.vocab import (
    Kind as Kind,
)
from improv.tokens.vocab import (
    Role as Role,
)
from improv.tokens.vocab import (
    Vocab as Vocab,
)
from improv.tokens.vocab import (
    vocab_fingerprint as vocab_fingerprint,
)
