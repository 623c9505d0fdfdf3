"""Step 2: losses, schedules, training views and the readout trainer."""

from feat2gs.train.trainer import TrainResult, train_readout

__all__ = ["TrainResult", "train_readout"]
