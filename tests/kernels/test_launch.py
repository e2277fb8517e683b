"""Host-side launch helpers (segfuse.kernels._launch): the shape-only work split, strided
layouts read without copies, poisoned outputs, device guards, tile configurations."""

import pytest
import torch

from segfuse.kernels import _launch


@pytest.mark.parametrize("tiles, images", [(1, 1), (7, 3), (2048, 16), (100000, 1), (3, 5000)])
@pytest.mark.parametrize("interpreter", ["0", "1"])
def test_split_covers_every_tile_once_and_depends_on_the_shape_alone(tiles, images, interpreter, monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", interpreter)
    split = _launch.split_work(tiles, images)
    assert split.programs == split.chunks * images
    assert split.chunks * split.tiles_per_chunk >= tiles > (split.chunks - 1) * split.tiles_per_chunk
    limit = _launch.INTERPRETER_MAX_PROGRAMS if interpreter == "1" else _launch.MAX_PROGRAMS
    assert split.programs <= max(limit, images) + images
    assert _launch.split_work(tiles, images) == split  # no device, clock or GPU model involved


def test_split_ignores_the_gpu(monkeypatch):
    """The old split read the multiprocessor count: results changed bit for bit across GPU
    models. Now nothing about the device is consulted."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *a: pytest.fail("the split read the device"))
    assert _launch.split_work(2048, 16) == _launch.WorkSplit(128, 16, 2048)  # 16 x 512 x 512 at 128 px


@pytest.mark.parametrize("make, stride_s, copied", [
    (lambda: torch.empty(2, 5, 7, 9), 1, False),
    (lambda: torch.empty(2, 5, 7, 9).to(memory_format=torch.channels_last), 5, False),
    (lambda: torch.empty(2, 5, 4, 7, 9).to(memory_format=torch.channels_last_3d), 5, False),
    (lambda: torch.empty(2, 8, 7, 9)[:, 2:7], 1, False),         # a class slice: strides collapse
    (lambda: torch.empty(2, 5, 7, 18)[..., ::2], 2, False),       # every other pixel
    (lambda: torch.empty(2, 5, 9, 7).transpose(2, 3), 1, True),   # permuted spatial dims: copied
    (lambda: torch.empty(2, 5, 1, 9), 1, False),
])
def test_class_layout_reads_collapsible_strides_in_place(make, stride_s, copied):
    tensor = make()
    layout = _launch.class_layout(tensor)
    assert (layout.tensor is not tensor) == copied
    assert layout.stride_s == stride_s and layout.stride_c == layout.tensor.stride(1)
    c, s = tensor.shape[1], tensor[0, 0].numel()
    expected_span = 1 + (c - 1) * layout.stride_c + (s - 1) * layout.stride_s
    assert layout.span == expected_span


def test_gradient_like_keeps_the_layout_and_the_fake_agrees():
    channels_last = torch.empty(2, 5, 7, 9).to(memory_format=torch.channels_last)
    assert _launch.gradient_like(channels_last).stride() == channels_last.stride()
    permuted = torch.empty(2, 5, 9, 7).transpose(2, 3)
    assert _launch.gradient_like(permuted).is_contiguous()
    fake = torch.empty(2, 5, 7, 9, device="meta").to(memory_format=torch.channels_last)
    assert _launch.gradient_like(fake).stride() == channels_last.stride()


def test_needs_int64_at_two_to_the_31():
    assert not _launch.needs_int64(2**31 - 1) and _launch.needs_int64(2**31)


def test_poisoned_outputs_fill_every_new_buffer():
    with _launch.poisoned_outputs():
        floats = _launch.new_empty((3, 4), torch.float32, "cpu")
        ints = _launch.new_empty((5,), torch.int32, "cpu")
    assert torch.isnan(floats).all() and (ints == -(2**30) + 7).all()
    assert not _launch._POISON


def test_device_guard_selects_the_tensors_gpu():
    """Triton launches on the current device; the guard makes the tensor's device current."""
    guard = _launch.device_guard(torch.device("cuda", 1))
    assert isinstance(guard, torch.cuda.device) and guard.idx == 1
    with _launch.device_guard(torch.device("cpu")):
        pass


def test_tile_config_override_for_the_sweep(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    default = _launch.tile_config("softmax", 32)
    with _launch.override_tile_config("softmax", (64, 2, 1)):
        assert _launch.tile_config("softmax", 32) == _launch.TileConfig(64, 2, 1)
    assert _launch.tile_config("softmax", 32) == default


def test_launch_hook_intercepts_and_records():
    calls = []
    with _launch.launch_hook(lambda kernel, grid, args, kwargs: calls.append((grid, args, kwargs))):
        _launch.launch(object(), (3,), 1, 2, BLOCK=4)
    assert calls == [((3,), (1, 2), {"BLOCK": 4})]


@pytest.mark.parametrize("ignore_index, dtype, expected", [
    (255, torch.uint8, 255), (-1, torch.uint8, None), (-100, torch.int64, -100), (None, torch.int64, None),
    (255, torch.bool, None), (2, torch.float16, 2.0),
])
def test_kernel_ignore_index(ignore_index, dtype, expected):
    assert _launch.kernel_ignore_index(ignore_index, dtype) == expected


def test_images_past_32_bit_pixel_indices_take_the_torch_path():
    """Pixel indices inside an image are 32-bit: such images go to the torch path."""
    from segfuse import kernels

    assert kernels._pixels_fit(torch.empty(1, 3, 8), 2)
    assert not kernels._pixels_fit(torch.empty(1, 1, 2**31, dtype=torch.float16, device="meta"), 2)
    assert not kernels._pixels_fit(torch.empty(1, 2**31, dtype=torch.bool, device="meta"), 1)
    assert kernels._pixels_fit(torch.empty(3, 2**20, 2**10 - 2, dtype=torch.bool, device="meta"), 1)
