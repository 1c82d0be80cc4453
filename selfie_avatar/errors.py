"""Exceptions that carry a message meant for the user: what went wrong, with which file, and what to do."""


class SelfieAvatarError(Exception):
    """Base class for errors the command line reports without a traceback."""


class VideoError(SelfieAvatarError):
    """A video cannot be opened or decoded (missing, not a video, corrupt, too short)."""


class NoFaceError(SelfieAvatarError):
    """No usable face was found where one is needed."""


class AssetMissingError(SelfieAvatarError):
    """A model file (weights, landmarker, segmenter, licensed face model) is not available locally."""


class SubjectError(SelfieAvatarError, ValueError):
    """A subject folder is damaged or of another format (a ValueError too, as it was before it had its own class)."""
