"""Crash-resume benchmark: SIGKILL tiny training runs at random moments and rerun the same command.

Each trial starts ``run_post_training.py`` or ``run_fine_tuning.py`` (a tiny BERT of configs/tiny-demo.yaml on
the demo corpus, a checkpoint every 2 steps, at most 3 kept), kills it with SIGKILL, then runs the very same
command again to the end. Half the trials (the even ones) wait for a checkpoint save to start (its
``_tmp-checkpoint-N`` staging folder to appear) and kill within 20 ms of it; the others kill at a uniformly
random moment of the training phase. A trial passes when the rerun exits 0, resumed from a checkpoint where
one was complete, reached the planned step, and logged the same loss at that step as an uninterrupted run.

    nice -n 10 python benchmarks/bench_crash_resume.py --trials 30 --out benchmarks/results/crash_resume.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ko_mrs.checkpoints import STAGING_PREFIX, checkpoint_problem  # noqa: E402

SCRIPTS = {"post-training": "run_post_training.py", "fine-tuning": "run_fine_tuning.py"}
RESUMED = "Resuming from the last checkpoint"
SET_ASIDE = "resume skipped an incomplete checkpoint"


@dataclass(frozen=True)
class Plan:
    """What every run of a stage trains: the same command each time, so reruns must end alike."""

    model: Path
    train: Path
    max_steps: int = 12
    save_steps: int = 2

    def command(self, stage: str, output_dir: Path) -> list[str]:
        return [
            sys.executable, SCRIPTS[stage],
            "--model_name_or_path", str(self.model), "--train_files", str(self.train),
            "--output_dir", str(output_dir), "--do_train",
            "--max_steps", str(self.max_steps), "--save_steps", str(self.save_steps), "--save_total_limit", "3",
            "--logging_steps", "1", "--per_device_train_batch_size", "8", "--max_seq_length", "64",
            "--learning_rate", "1e-3", "--seed", "7", "--report_to", "none", "--disable_tqdm", "true",
            "--log_level", "info",
        ]  # fmt: skip


@dataclass
class Trial:
    stage: str
    mode: str  # "save": killed inside a checkpoint save; "random": at a random moment of training ("a+b": both)
    killed_after_s: float
    in_save: bool  # a save was in flight when the kill landed (a staging folder was left behind)
    had_checkpoint: bool  # a complete checkpoint existed to resume from
    resumed: bool
    set_aside: int  # incomplete folders the reruns reported and renamed
    returncode: int
    reached: bool
    equal: bool

    @property
    def passed(self) -> bool:
        return self.returncode == 0 and self.reached and self.equal and self.resumed == self.had_checkpoint


def prepare(workdir: Path) -> Plan:
    """The demo corpus and a tiny BERT built offline, once per benchmark."""
    from ko_mrs.demo_corpus import write_demo_corpus
    from ko_mrs.tiny_model import build_tiny_model

    files = write_demo_corpus(workdir / "data", n_dialogues=120, seed=1)
    model = build_tiny_model([files["train"]], ROOT / "configs" / "tiny-demo.yaml", workdir / "tiny-bert")
    return Plan(model=Path(model), train=Path(files["train"]))


def environment(workdir: Path) -> dict[str, str]:
    cache = workdir / "hf"
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HOME": str(cache),
        "HF_DATASETS_CACHE": str(cache / "datasets"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
    }


def losses(output_dir: Path) -> dict[int, float]:
    state = json.loads((output_dir / "trainer_state.json").read_text("utf-8"))
    return {entry["step"]: entry["loss"] for entry in state["log_history"] if "loss" in entry}


def run_to_end(command: list[str], env: dict[str, str], log: Path) -> tuple[int, float]:
    """Run a command to completion; returns its exit code and how long it trained (first loss line to exit)."""
    with log.open("w") as handle:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
        first_loss = None
        while process.poll() is None:
            if first_loss is None and "'loss'" in log.read_text(errors="replace"):
                first_loss = time.monotonic()
            time.sleep(0.05)
    end = time.monotonic()
    return process.returncode, end - (first_loss or end)


def _kill_at(process: subprocess.Popen, log: Path, output_dir: Path, mode: str, plan: Plan, train_s: float, rng):
    """Wait for the moment ``mode`` asks for, then SIGKILL the whole process group; returns the seconds waited."""
    start = time.monotonic()
    if mode == "save":
        step = plan.save_steps * rng.randrange(1, plan.max_steps // plan.save_steps + 1)
        staging = output_dir / f"{STAGING_PREFIX}{step}"
        while process.poll() is None and not staging.exists():
            time.sleep(0.0005)
        time.sleep(rng.uniform(0, 0.02))
    else:
        while process.poll() is None and "'loss'" not in log.read_text(errors="replace"):
            time.sleep(0.01)
        time.sleep(rng.uniform(0, train_s))
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return time.monotonic() - start


def run_trial(
    stage: str, modes: tuple[str, ...], plan: Plan, workdir: Path, reference: dict[int, float], train_s: float, rng
) -> Trial:
    """Runs of the same command in a fresh output folder, killed once per mode in ``modes``, then one to the end."""
    mode = "+".join(modes)
    output_dir = workdir / f"{stage}-{mode}-{rng.randrange(10**9)}"
    command, env = plan.command(stage, output_dir), environment(workdir)
    waited, in_save = 0.0, False
    for i, kill_mode in enumerate(modes):
        killed_log = output_dir.with_suffix(f".killed{i}.log")
        with killed_log.open("w") as handle:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
            waited += _kill_at(process, killed_log, output_dir, kill_mode, plan, train_s, rng)
        in_save |= output_dir.is_dir() and any(output_dir.glob(f"{STAGING_PREFIX}*"))
    rerun_log = output_dir.with_suffix(".rerun.log")
    had_checkpoint = output_dir.is_dir() and any(checkpoint_problem(p) is None for p in output_dir.glob("checkpoint-*"))
    returncode, _ = run_to_end(command, env, rerun_log)
    text = rerun_log.read_text(errors="replace")
    later_logs = [output_dir.with_suffix(f".killed{i}.log") for i in range(1, len(modes))] + [rerun_log]
    reached = equal = False
    if returncode == 0:
        logged = losses(output_dir)
        reached = json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == plan.max_steps
        equal = logged.get(plan.max_steps) == reference[plan.max_steps]
    return Trial(
        stage=stage,
        mode=mode,
        killed_after_s=round(waited, 3),
        in_save=in_save,
        had_checkpoint=had_checkpoint,
        resumed=RESUMED in text,
        set_aside=sum(log.read_text(errors="replace").count(SET_ASIDE) for log in later_logs),
        returncode=returncode,
        reached=reached,
        equal=equal,
    )


def reference_run(stage: str, plan: Plan, workdir: Path) -> tuple[dict[int, float], float]:
    """The uninterrupted run every trial of a stage must match; also times its training phase."""
    output_dir = workdir / f"{stage}-reference"
    returncode, train_s = run_to_end(plan.command(stage, output_dir), environment(workdir), workdir / f"{stage}.log")
    if returncode != 0:
        raise RuntimeError(f"the uninterrupted {stage} run failed; see {workdir / f'{stage}.log'}")
    return losses(output_dir), train_s


def run_trials(
    n: int, plan: Plan, workdir: Path, seed: int, stages: tuple[str, ...] = tuple(SCRIPTS), kills: int = 1
) -> list[Trial]:
    """``n`` trials spread over ``stages``; even-numbered trials kill inside a save. With ``kills=2`` a trial
    kills inside a save and then at a random moment before its last rerun (the tests' short version)."""
    rng = random.Random(seed)
    references = {stage: reference_run(stage, plan, workdir) for stage in stages}
    trials = []
    for i in range(n):
        stage = stages[(i // 2) % len(stages)]
        reference, train_s = references[stage]
        modes = ("save", "random")[:kills] if i % 2 == 0 else ("random", "save")[:kills]
        trial = run_trial(stage, modes, plan, workdir, reference, train_s, rng)
        print(json.dumps(asdict(trial)), flush=True)
        trials.append(trial)
    return trials


def summary(trials: list[Trial]) -> str:
    def row(name: str, chosen: list[Trial]) -> str:
        with_checkpoint = [t for t in chosen if t.had_checkpoint]
        return (
            f"| {name} | {len(chosen)} | {sum(t.in_save for t in chosen)} | "
            f"{sum(t.resumed for t in with_checkpoint)}/{len(with_checkpoint)} | "
            f"{sum(t.set_aside for t in chosen)} | {sum(t.reached for t in chosen)}/{len(chosen)} | "
            f"{sum(t.equal for t in chosen)}/{len(chosen)} | {sum(t.passed for t in chosen)}/{len(chosen)} |"
        )

    lines = [
        "| stage | trials | killed inside a save | resumed (of those with a checkpoint) | folders set aside "
        "| reached the planned step | final loss equal | passed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for stage in SCRIPTS:
        chosen = [t for t in trials if t.stage == stage]
        if chosen:
            lines.append(row(stage, chosen))
    lines.append(row("**all**", trials))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, help="also write the results table (markdown) here")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-crash-"))
    workdir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    trials = run_trials(args.trials, prepare(workdir), workdir, args.seed)
    table = summary(trials)
    header = (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(start))}, {platform.node()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end, {time.time() - start:.0f} s in all, runs in {workdir}"
    )
    print(header, table, sep="\n")
    if args.out:
        args.out.write_text(f"{header}\n\n{table}\n", encoding="utf-8")
    return 0 if all(t.passed for t in trials) else 1


if __name__ == "__main__":
    sys.exit(main())
