"""spikeloop.app: the application shell (command line, demo) over the contract, quant, rtl, sim, host and boards."""
