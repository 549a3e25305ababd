"""improv: a real-time blues improvisation partner for musicians."""

__version__ = "0.1.0"
