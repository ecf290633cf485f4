"""spikeloop.host."""
