"""spikeloop.quant."""
