#!/usr/bin/env python3
"""Work lost per kill in `uae label` and `uae train` (BENCHMARKS.md, "Work
lost per kill").

    scripts/kill_loss.py label DATA CANDIDATES [QUERIES_PER_STEP ...]
    scripts/kill_loss.py train DATA LABELS [CHECKPOINT_EVERY [KILL_AFTER_S]]

label: runs `uae label` (SmolLM2-135M) once per queries-per-step value, side
by side so that all meet the same load, and records when each query's line
is committed. A kill at a uniformly random moment loses the time since the
last commit: its mean is sum(gap^2 / 2) / sum(gap) over the gaps between
commits (from the first: loading the teacher is not labelling work).

train: runs `uae train` (all-MiniLM-L6-v2, one epoch, batches of 2) with
--checkpoint-every, kills it (SIGKILL) after KILL_AFTER_S seconds, reports
the time since the newest complete set saved within the epoch, then resumes.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

CACHE = os.environ.get("UAE_CACHE", os.path.expanduser("~/.cache/uae"))
UAE = os.environ.get("UAE", os.path.join(CACHE, "target/release/uae"))
TEACHER = os.path.join(CACHE, "models/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf")
STUDENT = os.path.join(CACHE, "models/all-MiniLM-L6-v2")


def lines(path):
    return open(path).read().count("\n") if os.path.exists(path) else 0


def label(data, candidates, steps):
    work = tempfile.mkdtemp()
    runs = {}
    for qps in steps:
        out = os.path.join(work, f"labels-{qps}.jsonl")
        cmd = [UAE, "label", "--teacher", TEACHER, "--data", data, "--candidates", candidates, "--out", out,
               "--queries-per-step", qps]
        runs[qps] = {"proc": subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), "out": out, "stamps": []}
    start = time.time()
    while any(r["proc"].poll() is None for r in runs.values()):
        for r in runs.values():
            n = lines(r["out"])
            r["stamps"] += [time.time() - start] * (n - len(r["stamps"]))
        time.sleep(0.05)
    result = {}
    for qps, r in runs.items():
        n = lines(r["out"])
        stamps = r["stamps"] + [time.time() - start] * (n - len(r["stamps"]))
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        result[qps] = {"queries": n, "all_done_s": round(stamps[-1], 1), "queries_per_s": round(n / stamps[-1], 3),
                       "max_lost_s": round(max(gaps), 1), "mean_lost_s": round(sum(g * g / 2 for g in gaps) / sum(gaps), 1)}
    shutil.rmtree(work)
    return result


def train(data, labels, every="1", kill_after=75.0):
    work = tempfile.mkdtemp()
    out = os.path.join(work, "run")
    config = os.path.join(work, "train.json")
    json.dump({"epochs": 1, "batch_size": 2, "valid_share": 0.1, "select": False, "split": None}, open(config, "w"))
    cmd = [UAE, "train", "--model", STUDENT, "--data", data, "--labels", labels, "--out", out, "--config", config]
    start = time.time()
    proc = subprocess.Popen(cmd + ["--checkpoint-every", every], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    steps, saved = os.path.join(out, "checkpoint", "steps"), {}
    while time.time() - start < kill_after and proc.poll() is None:
        for path in glob.glob(os.path.join(steps, "scheduler-*.bpk.sum")):
            position = int(os.path.basename(path).split("-")[1].split(".")[0])
            if position not in saved and all(os.path.exists(os.path.join(steps, f"{k}-{position}.bpk.sum")) for k in ("model", "optim")):
                saved[position] = time.time() - start
        time.sleep(0.05)
    killed_at = time.time() - start
    proc.kill()
    proc.wait()
    newest = max(saved, key=saved.get) if saved else None
    result = {"checkpoint_every": every, "killed_at_s": round(killed_at, 1), "sets_saved_at_s": {k: round(v, 1) for k, v in sorted(saved.items())},
              "lost_s": round(killed_at - saved[newest], 1) if saved else None,
              "set_bytes": sum(os.path.getsize(f) for f in glob.glob(os.path.join(steps, f"*-{newest}.bpk"))) if saved else 0}
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    result["resume"] = [line for line in resumed.stdout.splitlines() if "resuming" in line] or resumed.stderr[-500:]
    shutil.rmtree(work)
    return result


if __name__ == "__main__":
    kind, rest = sys.argv[1], sys.argv[2:]
    if kind == "label":
        print(json.dumps(label(rest[0], rest[1], rest[2:] or ["8", "1"]), indent=1))
    else:
        print(json.dumps(train(rest[0], rest[1], *rest[2:3], *(float(x) for x in rest[3:4])), indent=1))
