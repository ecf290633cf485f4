"""spikeloop.boards."""
