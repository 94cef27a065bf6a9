"""Fixtures shared by the daemon's unit tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def daemon_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture trainerd.daemon records even when another test turned off propagation of `trainerd`."""
    logger = logging.getLogger("trainerd.daemon")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.INFO)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(previous)
