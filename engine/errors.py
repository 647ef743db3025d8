"""The project's error hierarchy.

Every deliberate failure is a :class:`GlioWatchError` that says what happened in plain words,
which exam it concerns (pseudonymous key + scan date, never a name), what to do next, and
technical detail for operators. ``retryable`` tells the flow layer whether trying again can help.
"""

from __future__ import annotations


class GlioWatchError(Exception):
    """Base class of every deliberate GlioWatch failure."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        exam: str | None = None,
        action: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exam = exam
        self.action = action
        self.detail = detail

    def __str__(self) -> str:
        parts = [self.message]
        if self.exam:
            parts.append(f"[{self.exam}]")
        if self.action:
            parts.append(f"Next: {self.action}")
        return " ".join(parts)

    @property
    def reason(self) -> str:
        """One line for a quarantine row or a log: the message and the exam."""
        return f"{self.message} [{self.exam}]" if self.exam else self.message


class ConfigError(GlioWatchError):
    """A settings file or environment variable is invalid."""


class ArchiveUnavailableError(GlioWatchError):
    """The archive (Orthanc) cannot be reached right now."""

    retryable = True


class ArchiveError(GlioWatchError):
    """The archive answered, but not with what we need."""


class DicomError(GlioWatchError):
    """A DICOM file or series cannot be turned into a valid volume."""


class InvalidSeriesError(DicomError):
    """A series is not one regular 3D volume (tilt, gaps, mixed orientation, ...)."""


class MissingSequenceError(GlioWatchError):
    """A study lacks a sequence that a step needs."""


class SegmentationError(GlioWatchError):
    """Segmentation failed or produced an implausible result."""


class RegistrationError(GlioWatchError):
    """Registration failed or did not pass its quality check."""


class AssessmentError(GlioWatchError):
    """Response assessment cannot be computed from the given data."""


class StoreError(GlioWatchError):
    """The DuckDB store refused an operation."""


class AlertDeliveryError(GlioWatchError):
    """An alert sink did not accept an alert."""

    retryable = True


class WriteBackError(GlioWatchError):
    """A result cannot be written back as a DICOM object (e.g. labels not on the grid of the
    source series they must reference)."""
