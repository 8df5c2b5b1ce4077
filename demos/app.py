"""The Gradio page: a prompt and a seed in, the base and the erased model's images out.

:func:`build_app` lays out the page and wires each button to a function of
:mod:`demos.callbacks`; everything it needs comes in through the :class:`~demos.model.DemoModel`,
so two apps in one process share nothing. :func:`launch` serves it on loopback with the queue on:
every event that touches the model shares one concurrency group of size one, so visitors wait
their turn (and see their place in the queue) instead of fighting over the weights.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gradio as gr

from pipelines.errors import EraseError

from . import callbacks
from .examples import DEFAULT_CONCEPT, canonical_or_none, example_prompts
from .model import DemoModel

logger = logging.getLogger(__name__)

#: Keep 32-pixel images crisp however large the browser draws them.
CSS = ".pixels img { image-rendering: pixelated; }"
#: Events that use the model run one at a time, in this group.
MODEL_QUEUE = "model"
#: Visitors allowed to wait in the queue at once; later ones are told to come back.
QUEUE_SIZE = 32


def build_app(model: DemoModel) -> gr.Blocks:
    """The demo page for ``model`` (see the module docstring)."""
    saved = list(model.saved)
    concept = next(iter(model.saved.values())).concepts[0] if model.saved else DEFAULT_CONCEPT
    # No analytics (nothing leaves the machine); generated PNGs older than an hour are deleted hourly.
    with gr.Blocks(title="erase: before and after", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        session = gr.State({}, time_to_live=callbacks.SESSION_SECONDS)
        gr.Markdown(_intro(model))
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                prompt = gr.Textbox(label="Prompt", placeholder="A star image in stripes style.", max_lines=1)
                seed = gr.Number(label="Seed", value=0, precision=0, minimum=callbacks.SEED_RANGE[0], maximum=callbacks.SEED_RANGE[1])
                mine = ", then the ones you make below" if model.live is not None else ""
                erased = gr.Dropdown(saved, value=saved[0] if saved else None, label="Erased model", info=f"saved erasures{mine}")
                compare_button = gr.Button("Compare", variant="primary")
                with gr.Accordion("Sampling", open=False):
                    steps = gr.Slider(*callbacks.SAMPLER_STEPS_RANGE, value=model.sampling.steps, step=1, label="DDIM steps")
                    guidance = gr.Slider(*callbacks.GUIDANCE_RANGE, value=model.sampling.guidance, step=0.5, label="Guidance scale")
                    size = gr.Slider(*callbacks.DISPLAY_SIZE_RANGE, value=callbacks.DEFAULT_DISPLAY_SIZE, step=32, label="Display size (pixels)")
            with gr.Column(scale=2):
                with gr.Tabs():
                    with gr.Tab("Side by side"):
                        with gr.Row():
                            base_image = _image("Base model", "base-image")
                            erased_image = _image("Erased model", "erased-image")
                    with gr.Tab("Slider"):
                        slider = gr.ImageSlider(label="Base | erased", type="pil", format="png", elem_classes="pixels")
                caption = gr.Markdown(elem_id="caption")
        examples = gr.Examples([list(row) for row in example_prompts(model.world, concept)], inputs=[prompt, seed],
                               label="Examples: click one", elem_id="examples")

        def on_compare(prompt, seed, erased, session, steps, guidance, size):
            with _shown_to_visitor():
                shown = callbacks.compare(model, prompt, seed, erased, session, steps=steps, guidance=guidance, size=size)
            for warning in shown.warnings:
                gr.Warning(warning)
            return shown.base, shown.erased, (shown.base, shown.erased), shown.caption

        compare_io: dict[str, Any] = dict(
            fn=on_compare,
            inputs=[prompt, seed, erased, session, steps, guidance, size],
            outputs=[base_image, erased_image, slider, caption],
            concurrency_id=MODEL_QUEUE,
        )
        compare_button.click(**compare_io, api_name="compare")
        prompt.submit(**compare_io, api_visibility="private")
        examples.load_input_event.then(**compare_io, api_visibility="private")
        if model.live is not None:
            _live_erasing(model, concept, prompt, erased, session, compare_io)
    return app


def _live_erasing(model: DemoModel, concept: str, prompt: gr.Textbox, erased: gr.Dropdown, session: gr.State,
                  compare_io: dict[str, Any]) -> None:
    """The "erase a concept" form; after an erasure it compares the current prompt at once."""
    live = model.live
    world = model.world
    concept = canonical_or_none(world, concept) or DEFAULT_CONCEPT
    first_method = "esd" if "esd" in live.methods else live.methods[0]
    with gr.Accordion("Erase a concept yourself", open=not model.saved):
        with gr.Row():
            concepts = [(f"{c} ({world.kind(c)})", c) for c in world.concepts]
            concept_box = gr.Dropdown(concepts, value=concept, label="Concept")
            method = gr.Dropdown(list(live.methods), value=first_method, label="Method")
            train_steps = gr.Slider(1, live.max_steps, value=live.default_steps(first_method), step=1, label="Training steps")
        cost = gr.Markdown(callbacks.budget(model, first_method, live.default_steps(first_method)))
        erase_button = gr.Button(f"Erase {concept}", variant="primary")
        status = gr.Markdown()

    def on_erase(concept, method, steps, prompt, session, progress=gr.Progress()):
        progress(0, desc="waiting for the model")
        with _shown_to_visitor():
            label, session, text = callbacks.erase_live(
                model, concept, method, steps, session,
                report=lambda done, total: progress((done, total), desc=f"erasing {concept}", unit="steps"),
            )
        if not (isinstance(prompt, str) and prompt.strip()):
            prompt = example_prompts(world, concept)[0][0]
        choices = callbacks.erased_choices(model, session)
        return gr.Dropdown(choices=choices, value=label), session, text, prompt, callbacks.budget(model, method, steps)

    def on_method(method):
        steps = live.default_steps(method) if method in live.methods else 1
        return gr.Slider(value=steps), callbacks.budget(model, method, steps)

    concept_box.change(lambda c: gr.Button(f"Erase {c}"), concept_box, erase_button, queue=False, api_visibility="private")
    method.change(on_method, method, [train_steps, cost], queue=False, api_visibility="private")
    train_steps.change(lambda m, s: callbacks.budget(model, m, s), [method, train_steps], cost, queue=False,
                       api_visibility="private")
    erase_button.click(
        on_erase, [concept_box, method, train_steps, prompt, session], [erased, session, status, prompt, cost],
        api_name="erase", concurrency_id=MODEL_QUEUE,
    ).success(**compare_io, api_visibility="private")


def _image(label: str, elem_id: str) -> gr.Image:
    """An output image saved as PNG (WebP would smear the pixels) and drawn crisp."""
    return gr.Image(label=label, type="pil", format="png", interactive=False, elem_id=elem_id, elem_classes="pixels")


def _intro(model: DemoModel) -> str:
    live = " or erase one yourself below" if model.live is not None else ""
    return (
        "# Erase a concept, then look\n"
        f"Type a prompt and a seed: the left image comes from the base model `{model.name}`, the right one "
        f"from the erased model with the same prompt and seed. Pick a saved erasure{live}; a prompt that "
        "names the erased concept should lose it, any other prompt should look the same."
    )


@contextmanager
def _shown_to_visitor() -> Iterator[None]:
    """Turn a problem into a message on the page: the visitor's own mistakes as they are,
    anything else as a short notice (the traceback goes to the server log, not the browser)."""
    try:
        yield
    except EraseError as error:
        raise gr.Error(str(error), print_exception=False) from None
    except Exception:
        logger.exception("demo callback failed")
        raise gr.Error("Something went wrong on the server (it is in the server log); try again.", print_exception=False) from None


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = None) -> str:
    """Serve ``app`` in a background thread with the queue on; returns its local URL.

    Call ``app.block_thread()`` to wait until Ctrl+C, or ``app.close()`` to stop it.
    """
    app.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    app.launch(server_name=host, server_port=port, css=CSS, prevent_thread_lock=True, quiet=True)
    return app.local_url
