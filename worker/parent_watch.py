"""A child process that ends with its parent, even when the parent was killed (nothing else would tell it)."""

import logging
import os
import threading
import time

log = logging.getLogger("gxft.worker")


def exit_with_parent(parent_pid: int, who: str) -> None:
    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                log.info("the parent process is gone; %s stops", who)
                os._exit(0)
            time.sleep(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
