# Checks that stop the spikeloop PYNQ-Z2 build with a clear message (sourced by build.tcl; plain Tcl,
# so tests run them in tclsh without Vivado).

# The PS makes FCLK_CLK0 from its I/O PLL with two integer divisors: Vivado picks the nearest clock it
# can make. Stop when that (PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ) is not the clock asked for.
proc spikeloop_check_clock {requested actual} {
    if {![string is double -strict $actual] || abs($actual - $requested) > 0.01} {
        error "spikeloop: FCLK_CLK0 would run at $actual MHz, not the $requested MHz asked for; choose a clock\
               the PS can make (spikeloop.boards.build --clock-mhz)"
    }
}

# Stop when the routed design misses its clock: a negative worst setup slack (WNS) or worst hold slack
# (WHS). build.tcl calls this before it copies spikeloop.bit out: a design that fails timing gives no bitstream.
proc spikeloop_check_timing {wns whs clock_mhz} {
    if {![string is double -strict $wns] || ![string is double -strict $whs]} {
        error "spikeloop: no timing result (WNS '$wns', WHS '$whs'); see reports/timing_summary.rpt"
    }
    if {$wns < 0 || $whs < 0} {
        error "spikeloop: timing not met at $clock_mhz MHz (WNS $wns ns, WHS $whs ns), no bitstream written;\
               see reports/timing_summary.rpt. Lower the clock (spikeloop.boards.build --clock-mhz) or the\
               lanes/chunk of the configuration."
    }
}
