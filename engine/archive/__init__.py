"""Where studies come from: one ``Archive`` protocol, two implementations.

``OrthancArchive`` talks to an Orthanc server through orthanc-api-client; ``FolderArchive`` serves a
folder of DICOM files the same way, for offline replays.
"""

from engine.archive.protocol import Archive, ArchiveChange, ChangeBatch, SeriesInfo, StudyInfo

__all__ = ["Archive", "ArchiveChange", "ChangeBatch", "SeriesInfo", "StudyInfo"]
