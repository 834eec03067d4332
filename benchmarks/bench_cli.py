"""Command-line latency: how long the ``keyclass`` process takes, start to exit, to refuse
a bad argument, list the stored models, print the settings or its version, against the
bare interpreter (``python -c pass``) and ``keyclass --help`` measured in the same run.

Each command runs as a whole new process (what a user waits for), once as a warm-up and
then ``--runs`` times; the rounds interleave the commands so that a change in the
machine's load touches them alike, and medians are reported. The target: a bad argument
and ``keyclass models`` answered in under 1 s. For scale, the last line times
``python -c "import tensorflow"``, what each of them used to pay first.

    python -m benchmarks.bench_cli [--runs 5] [--models 20]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from keyclass.serving import model_layout

TARGET_S = 1.0


def keyclass_command() -> list[str]:
    """The installed ``keyclass`` script beside this interpreter (what users run)."""
    script = Path(sys.executable).parent / "keyclass"
    return [str(script)] if script.exists() else [sys.executable, "-m", "keyclass.pipeline.cli"]


def make_home(root: Path, models: int) -> Path:
    """A keyclass home holding ``models`` pushed versions (metadata only: the CLI must
    list them without loading any)."""
    home = root / "home"
    for i in range(models):
        version_dir = home / "models" / f"cat-dog-{i:08x}" / str(1_700_000_000 + i)
        version_dir.mkdir(parents=True)
        (version_dir / model_layout.SAVED_MODEL_PB).write_bytes(b"\0" * 1024)
        model_layout.write_metadata(
            str(version_dir),
            {"classes": ["cat", "dog"], "val_loss": 0.1, "val_accuracy": 0.9, "backbone": "efficientnet_lite0"},
        )
    return home


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def time_once(cmd: list[str], env: dict[str, str], expect: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole process."""
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if proc.returncode != expect:
        raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}, expected {expect}\n{proc.stderr[-2000:]}")
    return seconds, cpu


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="counted runs of each command (medians reported)")
    ap.add_argument("--models", type=int, default=20, help="stored model versions for keyclass models")
    args = ap.parse_args(argv)
    kc = keyclass_command()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = make_home(root, args.models)
        (root / "photos").mkdir()
        (root / "photos" / "a.jpg").write_bytes(b"x")
        env = {**os.environ, "KEYCLASS_HOME": str(home)}
        # name -> (command, expected exit code)
        cases = {
            "python -c pass (baseline)": ([sys.executable, "-c", "pass"], 0),
            "keyclass --help": ([*kc, "--help"], 0),
            "keyclass --version": ([*kc, "--version"], 0),
            "bad argument: train -c cat": ([*kc, "train", "-c", "cat"], 2),
            "bad argument: --backbone vgg16": ([*kc, "train", "-c", "cat,dog", "--backbone", "vgg16"], 2),
            "bad argument: folder source missing": (
                [*kc, "dataset", "-c", "cat,dog", "--source", "folder:/no/such", "--out", str(root / "o")],
                2,
            ),
            "bad argument: predict, no such model": (
                [*kc, "predict", "-c", "cat,bird", "-p", str(root / "photos")],
                2,
            ),
            "bad argument: compile-kubeflow, no root": ([*kc, "compile-kubeflow", "-c", "a,b", "--output", "x"], 2),
            f"keyclass models ({args.models} versions)": ([*kc, "models"], 0),
            "keyclass config": ([*kc, "config", "-c", "cat,dog"], 0),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        for cmd, expect in cases.values():  # warm-up: file caches, bytecode
            time_once(cmd, env, expect)
        for _ in range(args.runs):
            for name, (cmd, expect) in cases.items():
                wall, cpu = time_once(cmd, env, expect)
                times[name].append(wall)
                cpus[name].append(cpu)
        tf_import = [time_once([sys.executable, "-c", "import tensorflow"], env, 0)[0] for _ in range(2)]

    med = {name: statistics.median(ts) for name, ts in times.items()}
    base, helptime = med["python -c pass (baseline)"], med["keyclass --help"]
    print(f"cores: {os.cpu_count()}; runs: {args.runs} per command after a warm-up (medians, whole processes)")
    print(f"load average before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    print(f"{'command':<42}{'wall':>8}{'min':>8}{'max':>8}{'cpu':>8}{'x python':>10}{'x --help':>10}  target")
    for name, ts in times.items():
        target = ""
        if name.startswith(("bad argument", "keyclass models")):
            target = f"< {TARGET_S:.0f} s: {'met' if med[name] < TARGET_S else 'MISSED'}"
        print(
            f"{name:<42}{med[name]:>7.2f}s{min(ts):>7.2f}s{max(ts):>7.2f}s{statistics.median(cpus[name]):>7.2f}s"
            f"{med[name] / base:>9.1f}x{med[name] / helptime:>9.2f}x  {target}"
        )
    worst = max(v for k, v in med.items() if k.startswith(("bad argument", "keyclass models")))
    print(f"slowest refusal or listing: {worst:.2f} s wall (target < {TARGET_S:.0f} s); cpu = the process's own CPU")
    print(
        f"for scale, python -c 'import tensorflow': {statistics.median(tf_import):.2f} s "
        f"({statistics.median(tf_import) / helptime:.0f}x keyclass --help)"
    )
    print(f"keyclass ran as: {' '.join(kc)}")


if __name__ == "__main__":
    main()
