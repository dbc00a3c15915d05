"""The code behind `thalamus bench`: the digits continual-learning benchmark and its baselines
(`continual.py`), per-hop latency by transport (`hops.py`), camera-to-action latency
(`camera_loop.py`) and the captioner's accuracy, speed and memory (`caption.py`)."""
