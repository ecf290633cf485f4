"""spikeloop.sim."""
