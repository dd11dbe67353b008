"""A pytest plugin that reports tests done/total to the runner on a pipe of its own.

The runner copies this file into the run's temp dir as `scaledash_pytest_progress`,
puts that dir on PYTHONPATH and loads it with `-p`, so it works with any pytest the
suite's command runs (a configured suite may use another venv). It imports nothing
from scaledash for that reason. Progress goes to the file descriptor named by
SCALEDASH_PROGRESS_FD as lines "<done> <total>", never to the suite's output, so the
output a user reads is the suite's own. Without that variable it does nothing.
"""

import os

_FD_VARIABLE = "SCALEDASH_PROGRESS_FD"


class _Progress:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.total = 0
        self.done = 0

    def write(self) -> None:
        try:
            os.write(self.fd, f"{self.done} {self.total}\n".encode())
        except OSError:     # the runner went away or closed its end: progress is optional
            self.fd = -1

    def pytest_collection_finish(self, session) -> None:
        self.total = len(session.items)
        self.write()

    def pytest_runtest_logfinish(self, nodeid, location) -> None:
        self.done += 1
        if self.fd >= 0:
            self.write()


def pytest_configure(config) -> None:
    value = os.environ.get(_FD_VARIABLE, "")
    # Only the main process reports: xdist workers would each count their share.
    if value.isdigit() and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Progress(int(value)), "scaledash-progress")
