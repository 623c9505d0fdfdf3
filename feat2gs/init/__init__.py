"""Step 1: pointmap initialisers (gt; dust3r/mast3r slot in through ``register_init``) and the step-1 writer."""

from feat2gs.init.base import InitResult, get_init, register_init

__all__ = ["InitResult", "get_init", "register_init"]
