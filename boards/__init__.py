"""spikeloop.boards: board definitions, resource estimates and bitstream flows (docs/boards.md).

- `devices`: the boards as data (PYNQ-Z2's xc7z020, ULX3S's ECP5-85F), their capacity and defaults.
- `estimate`: LUT/FF/BRAM/DSP from Yosys (cached by design) and from an analytic model, cycles per
  timestep and synaptic ops per cycle, the fit check, the search for the largest fitting
  configuration (`spikeloop estimate`).
- `vivado` + `pynq_z2/*.tcl`: the PYNQ-Z2 overlay (Zynq PS, AXI DMA, the core as a module reference).
- `ulx3s` + `uart_bridge`: the ULX3S bitstream from PyPI tools, the core behind a UART bridge.
- `build`: what `make bitstream BOARD=...` runs. `flow`: what the flows share.
"""
