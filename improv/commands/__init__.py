"""Subcommands of ``improv``; see :mod:`improv.cli` for the contract."""
