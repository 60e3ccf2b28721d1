#!/usr/bin/env python3
"""Make assets/fixtures/loss_reference.json: reference values and gradients of
uae's distillation losses (uae-train/src/loss), computed with PyTorch autograd
in float64, for uae-train/tests/loss_parity.rs.

    $UAE_CACHE/venv/bin/python assets/make_loss_reference.py [--out FILE]

(UAE_CACHE is /root/.cache/uae here; the venv needs only torch.)

Inputs (fixed below; B = 3 queries, K = 5 candidates, M = 4 in-batch
negatives), chosen to hit the edge cases:
  * row 0: negative utilities;
  * row 1: tied utilities (candidates 0 and 2, and 1 and 4) and tied scores,
    which exercises the tie order of stable distillation;
  * row 2: large-magnitude utilities (-48 .. 35), a softmax that only a
    max-shifted log-sum-exp keeps finite at small temperatures.
Every input is rounded to float32 first and written as the exact float32 value,
so the Rust side loads the very numbers the reference used.

Each case is one loss with or without the in-batch negatives; "config" is
uae's LossConfig as JSON. Outputs: the batch loss, the per-query losses, and
d loss / d scores and d loss / d in_batch (utilities are constants).

The references are written as the libraries they imitate compute them:
  infonce         F.cross_entropy(logits, positive), as sentence-transformers'
                  MultipleNegativesRankingLoss with scale = 1/tau;
  um-infonce      F.cross_entropy with the soft target softmax(U/tau_u), zero
                  on the in-batch columns;
  kl              F.kl_div(log_softmax(logits), target, reduction="batchmean")
                  * tau^2, as sentence-transformers' DistillKLDivLoss;
  stable-distill  FlagEmbedding's loop (research/llm_embedder/src/retrieval/
                  modeling_dense.py, DenseRetriever._compute_loss with
                  stable_distill=True), after a stable sort of each row's
                  candidates by descending utility (FlagEmbedding's data lists
                  candidates in the teacher's order; ties keep candidate order).
"""

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

SCORES = [
    [0.62, 0.15, 0.71, -0.05, 0.33],
    [0.48, 0.55, 0.48, 0.12, 0.80],
    [0.91, -0.35, 0.40, 0.88, -0.72],
]
IN_BATCH = [
    [0.21, 0.58, -0.12, 0.44],
    [0.30, -0.25, 0.66, 0.05],
    [0.72, 0.10, -0.40, 0.86],
]
UTILITIES = [
    [-0.8, -2.1, -0.3, -1.5, -3.0],
    [0.4, 1.2, 0.4, -0.6, 1.2],
    [35.0, -20.0, 12.5, 34.0, -48.0],
]
POSITIVE = [2, 4, 0]

# kind -> (tau, tau_u). kl uses two different temperatures; stable-distill
# uses FlagEmbedding's cos_temperature 0.01 and teacher temperature 1.
CONFIGS = {
    "um-infonce": (0.05, 1.0),
    "infonce": (0.05, 1.0),
    "kl": (0.05, 2.0),
    "stable-distill": (0.01, 1.0),
}


def f32(rows):
    """The float32 rounding of `rows`, as a float64 tensor."""
    return torch.tensor(rows, dtype=torch.float32).to(torch.float64)


def padded_target(utilities, tau_u, width):
    """softmax(U / tau_u) over the K candidates, zero-padded to `width` columns."""
    target = torch.softmax(utilities / tau_u, dim=1)
    return F.pad(target, (0, width - target.shape[1]))


def um_infonce(logits, utilities, positive, tau, tau_u):
    target = padded_target(utilities, tau_u, logits.shape[1])
    per_query = F.cross_entropy(logits, target, reduction="none")
    return F.cross_entropy(logits, target), per_query


def infonce(logits, utilities, positive, tau, tau_u):
    per_query = F.cross_entropy(logits, positive, reduction="none")
    return F.cross_entropy(logits, positive), per_query


def kl(logits, utilities, positive, tau, tau_u):
    target = padded_target(utilities, tau_u, logits.shape[1])
    log_p = torch.log_softmax(logits, dim=1)
    loss = F.kl_div(log_p, target, reduction="batchmean") * tau**2
    per_query = F.kl_div(log_p, target, reduction="none").sum(dim=1) * tau**2
    return loss, per_query


def stable_distill(logits, utilities, positive, tau, tau_u):
    b, k = utilities.shape
    order = torch.sort(-utilities, dim=1, stable=True).indices
    own = torch.gather(logits[:, :k], 1, order)
    scores = torch.cat([own, logits[:, k:]], dim=1)
    teacher_targets = torch.softmax(torch.gather(utilities, 1, order) / tau_u, dim=-1)
    # FlagEmbedding's loop, with labels = 0 (each query's group starts at 0 here).
    labels = torch.zeros(b, dtype=torch.long)
    distill_loss = 0
    per_query = torch.zeros(b, dtype=scores.dtype)
    mask = torch.zeros_like(scores)
    for i in range(k):
        temp_target = labels + i
        temp_scores = scores + mask
        loss = F.cross_entropy(temp_scores, temp_target, reduction="none")
        distill_loss = distill_loss + torch.mean(teacher_targets[:, i] * loss)
        per_query = per_query + teacher_targets[:, i] * loss
        mask = torch.scatter(
            mask, dim=-1, index=temp_target.unsqueeze(-1), value=torch.finfo(scores.dtype).min
        )
    return distill_loss, per_query


LOSSES = {
    "um-infonce": um_infonce,
    "infonce": infonce,
    "kl": kl,
    "stable-distill": stable_distill,
}


def case(kind, use_in_batch):
    tau, tau_u = CONFIGS[kind]
    scores = f32(SCORES).requires_grad_(True)
    in_batch = f32(IN_BATCH).requires_grad_(True)
    utilities = f32(UTILITIES)
    positive = torch.tensor(POSITIVE)
    parts = [scores, in_batch] if use_in_batch else [scores]
    logits = torch.cat(parts, dim=1) / tau
    loss, per_query = LOSSES[kind](logits, utilities, positive, tau, tau_u)
    assert torch.allclose(per_query.mean(), loss, rtol=1e-12, atol=1e-12), kind
    loss.backward()
    return {
        "config": {"kind": kind, "tau": tau, "tau_u": tau_u, "use_in_batch": use_in_batch},
        "loss": loss.item(),
        "per_query": per_query.tolist(),
        "grad_scores": scores.grad.tolist(),
        "grad_in_batch": in_batch.grad.tolist() if use_in_batch else None,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent / "fixtures" / "loss_reference.json"
    parser.add_argument("--out", type=Path, default=default)
    args = parser.parse_args()
    reference = {
        "generator": "assets/make_loss_reference.py",
        "torch": torch.__version__,
        "inputs": {
            "scores": f32(SCORES).tolist(),
            "in_batch": f32(IN_BATCH).tolist(),
            "utilities": f32(UTILITIES).tolist(),
            "positive": POSITIVE,
        },
        "cases": [case(kind, flag) for kind in LOSSES for flag in (False, True)],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(reference, indent=1) + "\n")
    for c in reference["cases"]:
        cfg = c["config"]
        print(f"{cfg['kind']:>15} in_batch={cfg['use_in_batch']!s:<5} loss={c['loss']:.9f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
