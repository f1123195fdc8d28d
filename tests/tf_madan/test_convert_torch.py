"""PyTorch checkpoints -> our Keras models, against outputs PyTorch computed.

The fixtures (tests/tf_madan/fixtures/*.pth, *.npz) were written by
scripts/make_torch_fixtures.py with torch 2.13 from tiny twins of the official
networks; no torch is needed here.
"""

import collections
import io
import os
import pickle
import signal
import struct
import sys
import time
import types
import zipfile

import numpy as np
import pytest
from absl import flags

from tf_madan import convert_lib, convert_weights, torch_reader

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
CASES = [
    ("torch_cyclegan_resnet9", "cyclegan_resnet_tiny"),
    ("torch_cyclegan_resnet9", "cyclegan_nodropout_tiny"),
    ("torch_patchgan", "patchgan_tiny"),
    ("torch_drn_c26", "drn_c26_tiny"),  # legacy (pre-1.6) torch.save format, 26 x 30 input
    ("torch_fcn8s", "fcn8s_tiny"),
]


def _fixture(name):
    data = np.load(os.path.join(FIXTURES, f"{name}.npz"))
    return os.path.join(FIXTURES, f"{name}.pth"), data["input"], data["output"]


def _run(model, x_nchw):
    y = model(np.transpose(x_nchw, (0, 2, 3, 1)), training=False)
    return np.transpose(np.asarray(y), (0, 3, 1, 2))


@pytest.mark.parametrize("source,name", CASES)
def test_converted_output_equals_pytorch(source, name):
    path, x, expected = _fixture(name)
    model = convert_lib.convert(source, path)
    out = _run(model, x)
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= 1e-5 * np.abs(expected).max()


def test_reader_reads_both_formats_with_official_keys():
    zip_sd = torch_reader.load_state_dict(os.path.join(FIXTURES, "fcn8s_tiny.pth"))
    legacy_sd = torch_reader.load_state_dict(os.path.join(FIXTURES, "drn_c26_tiny.pth"))
    assert zipfile.is_zipfile(os.path.join(FIXTURES, "fcn8s_tiny.pth"))
    assert not zipfile.is_zipfile(os.path.join(FIXTURES, "drn_c26_tiny.pth"))
    assert zip_sd["vgg.0.weight"].shape == (4, 3, 3, 3)
    assert zip_sd["upscore8.w"].shape == (3, 3, 16, 16)
    assert legacy_sd["layer6.0.downsample.0.weight"].shape == (16, 8, 1, 1)
    assert legacy_sd["bn1.num_batches_tracked"].dtype == np.int64
    assert legacy_sd["fc.weight"].shape == (3, 16, 1, 1)


def test_legacy_gpu_storages_are_read(tmp_path):
    # CyCADA-era files saved from GPU name torch.cuda.FloatStorage; the pickle's GLOBAL
    # opcode is rewritten in the (protocol 2, unframed) legacy fixture to produce one.
    source = os.path.join(FIXTURES, "drn_c26_tiny.pth")
    raw = open(source, "rb").read()
    assert raw.count(b"ctorch\nFloatStorage\n") == 1
    path = tmp_path / "cuda.pth"
    path.write_bytes(raw.replace(b"ctorch\nFloatStorage\n", b"ctorch.cuda\nFloatStorage\n"))
    cpu, gpu = torch_reader.load_state_dict(source), torch_reader.load_state_dict(path)
    assert list(cpu) == list(gpu)
    for key in cpu:
        np.testing.assert_array_equal(cpu[key], gpu[key])


def test_legacy_storage_views_share_their_root(tmp_path):
    storage = torch_reader._Storage(torch_reader._StorageType("FloatStorage"), 6, "0")
    storage.data = np.arange(6, dtype="<f4").tobytes()
    view = torch_reader._Storage(storage.storage_type, 3, "v")
    view.base, view.base_offset = storage, 2
    np.testing.assert_array_equal(view.array("little"), [2, 3, 4])


def test_cli_writes_weights_that_load_into_a_fresh_model(tmp_path):
    path, x, expected = _fixture("drn_c26_tiny")
    out = tmp_path / "drn.weights.h5"
    values = flags.FlagValues()
    convert_weights.define_flags(values)
    values(["prog", "--source=torch_drn_c26", f"--input={path}", f"--output={out}"])
    convert_weights.main(["prog"], flag_values=values)
    assert out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
    from tf_madan.models import drn

    fresh = drn.build_drn_c26(3, channels=(4, 4, 8, 8, 8, 16, 16, 16), name="segmenter")
    fresh.load_weights(str(out))
    assert np.abs(_run(fresh, x) - expected).max() <= 1e-5 * np.abs(expected).max()


def test_full_size_cyclegan_keys_map_onto_the_default_generator():
    # junyanz ResnetGenerator(ngf=64, n_blocks=9, use_dropout=True, norm=instance):
    # self.model = [pad, conv(1), norm, relu] + 2 x [conv(4, 7), norm, relu]
    # + 9 ResnetBlocks (10..18: conv_block.1 and .6) + 2 x [convT(19, 22), norm, relu]
    # + [pad, conv(26), tanh].
    shapes = {"model.1": (64, 3, 7, 7), "model.4": (128, 64, 3, 3), "model.7": (256, 128, 3, 3)}
    for b in range(10, 19):
        shapes[f"model.{b}.conv_block.1"] = shapes[f"model.{b}.conv_block.6"] = (256, 256, 3, 3)
    shapes.update({"model.19": (256, 128, 3, 3), "model.22": (128, 64, 3, 3)})
    shapes["model.26"] = (3, 64, 7, 7)
    state_dict = {}
    for prefix, shape in shapes.items():
        state_dict[f"{prefix}.weight"] = np.full(shape, 0.5, np.float32)
        state_dict[f"{prefix}.bias"] = np.full(
            shape[1] if "19" in prefix or "22" in prefix else shape[0], 0.25, np.float32
        )
    # PyTorch < 0.4 InstanceNorm checkpoints carry unused running stats.
    state_dict["model.2.running_mean"] = np.zeros(64, np.float32)
    plan = convert_lib.plan_cyclegan_resnet(state_dict)
    convert_lib.apply_plan(plan, state_dict, "latest_net_G_A.pth")
    assert plan.model.count_params() == 11_378_179
    assert sum("dropout" in layer.name for layer in plan.model.layers) == 9
    assert np.asarray(plan.model.get_layer("up0_conv").kernel).shape == (3, 3, 128, 256)


def test_missing_unexpected_and_mismatched_keys_are_listed():
    path, _, _ = _fixture("cyclegan_resnet_tiny")
    state_dict = torch_reader.load_state_dict(path)
    plan = convert_lib.plan_cyclegan_resnet(state_dict)
    broken = collections.OrderedDict(state_dict)
    del broken["model.19.bias"]
    broken["model.99.weight"] = np.zeros(3, np.float32)
    broken["model.4.weight"] = np.zeros((8, 4, 3, 5), np.float32)
    with pytest.raises(convert_lib.ConversionError) as error:
        convert_lib.apply_plan(plan, broken, "gen.pth")
    message = str(error.value)
    assert "missing keys (1): model.19.bias" in message
    assert "unexpected keys (1): model.99.weight" in message
    assert "model.4.weight: (8, 4, 3, 5) -> (3, 5, 4, 8) != down0_conv" in message


def test_wrong_source_names_the_key():
    path, _, _ = _fixture("patchgan_tiny")
    with pytest.raises(convert_lib.ConversionError, match="'conv1.weight' not found"):
        convert_lib.convert("torch_drn_c26", path)


def test_drn_skip_head_keeps_our_head_and_ignores_fc():
    path, _, _ = _fixture("drn_c26_tiny")
    model = convert_lib.convert("torch_drn_c26", path, skip_head=True, num_classes=7)
    assert model.output.shape[-1] == 7
    state_dict = torch_reader.load_state_dict(path)
    np.testing.assert_array_equal(
        np.asarray(model.get_layer("layer8_0_conv2").kernel),
        np.transpose(state_dict["layer8.0.conv2.weight"], (2, 3, 1, 0)),
    )


def test_torchvision_vgg16_into_fcn8s():
    # A torchvision-style state dict with tiny widths: fc6 is classifier.0 viewed as 7x7.
    rng = np.random.default_rng(0)
    widths, fc = (2, 2, 4, 4, 4), 5
    state_dict, c_in = {}, 3
    for i, index in enumerate(convert_lib.VGG16_CONV_INDICES):
        c_out = widths[[0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4][i]]
        state_dict[f"features.{index}.weight"] = rng.normal(size=(c_out, c_in, 3, 3))
        state_dict[f"features.{index}.bias"] = rng.normal(size=c_out)
        c_in = c_out
    state_dict["classifier.0.weight"] = rng.normal(size=(fc, 4 * 7 * 7))
    state_dict["classifier.0.bias"] = rng.normal(size=fc)
    state_dict["classifier.3.weight"] = rng.normal(size=(fc, fc))
    state_dict["classifier.3.bias"] = rng.normal(size=fc)
    state_dict["classifier.6.weight"] = rng.normal(size=(1000, fc))
    state_dict["classifier.6.bias"] = rng.normal(size=1000)
    state_dict = {k: v.astype(np.float32) for k, v in state_dict.items()}
    plan = convert_lib.plan_torchvision_vgg16(state_dict, num_classes=3)
    convert_lib.apply_plan(plan, state_dict, "vgg16.pth")
    fc6 = np.asarray(plan.model.get_layer("fc6").kernel)
    # torch flattens [C, 7, 7] row-major: weight[o, c*49 + y*7 + x] -> kernel[y, x, c, o].
    w = state_dict["classifier.0.weight"]
    assert fc6[2, 5, 3, 4] == w[4, 3 * 49 + 2 * 7 + 5]
    assert np.all(np.asarray(plan.model.get_layer("score_pool3").kernel) == 0)


# ------------------------------------------------------------ restricted unpickling
class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_zip(path, payload):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", payload)
        archive.writestr("evil/byteorder", "little")


def test_forbidden_global_is_rejected_in_zip_format(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    _write_zip(path, pickle.dumps({"w": _Evil(marker)}, protocol=2))
    with pytest.raises(torch_reader.UnsafeCheckpointError, match=r"names the global posix\.system"):
        torch_reader.load(path)
    assert not marker.exists()


def test_forbidden_global_is_rejected_in_legacy_format(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_legacy.pth"
    buffer = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, buffer, protocol=2)
    pickle.dump(collections.OrderedDict(w=_Evil(marker)), buffer, protocol=2)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(torch_reader.UnsafeCheckpointError, match="posix.system"):
        torch_reader.load(path)
    assert not marker.exists()


def test_truncated_checkpoint_names_the_file(tmp_path):
    source = os.path.join(FIXTURES, "drn_c26_tiny.pth")
    path = tmp_path / "cut.pth"
    path.write_bytes(open(source, "rb").read()[:-100])
    with pytest.raises(ValueError, match=r"cut\.pth.*truncated"):
        torch_reader.load(path)


def test_tensor_past_its_storage_is_rejected():
    # as_strided never reads beyond the storage: offset 2 + 3 strided rows of 2 > 6 floats.
    storage = torch_reader._Storage(torch_reader._StorageType("FloatStorage"), 6, "0")
    storage.data = np.arange(6, dtype="<f4").tobytes()
    ok = torch_reader._LazyTensor(storage, 1, (2, 2), (3, 1)).materialise("little")
    np.testing.assert_array_equal(ok, [[1, 2], [4, 5]])
    transposed = torch_reader._LazyTensor(storage, 0, (3, 2), (1, 3)).materialise("little")
    np.testing.assert_array_equal(transposed, [[0, 3], [1, 4], [2, 5]])
    with pytest.raises(ValueError, match="reads past its storage"):
        torch_reader._LazyTensor(storage, 2, (3, 2), (2, 1)).materialise("little")


def test_output_must_be_a_weights_h5(tmp_path):
    path, _, _ = _fixture("patchgan_tiny")
    with pytest.raises(ValueError, match=r"--output must end in \.weights\.h5"):
        convert_lib.convert_file("torch_patchgan", path, tmp_path / "d.h5")
    assert not list(tmp_path.iterdir())


def test_cli_error_is_one_message_without_traceback(tmp_path):
    path, _, _ = _fixture("drn_c26_tiny")
    values = flags.FlagValues()
    convert_weights.define_flags(values)
    values(["prog", "--source=torch_fcn8s", f"--input={path}", f"--output={tmp_path}/x.weights.h5"])
    with pytest.raises(SystemExit, match=r"convert_weights: .*'vgg\.0\.weight' not found"):
        convert_weights.main(["prog"], flag_values=values)


# ------------------------------------------------------------ resource bounds
def _fake_torch(monkeypatch):
    """Importable stand-ins for the two torch globals a state-dict pickle names."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):
        del args

    FloatStorage.__module__, torch.FloatStorage = "torch", FloatStorage
    FloatStorage.__qualname__ = "FloatStorage"
    _rebuild_tensor_v2.__module__, utils._rebuild_tensor_v2 = "torch._utils", _rebuild_tensor_v2
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return FloatStorage, _rebuild_tensor_v2


class _StorageRef:
    def __init__(self, key):
        self.key = key


def _write_torch_zip(path, obj, storages, monkeypatch):
    """A zip-format `.pth`: `obj` pickled with `_StorageRef`s as persistent ids."""
    storage_class, _ = _fake_torch(monkeypatch)
    buffer = io.BytesIO()

    class Pickler(pickle.Pickler):
        def persistent_id(self, value):
            if isinstance(value, _StorageRef):
                numel = len(storages[value.key]) // 4
                return ("storage", storage_class, value.key, "cpu", numel)
            return None

    Pickler(buffer, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
    return path


class _Tensor:
    def __init__(self, key, offset, size, stride):
        self.args = (_StorageRef(key), offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


def test_crafted_zip_state_dict_is_read(tmp_path, monkeypatch):
    storages = {"0": np.arange(6, dtype="<f4").tobytes()}
    obj = collections.OrderedDict(w=_Tensor("0", 0, (2, 3), (3, 1)), v=_Tensor("0", 1, (2,), (3,)))
    path = _write_torch_zip(tmp_path / "ok.pth", obj, storages, monkeypatch)
    state = torch_reader.load_state_dict(path)
    np.testing.assert_array_equal(state["w"], [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(state["v"], [1, 4])


def test_shared_lists_are_walked_once(tmp_path, monkeypatch):
    # 40 levels of [a, a]: a few hundred bytes, 2^40 paths through the same objects.
    shared = []
    for _ in range(40):
        shared = [shared, shared]
    path = _write_torch_zip(tmp_path / "shared.pth", shared, {}, monkeypatch)
    assert os.path.getsize(path) < 2000
    signal.signal(
        signal.SIGALRM, lambda *_: pytest.fail("the reader walks shared objects as a tree")
    )
    signal.alarm(20)
    try:
        start = time.perf_counter()
        loaded = torch_reader.load(path)
        assert time.perf_counter() - start < 5
    finally:
        signal.alarm(0)
    assert loaded[0] is loaded[1]  # the sharing is kept
    with pytest.raises(ValueError, match=r"shared\.pth: does not hold a state dict"):
        torch_reader.load_state_dict(path)


def test_object_count_is_bounded(tmp_path, monkeypatch):
    path = _write_torch_zip(tmp_path / "many.pth", [[] for _ in range(200)], {}, monkeypatch)
    monkeypatch.setattr(torch_reader, "MAX_OBJECTS", 100)
    with pytest.raises(ValueError, match=r"many\.pth: more than 100 objects"):
        torch_reader.load(path)


def test_tensor_larger_than_its_storage_is_refused_before_allocating(tmp_path, monkeypatch):
    # One float viewed with stride 0 as (1e6, 1e6): 3.64 TiB if expanded.
    storages = {"0": np.zeros(1, "<f4").tobytes()}
    obj = collections.OrderedDict(w=_Tensor("0", 0, (10**6, 10**6), (0, 0)))
    path = _write_torch_zip(tmp_path / "huge.pth", obj, storages, monkeypatch)
    with pytest.raises(
        ValueError, match=r"huge\.pth: tensor of size \(1000000, 1000000\).*declares 1000000000000 "
    ):
        torch_reader.load(path)


def test_tensors_adding_up_past_the_file_size_are_refused(tmp_path, monkeypatch):
    storages = {"0": np.zeros(1000, "<f4").tobytes()}
    obj = collections.OrderedDict((f"w{i}", _Tensor("0", 0, (1000,), (1,))) for i in range(50))
    path = _write_torch_zip(tmp_path / "views.pth", obj, storages, monkeypatch)
    monkeypatch.setattr(torch_reader, "MAX_OUTPUT_SLACK", 0)
    with pytest.raises(ValueError, match=r"views\.pth: its tensors add up to more than"):
        torch_reader.load(path)


def test_legacy_storage_longer_than_the_file_is_refused(tmp_path):
    source = os.path.join(FIXTURES, "drn_c26_tiny.pth")
    raw = open(source, "rb").read()
    with open(source, "rb") as f:  # find the first storage's int64 element count
        storage_type = torch_reader._StorageType("FloatStorage")

        def persistent(pid):
            return torch_reader._Storage(storage_type, 1, str(pid[2]))

        for _ in range(3):
            torch_reader._RestrictedUnpickler(f, persistent, source).load()
        torch_reader._RestrictedUnpickler(f, persistent, source).load()
        torch_reader._RestrictedUnpickler(f, persistent, source).load()
        position = f.tell()
    path = tmp_path / "long.pth"
    path.write_bytes(raw[:position] + struct.pack("<q", 10**15) + raw[position + 8 :])
    with pytest.raises(ValueError, match=r"long\.pth: storage .* declares 1000000000000000 "):
        torch_reader.load(path)


def test_cli_unsafe_pickle_is_one_line_naming_the_file(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    _write_zip(path, pickle.dumps({"w": _Evil(marker)}, protocol=2))
    values = flags.FlagValues()
    convert_weights.define_flags(values)
    values(["prog", "--source=torch_fcn8s", f"--input={path}", f"--output={tmp_path}/x.weights.h5"])
    with pytest.raises(SystemExit) as exit_info:
        convert_weights.main(["prog"], flag_values=values)
    message = str(exit_info.value.code)
    assert message.startswith(f"convert_weights: {path}: the pickle names the global posix.system")
    assert "\n" not in message
    assert not marker.exists()
