"""causal_wm.runtime: the allocator setting the command line applies."""

import sys

import pytest

from causal_wm import runtime


def test_keep_freed_memory_is_idempotent_and_reports_success(monkeypatch):
    monkeypatch.setattr(runtime, "_applied", None)
    first = runtime.keep_freed_memory()
    assert runtime.keep_freed_memory() is first
    if sys.platform.startswith("linux"):
        import platform

        if platform.libc_ver()[0] == "glibc":
            assert first is True


def test_keep_freed_memory_is_a_no_op_off_linux(monkeypatch):
    monkeypatch.setattr(runtime, "_applied", None)
    monkeypatch.setattr(runtime.sys, "platform", "darwin")
    assert runtime.keep_freed_memory() is False


@pytest.mark.parametrize("failure", [OSError("no libc"), AttributeError("no mallopt")])
def test_keep_freed_memory_survives_a_libc_without_mallopt(monkeypatch, failure):
    monkeypatch.setattr(runtime, "_applied", None)
    monkeypatch.setattr(runtime.sys, "platform", "linux")

    def broken(*args, **kwargs):
        raise failure

    monkeypatch.setattr(runtime.ctypes, "CDLL", broken)
    assert runtime.keep_freed_memory() is False
