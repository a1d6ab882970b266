"""The edits' names where they used to live: the code is in `audiodiff.sampling.edits` (continue,
fill a gap, loop) and `audiodiff.sampling.inversion` (invert, vary, interpolate). Kept so
`from audiodiff import edits` still works."""

from .sampling.edits import (CROSSFADE_SECONDS, LOOP_OVERLAP_SECONDS, EditError, Timeline,  # noqa: F401
                             continue_audio, fill_gap, loop_audio, make_loop, periodic_resample)
from .sampling.inversion import (INVERTED_VARIATION_ETA, image_of, interpolate, invert,  # noqa: F401
                                 inversion_scheduler, slerp, vary)
from .sampling.options import DEFAULT_STRENGTH  # noqa: F401
from .sampling.plan import cover_slices  # noqa: F401
