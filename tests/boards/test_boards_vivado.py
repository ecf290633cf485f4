"""The PYNQ-Z2 Vivado flow: the prepared folder's content (part, VLNV, DMA, address map, clocks,
interrupts), the stop without Vivado, the make target; the real build only where Vivado is."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from spikeloop import regmap
from spikeloop.boards import build as board_build
from spikeloop.boards import vivado
from spikeloop.boards.devices import TimingFailed
from spikeloop.config import DEFAULT_CORE, CoreConfig, design_hash

ROOT = Path(__file__).resolve().parents[2]
SMALL = CoreConfig.build((40, 20, 12), lanes=[4, 3], chunk=[8, 6])


def read_settings(folder: Path) -> dict[str, str]:
    out = {}
    for line in (folder / "settings.tcl").read_text().splitlines():
        if m := re.fullmatch(r"set spikeloop_(\w+) (.+)", line):
            out[m[1]] = m[2]
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return vivado.prepare(SMALL, tmp_path_factory.mktemp("pynq-z2"))


def test_prepared_folder_holds_every_input_vivado_needs(prepared):
    names = {p.name for p in prepared.iterdir()}
    assert {"build.tcl", "block_design.tcl", "settings.tcl", "spikeloop_core.v", "spikeloop_core.json",
            "spikeloop.json", "README.txt"} <= names
    for name in vivado.TCL_FILES:  # copies of the sources, not generated text
        assert (prepared / name).read_text() == vivado.tcl_file(name).read_text()
    s = read_settings(prepared)
    for source in s["sources"].removeprefix("[list ").removesuffix("]").split():
        assert (prepared / source).exists()
    verilog = (prepared / "spikeloop_core.v").read_text()
    assert re.search(rf"^module {s['module']}\(", verilog, re.M)
    for port in ("aclk", "aresetn", "s_axis_tdata", "m_axis_tlast", "s_axi_awaddr", "s_axi_rdata"):
        assert re.search(rf"\b(input|output)\b[^;]*\b{port}\b", verilog), port
    assert "vivado -mode batch -notrace -source build.tcl" in (prepared / "README.txt").read_text()


def test_part_board_and_vlnv(prepared):
    s = read_settings(prepared)
    assert s["part"] == "xc7z020clg400-1"
    assert s["board_part"] == "tul.com.tw:pynq-z2:part0:1.0"
    assert s["module"] == "spikeloop_core"
    assert s["vlnv"] == "xilinx.com:module_ref:spikeloop_core:1.0" == vivado.VLNV
    bd = (prepared / "block_design.tcl").read_text()
    assert "create_bd_cell -type module -reference $spikeloop_module core" in bd
    assert "get_property VLNV $core] ne $spikeloop_vlnv" in bd  # the build stops if Vivado names it otherwise
    assert "create_project -force $spikeloop_name [file join $here project] -part $spikeloop_part" in (
        prepared / "build.tcl").read_text()


def test_dma_simple_mode_with_26_bit_lengths(prepared):
    s = read_settings(prepared)
    assert s["dma_length_width"] == "26"
    assert s["bus_width"] == str(SMALL.bus_width)
    bd = (prepared / "block_design.tcl").read_text()
    assert "xilinx.com:ip:axi_dma:7.1" in bd
    assert "CONFIG.c_include_sg {0}" in bd
    assert "CONFIG.c_sg_length_width $spikeloop_dma_length_width" in bd
    assert "CONFIG.c_m_axis_mm2s_tdata_width $spikeloop_bus_width" in bd
    assert "CONFIG.c_s_axis_s2mm_tdata_width $spikeloop_bus_width" in bd


def test_ps_ports_clocks_resets_and_interrupts(prepared):
    bd = (prepared / "block_design.tcl").read_text()
    assert "processing_system7" in bd and 'apply_board_preset "1"' in bd
    for needed in ("CONFIG.PCW_USE_M_AXI_GP0 {1}", "CONFIG.PCW_USE_S_AXI_HP0 {1}", "CONFIG.PCW_IRQ_F2P_INTR {1}",
                   "CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $spikeloop_clock_mhz"):
        assert needed in bd, needed
    connections = {
        ("ps7/M_AXI_GP0", "ctrl_ic/S00_AXI"), ("ctrl_ic/M00_AXI", "dma/S_AXI_LITE"), ("ctrl_ic/M01_AXI", "core/s_axi"),
        ("dma/M_AXIS_MM2S", "core/s_axis"), ("core/m_axis", "dma/S_AXIS_S2MM"), ("mem_ic/M00_AXI", "ps7/S_AXI_HP0"),
        ("dma/M_AXI_MM2S", "mem_ic/S00_AXI"), ("dma/M_AXI_S2MM", "mem_ic/S01_AXI"),
    }
    for a, b in connections:
        assert f"connect_bd_intf_net [get_bd_intf_pins {a}] [get_bd_intf_pins {b}]" in bd, (a, b)
    for irq in ("dma/mm2s_introut", "dma/s2mm_introut"):
        assert f"[get_bd_pins {irq}]" in bd
    assert "[get_bd_pins irq_concat/dout] [get_bd_pins ps7/IRQ_F2P]" in bd
    # every AXI clock pin on FCLK_CLK0, every peripheral reset on the proc_sys_reset
    clock_block = bd.split("connect_bd_net $clk", 1)[1].split("connect_bd_net", 1)[0]
    for pin in ("core/aclk", "dma/s_axi_lite_aclk", "dma/m_axi_mm2s_aclk", "dma/m_axi_s2mm_aclk",
                "ps7/M_AXI_GP0_ACLK", "ps7/S_AXI_HP0_ACLK", "mem_ic/aclk", "ctrl_ic/M01_ACLK"):
        assert f"[get_bd_pins {pin}]" in clock_block, pin
    reset_block = bd.split("connect_bd_net $aresetn", 1)[1].split("#", 1)[0]
    for pin in ("core/aresetn", "dma/axi_resetn", "mem_ic/aresetn"):
        assert f"[get_bd_pins {pin}]" in reset_block, pin


@pytest.mark.parametrize("config", [SMALL, replace(DEFAULT_CORE, membranes=True),
                                    CoreConfig.build((2000, 600, 10), lanes=8, chunk=128)],
                         ids=["small", "example", "large"])
def test_address_map_matches_the_register_module(config, tmp_path):
    values = vivado.settings(config)
    span = max(w.base + w.span for w in regmap.windows(config))
    size = vivado.core_range(config)
    text = vivado.settings_tcl(values)
    assert f"set spikeloop_address_bits {regmap.address_bits(config)}" in text
    assert size == max(4096, 1 << regmap.address_bits(config)) and size >= span
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    assert int(values["range"][:-1]) * units[values["range"][-1]] == size
    base, dma = int(values["base"], 16), int(values["dma_base"], 16)
    assert base % size == 0, "a Vivado address segment is aligned to its range"
    assert 0x4000_0000 <= base and base + size <= 0x8000_0000, "inside M_AXI_GP0's window"
    assert dma + vivado.DMA_RANGE <= base or base + size <= dma, "the core and the DMA do not overlap"
    # every register offset the driver uses is inside the range
    offsets = [r.offset for r in regmap.GLOBAL_REGISTERS]
    offsets += [regmap.layer_offset(k, r.name) for k in range(len(config.layers)) for r in regmap.LAYER_REGISTERS]
    assert max(offsets) < size


def test_block_design_maps_the_settings_addresses(prepared):
    bd = (prepared / "block_design.tcl").read_text()
    assert "-offset $spikeloop_base -range $spikeloop_range [get_bd_addr_segs core/s_axi/reg0]" in bd
    assert "-offset $spikeloop_dma_base -range $spikeloop_dma_range [get_bd_addr_segs dma/S_AXI_LITE/Reg]" in bd
    assert "HP0_DDR_LOWOCM" in bd


def test_build_writes_bit_and_hwh_with_the_same_base_name_and_reports(prepared):
    tcl = (prepared / "build.tcl").read_text()
    assert "[file join $here ${spikeloop_name}.bit]" in tcl and "[file join $here ${spikeloop_name}.hwh]" in tcl
    assert read_settings(prepared)["name"] == "spikeloop" and vivado.OUTPUTS == ("spikeloop.bit", "spikeloop.hwh")
    for report in ("report_utilization -file reports/utilization.rpt", "report_timing_summary",
                   "spikeloop_check_timing $wns $whs $spikeloop_clock_mhz"):
        assert report in tcl


def test_timing_is_checked_before_the_bitstream_is_written(prepared):
    """build.tcl writes the summary, then checks timing, then copies spikeloop.bit out: a design that
    misses its clock leaves no spikeloop.bit (the one in Vivado's run folder is not the overlay)."""
    tcl = (prepared / "build.tcl").read_text()
    summary = tcl.index("set f [open reports/summary.txt w]")
    check = tcl.index("spikeloop_check_timing $wns $whs")
    copy = tcl.index("file copy -force [lindex $bits 0] [file join $here ${spikeloop_name}.bit]")
    assert summary < check < copy
    assert "source [file join $here checks.tcl]" in tcl
    assert 'puts $f "whs_ns = $whs"' in tcl and "get_timing_paths -hold" in tcl
    bd = (prepared / "block_design.tcl").read_text()
    assert "spikeloop_check_clock $spikeloop_clock_mhz [get_property CONFIG.PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ $ps]" in bd


def run_tcl(script: str) -> subprocess.CompletedProcess:
    """`script` in tclsh after checks.tcl; prints `ok` when it returns, else the error's message."""
    checks = vivado.tcl_file("checks.tcl").read_text()
    probe = f"{checks}\nif {{[catch {{{script}}} message]}} {{puts \"error: $message\"}} else {{puts ok}}\n"
    return subprocess.run(["tclsh"], input=probe, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("tclsh") is None, reason="needs tclsh to run checks.tcl")
@pytest.mark.parametrize("wns, whs, expected", [
    ("0.25", "0.05", "ok"),
    ("0.0", "0.0", "ok"),
    ("-0.412", "0.05", "error: spikeloop: timing not met at 100 MHz (WNS -0.412 ns, WHS 0.05 ns), no bitstream"),
    ("0.3", "-0.01", "error: spikeloop: timing not met at 100 MHz (WNS 0.3 ns, WHS -0.01 ns)"),
    ("{}", "0.1", "error: spikeloop: no timing result (WNS '', WHS '0.1')"),
])
def test_checks_tcl_stops_a_build_that_misses_timing(wns, whs, expected):
    out = run_tcl(f"spikeloop_check_timing {wns} {whs} 100")
    assert out.returncode == 0 and out.stdout.startswith(expected), out
    if expected != "ok":
        assert "--clock-mhz" in out.stdout or "no timing result" in out.stdout


@pytest.mark.skipif(shutil.which("tclsh") is None, reason="needs tclsh to run checks.tcl")
@pytest.mark.parametrize("requested, actual, expected", [
    ("100", "100.000000", "ok"),
    ("142.857", "142.857132", "ok"),
    ("150", "142.857132", "error: spikeloop: FCLK_CLK0 would run at 142.857132 MHz, not the 150 MHz asked for"),
    ("100", "{}", "error: spikeloop: FCLK_CLK0 would run at  MHz, not the 100 MHz asked for"),
])
def test_checks_tcl_stops_a_clock_the_ps_does_not_make(requested, actual, expected):
    out = run_tcl(f"spikeloop_check_clock {requested} {actual}")
    assert out.returncode == 0 and out.stdout.startswith(expected), out


def test_fclk_divisors():
    assert vivado.fclk_divisors(100) == (2, 5) and vivado.fclk_divisors(250) == (2, 2)
    for mhz in (50, 125, 200, 142.857, 10):
        a, b = vivado.fclk_divisors(mhz)
        assert 1 <= a <= b <= 63 and abs(vivado.FCLK_SOURCE_MHZ / (a * b) - mhz) <= 0.001, mhz


@pytest.mark.parametrize("clock, message", [
    (150, (r"FCLK_CLK0 cannot be 150 MHz: the PS makes it as 1000 MHz \(its I/O PLL\) divided by two divisors of "
           r"1-63; the nearest clocks: 142\.857 MHz and 166\.667 MHz")),
    (300, r"FCLK_CLK0 runs at most 250 MHz, got 300 MHz"),
    (0, r"clock_mhz must be a positive number of MHz, got 0"),
    (-1.5, r"clock_mhz must be a positive number of MHz, got -1\.5"),
    ("100", r"clock_mhz must be a positive number of MHz, got '100'"),
])
def test_a_clock_fclk_cannot_be_is_refused(clock, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        vivado.fclk_divisors(clock)
    with pytest.raises(ValueError, match=message):
        vivado.settings(SMALL, clock_mhz=clock)
    with pytest.raises(ValueError, match=message):
        vivado.prepare(SMALL, tmp_path, clock_mhz=clock)
    assert not (tmp_path / "settings.tcl").exists()


@pytest.mark.parametrize("clock, message", [("150", "FCLK_CLK0 cannot be 150 MHz"), ("0", "got 0"),
                                            ("300", "at most 250 MHz")])
def test_make_bitstream_refuses_the_clock_before_vivado(clock, message, tmp_path, capsys):
    status = board_build.main(["--board", "pynq-z2", "--out", str(tmp_path / "b"), "--clock-mhz", clock,
                               "--sizes", "40,20,12", "--lanes", "4,3", "--chunk", "8,6"])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("make bitstream: error: ") and message in err, err
    assert not (tmp_path / "b" / "settings.tcl").exists()


def test_vivado_timing_failure_is_read_from_the_summary(tmp_path):
    """The summary build.tcl writes before its timing check (`key = value` lines) -> TimingFailed."""
    reports = tmp_path / "reports"
    assert vivado.timing_failure(tmp_path) is None, "no summary: no timing verdict"
    reports.mkdir()
    (reports / "summary.txt").write_text("vivado = v2024.1\nwns_ns = -0.731\nwhs_ns = 0.041\nclock_mhz = 100\n")
    error = vivado.timing_failure(tmp_path)
    assert isinstance(error, TimingFailed)
    assert str(error).startswith("timing fails at 100 MHz: worst setup slack -0.731 ns, worst hold slack 0.041 ns")
    assert "no bitstream" in str(error) and str(reports / "timing_summary.rpt") in str(error)
    (reports / "summary.txt").write_text("wns_ns = 0.2\nwhs_ns = 0.03\nclock_mhz = 100\n")
    assert vivado.timing_failure(tmp_path) is None


@pytest.mark.parametrize("name", vivado.TCL_FILES)
def test_tcl_brackets_balance(name, tmp_path):
    text = vivado.tcl_file(name).read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for open_, close in ("{}", "[]"):
        depth = 0
        for ch in code:
            depth += (ch == open_) - (ch == close)
            assert depth >= 0, f"{name}: unbalanced {close}"
        assert depth == 0, f"{name}: unbalanced {open_}{close}"
    if shutil.which("tclsh"):  # a syntax check where a Tcl interpreter exists
        (tmp_path / name).write_text(text)
        probe = f"set f [open {{{tmp_path / name}}}]; set t [read $f]; puts [info complete $t]"
        out = subprocess.run(["tclsh"], input=probe, capture_output=True, text=True)
        assert out.stdout.strip() == "1", out


def test_metadata_records_design_identity(prepared):
    meta = json.loads((prepared / "spikeloop.json").read_text())
    assert meta["design_hash"] == design_hash(SMALL).hex()
    assert meta["config"] == SMALL.params() and meta["vlnv"] == vivado.VLNV
    assert meta["part"] == "xc7z020clg400-1" and meta["dma_length_width"] == 26
    assert meta["core_range"] == vivado.core_range(SMALL) and meta["address_bits"] == regmap.address_bits(SMALL)
    assert "amaranth" in meta["packages"] and len(meta["source_hash"]) == 64


def test_without_vivado_the_build_stops_with_the_command_to_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(vivado, "vivado", lambda: None)
    with pytest.raises(vivado.VivadoMissing, match=r"vivado -mode batch -notrace -source build\.tcl"):
        vivado.build(SMALL, tmp_path / "pynq-z2")
    assert (tmp_path / "pynq-z2" / "settings.tcl").exists()
    status = board_build.main(["--board", "pynq-z2", "--out", str(tmp_path / "b"), "--sizes", "40,20,12",
                               "--lanes", "4,3", "--chunk", "8,6"])
    assert status == board_build.EXIT_NO_VIVADO
    assert "Copy that folder to a machine with Vivado" in capsys.readouterr().err


def test_a_configuration_that_does_not_fit_is_refused_before_vivado(tmp_path, capsys):
    status = board_build.main(["--board", "pynq-z2", "--out", str(tmp_path), "--sizes", "4096,4096",
                               "--lanes", "256", "--chunk", "256"])
    assert status == 2
    err = capsys.readouterr().err
    assert "does not fit the xc7z020clg400-1" in err and "53,200" in err
    assert not (tmp_path / "settings.tcl").exists()


def test_make_bitstream_is_a_file_target_on_its_real_inputs():
    out = subprocess.run(["make", "-n", "-p", "bitstream", "BOARD=pynq-z2"], cwd=ROOT, capture_output=True, text=True)
    rule = re.search(r"^build/boards/pynq-z2/spikeloop\.bit: (.*)$", out.stdout, re.M)
    assert rule, out.stdout[-2000:]
    deps = rule[1].split()
    assert "build/boards/pynq-z2/config.args" in deps
    assert "rtl/top.py" in deps
    assert all(f"spikeloop/{name}.py" in deps for name in ("network", "config", "regmap", "stream", "windows"))
    assert "boards/pynq_z2/block_design.tcl" in deps and "boards/vivado.py" in deps
    assert "-m spikeloop.boards.build --board pynq-z2 --out build/boards/pynq-z2" in out.stdout


@pytest.mark.vivado
@pytest.mark.skipif(shutil.which("vivado") is None, reason="needs Vivado on PATH (the PYNQ-Z2 bitstream)")
def test_vivado_builds_the_overlay(tmp_path):
    bit = vivado.build(SMALL, tmp_path / "pynq-z2")
    hwh = bit.with_suffix(".hwh")
    assert bit.stat().st_size > 1_000_000 and hwh.exists()
    assert vivado.VLNV in hwh.read_text()
    meta = json.loads((bit.parent / "spikeloop.json").read_text())
    assert meta["status"] == "built" and meta["timing"]["wns_ns"] >= 0
    assert sys.platform  # the hwh's address map is what pynq.Overlay reads
