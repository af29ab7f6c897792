"""cocotb testbenches of the accelerator core (hw.core.Accelerator), run by sim.runner."""
