#!/usr/bin/env python
"""Benchmark: iterations and wall time until a model first meets its study's quality bars.

Trains a model of an experiment (default: the arm study's circuit, ``experiments/arm_center_out.toml``)
with ``[train] stop_at_bars`` on, so training ends at the first validation (every ``eval_every``
iterations) on which the model meets every ``[quality]`` bar the validation trials can measure, each
``bar_margin`` of its slack inside.  Then it scores the kept parameters on the held-out trials the
run itself scores (:func:`cortexsim.evaluation.evaluate`) and checks them against the untightened
bars, as the run's gate does.  One line per (variant, seed); a table of medians over seeds at the end.

A *variant* is a named set of config changes (``section.key=value``, ``;``-separated; a value in JSON
where it is a list or a table), so today's
training and a proposed one are measured by the same code on the same seeds, interleaved::

    python benchmarks/iterations_to_bar.py                      # the shipped config, seeds 0-2
    python benchmarks/iterations_to_bar.py \\
        --variant "before:effector.speed_l2=1.0" \\
        --variant "after:"                                       # "after:" = the experiment as shipped
    python benchmarks/iterations_to_bar.py --model ann:gru --seeds 0 1 2

Iteration counts are deterministic (config, seed, code); wall times are not -- the script prints the
machine's load average before and after.  A run that reaches ``max_iterations`` without meeting the
bars is reported as such (its count is then a lower bound).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass

from cortexsim import assembly, metrics, quality
from cortexsim.config import Config, load_config
from cortexsim.evaluation import evaluate
from cortexsim.pipeline import train_ann, train_rate
from cortexsim.train import BARS_STOP


@dataclass
class Outcome:
    variant: str
    seed: int
    iterations: int
    seconds: float
    met_during_training: bool
    held_out_passed: bool
    shortfalls: str
    held_out: dict


def _parse_variant(text: str) -> tuple[str, dict[str, dict[str, object]]]:
    name, _, body = text.partition(":")
    changes: dict[str, dict[str, object]] = {}
    for item in filter(None, (part.strip() for part in body.split(";"))):
        key, _, raw = item.partition("=")
        section, _, field = key.partition(".")
        changes.setdefault(section, {})[field] = json.loads(raw) if raw[:1] in '[{"tf0123456789-.' else raw
    return name or "shipped", changes


def _configure(base: Config, seed: int, changes: dict[str, dict[str, object]], max_iterations: int | None) -> Config:
    config = base.with_section("experiment", seed=seed).with_section("train", stop_at_bars=True)
    if max_iterations is not None:
        config = config.with_section("train", max_iterations=max_iterations)
    for section, values in changes.items():
        config = config.with_section(section, **values)
    return config


def _train(config: Config, model: str, trace: bool):
    log = print if trace else (lambda line: None)
    if model == "rate":
        checkpoint = None
        if trace:  # every validation's reach metrics, met or not (one more validation simulation each)
            task, validation = assembly.make_task(config), assembly.validation_set(config)
            net = assembly.make_rate_network(config, assembly.build_circuit(config))

            def checkpoint(state) -> None:
                net.set_params(state.params)
                values = metrics.reach_metrics(task, "val", net.simulate(validation).outputs, validation)
                print(f"  iteration {state.iteration}: " + ", ".join(f"{k[4:]} {v:.4g}" for k, v in values.items()))

            config = config.with_section("train", checkpoint_every=config.train.eval_every)
        return train_rate(config, log=log, checkpoint=checkpoint)
    return train_ann(config, model.removeprefix("ann:"), log=log)


def measure(
    base: Config, name: str, changes: dict, seed: int, model: str, max_iterations: int | None, trace: bool = False
) -> Outcome:
    """Train one model of one variant and seed to its bars; score it held out."""
    config = _configure(base, seed, changes, max_iterations)
    t0 = time.perf_counter()
    trained, state = _train(config, model, trace)
    seconds = time.perf_counter() - t0
    prefix = "rate" if model == "rate" else "ann_" + model.removeprefix("ann:")
    held_out = evaluate(trained, config, prefix).metrics
    bars = [b for b in config.quality.bars(prefix) if b[0] in held_out]
    verdict = quality.check_written({m: held_out[m] for m, _, _ in bars}, config.quality)
    return Outcome(
        name,
        seed,
        state.best_iteration,
        seconds,
        state.done.startswith(BARS_STOP),
        verdict.passed,
        "; ".join(s.text() for s in verdict.shortfalls),
        {m.removeprefix(prefix + "_"): held_out[m] for m in held_out if m.startswith(prefix + "_")},
    )


def _relax_dale() -> None:
    """Ablation only: let the circuit's magnitudes ``M`` (``W = M sign[pre]``) go negative.

    :meth:`cortexsim.rate.RateNetwork.enforce_constraints` projects ``M >= 0`` after every step,
    which is Dale's law; this replaces it, for this process only, by the mask and input projections
    alone.  Nothing in the library can do this: a circuit without Dale's law is not the circuit.
    """
    from cortexsim.rate import RateNetwork

    def enforce_constraints(self) -> None:
        self.params["w"] *= self.mask
        self.params["w_in"] *= self.in_mask

    RateNetwork.enforce_constraints = enforce_constraints
    print("ABLATION: Dale's law relaxed (weight magnitudes may change sign)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="experiments/arm_center_out.toml")
    parser.add_argument("--model", default="rate", help="rate, ann:rnn, ann:gru or ann:lstm")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variant", action="append", default=[], help='"name:section.key=value;..." (repeatable)')
    parser.add_argument("--max-iterations", type=int, default=None, help="override train.max_iterations")
    parser.add_argument("--json", help="write every outcome here")
    parser.add_argument("--trace", action="store_true", help="print training's progress and every validation's metrics")
    parser.add_argument(
        "--no-dale",
        action="store_true",
        help="ablation: the circuit's weight magnitudes may change sign (Dale's law relaxed; the mask is kept)",
    )
    args = parser.parse_args()
    if args.no_dale:
        _relax_dale()
    base = load_config(args.config)
    variants = [_parse_variant(v) for v in args.variant] or [("shipped", {})]
    print(f"{args.config}, model {args.model}, seeds {args.seeds}; load average {os.getloadavg()}")
    outcomes: list[Outcome] = []
    for seed in args.seeds:  # interleaved: every variant of a seed before the next seed
        for name, changes in variants:
            o = measure(base, name, changes, seed, args.model, args.max_iterations, args.trace)
            outcomes.append(o)
            status = "met bars" if o.met_during_training else "did NOT meet the bars by max_iterations"
            held = "held-out PASSED" if o.held_out_passed else f"held-out FAILED ({o.shortfalls})"
            print(f"{name:>12s} seed {seed}: {o.iterations:5d} iterations, {o.seconds:6.1f} s; {status}; {held}")
            print("              held out: " + ", ".join(f"{k} {v:.4g}" for k, v in o.held_out.items()))
    print(f"load average after: {os.getloadavg()}")
    print("\nvariant       median iterations   median s   met/held-out passed")
    for name, _ in variants:
        mine = [o for o in outcomes if o.variant == name]
        print(
            f"{name:>12s}  {statistics.median(o.iterations for o in mine):17.0f}  "
            f"{statistics.median(o.seconds for o in mine):9.1f}   "
            f"{sum(o.met_during_training for o in mine)}/{len(mine)}, "
            f"{sum(o.held_out_passed for o in mine)}/{len(mine)}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([o.__dict__ for o in outcomes], fh, indent=1)


if __name__ == "__main__":
    main()
