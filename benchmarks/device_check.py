"""The whole CUDA verdict in one command (issue 9): correctness, speed, memory, registers.

    python benchmarks/device_check.py [--out DIR] [--budget 450] [--stages a,b] [--seed N]
    python benchmarks/device_check.py --smoke      # every stage on tiny CPU shapes (CI)

A driver runs each stage in its own subprocess with its own time budget (a CUDA crash or
hang cannot void the later stages), each stage appends JSON lines to DIR/results.jsonl,
and the driver prints last a table of at most 60 lines (also DIR/summary.md): stage
status and failures, the floor, forward / backward kernel time, x floor for kernel-only /
CUDA-graph / eager, the MONAI ratio, registers and spills, peak memory, and one verdict
line per goal of issue 9 / SPEC section 7. DIR defaults to $OUT, else ./device-check-out.

Stages:

* env: versions, GPU, driver, and the device-to-device copy bandwidth (bytes read + written);
* correctness: the benchmarked configuration (16x21x512x512, int64 labels) in fp32 / fp16 /
  bf16 against float64, gs and count exact, outputs poisoned with NaN, run twice and
  bit-equal; the fused DiceCE loss; the confusion matrix exact (tests/kernels/exactness.py);
* performance: triton.testing.do_bench medians per kernel, eager CUDA events, CUDA-graph
  replay, a profiled iteration's kernel count, MONAI DiceCELoss (a carried wheel),
  F.cross_entropy, peak memory; channels-last and the bf16 3D case; the confusion matrix at
  C=21 and at C=150 with 90 percent background against torch.bincount; registers / spills;
* matrix: tests/kernels/test_cuda.py (the broad correctness matrix, a case past 2^31
  elements) with a fresh SEGFUSE_TEST_SEED, and every loss under CUDA fp16 / bf16 autocast;
* bench: benchmarks/bench_cuda.py (DIR/cuda_bench.md);
* sweep: BLOCK_S x num_warps of the softmax kernels with the time left, each checked
  against the default configuration's loss and gradient.

--smoke sets TRITON_INTERPRET=1 SEGFUSE_FORCE_KERNELS=1, hides any GPU, shrinks every
shape and runs every stage through the same code: its numbers mean nothing, its point is
that the GPU run cannot fail on a bug of this script.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("env", "correctness", "performance", "matrix", "bench", "sweep")
# Seconds per stage on a GPU (the sweep takes what is left) and under --smoke.
BUDGETS = {"env": 30, "correctness": 80, "performance": 110, "matrix": 130, "bench": 70, "sweep": 60}
SMOKE_BUDGETS = {"env": 60, "correctness": 90, "performance": 120, "matrix": 120, "bench": 90, "sweep": 60}
MIN_STAGE_SECONDS = 15
MAX_TABLE_LINES = 60
BENCHMARKED = (16, 21, 512, 512)
SMOKE_SHAPE = (2, 21, 8, 8)
# (BLOCK_S, num_warps, num_stages) tried by the sweep, most promising first.
SWEEP = ((128, 4, 1), (64, 2, 1), (256, 8, 1), (32, 1, 1), (256, 4, 1), (128, 2, 1), (128, 4, 2), (512, 8, 1),
         (128, 8, 1), (64, 1, 1))
GOALS = {"kernel_x_floor": 1.3, "eager_x_floor": 1.5, "monai_speedup": 5.0, "confusion_bandwidth": 0.5}


# ---------------------------------------------------------------------------------------
# Records.


class Recorder:
    """Appends one JSON object per line to results.jsonl (flushed at once: a crash later
    in the stage keeps what was recorded)."""

    def __init__(self, out: Path, stage: str):
        self.path, self.stage = out / "results.jsonl", stage

    def __call__(self, kind: str, **fields) -> None:
        line = json.dumps({"stage": self.stage, "kind": kind, **fields}, default=_jsonable)
        with open(self.path, "a") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_records(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


# ---------------------------------------------------------------------------------------
# Stages (each runs in its own process).


class Context:
    def __init__(self, args):
        self.smoke, self.out, self.seed, self.deadline = args.smoke, Path(args.out), args.seed, args.deadline
        self.device = "cpu" if self.smoke else "cuda"
        self.repeats = 1 if self.smoke else 20
        self.shape = SMOKE_SHAPE if self.smoke else BENCHMARKED

    def left(self) -> float:
        return self.deadline - time.time()

    def bandwidth(self) -> float:
        for record in read_records(self.out):
            if record.get("kind") == "metric" and record.get("name") == "copy_bandwidth":
                return record["bytes_per_second"]
        from segfuse.kernels import bench

        return bench.copy_bandwidth(1 << 31 if not self.smoke else 1 << 20, self.device, self.repeats)


def _checked(record, name: str, check, *args, **kwargs) -> bool:
    """Run one check; record its relative errors (pass) or its failure message."""
    try:
        errors = check(*args, **kwargs)
    except Exception as error:  # a failed assertion, or any crash, is a recorded failure
        record("check", name=name, passed=False, message=f"{type(error).__name__}: {error}"[:300])
        return False
    record("check", name=name, passed=True, errors=errors or {})
    return True


def stage_env(ctx: Context, record) -> int:
    import platform

    import torch

    from segfuse.kernels import bench

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    for name in ("triton", "monai", "numpy"):
        try:
            info[name] = __import__(name).__version__
        except Exception as error:  # noqa: BLE001 - the reason is what we report
            info[name] = f"missing ({type(error).__name__}: {error})"
    info["segfuse_commit"] = _command_output(["git", "rev-parse", "--short", "HEAD"]) or "unknown (no git)"
    if ctx.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count,
                    memory_gib=round(props.total_memory / 2**30, 1),
                    l2_mb=round(getattr(props, "L2_cache_size", 0) / 1e6, 1))
        info["nvidia_smi"] = _command_output(["nvidia-smi", "--query-gpu=driver_version,clocks.sm,clocks.mem,"
                                              "temperature.gpu,power.draw", "--format=csv,noheader"]) or "n/a"
    else:
        info.update(gpu="none (smoke: CPU, Triton interpreter)")
    record("env", **info)
    nbytes = 1 << 31 if ctx.device == "cuda" else 1 << 20
    bandwidth = bench.copy_bandwidth(nbytes, ctx.device, max(ctx.repeats, 3))
    record("metric", name="copy_bandwidth", bytes_per_second=bandwidth, buffer_bytes=nbytes)
    return 0


def _command_output(command) -> str:
    """A command's stripped output, or '' when it is missing or fails."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _exactness():
    sys.path.insert(0, str(ROOT))
    from tests.kernels import exactness

    return exactness


def stage_correctness(ctx: Context, record) -> int:
    import torch

    X = _exactness()
    ok = True
    shape = ctx.shape
    labels = X.random_labels((shape[0], *shape[2:]), shape[1], torch.int64, ctx.device, seed=ctx.seed + 1)
    dtypes = (torch.float32, torch.bfloat16) if ctx.smoke else (torch.float32, torch.float16, torch.bfloat16)
    for dtype in dtypes:
        logits = X.random_logits(shape, dtype, ctx.device, seed=ctx.seed + 2)
        kwargs = dict(ignore_index=None, per_image=False, want_ce=True)
        ok &= _checked(record, f"DiceCE terms {str(dtype)[6:]}", X.check_multiclass_terms, logits, labels, kwargs,
                       seed=ctx.seed + 3)
        if dtype == torch.float32:
            ok &= _checked(record, "fused DiceCE loss fp32", X.check_fused_loss, "dice_ce", logits, labels)
            ok &= _checked(record, "confusion from scores fp32", X.check_confusion, logits.detach(), labels, shape[1])
        del logits
    return 0 if ok else 1


def _registers(record) -> None:
    from segfuse.kernels import _launch

    for name, compiled in sorted(_launch.COMPILED.items()):
        metadata = getattr(compiled, "metadata", None)
        record("registers", kernel=name, registers=getattr(compiled, "n_regs", None),
               spills=getattr(compiled, "n_spills", None), shared=getattr(metadata, "shared", None),
               num_warps=getattr(metadata, "num_warps", None))


def stage_performance(ctx: Context, record) -> int:
    import torch

    from segfuse.kernels import bench

    bandwidth = ctx.bandwidth()
    record("metric", name="copy_bandwidth_used", bytes_per_second=bandwidth)
    shape = ctx.shape
    for row in bench.bench_dice_ce(shape, torch.float32, ctx.repeats, bandwidth, device=ctx.device):
        record("dice_ce", **row)
    cases = [dict(shape=shape, dtype=torch.float32, channels_last=True,
                  only=("segfuse fused",) if ctx.smoke else ("segfuse DiceCELoss", "segfuse fused")),
             dict(shape=(2, 4, 8, 8, 8) if ctx.smoke else (8, 4, 128, 128, 128), dtype=torch.bfloat16,
                  only=("segfuse fused",) if ctx.smoke else ("segfuse DiceCELoss", "segfuse fused", "MONAI"))]
    for case in cases:
        for row in bench.bench_dice_ce(case.pop("shape"), case.pop("dtype"), ctx.repeats, bandwidth,
                                       device=ctx.device, **case):
            record("dice_ce", **row)
    confusion = [(shape, None), ((2, 150, 8, 8) if ctx.smoke else (8, 150, 256, 256), 0.9)]
    for confusion_shape, background in confusion:
        for row in bench.bench_confusion(confusion_shape, background, ctx.repeats, bandwidth, device=ctx.device):
            record("confusion", **row)
    _registers(record)
    return 0


OUTCOMES = r"(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)"
VERBOSE_RESULT = re.compile(r"(?:\[gw\d+\]\s+(?:\[\s*\d+%\]\s+)?)?" + OUTCOMES + r"\s+(\S+::\S+)"
                            r"|(\S+::\S+)\s+" + OUTCOMES)


def parse_pytest_verbose(text: str) -> dict:
    """{test id: outcome} from ``pytest -v`` output (plain or xdist), even when cut short."""
    outcomes = {}
    for match in VERBOSE_RESULT.finditer(text):
        outcome, test = (match[1], match[2]) if match[1] else (match[4], match[3])
        outcomes[test] = outcome
    return outcomes


def _junit_failures(xml_path: Path) -> dict:
    """{test name: first line of its failure message} from a junit XML report, if any."""
    import xml.etree.ElementTree as ElementTree

    if not xml_path.exists():
        return {}
    failures = {}
    for case in ElementTree.parse(xml_path).getroot().iter("testcase"):
        problem = case.find("failure")
        problem = problem if problem is not None else case.find("error")
        if problem is not None:
            failures[case.get("name")] = ((problem.get("message") or "").splitlines() or [""])[0][:160]
    return failures


def stage_matrix(ctx: Context, record) -> int:
    """tests/kernels/test_cuda.py under pytest (-n 4 on a GPU machine: Triton compiles the
    kernel variants in parallel); outcomes parsed from -v output, so a run cut short by its
    budget still reports what finished."""
    xml_path = ctx.out / "matrix.xml"
    env = {**os.environ, "SEGFUSE_TEST_SEED": str(ctx.seed), "PYTHONPATH": _pythonpath()}
    command = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "tests/kernels/test_cuda.py",
               f"--junitxml={xml_path}", "-o", "junit_family=xunit1"]
    if ctx.smoke:
        env["SEGFUSE_TEST_DEVICE"] = "cpu"
        command += ["-p", "no:xdist", "-k",
                    "benchmarked_configuration and float32 or multiclass_matrix and C21-float32"]
    else:  # and every loss under CUDA fp16 / bf16 autocast (issue 11)
        command.insert(5, "tests/losses/test_edge_cases.py::test_every_loss_runs_forward_and_backward_under_cuda_autocast")
        if importlib.util.find_spec("xdist") is not None:
            command += ["-n", "4"]
    timeout = max(ctx.left() - 5, 5)
    message = ""
    try:
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        output, returncode = result.stdout + result.stderr, result.returncode
    except subprocess.TimeoutExpired as error:
        output = "".join(part.decode(errors="replace") if isinstance(part, bytes) else (part or "")
                         for part in (error.stdout, error.stderr))
        returncode, message = None, f"pytest ran past its {timeout:.0f} s; outcomes of the tests that finished"
    print(output[-6000:])
    outcomes = parse_pytest_verbose(output)
    messages = _junit_failures(xml_path)
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failures = []
    for test, outcome in outcomes.items():
        if outcome in ("FAILED", "ERROR"):
            counts["failed"] += 1
            name = test.split("::")[-1]
            failures.append(f"{name}: {messages.get(name, '')}".rstrip(": "))
        elif outcome in ("SKIPPED", "XFAIL"):
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    if not outcomes:
        message = message or f"pytest exited {returncode} without test results"
    record("matrix", seed=ctx.seed, failures=failures, message=message, **counts)
    return 0 if counts["failed"] == 0 and outcomes and returncode in (0, 5) else 1


def stage_bench(ctx: Context, record) -> int:
    out = ctx.out / "cuda_bench.md"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_cuda.py"), "--out", str(out),
               "--repeats", str(min(ctx.repeats, 10))] + (["--smoke"] if ctx.smoke else [])
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": _pythonpath()},
                            capture_output=True, text=True, timeout=max(ctx.left() - 5, 5))
    print(result.stdout[-6000:], result.stderr[-3000:], sep="\n")
    record("bench", returncode=result.returncode, written=out.exists(), path=out.name)
    return result.returncode


def stage_sweep(ctx: Context, record) -> int:
    import torch

    from segfuse import kernels
    from segfuse.kernels import _launch, bench

    logits, labels = bench.make_inputs(ctx.shape, torch.float32, ctx.device)
    overlap = kernels.OverlapTerm(2.0, 1.0, 1.0, 1e-5)

    def loss_and_grad():
        loss = kernels.fused_multiclass_loss(logits, labels, overlap=overlap, ce_weight=1.0)
        return float(loss.detach()), torch.autograd.grad(loss, logits)[0]

    reference_loss, reference_grad = loss_and_grad()
    configs = SWEEP[:2] if ctx.smoke else SWEEP
    ok = True
    for config in configs:
        if ctx.left() < (5 if ctx.smoke else 20):
            record("sweep", config=list(config), skipped="no time left")
            continue
        try:
            with _launch.override_tile_config("softmax", config):
                loss, grad = loss_and_grad()
                same = (abs(loss - reference_loss) <= 1e-5 * abs(reference_loss)
                        and float((grad - reference_grad).norm() / reference_grad.norm()) <= 1e-5)
                times = bench.dice_ce_kernel_times(logits, labels, ctx.repeats)
                compiled = {name: getattr(_launch.COMPILED.get(name), "n_regs", None)
                            for name in ("_multiclass_forward_kernel", "_multiclass_backward_kernel")}
            record("sweep", config=list(config), agrees=same, registers=compiled, **times)
            ok &= same
        except Exception as error:  # a configuration that does not compile or fit
            record("sweep", config=list(config), error=f"{type(error).__name__}: {str(error)[:200]}")
    return 0 if ok else 1


STAGE_FUNCTIONS = {"env": stage_env, "correctness": stage_correctness, "performance": stage_performance,
                   "matrix": stage_matrix, "bench": stage_bench, "sweep": stage_sweep}


def _pythonpath() -> str:
    return os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


def run_stage(args) -> int:
    ctx = Context(args)
    record = Recorder(ctx.out, args.stage)
    try:
        return STAGE_FUNCTIONS[args.stage](ctx, record)
    except Exception as error:
        traceback.print_exc()
        record("error", message=f"{type(error).__name__}: {str(error)[:300]}")
        return 1


# ---------------------------------------------------------------------------------------
# The driver.


def _stage_environment(smoke: bool) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": _pythonpath(), "KINETO_LOG_LEVEL": "6"}
    if smoke:
        env.update(TRITON_INTERPRET="1", SEGFUSE_FORCE_KERNELS="1", CUDA_VISIBLE_DEVICES="")
    env.pop("SEGFUSE_DISABLE_KERNELS", None)
    return env


def _run_one(stage: str, args, budget: float, log) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--stage", stage, "--out", str(args.out),
               "--seed", str(args.seed), "--deadline", str(time.time() + budget)] + (["--smoke"] if args.smoke else [])
    log.write(f"\n===== stage {stage} (budget {budget:.0f} s) =====\n")
    log.flush()
    start = time.time()
    process = subprocess.Popen(command, cwd=ROOT, env=_stage_environment(args.smoke), stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        returncode = process.wait(timeout=budget)
        status = "ok" if returncode == 0 else ("crashed" if returncode < 0 else "failed")
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        returncode, status = None, "timeout"
    return {"status": status, "returncode": returncode, "seconds": round(time.time() - start, 1)}


def drive(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.jsonl").write_text("")
    budgets = SMOKE_BUDGETS if args.smoke else BUDGETS
    stages = [s for s in STAGES if s in args.stages]
    deadline = time.time() + args.budget
    with open(out / "device_check.log", "w") as log:
        for index, stage in enumerate(stages):
            later = stages[index + 1:]
            left = deadline - time.time()
            reserve = MIN_STAGE_SECONDS * len(later)
            budget = left if stage == "sweep" or not later else min(budgets[stage], left - reserve)
            if budget < MIN_STAGE_SECONDS:
                outcome = {"status": "skipped (no time left)", "returncode": None, "seconds": 0}
            else:
                outcome = _run_one(stage, args, budget, log)
            Recorder(out, stage)("status", **outcome)
            print(f"stage {stage:12s} {outcome['status']:8s} {outcome['seconds']:6.1f} s", flush=True)
    records = read_records(out)
    table = summary(records, smoke=args.smoke)
    (out / "summary.md").write_text(table + "\n")
    print(table)
    statuses = [r["status"] for r in records if r["kind"] == "status"]
    return 0 if all(s == "ok" for s in statuses) else 1


# ---------------------------------------------------------------------------------------
# The final table.


def _find(records, kind, **match):
    return [r for r in records if r.get("kind") == kind and all(r.get(k) == v for k, v in match.items())]


def _ms(value) -> str:
    return "-" if value is None else f"{value:.3f} ms"


def _verdict(name: str, value, goal: float, higher_is_better: bool, unit: str, smoke: bool) -> str:
    if smoke:
        return f"  {name}: n/a under --smoke (CPU interpreter numbers)"
    if value is None:
        return f"  {name}: NOT MEASURED"
    passed = value >= goal if higher_is_better else value <= goal
    comparison = ">=" if higher_is_better else "<="
    return f"  {name}: {'PASS' if passed else 'FAIL'} ({value:.2f}{unit}, goal {comparison} {goal:g}{unit})"


def summary(records: list[dict], smoke: bool = False) -> str:
    """The verdict table (at most MAX_TABLE_LINES lines)."""
    lines = []
    env = next(iter(_find(records, "env")), {})
    lines.append(f"segfuse device check{' (SMOKE: CPU interpreter, numbers meaningless)' if smoke else ''}")
    lines.append(f"  {env.get('gpu', '?')} | torch {env.get('torch', '?')} | CUDA {env.get('cuda', '?')} | "
                 f"triton {env.get('triton', '?')} | commit {env.get('segfuse_commit', '?')}")
    if env.get("nvidia_smi"):
        lines.append(f"  nvidia-smi (driver, SM MHz, mem MHz, C): {env['nvidia_smi']}")
    lines.append(f"  MONAI: {env.get('monai', '?')}")
    lines.append("stages:")
    for status in _find(records, "status"):
        failures = [c["name"] for c in _find(records, "check", stage=status["stage"]) if not c["passed"]]
        errors = [e["message"] for e in _find(records, "error", stage=status["stage"])]
        note = ("; failed: " + ", ".join(failures) if failures else "") + ("; " + errors[0][:80] if errors else "")
        lines.append(f"  {status['stage']:12s} {status['status']:8s} {status['seconds']:6.1f} s{note}")
    copy = next(iter(_find(records, "metric", name="copy_bandwidth")), {})
    if copy:
        lines.append(f"copy bandwidth: {copy['bytes_per_second'] / 1e9:.4g} GB/s (device-to-device, read + write, "
                     f"{copy['buffer_bytes'] / 2**30:.3g} GiB buffer)")
    checks = [c for c in _find(records, "check") if c["passed"]]
    for check in checks[:5]:
        errors = ", ".join(f"{k} {v:.1e}" for k, v in check["errors"].items() if k not in ("gs", "count", "ce_weight"))
        lines.append(f"  ok {check['name']}: " + (f"rel. error vs float64 {errors}; counts exact" if errors
                                                  else "counts exact") + "; poisoned; bit-equal rerun")
    for check in [c for c in _find(records, "check") if not c["passed"]][:4]:
        lines.append(f"  FAILED {check['name']}: {check['message'][:110]}")
    rows = _find(records, "dice_ce")
    main = [r for r in rows if "channels-last" not in r.get("shape", "") and r.get("dtype") == "float32"]
    fused = next((r for r in main if r["impl"] == "segfuse fused_multiclass_loss"), {})
    module = next((r for r in main if r["impl"] == "segfuse DiceCELoss"), {})
    monai = next((r for r in main if r["impl"] == "MONAI DiceCELoss"), {})
    if main:
        floor = main[0]["floor_ms"]
        lines.append(f"DiceCE {main[0]['shape']} fp32 {main[0].get('labels', '')} labels: floor {floor:.3f} ms "
                     f"(logits read 2x, labels 2x, gradient written 1x)")
        if fused:
            lines.append(f"  kernel-only: forward {_ms(fused.get('kernel_forward_ms'))}, backward "
                         f"{_ms(fused.get('kernel_backward_ms'))}, total {_ms(fused.get('kernel_total_ms'))} = "
                         f"{(fused.get('kernel_total_ms') or 0) / floor:.2f}x floor")
        for row in main:
            if "error" in row:
                lines.append(f"  {row['impl']}: {row['error'][:100]}")
                continue
            graph = row.get("graph_total_ms")
            lines.append(f"  {row['impl']}: eager {row['eager_total_ms']:.3f} ms = {row['x_floor']:.2f}x floor"
                         + (f"; graph {graph:.3f} ms = {graph / floor:.2f}x" if graph else "")
                         + (f"; {row['kernels']} kernels" if row.get("kernels") is not None else "")
                         + (f"; peak +{row['peak_extra_mib']:.0f} MiB (grad {row['grad_mib']:.0f})"
                            if row.get("peak_extra_mib") is not None else ""))
    for row in [r for r in rows if r not in main and "error" not in r]:
        lines.append(f"  {row['shape']} {row['dtype']} {row['impl']}: eager {row['eager_total_ms']:.3f} ms = "
                     f"{row['x_floor']:.2f}x floor" + (f", kernel-only {row['kernel_total_ms'] / row['floor_ms']:.2f}x"
                                                       if row.get("kernel_total_ms") else ""))
    confusion = _find(records, "confusion")
    for row in confusion:
        lines.append(f"  {row['case']} {row['shape']}: {row['impl']} {row['kernel_total_ms']:.3f} ms = "
                     f"{row['bandwidth_fraction']:.0%} of copy bw")
    registers = _find(records, "registers")
    if registers:
        lines.append("registers (spills): " + ", ".join(
            f"{r['kernel'].strip('_').replace('_kernel', '')} "
            + ("n/a" if r["registers"] is None else f"{r['registers']} ({r['spills']})") for r in registers))
    matrix = next(iter(_find(records, "matrix")), None)
    if matrix:
        note = f"; {matrix['message']}" if matrix.get("message") else ""
        lines.append(f"matrix (seed {matrix.get('seed')}): {matrix.get('passed')} passed, "
                     f"{matrix.get('failed')} failed, {matrix.get('skipped')} skipped{note}")
        for failure in (matrix.get("failures") or [])[:5]:
            lines.append(f"  FAILED {failure[:120]}")
    sweep = [s for s in _find(records, "sweep") if "kernel_total_ms" in s]
    if sweep:
        best = min(sweep, key=lambda s: s["kernel_total_ms"])
        lines.append("sweep (BLOCK_S, warps, stages): " + ", ".join(
            f"{tuple(s['config'])} {s['kernel_total_ms']:.3f}{'' if s['agrees'] else ' DIFFERS'}" for s in sweep[:8]))
        lines.append(f"  best {tuple(best['config'])}: forward {_ms(best['kernel_forward_ms'])}, backward "
                     f"{_ms(best['kernel_backward_ms'])}")
    lines.append("verdicts (issue 9 goals at 16x21x512x512 fp32, int64 labels):")
    kernel_x = fused.get("kernel_total_ms") / fused["floor_ms"] if fused.get("kernel_total_ms") else None
    lines.append(_verdict("kernel-only forward + backward within 1.3x of the floor", kernel_x,
                          GOALS["kernel_x_floor"], False, "x", smoke))
    lines.append(_verdict("DiceCELoss eager within 1.5x of the floor", module.get("x_floor"), GOALS["eager_x_floor"],
                          False, "x", smoke))
    speedup = (monai["eager_total_ms"] / module["eager_total_ms"]
               if monai.get("eager_total_ms") and module.get("eager_total_ms") else None)
    lines.append(_verdict("DiceCELoss at least 5x faster than MONAI", speedup, GOALS["monai_speedup"], True, "x",
                          smoke))
    memory = (module["peak_extra_mib"] / module["grad_mib"] if module.get("peak_extra_mib") is not None else None)
    lines.append(_verdict("extra memory no more than the gradient (peak extra / gradient)", memory, 1.02, False,
                          "x", smoke))
    for shape_key, label in (("x21x", "C=21"), ("x150x", "C=150, 90% background")):
        row = next((r for r in confusion if r["impl"].endswith("(argmax fused)") and shape_key in r["shape"]), {})
        lines.append(_verdict(f"confusion matrix from logits at {label}: fraction of copy bandwidth",
                              row.get("bandwidth_fraction"), GOALS["confusion_bandwidth"], True, "", smoke))
    correctness_ok = all(c["passed"] for c in _find(records, "check")) and bool(_find(records, "check"))
    matrix_ok = bool(matrix) and matrix.get("failed") == 0
    lines.append(f"  correctness (benchmarked configuration, float64, exact counts, poisoned, bit-equal): "
                 f"{'PASS' if correctness_ok else 'FAIL'}; matrix: {'PASS' if matrix_ok else 'FAIL'}")
    if len(lines) > MAX_TABLE_LINES:
        lines = lines[:MAX_TABLE_LINES - 1] + [f"... ({len(lines) - MAX_TABLE_LINES + 1} lines more in results.jsonl)"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or "device-check-out")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds for all stages (default 450)")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {', '.join(STAGES)}")
    parser.add_argument("--seed", type=int, default=None, help="input seed (default: a fresh one, recorded)")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on CPU under the Triton interpreter")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = int(time.time()) % 100000
    if args.stage:
        args.deadline = args.deadline or time.time() + 600
        return run_stage(args)
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in args.stages if s not in STAGES]
    if unknown:
        parser.error(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
    return drive(args)


if __name__ == "__main__":
    raise SystemExit(main())
