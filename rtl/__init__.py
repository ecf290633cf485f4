"""spikeloop.rtl."""
