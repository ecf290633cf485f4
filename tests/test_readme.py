"""The README runs top to bottom: its ```python blocks with Python, its ```sh blocks line by line
through the installed `spikeloop` command, in the README's order, in an empty folder.

A block that cannot run here (a PYNQ board, a synthesis of tens of minutes, a `make` target, an
install) is marked in the README by the line before its fence, `<!-- not run in tests: REASON -->`;
`test_readme_block_not_run` reports each one as skipped with its line and reason, so none is left
out silently. Blocks without a language (the layout listing) are text, not commands.

The simulated boards are built with the "quick" profile (`SPIKELOOP_SIM_PROFILE=quick`): the
same Verilog, a faster compile.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = re.compile(r"^<!--\s*not run in tests:\s*(?P<reason>\S.*?)\s*-->$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
#: Where the README's examples write, relative to the folder they run in.
OUT = "build/readme/"
#: Seconds one block (or one command of a sh block) may take: a Verilator build of the 784-input core.
TIMEOUT = 900


@dataclass(frozen=True)
class Block:
    lang: str  # "python", "sh" or "" (text)
    code: str
    line: int  # of the opening fence, 1-based
    not_run: str | None  # the reason of a `not run in tests` mark

    @property
    def commands(self) -> list[list[str]]:
        """A sh block's commands, one per line, comments dropped."""
        return [words for line in self.code.splitlines() if (words := shlex.split(line, comments=True))]


def readme_blocks(text: str | None = None) -> list[Block]:
    lines = (README.read_text() if text is None else text).splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and lines[i].rstrip() != "```":
            i += 1
        if i == len(lines):
            raise AssertionError(f"README line {start + 1}: the code block is never closed")
        mark = MARK.match(lines[start - 1].strip()) if start else None
        blocks.append(Block(fence["lang"], "\n".join(lines[start + 1 : i]) + "\n", start + 1,
                            mark["reason"] if mark else None))
        i += 1
    return blocks


BLOCKS = readme_blocks()
NOT_RUN = [b for b in BLOCKS if b.not_run]
RUN = [b for b in BLOCKS if b.lang and not b.not_run]


def test_readme_parser_sees_marks_and_languages():
    text = "\n".join(["x", "```python", "print(1)", "```", "<!-- not run in tests: needs a board -->", "```sh",
                      "spikeloop a # b", "```", "```", "t", "```"])
    blocks = readme_blocks(text)
    assert [(b.lang, b.line, b.not_run) for b in blocks] == [("python", 2, None), ("sh", 6, "needs a board"),
                                                              ("", 9, None)]
    assert blocks[1].commands == [["spikeloop", "a"]]


def test_readme_blocks_are_python_sh_or_text():
    assert RUN, "no runnable block found in the README"
    for block in BLOCKS:
        assert block.lang in ("python", "sh", ""), (
            f"README line {block.line}: a ```{block.lang} block; the test runs ```python and ```sh blocks "
            "(mark others `<!-- not run in tests: REASON -->`)")
        if block.lang == "sh" and not block.not_run:
            for words in block.commands:
                assert words[0] == "spikeloop", (
                    f"README line {block.line}: `{shlex.join(words)}` is not a spikeloop command; the test "
                    "runs only those (mark the block `<!-- not run in tests: REASON -->` if it cannot run)")


def test_readme_examples_write_distinct_files_under_one_folder():
    """Every file an example writes is its own (nothing overwrites what a later step reads) and lies
    under build/readme/ (nothing is left in the folder the examples run in)."""
    outs = []
    for block in BLOCKS:
        if block.lang == "sh":
            for words in block.commands:
                outs += [words[k + 1] for k, w in enumerate(words[:-1]) if w in ("--out", "--log")]
        elif block.lang == "python":
            outs += re.findall(r"""(?:\.save|nir\.write)\(\s*["']([^"']+)["']""", block.code)
    assert outs
    assert len(outs) == len(set(outs)), f"files written twice: {sorted({o for o in outs if outs.count(o) > 1})}"
    assert all(o.startswith(OUT) for o in outs), [o for o in outs if not o.startswith(OUT)]


@pytest.mark.parametrize("block", NOT_RUN, ids=[f"line{b.line}" for b in NOT_RUN])
def test_readme_block_not_run(block):
    """Each block the README marks as not run in tests, reported with its reason."""
    pytest.skip(f"README line {block.line} ({block.lang}) not run: {block.not_run}")


def _spikeloop() -> str:
    beside = Path(sys.executable).with_name("spikeloop")
    found = str(beside) if beside.exists() else shutil.which("spikeloop")
    if not found:
        pytest.fail("the `spikeloop` command is not installed (pip install -e .[dev])")
    return found


def _check(proc, what: str, block: Block) -> None:
    if proc.returncode != 0:
        raise AssertionError(f"README line {block.line}: {what} exited with {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")


@pytest.mark.tools
@pytest.mark.readme  # `make readme`, a step of CI of its own: about 3 minutes
def test_readme_runs_top_to_bottom(tmp_path):
    env = {**os.environ, "SPIKELOOP_SIM_PROFILE": "quick", "MPLBACKEND": "Agg"}
    spikeloop = _spikeloop()
    timings = []
    for block in RUN:
        t0 = time.monotonic()
        if block.lang == "python":
            proc = subprocess.run([sys.executable, "-c", block.code], cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=TIMEOUT)
            _check(proc, "the Python block", block)
        else:
            for words in block.commands:
                proc = subprocess.run([spikeloop, *words[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                                      timeout=TIMEOUT)
                _check(proc, f"`{shlex.join(words)}`", block)
        timings.append(f"line {block.line} ({block.lang}): {time.monotonic() - t0:.1f} s")
    print("\n".join(["README blocks run:", *timings, "not run:",
                     *(f"line {b.line} ({b.lang}): {b.not_run}" for b in NOT_RUN)]))
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.iterdir())
    assert left == ["build"], f"the examples left files outside build/: {left}"
    assert sorted(p.name for p in (tmp_path / "build").iterdir()) == ["readme"]
    for name in ("net.npz", "net784.npz", "out784.npz", "out784_sim.npz", "digits.npz", "digits.nir",
                 "digits_from_nir.npz", "from_snntorch.nir", "from_snntorch.npz", "train/checkpoint.pt"):
        assert (tmp_path / OUT / name).is_file(), name
