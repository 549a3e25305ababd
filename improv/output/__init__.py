"""The scheduled sender: every outgoing MIDI message at its absolute time.

- :mod:`improv.output.scheduler`: the in-process scheduler (a sending thread, a heap of
  timed messages, note-off bookkeeping, barge-in cuts, panic).
- :mod:`improv.output.sender`: the same in a process of its own (``OutputSpec``,
  ``ProcessScheduler``), so no thread of the jam's process can delay a note.
- :mod:`improv.output.standby`: a second sending thread for a vCPU the host did not run.

It imports nothing of :mod:`improv.engine`: the engine hands it timed messages and
reads its reports.
"""
