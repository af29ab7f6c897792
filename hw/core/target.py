"""What the elaborating platform is: the ECP5 gets primitives (DSP, flip-flops, DCCA)."""

__all__ = ["on_ecp5"]


def on_ecp5(platform) -> bool:
    """True when elaborating for a Lattice ECP5 (an amaranth-boards platform with
    ``family == "ecp5"``); simulation and other families get the generic logic."""
    return getattr(platform, "family", None) == "ecp5"
