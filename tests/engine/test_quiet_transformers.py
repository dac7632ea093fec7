"""Quieting transformers' loading chatter keeps huggingface_hub's download bars: a first use of a
hub model shows the gigabytes coming in."""

from __future__ import annotations

import importlib
import warnings

from huggingface_hub.utils import are_progress_bars_disabled
from transformers.utils import logging as hf_logging

from engine.model.loading import quiet_transformers

# The module, not the tqdm class that huggingface_hub.utils exports under the same name.
hub_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")


def test_quiet_transformers_keeps_the_hub_download_bars(monkeypatch):
    monkeypatch.setattr(hub_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", None)
    quiet_transformers()
    assert not are_progress_bars_disabled()
    assert not are_progress_bars_disabled("huggingface_hub.snapshot_download")
    assert not hf_logging.is_progress_bar_enabled()  # transformers' per-load bars stay off
    assert hf_logging.get_verbosity() == hf_logging.ERROR


def test_a_user_who_turned_the_hub_bars_off_keeps_them_off(monkeypatch):
    monkeypatch.setattr(hub_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Cannot enable progress bars" warning either
        quiet_transformers()
    assert are_progress_bars_disabled()
