"""Where replay jobs are kept: beside the archived events, in the same backend, so that the history
survives a restart and several API instances can share it. One module per backend; the pair of
event store and job repository is built together from EVENT_STORE_URL by eventreplay/backends.py."""
from eventreplay.replay.job_records.base import JobChanged, JobRepository

__all__ = ["JobChanged", "JobRepository"]
