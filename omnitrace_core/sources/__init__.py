"""Source units: the things a generated sentence can be attributed to.

Units are text sentences, whole images, and time bins of audio and video. Each unit is made of
*atoms*, the finest cells the engine keeps per generated token: the unit itself for text and
audio, one atom per merged-patch tile for images (for tile heat maps), and a visual and an audio
atom per video bin (so a video bin shows which track supported it). Every prompt position maps
to at most one atom; template and special tokens map to none.
"""

from .builder import SourceSet, SourceUnit, build_sources

__all__ = ["SourceSet", "SourceUnit", "build_sources"]
