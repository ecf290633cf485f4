"""spikeloop: binary-weight spiking neural networks from PyTorch to FPGA and back."""
