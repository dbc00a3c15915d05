"""The learner: a world model trained off the hot path, by default trc (thalamically routed cortical
columns with cache and spectral memories, `trc.py`, run as a world model by `continual_world.py`),
else a replay-trained MLP (`world_model.py`); the LearnerActor that trains it (`actor.py`); and the
measures of a finished task-sequence run: its checkpoints played on every task (`scoring.py`), the
forgetting numbers of the matrix that gives (`forgetting.py`) and forward transfer (`transfer.py`).

Nothing is imported here, so the scoring of a stored evaluation never pays for torch.
"""
