"""Job leases: several API instances share one job repository, and each job is run by exactly one.

- The instance running a job is its `owner`; it renews the lease by saving the job's record at least
  every `renew_every` seconds (a heartbeat when there is no progress to record). Every save is a
  compare-and-set (job_records/base.py), so of two instances changing a job, one wins and the other
  learns it.
- Another instance takes a job over when it has seen the job's record unchanged (same revision) for
  a whole lease, measured by its own clock: no clock has to agree with another machine's. It claims
  the job with a compare-and-set and resumes it after the last confirmed event.
- An owner that could not renew for `pause_after` (less than a lease) publishes nothing more until it
  renews: by the time anyone may take the job over, the old owner has stopped sending; if the job was
  taken over meanwhile, its next save fails and its run ends without touching the record.
"""
from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class LeasePolicy:
    duration: float = 15.0  # JOB_LEASE_S: a record unchanged this long means its owner stopped

    @property
    def renew_every(self) -> float:
        return self.duration / 5

    @property
    def pause_after(self) -> float:
        return self.duration * 0.6


def instance_name(configured: str = "") -> str:
    """The name this process runs jobs under: INSTANCE_NAME, or host:pid plus a random suffix (a
    restarted container may get the same host name and pid 1; it must not pass for its predecessor)."""
    if configured.strip():
        return f"{configured.strip()}:{secrets.token_hex(2)}"
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
