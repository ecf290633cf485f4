# spikeloop overlay for the PYNQ-Z2: Vivado batch build.
#
#   vivado -mode batch -notrace -source build.tcl
#
# run in the folder `make bitstream BOARD=pynq-z2` prepared (build/boards/pynq-z2/ by default):
# it holds this script, block_design.tcl, checks.tcl, settings.tcl (the configuration of this build, written
# by spikeloop.boards.vivado) and the core's Verilog. Writes, next to this script:
#   spikeloop.bit, spikeloop.hwh   the overlay (same base name, as pynq.Overlay expects)
#   reports/utilization.rpt, reports/utilization_hier.rpt, reports/timing_summary.rpt
#   reports/summary.txt            key = value lines (Vivado version, WNS, resources) for the metadata
# and stops with an error, before it writes spikeloop.bit, when the design misses timing (checks.tcl).

set here [file normalize [file dirname [info script]]]
cd $here
source [file join $here settings.tcl]
source [file join $here checks.tcl]
file mkdir reports

# ---- project, board files ------------------------------------------------------------------
create_project -force $spikeloop_name [file join $here project] -part $spikeloop_part
if {[info exists ::env(SPIKELOOP_BOARD_REPO)]} {
    set_param board.repoPaths [list $::env(SPIKELOOP_BOARD_REPO)]
}
if {![llength [get_board_parts -quiet $spikeloop_board_part]]} {
    # Vivado 2021.1 and later can fetch the PYNQ-Z2 board files from the Xilinx board store.
    catch {
        xhub::refresh_catalog [xhub::get_xstores xilinx_board_store]
        xhub::install [xhub::get_xitems -quiet *pynq-z2*]
        set_param board.repoPaths [get_property LOCAL_ROOT_DIR [xhub::get_xstores xilinx_board_store]]
    }
}
if {![llength [get_board_parts -quiet $spikeloop_board_part]]} {
    error "spikeloop: the PYNQ-Z2 board files ($spikeloop_board_part) are not installed. Install them\
           from the Vivado board store (Tools > Vivado Store > Boards > pynq-z2), or point\
           SPIKELOOP_BOARD_REPO at a folder holding them, then run this script again."
}
set_property board_part $spikeloop_board_part [current_project]
set_property target_language Verilog [current_project]

# ---- the core (a module reference: VLNV xilinx.com:module_ref:<module>:1.0) -------------------
foreach source $spikeloop_sources {
    add_files -norecurse [file join $here $source]
}
set_property top $spikeloop_module [current_fileset]
update_compile_order -fileset sources_1

# ---- block design ------------------------------------------------------------------------------
source [file join $here block_design.tcl]
spikeloop_block_design

set bd_file [get_files ${spikeloop_name}.bd]
generate_target all $bd_file
set wrapper [make_wrapper -files $bd_file -top]
add_files -norecurse $wrapper
set_property top ${spikeloop_name}_wrapper [current_fileset]
update_compile_order -fileset sources_1

# ---- synthesis, implementation, bitstream -----------------------------------------------------------
launch_runs impl_1 -to_step write_bitstream -jobs $spikeloop_jobs
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} {
    error "spikeloop: implementation failed: [get_property STATUS [get_runs impl_1]] (see project/${spikeloop_name}.runs/impl_1/runme.log)"
}

open_run impl_1
report_utilization -file reports/utilization.rpt
report_utilization -hierarchical -file reports/utilization_hier.rpt
report_timing_summary -max_paths 10 -file reports/timing_summary.rpt
set wns [get_property SLACK [lindex [get_timing_paths -setup -max_paths 1 -nworst 1] 0]]
set whs [get_property SLACK [lindex [get_timing_paths -hold -max_paths 1 -nworst 1] 0]]

# key = value lines read back by spikeloop.boards.vivado into spikeloop.json (written before the timing check)
set f [open reports/summary.txt w]
puts $f "vivado = [version -short]"
puts $f "part = [get_property PART [current_design]]"
puts $f "wns_ns = $wns"
puts $f "whs_ns = $whs"
puts $f "clock_mhz = $spikeloop_clock_mhz"
set utilization [split [report_utilization -return_string] "\n"]
foreach {key type} {lut {Slice LUTs} ff {Slice Registers} bram {Block RAM Tile} dsp {DSPs}} {
    set row [lsearch -inline -glob $utilization "| $type *"]
    puts $f "$key = [string trim [lindex [split $row |] 2]]"
}
close $f

spikeloop_check_timing $wns $whs $spikeloop_clock_mhz

set bits [glob -nocomplain [file join $here project ${spikeloop_name}.runs impl_1 *.bit]]
set hwhs [glob -nocomplain \
    [file join $here project ${spikeloop_name}.gen sources_1 bd $spikeloop_name hw_handoff ${spikeloop_name}.hwh] \
    [file join $here project ${spikeloop_name}.srcs sources_1 bd $spikeloop_name hw_handoff ${spikeloop_name}.hwh]]
if {![llength $bits] || ![llength $hwhs]} {
    error "spikeloop: Vivado finished without a bitstream or hardware handoff file"
}
file copy -force [lindex $bits 0] [file join $here ${spikeloop_name}.bit]
file copy -force [lindex $hwhs 0] [file join $here ${spikeloop_name}.hwh]
puts "spikeloop: wrote [file join $here ${spikeloop_name}.bit] and ${spikeloop_name}.hwh (WNS $wns ns, WHS $whs ns)"
