"""Registers, spills and the main loop's instruction mix of segfuse's Triton kernels, compiled
for a GPU target on a machine without one (Triton ships ptxas and cuobjdump).

    python benchmarks/kernel_resources.py [--arch 90] [--json out.json]

Each launcher runs on small CPU tensors whose divisibility matches the benchmarked
configuration (16x21x512x512 fp32, int64 labels); every launch is intercepted
(``segfuse.kernels._launch.launch_hook``), specialised exactly as Triton's runtime would
(pointer alignment, integers divisible by 16, integers equal to 1), compiled for
``sm_<arch>``, and read back with ``cuobjdump``: registers, stack (spills), shared memory,
and, for the largest loop in the SASS, its instruction count, barriers (BAR.SYNC),
shuffles and loads. "warp instr / px" is loop instructions x num_warps / BLOCK_S: the
issue slots one pixel costs, to compare with the memory budget (an H200 moves about
16 bytes per SM clock and issues 4 warp instructions per clock).

This is a static reading, not a timing: benchmarks/device_check.py times the kernels on a
GPU and reads the registers of the kernels it actually ran.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

os.environ["TRITON_INTERPRET"] = "0"
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import torch  # noqa: E402

INSTRUCTION = re.compile(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?);")


def _sass_loop(sass: str) -> list[str]:
    """Instructions of the largest loop: from a branch target back to its backward branch."""
    instructions = [(int(m[1], 16), m[2]) for m in map(INSTRUCTION.match, sass.splitlines()) if m]
    best: list[str] = []
    for address, text in instructions:
        if "BRA" not in text:
            continue
        target = re.search(r"0x([0-9a-f]+)", text)
        if target and int(target[1], 16) < address:
            body = [t for a, t in instructions if int(target[1], 16) <= a <= address]
            best = body if len(body) > len(best) else best
    return best


def _opcode(text: str) -> str:
    words = text.split()
    word = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]
    return word.split(".")[0]


def compile_call(kernel, args, kwargs, arch: int) -> dict:
    """Compile one intercepted launch for sm_<arch>; its resources and loop statistics."""
    import triton
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.compiler import BaseBackend, GPUTarget
    from triton.compiler import ASTSource

    params = kernel.params
    names = [p.name for p in params]
    values = dict(zip(names, args))
    values.update({k: v for k, v in kwargs.items() if k in names})
    signature, constexprs, attrs = {}, {}, {}
    for index, param in enumerate(params):
        value = values[param.name]
        if param.is_constexpr:
            signature[param.name] = "constexpr"
            constexprs[(index,)] = value
            continue
        kind, key = native_specialize_impl(BaseBackend, value, False, True, True)
        signature[param.name] = kind
        if kind == "constexpr":
            constexprs[(index,)] = key
        elif key == "D":
            attrs[(index,)] = [["tt.divisibility", 16]]
    options = {k: kwargs[k] for k in ("num_warps", "num_stages") if k in kwargs}
    compiled = triton.compile(ASTSource(kernel, signature, constexprs=constexprs, attrs=attrs),
                              target=GPUTarget("cuda", arch, 32), options=options)
    tools = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as handle:
        handle.write(compiled.asm["cubin"])
    try:
        usage = subprocess.run([os.path.join(tools, "cuobjdump"), "--dump-resource-usage", handle.name],
                               capture_output=True, text=True, check=True).stdout
        sass = subprocess.run([os.path.join(tools, "cuobjdump"), "--dump-sass", handle.name],
                              capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(handle.name)
    resources = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", usage)
    loop = _sass_loop(sass)
    ops = collections.Counter(_opcode(t) for t in loop)
    num_warps = options.get("num_warps", 4)
    block_s = values.get("BLOCK_S") or values.get("BLOCK")
    return {
        "kernel": kernel.__name__ if hasattr(kernel, "__name__") else str(kernel),
        "C": values.get("C"), "BLOCK_C": values.get("BLOCK_C"), "BLOCK_S": block_s, "num_warps": num_warps,
        "registers": int(resources[1]), "stack_bytes": int(resources[2]), "shared_bytes": int(resources[3]),
        "local_bytes": int(resources[4]), "loop_instructions": len(loop), "loop_barriers": ops["BAR"],
        "loop_shuffles": ops["SHFL"], "loop_loads": ops["LDG"] + ops["LDGSTS"],
        "loop_local_memory": ops["LDL"] + ops["STL"],
        "warp_instructions_per_pixel": round(len(loop) * num_warps / block_s, 1) if block_s and loop else None,
        "triton": triton.__version__, "arch": f"sm_{arch}",
    }


def _cases():
    """(label, callable running launchers on CPU tensors) mirroring the device check's cases."""
    from segfuse import kernels
    from segfuse.kernels import multiclass, sigmoid

    def logits(shape, dtype=torch.float32, channels_last=False):
        x = torch.randn(shape).to(dtype)
        return x.to(memory_format=torch.channels_last) if channels_last else x

    def labels(shape, c, dtype=torch.int64):
        return torch.randint(0, c, shape).to(dtype)

    def dice_ce(c, dtype=torch.float32, channels_last=False, spatial=(64, 64)):
        x, y = logits((2, c, *spatial), dtype, channels_last), labels((2, *spatial), c)
        dice = (2.0, 1.0, 1.0, 1e-5, 1e-5, 1.0, False, True, 0, True)
        loss, coef, scale = multiclass.launch_loss_forward(x, y, None, None, None, None, False, dice, 1.0, 1.0, 0.0,
                                                           None)
        multiclass.launch_backward(x, y, None, None, coef[0], coef[1], scale[1], None, None, None,
                                   upstream=loss, stats_scale=scale[0])

    def focal(c):
        x, y = logits((2, c, 64, 64)), labels((2, 64, 64), c, torch.uint8)
        multiclass.launch_forward(x, y, None, torch.rand(c), 255, True, True, False, 2.0)
        multiclass.launch_backward(x, y, None, torch.rand(c), torch.rand(2, c), torch.rand(2, c), None,
                                   torch.rand(2), 255, 2.0)

    def binary(c, channels_last=False):
        x = logits((2, c, 64, 64), channels_last=channels_last)
        t = (torch.rand(x.shape) > 0.5).to(torch.uint8)
        if channels_last:
            t = t.to(memory_format=torch.channels_last)
        sigmoid.launch_forward(x, t, None, False, True, True, None, None)
        sigmoid.launch_backward(x, t, torch.rand(c), torch.rand(c), torch.rand(()), None, None, None, None)

    def confusion_scores(c, background=False):
        x, y = logits((2, c, 64, 64)), labels((2, 64, 64), c)
        kernels.fused_confusion_matrix(x, y, c)

    def confusion_map(c):
        kernels.fused_confusion_matrix(labels((2, 64, 64), c), labels((2, 64, 64), c), c)

    yield "DiceCE C=21 fp32", lambda: dice_ce(21)
    yield "DiceCE C=21 bf16", lambda: dice_ce(21, torch.bfloat16)
    yield "DiceCE C=21 fp32 channels-last", lambda: dice_ce(21, channels_last=True)
    yield "DiceCE C=4 bf16 3D", lambda: dice_ce(4, torch.bfloat16, spatial=(16, 16, 16))
    yield "DiceCE C=150 fp32", lambda: dice_ce(150)
    yield "focal C=21 per-image", lambda: focal(21)
    yield "sigmoid C=1", lambda: binary(1)
    yield "sigmoid C=3 channels-last", lambda: binary(3, channels_last=True)
    yield "confusion scores C=3", lambda: confusion_scores(3)
    yield "confusion scores C=21", lambda: confusion_scores(21)
    yield "confusion scores C=64", lambda: confusion_scores(64)
    yield "confusion scores C=150", lambda: confusion_scores(150)
    yield "confusion map C=19", lambda: confusion_map(19)
    yield "confusion map C=1024", lambda: confusion_map(1024)


def collect(arch: int = 90) -> list[dict]:
    from segfuse.kernels import _launch

    rows = []
    for label, run in _cases():
        calls = []
        try:
            with _launch.launch_hook(lambda kernel, grid, args, kwargs: calls.append((kernel, args, kwargs))):
                run()
        except Exception as error:  # report the case and go on with the others
            print(f"{label}: {type(error).__name__}: {error}", file=sys.stderr)
            continue
        seen = set()
        for kernel, args, kwargs in calls:
            key = (_launch.kernel_name(kernel), tuple(sorted((k, str(v)) for k, v in kwargs.items())))
            if key in seen:
                continue
            seen.add(key)
            row = compile_call(kernel, args, kwargs, arch)
            row["case"] = label
            rows.append(row)
    return rows


def format_rows(rows: list[dict]) -> str:
    header = ("| case | kernel | C | BLOCK_C x BLOCK_S | warps | regs | stack B | smem B | loop instr | "
              "loop BAR | loop SHFL | warp instr / px |")
    lines = [header, "|" + "---|" * 12]
    for r in rows:
        lines.append(f"| {r['case']} | {r['kernel']} | {r['C'] if r['C'] is not None else '-'} | "
                     f"{r['BLOCK_C'] or '-'} x {r['BLOCK_S'] or '-'} | {r['num_warps']} | {r['registers']} | "
                     f"{r['stack_bytes']} | {r['shared_bytes']} | {r['loop_instructions']} | {r['loop_barriers']} | "
                     f"{r['loop_shuffles']} | {r['warp_instructions_per_pixel'] or '-'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability x 10 (90: Hopper)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    try:
        import triton  # noqa: F401
    except ImportError:
        print("kernel_resources.py needs triton", file=sys.stderr)
        return 1
    rows = collect(args.arch)
    print(format_rows(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
