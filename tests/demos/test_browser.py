"""A real headless Chromium uses the page: a bad input shows a message, an example shows both images.

One page visit does both, because starting Chromium is most of this test's time. The screenshot
is kept as the test's artifact, ``tests/demos/artifacts/demo.png`` (not tracked: on the tiny test
model the images are noise), or written to ``ERASE_DEMO_SCREENSHOT``. The README's screenshot is
this test run on the real model (see the README's "Demo" section for the command).
"""

from __future__ import annotations

import os

SCREENSHOT = os.environ.get("ERASE_DEMO_SCREENSHOT") or os.path.join(os.path.dirname(__file__), "artifacts", "demo.png")
#: Generous: on a loaded 2-core machine Chromium alone can take half a minute to start a page.
TIMEOUT = 120
#: Natural width of each side's <img>, 0 until it has loaded.
RENDERED_WIDTHS = """return ['base-image', 'erased-image'].map(id => {
    const img = document.querySelector('#' + id + ' img');
    return img && img.complete ? img.naturalWidth : 0;
});"""


def test_the_page_explains_bad_input_and_shows_both_images_for_an_example(browser, demo_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, TIMEOUT)
    browser.get(demo_url)
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#examples td"))

    browser.find_element(By.XPATH, "//button[normalize-space()='Compare']").click()
    wait.until(lambda b: "Type a prompt first" in b.find_element(By.TAG_NAME, "body").text)
    assert browser.execute_script(RENDERED_WIDTHS) == [0, 0]

    example = browser.find_element(By.CSS_SELECTOR, '#examples [data-testid="dataset-cell-0-0"]')
    prompt = example.text
    example.click()
    wait.until(lambda b: all(width > 0 for width in b.execute_script(RENDERED_WIDTHS)))
    wait.until(lambda b: prompt in b.find_element(By.ID, "caption").text)
    assert browser.execute_script(RENDERED_WIDTHS) == [256, 256]
    for close in browser.find_elements(By.CSS_SELECTOR, '[data-testid="toast-close"]'):
        close.click()  # the earlier message would cover the page in the screenshot
    wait.until(lambda b: not b.find_elements(By.CSS_SELECTOR, '[data-testid="toast-body"]'))
    os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
    browser.save_screenshot(SCREENSHOT)
    assert os.path.getsize(SCREENSHOT) > 10_000
