"""Training data: MIDI files with chord markers -> solos, phrases and call/response pairs.

Modules, each with one job: ``reader`` (one MIDI file -> Solo, its bytes read by
:mod:`improv.smf`), ``index`` (solos.csv), ``folder`` (a folder, with skipped files),
``phrases`` (segmentation, pairs), ``augment`` (transposition), ``split`` (by tune),
``generator`` (rule-based blues phrases and answers), ``synthetic`` (a generated
WJazzD-style corpus), ``writer`` (Solo -> MIDI file), ``stats``. Nothing is imported
here, so a user of one module loads that module alone.
"""
