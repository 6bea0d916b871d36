"""Worker processes that end with the process that made them.

A `ProcessPoolExecutor` worker blocks reading its task queue; if its parent is killed
(SIGKILL, the out-of-memory killer) it is re-parented and waits forever. Started with
`exit_with_parent` as its initializer, it exits within `POLL_S` of its parent's death."""

from __future__ import annotations

import os
import threading
import time
from typing import Final

POLL_S: Final = 1.0


def exit_with_parent(parent_pid: int) -> None:
    """The initializer of a pool worker made by `parent_pid`: a daemon thread that ends the
    worker once its parent is gone (it then has another parent)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="ftq-exit-with-parent", daemon=True).start()
