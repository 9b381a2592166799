"""Room for many connections: the process's open-file limit, raised towards what its server's
connection limit needs. A default soft limit of 1024 would cap the connections (API_MAX_CONNECTIONS,
UI_MAX_CONNECTIONS) long before their settings do; a process may raise its own soft limit up to the
hard one."""
from __future__ import annotations

import resource

# Files a server needs besides its connections: the listening socket, wake-up pipes, the store and
# broker connections, logs, the interpreter's own.
SPARE_FILES = 64


def raise_open_file_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted`; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def connections_allowed(wanted: int) -> int:
    """`wanted` connections, or as many as the open-file limit can hold once raised."""
    files = raise_open_file_limit(wanted + SPARE_FILES)
    if files == resource.RLIM_INFINITY or files - SPARE_FILES >= wanted:
        return wanted
    return max(10, files - SPARE_FILES)
