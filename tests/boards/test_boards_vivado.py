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
                   "if {$wns < 0}"):
        assert report in tcl


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
