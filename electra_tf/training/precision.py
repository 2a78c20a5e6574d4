"""Mixed-precision set-up: the Keras global dtype policy from `training.mixed_precision`."""

import keras

PRECISIONS = ("none", "float32", "mixed_bfloat16", "mixed_float16")


def configure_precision(name: str) -> keras.mixed_precision.DTypePolicy:
    """Sets the Keras global dtype policy from `training.mixed_precision`.

    `mixed_bfloat16` needs no loss scaling; `mixed_float16` does (see `create_optimizer`).

    Args:
        name: none | float32 | mixed_bfloat16 | mixed_float16.

    Returns:
        The policy now in force.
    """
    if name not in PRECISIONS:
        raise ValueError(
            f"mixed_precision={name!r} is not supported; use one of {', '.join(PRECISIONS)}")
    keras.mixed_precision.set_global_policy("float32" if name == "none" else name)
    return keras.mixed_precision.global_policy()
