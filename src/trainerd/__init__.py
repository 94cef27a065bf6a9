"""trainerd: keep a small language model learning from an inbox of JSONL chat data."""

__version__ = "0.1.0"
