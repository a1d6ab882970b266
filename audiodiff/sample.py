"""Sampling's names where they used to live: the code is in the `audiodiff.sampling` wing
(see its package docstring for the map). Kept so `from audiodiff.sample import ...` still works."""

from .metrics import DEFAULT_PEAK_CEILING, DEFAULT_TARGET_LUFS, MAX_BPM, MIN_BPM, normalize_loudness  # noqa: F401
from .sampling.finish import DEFAULT_FADE_OUT_SECONDS, FADE_IN_SECONDS, decode_audio, finish_audio, peak_protect  # noqa: F401
from .sampling.longclip import (LongClip, columns_for_samples, extend_image, first_slice, generate_long,  # noqa: F401
                                sample_slice, slice_spans)
from .sampling.loop import Denoiser, Steered, denoiser, sample  # noqa: F401
from .sampling.options import (BPM_ONLY_FOR_NEW_MUSIC, DEFAULT_CANDIDATES, DEFAULT_LEVEL_HOLD,  # noqa: F401
                               DEFAULT_OVERLAP_SECONDS, DEFAULT_STRENGTH, DEFAULT_TEMPO_HOLD, MAX_CANDIDATES,
                               MAX_DEFAULT_OVERLAP_FRACTION, MAX_LEVEL_HOLD, MAX_REPAINT_JUMPS, MAX_TEMPO_HOLD,
                               SamplingOptions, SamplingSetup, check_invertible, check_strength, default_overlap_seconds,
                               downsampling_factor, make_generator, overlap_columns, pipeline_parts, sample_shape,
                               sampling_options)
from .sampling.plan import SlicePlan, plan_cover, plan_extend, unet_calls  # noqa: F401
from .sampling.progress import Cancelled, JobProgress, decoding, job, job_progress  # noqa: F401
from .sampling.schedulers import (DEFAULT_SCHEDULER, DEFAULT_STEPS_BY_SCHEDULER, SCHEDULERS, default_steps,  # noqa: F401
                                  make_scheduler, model_output_for, predicted_clean, scheduler_key, scheduler_name,
                                  set_timesteps, strength_start_index)
from .sampling.steering import (JOIN_BLEND_PULL, JOIN_BLEND_SECONDS, LEVEL_HOLD_RAMP_SECONDS,  # noqa: F401
                                TEMPO_HOLD_BAND_GROUPS, band_loudness_weights, beat_bpm, beat_columns_for, chain_guides,
                                fold_beat, image_beat_columns, image_level_db, image_onset, level_chooser, level_guide,
                                tempo_guide)
