"""The Gradio before/after demo: the same prompt and seed on the base and on the erased model.

    erase demo --artifact runs/no-stripes          # the command (demos/cli.py)

    from demos.model import load_demo_model          # the same from Python
    from demos.app import build_app, launch
    app = build_app(load_demo_model(artifacts=["runs/no-stripes"]))
    print(launch(app))                               # http://127.0.0.1:7860/

``model.py`` holds the one shared base pipeline, ``artifacts.py`` finds saved erasures,
``callbacks.py`` is what the buttons do (no Gradio in it), ``examples.py`` the example prompts,
``app.py`` the page. Nothing is imported here, so that ``erase --help`` does not load Gradio.
"""
