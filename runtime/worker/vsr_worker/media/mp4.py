"""MP4 writer options that keep a stream's exact time base.

The mov muxer otherwise picks its own video timescale (1/1000 becomes 1/16000) and writes
edit lists in a 1/1000 movie timescale, which shifts 29.97 fps content.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Optional

DISCARD_ALL = 48  # AVDISCARD_ALL: a demuxer skips the data of streams marked with it

# Upper bound of the sample-table bytes one sample costs in the moov atom (stsz 4, co64 8,
# stts 8, ctts 8, stsc 12, stss 4), plus room per track and overall.
_MOOV_BYTES_PER_SAMPLE = 48
_MOOV_BYTES_PER_TRACK = 8192
_MOOV_BYTES_BASE = 65536


def moov_reserve(samples: int, tracks: int) -> int:
    return _MOOV_BYTES_BASE + tracks * _MOOV_BYTES_PER_TRACK + samples * _MOOV_BYTES_PER_SAMPLE


def mp4_options(
    video_time_base: Fraction, faststart: bool = False, samples: Optional[int] = None, tracks: int = 1
) -> dict:
    """Writer options; ``faststart`` puts the moov atom first.

    Knowing the sample count, the moov space is reserved up front (``moov_size``), which
    avoids the second pass that rewrites the whole file to move the moov forward.
    """
    den = str(Fraction(video_time_base).denominator)
    opts = {"movie_timescale": den, "video_track_timescale": den}
    if faststart and samples:
        opts["moov_size"] = str(moov_reserve(samples, tracks))
    elif faststart:
        opts["movflags"] = "+faststart"
    return opts


def rescale_exact(pts: int, from_tb: Fraction, to_tb: Fraction) -> int:
    """``pts`` in ``to_tb`` units; rounds only if the value does not fall on a tick."""
    value = Fraction(pts) * Fraction(from_tb) / Fraction(to_tb)
    return value.numerator // value.denominator if value.denominator == 1 else round(value)
