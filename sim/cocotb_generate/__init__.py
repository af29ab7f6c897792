"""cocotb text generation on the accelerator RTL (greedy, the RTL's own top-1 fed back),
run by ``python -m sim.generate_rtl`` and tests/test_cocotb_generate.py."""
