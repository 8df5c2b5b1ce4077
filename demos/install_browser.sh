#!/usr/bin/env bash
# Install the headless browser that tests/demos/test_browser.py drives: Debian's chromium and the
# chromedriver built from the same source, so their versions always match. (Playwright's and
# Selenium Manager's own browser downloads need the internet; apt only needs the Debian mirror.)
# The Python side, selenium, comes with `pip install -e ".[test]"`.
#
#   demos/install_browser.sh          # as root, or as a user with sudo
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "install_browser: chromium and chromedriver are already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: no apt-get here; install Chromium and a matching chromedriver yourself, on the PATH" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
$sudo apt-get update -q
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
chromium --version
chromedriver --version
