"""Recordings: every snapshot the engine made, written by one poller and read by any
number of viewers, live or later (`store` for the file, `codec` for the data in it)."""

from .store import Recorder, Recording, RecordingError

__all__ = ["Recorder", "Recording", "RecordingError"]
