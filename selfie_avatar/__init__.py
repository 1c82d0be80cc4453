"""selfie_avatar: one selfie video in, a real-time animatable head avatar out.

Stages (data flows one way): ``io`` -> ``prepare`` (with ``face_model`` and ``render``) -> ``models`` and
``losses`` -> ``training`` -> ``reenact`` / ``evaluate`` -> ``viz``. See ``docs/architecture.md``.
"""

__version__ = "0.1.0"
