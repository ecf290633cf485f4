# The spikeloop block design for the PYNQ-Z2 (sourced by build.tcl; needs settings.tcl first).
#
#   Zynq PS (PYNQ-Z2 preset) --M_AXI_GP0--> AXI interconnect --+--> dma/S_AXI_LITE    (control)
#                                                              +--> core/s_axi        (registers, windows)
#   dma/M_AXIS_MM2S --> core/s_axis        core/m_axis --> dma/S_AXIS_S2MM            (spikes)
#   dma/M_AXI_MM2S, dma/M_AXI_S2MM --> SmartConnect --> Zynq PS S_AXI_HP0 (DDR)
#   dma/mm2s_introut, dma/s2mm_introut --> concat --> Zynq PS IRQ_F2P
#   FCLK_CLK0 ($spikeloop_clock_mhz MHz) clocks everything; proc_sys_reset makes the resets.
#
# The core is a module reference of $spikeloop_module: Vivado gives it the VLNV
# xilinx.com:module_ref:<module>:1.0 ($spikeloop_vlnv), which the spikeloop driver binds to. Its
# AXI interfaces are inferred from the port prefixes s_axi_, s_axis_, m_axis_ (aclk, aresetn).
# Addresses: the core at $spikeloop_base with a range of $spikeloop_range (2^ADDRESS_BITS bytes of
# spikeloop.regmap, at least 4K), the DMA registers at $spikeloop_dma_base.

proc spikeloop_block_design {} {
    foreach name {spikeloop_name spikeloop_module spikeloop_vlnv spikeloop_clock_mhz spikeloop_bus_width
                  spikeloop_dma_length_width spikeloop_base spikeloop_range spikeloop_dma_base spikeloop_dma_range} {
        upvar #0 $name $name
    }
    create_bd_design $spikeloop_name

    # ---- Zynq processing system: PYNQ-Z2 preset, GP0 master, HP0 slave, fabric interrupts, FCLK0
    set ps [create_bd_cell -type ip -vlnv xilinx.com:ip:processing_system7:5.5 ps7]
    apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
        -config {make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"} $ps
    set_property -dict [list \
        CONFIG.PCW_USE_M_AXI_GP0 {1} \
        CONFIG.PCW_USE_S_AXI_HP0 {1} \
        CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {64} \
        CONFIG.PCW_EN_CLK0_PORT {1} \
        CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $spikeloop_clock_mhz \
        CONFIG.PCW_USE_FABRIC_INTERRUPT {1} \
        CONFIG.PCW_IRQ_F2P_INTR {1} \
    ] $ps
    spikeloop_check_clock $spikeloop_clock_mhz [get_property CONFIG.PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ $ps]

    # ---- clock and reset
    set clk [get_bd_pins ps7/FCLK_CLK0]
    set rst [create_bd_cell -type ip -vlnv xilinx.com:ip:proc_sys_reset:5.0 rst_fclk0]
    connect_bd_net [get_bd_pins ps7/FCLK_RESET0_N] [get_bd_pins rst_fclk0/ext_reset_in]
    set aresetn [get_bd_pins rst_fclk0/peripheral_aresetn]

    # ---- the spikeloop core
    set core [create_bd_cell -type module -reference $spikeloop_module core]
    if {[get_property VLNV $core] ne $spikeloop_vlnv} {
        error "spikeloop: the core's VLNV is [get_property VLNV $core], the driver binds to $spikeloop_vlnv"
    }
    # Vivado infers the interfaces; associate them with the clock and reset explicitly all the same.
    catch {set_property CONFIG.ASSOCIATED_BUSIF {s_axis:m_axis:s_axi} [get_bd_pins core/aclk]}
    catch {set_property CONFIG.ASSOCIATED_RESET {aresetn} [get_bd_pins core/aclk]}
    catch {set_property CONFIG.POLARITY {ACTIVE_LOW} [get_bd_pins core/aresetn]}

    # ---- AXI DMA, simple mode (no scatter-gather), 26-bit transfer length (64 MiB per transfer)
    set dma [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_dma:7.1 dma]
    set_property -dict [list \
        CONFIG.c_include_sg {0} \
        CONFIG.c_sg_length_width $spikeloop_dma_length_width \
        CONFIG.c_sg_include_stscntrl_strm {0} \
        CONFIG.c_include_mm2s {1} \
        CONFIG.c_include_s2mm {1} \
        CONFIG.c_m_axi_mm2s_data_width {64} \
        CONFIG.c_m_axis_mm2s_tdata_width $spikeloop_bus_width \
        CONFIG.c_m_axi_s2mm_data_width {64} \
        CONFIG.c_s_axis_s2mm_tdata_width $spikeloop_bus_width \
        CONFIG.c_mm2s_burst_size {16} \
        CONFIG.c_s2mm_burst_size {16} \
    ] $dma

    # ---- control path: GP0 -> interconnect -> DMA registers, core registers
    set ctrl [create_bd_cell -type ip -vlnv xilinx.com:ip:axi_interconnect:2.1 ctrl_ic]
    set_property CONFIG.NUM_MI {2} $ctrl
    connect_bd_intf_net [get_bd_intf_pins ps7/M_AXI_GP0] [get_bd_intf_pins ctrl_ic/S00_AXI]
    connect_bd_intf_net [get_bd_intf_pins ctrl_ic/M00_AXI] [get_bd_intf_pins dma/S_AXI_LITE]
    connect_bd_intf_net [get_bd_intf_pins ctrl_ic/M01_AXI] [get_bd_intf_pins core/s_axi]

    # ---- data path: DMA memory masters -> SmartConnect -> HP0
    set mem [create_bd_cell -type ip -vlnv xilinx.com:ip:smartconnect:1.0 mem_ic]
    set_property -dict [list CONFIG.NUM_SI {2} CONFIG.NUM_MI {1}] $mem
    connect_bd_intf_net [get_bd_intf_pins dma/M_AXI_MM2S] [get_bd_intf_pins mem_ic/S00_AXI]
    connect_bd_intf_net [get_bd_intf_pins dma/M_AXI_S2MM] [get_bd_intf_pins mem_ic/S01_AXI]
    connect_bd_intf_net [get_bd_intf_pins mem_ic/M00_AXI] [get_bd_intf_pins ps7/S_AXI_HP0]

    # ---- spike streams
    connect_bd_intf_net [get_bd_intf_pins dma/M_AXIS_MM2S] [get_bd_intf_pins core/s_axis]
    connect_bd_intf_net [get_bd_intf_pins core/m_axis] [get_bd_intf_pins dma/S_AXIS_S2MM]

    # ---- DMA interrupts to the PS (IRQ_F2P[0] = MM2S, IRQ_F2P[1] = S2MM)
    set irq [create_bd_cell -type ip -vlnv xilinx.com:ip:xlconcat:2.1 irq_concat]
    set_property CONFIG.NUM_PORTS {2} $irq
    connect_bd_net [get_bd_pins dma/mm2s_introut] [get_bd_pins irq_concat/In0]
    connect_bd_net [get_bd_pins dma/s2mm_introut] [get_bd_pins irq_concat/In1]
    connect_bd_net [get_bd_pins irq_concat/dout] [get_bd_pins ps7/IRQ_F2P]

    # ---- one clock, one reset for everything
    connect_bd_net $clk \
        [get_bd_pins ps7/M_AXI_GP0_ACLK] [get_bd_pins ps7/S_AXI_HP0_ACLK] \
        [get_bd_pins rst_fclk0/slowest_sync_clk] \
        [get_bd_pins core/aclk] \
        [get_bd_pins dma/s_axi_lite_aclk] [get_bd_pins dma/m_axi_mm2s_aclk] [get_bd_pins dma/m_axi_s2mm_aclk] \
        [get_bd_pins ctrl_ic/ACLK] [get_bd_pins ctrl_ic/S00_ACLK] [get_bd_pins ctrl_ic/M00_ACLK] \
        [get_bd_pins ctrl_ic/M01_ACLK] \
        [get_bd_pins mem_ic/aclk]
    connect_bd_net [get_bd_pins rst_fclk0/interconnect_aresetn] [get_bd_pins ctrl_ic/ARESETN]
    connect_bd_net $aresetn \
        [get_bd_pins core/aresetn] [get_bd_pins dma/axi_resetn] \
        [get_bd_pins ctrl_ic/S00_ARESETN] [get_bd_pins ctrl_ic/M00_ARESETN] [get_bd_pins ctrl_ic/M01_ARESETN] \
        [get_bd_pins mem_ic/aresetn]

    # ---- address map (spikeloop.regmap: the core's range holds every register and window)
    assign_bd_address -target_address_space [get_bd_addr_spaces ps7/Data] \
        -offset $spikeloop_base -range $spikeloop_range [get_bd_addr_segs core/s_axi/reg0]
    assign_bd_address -target_address_space [get_bd_addr_spaces ps7/Data] \
        -offset $spikeloop_dma_base -range $spikeloop_dma_range [get_bd_addr_segs dma/S_AXI_LITE/Reg]
    foreach space {dma/Data_MM2S dma/Data_S2MM} {
        assign_bd_address -target_address_space [get_bd_addr_spaces $space] \
            [get_bd_addr_segs ps7/S_AXI_HP0/HP0_DDR_LOWOCM]
    }

    validate_bd_design
    save_bd_design
}
