"""Models of the token language: neural (LSTM, transformer), Markov, sampling, training.

Torch and numpy only (no asyncio, mido or MQTT), so everything here runs in a plain
script. Where to look:

- :mod:`improv.model.api`: ``StreamingLM``, the streaming interface all models speak.
- :mod:`improv.model.lstm`, :mod:`improv.model.transformer`: the networks and their
  numpy streaming steps; :mod:`improv.model.build`: sizes and construction.
- :mod:`improv.model.markov`: the variable-order Markov baseline and fallback.
- :mod:`improv.model.sampling`: ``ResponseSampler``, masks, temperature and top-p.
- :mod:`improv.model.checkpoint`: ``load_model``; :mod:`improv.model.registry`:
  ``DEFAULT_MODEL`` and the shipped checkpoints in ``models/``.
- :mod:`improv.model.train`, :mod:`improv.model.dataset`: ``improv train``;
  :mod:`improv.model.speed`: ``improv bench model``.
"""
