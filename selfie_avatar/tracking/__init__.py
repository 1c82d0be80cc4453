"""tracking: the tracked head, the vocabulary every stage above ``prepare`` shares.

``subject`` is the subject folder (its format, reader and writer helpers, the train/validation/test split);
``status`` is what a frame's tracking found (detected, bridged, missing) and the face's size; ``crop`` the one
crop box of a clip; ``codes`` the one form of head codes (``HeadCodes``, ``TorchCodes``); ``pose`` the one path
from codes to posed vertices, landmarks, ``I_R`` and ``I_UV``. ``prepare`` writes these; training, reenact,
evaluate and viz read them without depending on the video pipeline.
"""

from selfie_avatar.tracking.subject import Split, Subject, split_frames

__all__ = ["Split", "Subject", "split_frames"]
