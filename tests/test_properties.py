"""Property-based tests (hypothesis): any array, of any dtype, shape and values, given to the
readers or to `Predictor.predict`, gives a correct result or our one-line DataError, never
another exception."""

import io

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from echodepth.audio import recordings
from echodepth.audio.recordings import read_recording
from echodepth.data import FeatureConfig
from echodepth.errors import DataError
from echodepth.inference.predictor import Predictor
from echodepth.models import build_model_for_training
from echodepth.settings.config import TrainConfig

RATE = 44100
MAX_DEPTH_M = 1.0  # a 259-sample window: short arrays reach the network
MIN_SAMPLES = 259

ANY_DTYPE = st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(max_len=4), hnp.unicode_string_dtypes(max_len=4))
OBJECTS = st.none() | st.integers() | st.floats() | st.text(max_size=3)  # what object arrays hold in practice
ANY_SHAPE = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
RECORDING_SHAPE = st.tuples(st.integers(0, 3), st.just(2), st.integers(0, 300)) | st.tuples(
    st.just(2), st.integers(0, 300)
)
# recordings the model can take, of any numeric type and any values (NaN, inf, huge, zeros)
NUMERIC_RECORDING = st.one_of(hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes()).flatmap(
    lambda dtype: hnp.arrays(
        dtype, st.tuples(st.integers(1, 3), st.just(2), st.integers(MIN_SAMPLES - 5, MIN_SAMPLES + 40))
    )
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NETWORK_SETTINGS = settings(SETTINGS, max_examples=40)  # each example that passes the checks runs the network


def any_array(shape=ANY_SHAPE):
    return ANY_DTYPE.flatmap(lambda dtype: hnp.arrays(dtype, shape)) | hnp.arrays(
        np.dtype("O"), shape, elements=OBJECTS
    )


def one_line(err: DataError) -> bool:
    return "\n" not in str(err) and len(str(err)) > 10


@SETTINGS
@given(array=any_array(ANY_SHAPE | RECORDING_SHAPE))
def test_any_npy_recording_is_read_as_float_samples_or_named(tmp_path, array):
    path = tmp_path / "x.npy"
    try:
        np.save(path, array, allow_pickle=True)  # object arrays are pickled, as people do
    except (ValueError, TypeError):
        return  # numpy cannot write it: nobody can bring it
    try:
        wave = read_recording(path, RATE)
    except DataError as err:
        assert one_line(err) and str(path) in str(err)
        return
    assert wave.dtype == np.float32 and wave.ndim == 2 and wave.shape[0] == 2
    if array.dtype.kind in "iu":
        assert np.abs(wave).max(initial=0) <= 1.0


@SETTINGS
@given(data=st.binary(max_size=300), magic=st.booleans())
def test_any_bytes_as_npy_are_an_array_or_named(tmp_path, data, magic):
    path = tmp_path / "y.npy"
    path.write_bytes((b"\x93NUMPY" if magic else b"") + data)
    try:
        array = recordings.load_npy(path, "depth file")
    except DataError as err:
        assert one_line(err) and str(path) in str(err)
        return
    assert isinstance(array, np.ndarray) and array.dtype.kind in "biuf"


@SETTINGS
@given(array=hnp.arrays(hnp.integer_dtypes() | hnp.unsigned_integer_dtypes(), st.integers(0, 20)))
def test_integer_pcm_is_within_full_scale_and_keeps_order(array):
    if array.dtype.name in recordings.PCM_BITS_OF_DTYPE:  # int8, uint8, int16, int32: their own width
        scaled = recordings.pcm_to_float(array, "x")
    else:  # int64 (NumPy's default), uint16, ...: no PCM width of their own, refused until declared
        with pytest.raises(DataError, match=rf"^x: samples of type {array.dtype} hold no PCM width"):
            recordings.pcm_to_float(array, "x")
        low = -(2**15) if array.dtype.kind == "i" else 0
        array = np.clip(array, low, low + 2**16 - 1).astype(array.dtype)  # values that 16-bit PCM holds
        scaled = recordings.pcm_to_float(array, "x", pcm_bits=16)
    assert scaled.dtype == np.float32 and (np.abs(scaled) <= 1.0).all()
    order = np.argsort(array, kind="stable")
    assert (np.diff(scaled[order]) >= 0).all()  # louder stays louder


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    cfg = TrainConfig(image_size=16, base_channels=4, max_depth_m=MAX_DEPTH_M)
    features = FeatureConfig(image_size=(16, 16))
    meta = {"max_depth_m": MAX_DEPTH_M, "features": features.to_dict(), "config": cfg.to_dict()}
    network = build_model_for_training(cfg, features.n_channels)
    return Predictor(network, cfg, meta, device="cpu")


@NETWORK_SETTINGS
@given(array=any_array(ANY_SHAPE | RECORDING_SHAPE) | NUMERIC_RECORDING, rate=st.sampled_from([RATE, RATE, 48000]))
def test_predict_gives_depth_maps_or_a_one_line_error(predictor, array, rate):
    assert predictor.min_samples == MIN_SAMPLES
    try:
        prediction = predictor.predict(array, rate, name="input")
    except DataError as err:
        assert one_line(err) and str(err).startswith("input")
        return
    batch = 1 if array.ndim == 2 else array.shape[0]
    assert rate == RATE and array.shape[-2] == 2 and array.shape[-1] >= MIN_SAMPLES
    final = prediction.final_m
    assert final.shape == (batch, 1, 16, 16) and torch.isfinite(final).all()
    assert (final >= 0).all() and (final <= MAX_DEPTH_M + 1e-6).all() and len(prediction.report) == batch


@settings(NETWORK_SETTINGS, max_examples=20)
@given(
    array=hnp.arrays(
        np.int16, st.tuples(st.just(2), st.integers(MIN_SAMPLES, 300)), elements=st.integers(-32768, 32767)
    )
)
def test_integer_recordings_predict_like_their_float_scaling(predictor, array):
    if not np.any(array):
        return  # digital silence is refused (tested above)
    as_int = predictor.predict(array, RATE).final_m
    as_float = predictor.predict(array.astype(np.float32) / 32768, RATE).final_m
    assert torch.allclose(as_int, as_float)


def test_the_properties_see_errors_of_every_kind(predictor, tmp_path):
    """The strategies reach each way of failing (a property that only saw good input proves little)."""
    cases = {
        "samples of type": np.array([["a"] * 300] * 2),
        "shape": np.zeros((3, 300)),
        "the model needs at least": np.ones((2, 5)),
        "NaN or infinite": np.full((2, 300), np.inf),
        "silent recording": np.zeros((2, 300), np.int16),
        "an empty batch": np.zeros((0, 2, 300)),
    }
    for expected, array in cases.items():
        with pytest.raises(DataError, match=expected):
            predictor.predict(array, RATE, name="input")
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, 30)))
    (tmp_path / "t.npy").write_bytes(buffer.getvalue()[:-7])
    with pytest.raises(DataError, match="truncated"):
        read_recording(tmp_path / "t.npy", RATE)
