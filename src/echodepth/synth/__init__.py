"""The built-in synthetic dataset: physically grounded binaural echoes and depth maps.

`generate_dataset(out_dir, SynthConfig(...))` writes it in the BatVision V2 layout.
"""

from .depth import camera_rays, render_depth
from .echo import chirp_signal, impulse_response, render_echo
from .scene import FURNITURE_TEMPLATES, Box, Pose, Room, SynthConfig, sample_pose, sample_room, sample_scene
from .writer import METADATA_FILE, assign_splits, generate_dataset, is_complete, render_room

__all__ = [
    "FURNITURE_TEMPLATES",
    "METADATA_FILE",
    "Box",
    "Pose",
    "Room",
    "SynthConfig",
    "assign_splits",
    "camera_rays",
    "chirp_signal",
    "generate_dataset",
    "impulse_response",
    "is_complete",
    "render_depth",
    "render_echo",
    "render_room",
    "sample_pose",
    "sample_room",
    "sample_scene",
]
