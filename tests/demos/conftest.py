"""Demo fixtures: the tiny pipeline with a saved "stripes" erasure, the served app, a headless browser.

Everything runs on the tiny random pipeline, so the images are noise: these tests check the
plumbing (two images, the erased one differs, errors reach the page), not that stripes vanish;
that is the ESD efficacy test's job. For a screenshot worth showing, point the served app at the
real model: ``ERASE_DEMO_MODEL=mini-canvas ERASE_DEMO_ARTIFACT=runs/no-stripes``.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile

import pytest

#: Live erasing on the tiny model in well under a second: few DDIM steps, a large learning rate.
FAST_ESD = {"esd": {"ddim_steps": 4, "lr": 1e-2}}
STRIPES_PROMPT = "A star image in stripes style."
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1100",
)


@pytest.fixture(scope="session")
def stripes_artifact(tiny_folder, tmp_path_factory) -> str:
    """An `erase run`-style artifact folder (no pipeline/ export) erasing "stripes" from the tiny model."""
    from erase import ESDConfig, erase
    from pipelines import load_pipeline

    pipe = load_pipeline(tiny_folder)
    result = erase(pipe, ESDConfig(concepts=["stripes"], steps=4, ddim_steps=4, lr=1e-2), progress=False)
    folder = str(tmp_path_factory.mktemp("runs") / "no-stripes")
    result.save(folder, pipeline=False)
    return folder


@pytest.fixture(scope="session")
def demo_model(stripes_artifact):
    """The tiny base model (found from the artifact's record) with the artifact and fast live erasing."""
    from demos.model import load_demo_model

    return load_demo_model(artifacts=[stripes_artifact], live_erase=True, live_overrides=FAST_ESD)


@pytest.fixture(scope="session")
def demo_url(demo_model):
    """The app served on 127.0.0.1 at a free port, for the client and browser tests."""
    from demos.app import build_app, launch
    from demos.model import load_demo_model

    model = demo_model
    if os.environ.get("ERASE_DEMO_MODEL"):
        artifact = os.environ.get("ERASE_DEMO_ARTIFACT")
        model = load_demo_model(os.environ["ERASE_DEMO_MODEL"], artifacts=[artifact] if artifact else [])
    app = build_app(model)
    url = launch(app, "127.0.0.1", free_port())
    yield url
    app.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser():
    """Headless Debian chromium driven by Selenium through its matching chromedriver.

    Missing pieces skip the test on a developer machine but fail it in CI (CI=true), where
    ``demos/install_browser.sh`` and the ``[test]`` extra must have provided them.
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    if not (chromium and driver_path and webdriver):
        missing = [name for name, found in (("chromium", chromium), ("chromedriver", driver_path), ("selenium", webdriver)) if not found]
        reason = f"no headless browser ({', '.join(missing)} missing): run demos/install_browser.sh and pip install -e '.[test]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="erase-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
