"""`echogeom`: EchoGeom's grid, depth range and counted pixels, with echodepth's value handling."""

from __future__ import annotations

from .base import PROTOCOLS, EvalProtocol


@PROTOCOLS.register("echogeom")
class EchoGeom(EvalProtocol):
    """128 x 128, 0-30 m, pixels gt > 0.1 m (`shared/spec/batvision_format.md`, from EchoGeom's
    paper); its evaluation code was not read: the ground truth's resize and the value handling are
    echodepth's, and its surface-normal metrics are not computed."""

    name = "echogeom"
    image_size = 128
    max_depth_m = 30.0
    min_gt_m = 0.1
    source = "EchoGeom"
    departures = (
        "EchoGeom's evaluation code was not checked: the ground truth's resize (nearest-exact) and the value "
        "handling (clamp to 1 mm, NaN kept, empty images left out) are echodepth's",
        "its surface-normal metrics are not computed",
    )
