"""The one random stream behind initialisation, dropout and shuffling.

    fastnn.manual_seed(0)          # makes init, Dropout masks and fit()'s shuffling reproducible
    state = fastnn.get_rng_state() # a JSON-able dict; checkpoints save it
    fastnn.set_rng_state(state)

Until manual_seed is called the stream is seeded from the operating system,
so two runs differ, as NumPy's default generator does.
"""
from __future__ import annotations


import numpy as np

from fastnn._args import check_int

_generator = np.random.Generator(np.random.PCG64())


def manual_seed(seed: int) -> np.random.Generator:
    """Re-seed fastnn's random stream (PCG64) and return its generator."""
    global _generator
    _generator = np.random.Generator(np.random.PCG64(check_int(seed, "seed", high=None)))
    return _generator


def generator() -> np.random.Generator:
    """The generator every fastnn component draws from."""
    return _generator


def get_rng_state() -> dict:
    """The stream's state as plain ints and strings (JSON-able)."""
    state = _generator.bit_generator.state
    return {"bit_generator": state["bit_generator"],
            "state": {"state": str(state["state"]["state"]), "inc": str(state["state"]["inc"])},
            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}


def set_rng_state(state: dict) -> None:
    """Restore a state from get_rng_state()."""
    try:
        if state["bit_generator"] != "PCG64":
            raise ValueError(f"expected a PCG64 state, got {state['bit_generator']!r}")
        bits = np.random.PCG64()
        bits.state = {"bit_generator": "PCG64",
                      "state": {"state": int(state["state"]["state"]),
                                "inc": int(state["state"]["inc"])},
                      "has_uint32": int(state["has_uint32"]),
                      "uinteger": int(state["uinteger"])}
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"state must come from fastnn.get_rng_state(): {err}") from None
    _generator.bit_generator.state = bits.state
