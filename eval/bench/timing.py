"""How long a method trains per concept on the shipped model: ``python -m eval.bench.timing``.

    OMP_NUM_THREADS=2 python -m eval.bench.timing --method fewshot --option epoch=5 --repeats 3

Papers quote training time per concept (few-shot erasure: "within 10 s"). This loads the model
once, erases each concept ``--repeats`` times with the method's defaults (plus ``--option``),
and reads ``cost.train_seconds`` (the optimisation loop alone, after loading and data, as the
papers time it), ``cost.data_seconds`` and, for a method that picks its kept state with a judge
(few-shot, DoCo), ``cost.select_seconds`` (the probing; part of the per-concept cost) from each record. It prints one JSON object: every
run, the median and the maximum, and the machine's thread count and load, because a shared
machine slows every number down. Nothing is evaluated or saved: ``erase bench`` does that.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics

import torch

from pipelines import MINI_CANVAS, load_pipeline

logger = logging.getLogger(__name__)


def measure(method: str, model: str, concepts: list[str], repeats: int, options: dict) -> dict:
    """Train each concept ``repeats`` times; return every run and the median train seconds."""
    import erase

    cls = erase.get_method(method)
    pipe = load_pipeline(model)
    runs = []
    for repeat in range(repeats):
        for concept in concepts:
            config = cls.config_class(concepts=[concept], **options)
            config.validate()
            cost = cls(config).fit(pipe, erase.RunOptions(model_name=model, progress=False)).record["cost"]
            runs.append({"concept": concept, "repeat": repeat, "train_seconds": cost["train_seconds"],
                         "select_seconds": cost.get("select_seconds", 0.0), "data_seconds": cost["data_seconds"]})
            logger.info("%s (run %d): %.2f s training, %.2f s choosing the kept state, %.2f s data", concept, repeat + 1,
                        cost["train_seconds"], runs[-1]["select_seconds"], cost["data_seconds"])
    seconds = [r["train_seconds"] for r in runs]
    with_selection = [r["train_seconds"] + r["select_seconds"] for r in runs]
    return {
        "method": method,
        "model": model,
        "options": options,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "median_train_seconds": round(statistics.median(seconds), 3),
        "max_train_seconds": max(seconds),
        "median_train_and_select_seconds": round(statistics.median(with_selection), 3),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.bench.timing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", required=True, help="registered method name (see `erase methods`)")
    parser.add_argument("--model", default=MINI_CANVAS, help="base model (default: mini-canvas)")
    parser.add_argument("--concepts", default="stripes,dots,star,heart", help="comma-separated concepts, one run each")
    parser.add_argument("--repeats", type=int, default=3, help="runs per concept")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2, the cores the claims are checked on)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=JSON", help='method option, e.g. epoch=5 or params="te-full"')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="timing: %(message)s")
    torch.set_num_threads(args.threads)
    options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)}
    concepts = [c.strip() for c in args.concepts.split(",") if c.strip()]
    print(json.dumps(measure(args.method, args.model, concepts, args.repeats, options), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
