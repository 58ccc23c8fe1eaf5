"""Reading one JSON file a user named, with errors that say what is wrong with it.

In: a path, what the file is (for the message, e.g. "space file") and the error class the
caller reports as bad input. Out: the parsed JSON value, or that error naming the file and
the problem (not UTF-8, unreadable, not JSON), never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_json(path: str | Path, what: str, error: type[Exception] = ValueError):
    """The JSON value in ``path``; ``error`` naming ``what`` and the file when it is unusable."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise error(f"{what} {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise error(f"{what} {path} cannot be read: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise error(f"{what} {path} is not valid JSON: {e}") from None
