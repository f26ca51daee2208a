"""A process whose wall clock steps, as an NTP step or an operator's `date -s` does: its
``time.time`` and ``datetime.now`` move, its monotonic clock does not (libfaketime cannot do
that here: with monotonic time left alone, its ``clock_nanosleep`` fails with EINVAL).

The step is read from a file the test writes (seconds, re-read every 0.1 s), or taken once,
``CLOCK_STEP`` seconds, ``CLOCK_STEP_AFTER`` seconds after the process starts.
"""

from __future__ import annotations

from pathlib import Path

SITECUSTOMIZE = """
import datetime as _datetime
import os as _os
import time as _time

_real_time, _real_time_ns, _real_monotonic = _time.time, _time.time_ns, _time.monotonic
_file = _os.environ.get("CLOCK_STEP_FILE")
_after = _real_monotonic() + float(_os.environ.get("CLOCK_STEP_AFTER", "0"))
_step = float(_os.environ.get("CLOCK_STEP", "0"))
_read = [0.0, 0.0]  # when the file was read, what it said


def _offset():
    if _file is None:
        return _step if _real_monotonic() >= _after else 0.0
    if _real_monotonic() - _read[0] >= 0.1:
        try:
            with open(_file) as f:
                _read[1] = float(f.read() or 0)
        except (OSError, ValueError):
            pass
        _read[0] = _real_monotonic()
    return _read[1]


_time.time = lambda: _real_time() + _offset()
_time.time_ns = lambda: _real_time_ns() + int(_offset() * 1e9)


class _Stepped(_datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return _datetime.datetime.fromtimestamp(_time.time(), tz)


_datetime.datetime = _Stepped
"""


def stepped(root: Path) -> str:
    """The PYTHONPATH for a process with a stepping clock; give it ``CLOCK_STEP_FILE=...``, or
    ``CLOCK_STEP=...`` and ``CLOCK_STEP_AFTER=...``."""
    (root / "stepped").mkdir(exist_ok=True)
    (root / "stepped" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return str(root / "stepped")
