"""tracking: the tracked head, the vocabulary every stage above ``prepare`` shares.

``subject`` is the subject folder (its format, reader and writer helpers, the train/validation/test split);
``status`` is what a frame's tracking found (detected, bridged, missing) and the face's size. ``prepare`` writes
these; training, reenact, evaluate and viz read them without depending on the video pipeline.
"""

from selfie_avatar.tracking.subject import Split, Subject, split_frames

__all__ = ["Split", "Subject", "split_frames"]
