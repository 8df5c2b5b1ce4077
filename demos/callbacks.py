"""The plain functions behind the demo's buttons; they know nothing about Gradio.

Each takes the shared :class:`~demos.model.DemoModel` and a visitor's raw inputs (as a browser or
an API client sends them: numbers may be floats or strings, anything may be empty), checks the
inputs *before* any work and raises :class:`InputError` with a message the page shows, then works
while holding the model lock. A visitor's live erasures belong to their session: a
``{label: ErasureResult}`` dict that they hand in and get back, so two tabs never see each
other's erasures and nobody holds a second copy of the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image

from erase import RunOptions, get_method
from erase.config import build_config
from pipelines import ErasureResult
from pipelines.errors import EraseError
from pipelines.generation import effective_settings, generate

from .examples import canonical_or_none
from .model import DemoModel

Session = dict[str, ErasureResult]

SEED_RANGE = (0, 2**32 - 1)
SAMPLER_STEPS_RANGE = (1, 150)
GUIDANCE_RANGE = (0.0, 30.0)
DISPLAY_SIZE_RANGE = (32, 1024)
DEFAULT_DISPLAY_SIZE = 256
MAX_PROMPT_CHARS = 500
#: Live erasures kept per session; the oldest goes first. Each is small (an ESD-x erasure of the
#: mini-canvas model is under 1 MB), but a long-open tab should not grow without bound.
SESSION_LIMIT = 4
#: ... and forgotten this long after the visitor's last erasure.
SESSION_SECONDS = 2 * 3600


class InputError(EraseError):
    """A visitor's input the demo refuses; the message says what to enter instead."""


@dataclass
class Comparison:
    """Base and erased image for one prompt and seed, enlarged for display, and what to say about them."""

    base: Image.Image
    erased: Image.Image
    caption: str
    warnings: list[str]


def erased_choices(model: DemoModel, session: Session) -> list[str]:
    """Every erased model a visitor can pick: the saved ones, then their own live erasures."""
    return [*model.saved, *session]


def compare(
    model: DemoModel,
    prompt: Any,
    seed: Any,
    erased: str | None,
    session: Session,
    *,
    steps: Any = None,
    guidance: Any = None,
    size: Any = DEFAULT_DISPLAY_SIZE,
) -> Comparison:
    """The base model's and the erased model's image for the same prompt and seed.

    ``steps`` and ``guidance`` default to the model's sampling settings. With no erased model
    chosen both images come from the base, with a warning that says how to choose one.
    """
    prompt = _prompt(prompt)
    seed = _integer("seed", seed, *SEED_RANGE)
    settings = model.sampling
    if steps is not None:
        settings = replace(settings, steps=_integer("number of sampling steps", steps, *SAMPLER_STEPS_RANGE))
    if guidance is not None:
        settings = replace(settings, guidance=_number("guidance scale", guidance, *GUIDANCE_RANGE))
    size = _integer("display size", size, *DISPLAY_SIZE_RANGE)
    result = _chosen(model, erased, session)
    warnings = _prompt_warnings(model, prompt)
    with model.lock:
        base = generate(model.backbone, [prompt], [seed], settings)[0]
        if result is None:
            erased_image = base
        else:
            with result.applied(model.pipe):  # a one-step generator (SFD) is drawn in one step here
                erased_image = generate(model.backbone, [prompt], [seed], settings)[0]
                drawn = effective_settings(model.backbone, settings)
    if result is None:
        erase_one = " or erase a concept below" if model.live is not None else ""
        warnings.append(f"No erased model is selected, so both images come from the base model: "
                        f"pick one under 'Erased model'{erase_one}.")
    caption = (f"Left: the base model. Right: {erased or 'the base model again'}. "
               f"Prompt \"{prompt}\", seed {seed}, {settings.steps} DDIM steps, guidance {settings.guidance:g}.")
    if result is not None and drawn["sampler"] == "one-step":
        caption += f" The erased model is a one-step generator: one UNet evaluation at t = {drawn['t_init']}, no guidance."
    if result is not None:
        caption += _expectation(model, prompt, result)
    return Comparison(enlarge(base, size), enlarge(erased_image, size), caption, warnings)


def erase_live(
    model: DemoModel,
    concept: Any,
    method: Any,
    steps: Any,
    session: Session,
    report: Callable[[int, int], None] | None = None,
) -> tuple[str, Session, str]:
    """Erase ``concept`` from the shared model with ``method``; returns (label, new session, status).

    The result joins the visitor's session (the base model is left as it was). ``report(done,
    total)`` is called before each training step, for a progress bar.
    """
    live = model.live
    if live is None:
        raise InputError("Live erasing is off in this demo; restart it with --live-erase, or pick a saved erased model.")
    if not isinstance(concept, str) or not concept.strip():
        raise InputError("Choose a concept to erase.")
    concept = model.world.canonical(concept)
    if method not in live.methods:
        raise InputError(f"Unknown method {method!r}; choose one of: {', '.join(live.methods)}.")
    steps = _integer("number of training steps", steps, 1, live.max_steps)
    cls = get_method(method)
    erasure = cls(build_config(cls.config_class, live.overrides.get(method, {}), concepts=[concept], steps=steps))
    if report is not None:
        # Progress counts optimiser steps; a method whose --steps counts something larger
        # (few-shot: epochs) says how many optimiser steps that is in its plan.
        _report_steps(erasure, erasure.plan(model.pipe).get("optimizer_steps", steps), report)
    with model.lock:
        result = erasure.fit(model.pipe, RunOptions(model_name=model.name, progress=False))
    # The session keeps only the changed tensors; a reference to the shared pipeline in every
    # session would make any copy of a session a copy of the model.
    result.base_pipe = None
    seconds = result.record["cost"]["train_seconds"]
    model.seconds_per_step[method] = seconds / steps
    label = f"{concept} · {method}, {steps} steps (yours)"
    session = {k: v for k, v in session.items() if k != label}
    session[label] = result
    dropped = list(session)[:-SESSION_LIMIT]
    for old in dropped:
        del session[old]
    status = f"Erased **{concept}** with {method} in {seconds:.1f} s ({steps} steps); it is selected under *Erased model* until you reload the page."
    if dropped:
        status += f" Your oldest erasure ({', '.join(dropped)}) was let go: a session keeps {SESSION_LIMIT}."
    return label, session, status


def budget(model: DemoModel, method: Any, steps: Any) -> str:
    """What a live erasure with these settings costs, in words (shown before pressing Erase)."""
    live = model.live
    if live is None or method not in live.methods:
        return ""
    try:
        steps = _integer("number of training steps", steps, 1, live.max_steps)
    except InputError as error:
        return str(error)
    text = f"Budget: {steps} training steps of {method} (at most {live.max_steps} here). "
    pace = model.seconds_per_step.get(method)
    if pace is None:
        text += "The first erasure measures how long a step takes on this machine."
    else:
        text += f"About {pace * steps:.0f} s at the pace measured here."
    return text + " The model is shared, so other visitors wait while it trains."


def _report_steps(erasure: Any, total: int, report: Callable[[int, int], None]) -> None:
    """Call ``report(step, total)`` each time ``erasure`` computes a training step's loss.

    The shared training loop reports progress only to a terminal (tqdm), but it calls the
    method's ``loss`` once per step with the step index, on every method: counting those calls
    is a progress hook that needs no change to any method.
    """
    loss = erasure.loss

    def counted(step: int, generator: Any) -> Any:
        report(min(step, total), total)
        return loss(step, generator)

    erasure.loss = counted


def enlarge(image: Image.Image, size: int) -> Image.Image:
    """``image`` scaled up by a whole factor to about ``size`` pixels, nearest-neighbour.

    A 32-pixel mini-canvas image is mostly its pixels; smoothing them would invent detail
    (and blur the stripes the demo is about). Whole factors keep every pixel the same size.
    """
    factor = max(1, size // max(image.size))
    return image.resize((image.width * factor, image.height * factor), Image.NEAREST)


# --- input checks --------------------------------------------------------------------------


def _prompt(prompt: Any) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("Type a prompt first, for example: A star image in stripes style.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(f"The prompt has {len(prompt)} characters; keep it under {MAX_PROMPT_CHARS} (the model reads 77 tokens).")
    return prompt.strip()


def _number(name: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or not low <= number <= high:
        raise InputError(f"The {name} must be a number from {low} to {high}; got {value!r}.")
    return number


def _integer(name: str, value: Any, low: int, high: int) -> int:
    number = _number(name, value, low, high)
    if not number.is_integer():
        raise InputError(f"The {name} must be a whole number from {low} to {high}; got {value!r}.")
    return int(number)


def _chosen(model: DemoModel, label: str | None, session: Session) -> ErasureResult | None:
    if not label:
        return None
    if label in session:
        return session[label]
    if label in model.saved:
        return model.saved[label]
    raise InputError(f"There is no erased model called {label!r} (your own erasures last until "
                     f"the page reloads, or {SESSION_SECONDS // 3600} hours after the last one); "
                     "pick one from the list.")


def _prompt_warnings(model: DemoModel, prompt: str) -> list[str]:
    tokenizer = model.pipe.tokenizer
    if len(tokenizer(prompt).input_ids) > tokenizer.model_max_length:
        return [f"The prompt is longer than {tokenizer.model_max_length} tokens; the model ignores the rest."]
    return []


def _expectation(model: DemoModel, prompt: str, result: ErasureResult) -> str:
    """What the visitor should look for: the concept gone, or (if not prompted) nothing changed."""
    known = [c for c in result.concepts if canonical_or_none(model.world, c) is not None]
    if not known:
        return ""
    named = [c for c in known if model.world.mentions(prompt, c)]
    if named:
        return f" The prompt names the erased {', '.join(named)}: it should be missing on the right."
    return f" The prompt does not name the erased {', '.join(known)}: both images should look alike."

