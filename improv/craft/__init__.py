"""What a player knows, pure: scores, transforms and parts, never a port, thread or clock.

- :mod:`improv.craft.situation`: what an answer answers (the call, the chords, the window).
- :mod:`improv.craft.critic`: scores a candidate answer the way a musician listens.
- :mod:`improv.craft.motif`: cells of the call, developed as players do (seeds for answers).
- :mod:`improv.craft.dynamics`: velocity and articulation that follow the call and the line.
- :mod:`improv.craft.measures`: the measures the critic and ``improv eval`` share.
- :mod:`improv.craft.rules`: a rule-based blues improviser (the last-resort answer, the
  demo's generated calls, the synthetic corpus).
- :mod:`improv.craft.band`: the rhythm section's parts (walking bass, drums, comping
  piano), bar by bar.
"""
